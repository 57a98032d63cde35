package metrics_test

import (
	"os"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel/chanstats"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/mqsc"
	"github.com/qmgr/qmgr/qm"
)

// withChinit is a member whose channel initiator is said to run as pid.
type withChinit struct {
	*qm.Member
	pid int
}

func (w withChinit) Children() mqsc.Children {
	ch := w.Member.Children()
	ch.Chinit = mqsc.Child{State: "RUNNING", Pid: w.pid}
	return ch
}

// TestChinitFigures: the channel initiator's figures file is exported
// only when it is the running initiator's (its pid) and recent; a damaged
// one is a scrape error of part chinit, not figures.
func TestChinitFigures(t *testing.T) {
	m, cfg := startMember(t, "QM1")
	path := chanstats.Path(m.Group().Config().DataDir, cfg.Name)
	const pid = 4242
	fig := chanstats.Figures{Pid: pid, Written: time.Now(), Channels: []chanstats.Channel{
		{Name: "TO.B", SentBytes: 3440, Batches: 2, Messages: 10, Takeovers: 1},
		{Name: "FROM.B", ReceivedBytes: 77, Batches: 1, Messages: 1},
	}}
	write := func(f chanstats.Figures) {
		t.Helper()
		if err := chanstats.Write(path, f); err != nil {
			t.Fatal(err)
		}
	}
	write(fig)
	mfs := scrape(t, metrics.Handler(metrics.NewRegistry(withChinit{m, pid}), nil))
	for _, c := range []struct {
		metric, channel string
		want            float64
	}{
		{"qmgr_channel_sent_bytes_total", "TO.B", 3440}, {"qmgr_channel_received_bytes_total", "TO.B", 0},
		{"qmgr_channel_batches_total", "TO.B", 2}, {"qmgr_channel_messages_total", "TO.B", 10},
		{"qmgr_channel_takeovers_total", "TO.B", 1}, {"qmgr_channel_received_bytes_total", "FROM.B", 77},
		{"qmgr_channel_messages_total", "FROM.B", 1}, {"qmgr_channel_takeovers_total", "FROM.B", 0},
	} {
		if got := value(t, mfs, c.metric, map[string]string{"channel": c.channel}); got != c.want {
			t.Errorf("%s{channel=%s}: %v, want %v", c.metric, c.channel, got, c.want)
		}
	}
	if got := value(t, mfs, "qmgr_scrape_errors", map[string]string{"part": "chinit"}); got != 0 {
		t.Errorf("scrape errors of part chinit: %v", got)
	}
	// Another process's (a dead initiator's), stale, or no initiator
	// running: none.
	for what, src := range map[string]metrics.Source{"another pid": withChinit{m, pid + 1}, "no initiator": m} {
		if _, n := find(scrape(t, metrics.Handler(metrics.NewRegistry(src), nil)), "qmgr_channel_messages_total", nil); n != 0 {
			t.Errorf("%s: %d series of qmgr_channel_messages_total, want none", what, n)
		}
	}
	fig.Written = time.Now().Add(-chanstats.MaxAge - time.Second)
	write(fig)
	if _, n := find(scrape(t, metrics.Handler(metrics.NewRegistry(withChinit{m, pid}), nil)), "qmgr_channel_messages_total", nil); n != 0 {
		t.Errorf("stale figures: %d series of qmgr_channel_messages_total, want none", n)
	}
	// A damaged file: a scrape error, no figures.
	if err := os.WriteFile(path, []byte(`{"pid":4242,"written":"2026-01-01T00:00:00Z","channels":[{"name":"A"},{"name":"A"}]}`), 0o660); err != nil {
		t.Fatal(err)
	}
	mfs = scrape(t, metrics.Handler(metrics.NewRegistry(withChinit{m, pid}), nil))
	if got := value(t, mfs, "qmgr_scrape_errors", map[string]string{"part": "chinit"}); got != 1 {
		t.Errorf("a damaged file: scrape errors of part chinit %v, want 1", got)
	}
	if _, n := find(mfs, "qmgr_channel_messages_total", nil); n != 0 {
		t.Errorf("a damaged file: %d series of qmgr_channel_messages_total, want none", n)
	}
}
