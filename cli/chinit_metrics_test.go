package cli

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestChannelCountMetrics: the members' /metrics show their channel
// initiators' own counts (written by the initiator, a child process, for
// its member: package channel/chanstats). n messages of 64-byte bodies
// go over shared sender channel TO.R: the member running it counts n
// messages, at least n/BATCHSZ batches, and as many bytes sent as the
// receiving member counts received, more than n bodies; the other member
// counts nothing. Then the member running it is killed, m more messages
// go: the survivor counts one takeover and those m messages, the
// receiving side n+m.
func TestChannelCountMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const n, m, body, batchSz = 500, 120, 64, 50 // putRange's bodies; sendingSide's BATCHSZ
	r := newRemoteGroup(t)
	r.port = freePort(t)
	r.startWith("RQM", "--port", strconv.Itoa(r.port), "--http", "127.0.0.1:0")
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) AUTHKEY('" + testAuthKey + "')")
	r.mqsc("DEFINE QLOCAL(TARGET) MAXDEPTH(999999999)")
	g := newTestGroupSized(t, 64<<20)
	for _, name := range []string{"QM1", "QM2"} {
		g.startWith(name, "--http", "127.0.0.1:0")
	}
	g.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ) MAXDEPTH(999999999)")
	g.mqsc(fmt.Sprintf("DEFINE CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) BATCHSZ(%d) SHORTTMR(1) AUTHKEY('%s')", r.port, batchSz, testAuthKey))
	g.mqsc("DEFINE QREMOTE(RQ) RNAME(TARGET) RQMNAME(RQM) XMITQ(XQ)")

	putRange(t, g, "QM1", 0, n)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") == n })
	st, _ := g.chStatus("TO.R")
	owner := g.peerName(st.Owner)
	if owner == "" {
		t.Fatalf("channel status %+v: no owner", st)
	}
	other := map[string]string{"QM1": "QM2", "QM2": "QM1"}[owner]
	// The figures are written once a second: wait for these, then check
	// the rest against them.
	var sent, recv map[string]float64
	waitFor(t, "the sender's and the receiver's counts on /metrics", 30*time.Second, func() bool {
		sent = scrapeChannelCounts(t, metricsURL(t, g, owner), "TO.R")
		recv = scrapeChannelCounts(t, metricsURL(t, r, "RQM"), "TO.R")
		return sent["qmgr_channel_messages_total"] == n && recv["qmgr_channel_messages_total"] == n
	})
	if b := sent["qmgr_channel_batches_total"]; b < n/batchSz || b > n {
		t.Errorf("%s: %v batches for %d messages of BATCHSZ(%d)", owner, b, n, batchSz)
	}
	if sb, rb := sent["qmgr_channel_sent_bytes_total"], recv["qmgr_channel_received_bytes_total"]; sb <= n*body || sb != rb {
		t.Errorf("%s sent %v bytes, RQM received %v: want the same, more than %d bodies of %d bytes", owner, sb, rb, n, body)
	}
	if recv["qmgr_channel_batches_total"] != sent["qmgr_channel_batches_total"] {
		t.Errorf("%s committed %v batches, RQM %v", owner, sent["qmgr_channel_batches_total"], recv["qmgr_channel_batches_total"])
	}
	for _, k := range []string{"qmgr_channel_takeovers_total", "qmgr_channel_received_bytes_total"} {
		if sent[k] != 0 {
			t.Errorf("%s: %s %v, want 0", owner, k, sent[k])
		}
	}
	if recv["qmgr_channel_sent_bytes_total"] != 0 {
		t.Errorf("RQM: sent bytes %v on its receiver, want 0", recv["qmgr_channel_sent_bytes_total"])
	}
	if got := scrapeChannelCounts(t, metricsURL(t, g, other), "TO.R"); len(got) != 0 {
		t.Errorf("%s, which did not run TO.R, exports %v", other, got)
	}
	if logsContain(g, "event=channel_takeover") {
		t.Error("a channel_takeover line for START CHANNEL, no instance having died")
	}

	// The survivor takes the channel over and counts it.
	g.kill(owner)
	putRange(t, g, other, n, m)
	waitFor(t, "the messages put after the kill at the remote side", 120*time.Second, func() bool { return r.depth("TARGET") == n+m })
	var surv map[string]float64
	waitFor(t, "the survivor's counts on /metrics", 30*time.Second, func() bool {
		surv = scrapeChannelCounts(t, metricsURL(t, g, other), "TO.R")
		recv = scrapeChannelCounts(t, metricsURL(t, r, "RQM"), "TO.R")
		return surv["qmgr_channel_messages_total"] == m && recv["qmgr_channel_messages_total"] == n+m
	})
	if surv["qmgr_channel_takeovers_total"] != 1 {
		t.Errorf("%s took TO.R over from %s: takeovers %v, want 1", other, owner, surv["qmgr_channel_takeovers_total"])
	}
	if !logsContain(g, "event=channel_takeover", "channel=TO.R", "from="+owner) {
		t.Errorf("no channel_takeover line naming TO.R and %s", owner)
	}
	if sb := surv["qmgr_channel_sent_bytes_total"]; sb <= m*body {
		t.Errorf("%s sent %v bytes for %d messages of %d bytes", other, sb, m, body)
	}
	checkSeq(t, r, n+m)
}

// metricsURL is member name's /metrics, from its log line "http server
// listening".
func metricsURL(t *testing.T, g *testGroup, name string) string {
	t.Helper()
	log := g.harness().Log(name)
	m := regexp.MustCompile(`msg="http server listening" addr=(\S+)`).FindAllStringSubmatch(log, -1)
	if m == nil {
		t.Fatalf("%s did not log its HTTP address:\n%s", name, log)
	}
	return "http://" + m[len(m)-1][1] + "/metrics"
}

// scrapeChannelCounts is the qmgr_channel_*_total figures of channel ch
// on a member's /metrics (none when its channel initiator has no figures
// of ch); it fails the test when a part of the scrape failed.
func scrapeChannelCounts(t *testing.T, url, ch string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, b)
	}
	for _, s := range mfs["qmgr_scrape_errors"].GetMetric() {
		if s.GetGauge().GetValue() != 0 {
			t.Fatalf("scrape error: %v", s)
		}
	}
	got := map[string]float64{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "qmgr_channel_") || !strings.HasSuffix(name, "_total") {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "channel" && l.GetValue() == ch {
					got[name] = s.GetCounter().GetValue()
				}
			}
		}
	}
	return got
}
