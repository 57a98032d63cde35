package httpd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/qm"
)

// TestMemberSourceAfterStop: a request that arrives after the member
// stopped (and unmapped its group) gets an error, not a fault on the
// unmapped memory.
func TestMemberSourceAfterStop(t *testing.T) {
	dir := t.TempDir()
	m, err := qm.Start(qm.Config{Group: group.Config{Name: "T", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	src := MemberSource(m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	if err := src.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if rep, err := src.Status(); err != nil || rep.Active != 1 {
		t.Fatalf("status: %+v %v", rep, err)
	}
	m.Stop()
	if err := src.Ready(); !errors.Is(err, qm.ErrStopped) {
		t.Fatalf("ready after the stop: %v", err)
	}
	if rep, err := src.Status(); !errors.Is(err, qm.ErrStopped) {
		t.Fatalf("status after the stop: %+v %v", rep, err)
	}
}

// TestMetricsScrapeKeepsWhatCollects: /metrics of a real member whose
// peer table holds two records of the same name (written by another
// process, or damaged): the registry refuses the duplicate series, and the
// scrape must still answer 200 with every other series (as
// metrics.Handler promises), not 500 for the whole member.
func TestMetricsScrapeKeepsWhatCollects(t *testing.T) {
	dir := t.TempDir()
	m, err := qm.Start(qm.Config{Group: group.Config{Name: "T", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); m.Stop() }()
	go m.Run(ctx)
	o, err := m.Group().Admin().Register()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, slot := range []int{group.PeerSlots - 2, group.PeerSlots - 1} {
		if ok, err := m.Group().UpdatePeer(o, slot, func(p *group.Peer) bool {
			p.Name, p.State = "QMX", group.PeerStopped
			return true
		}); err != nil || !ok {
			t.Fatalf("peer slot %d: %v %v", slot, ok, err)
		}
	}
	reg := prometheus.NewRegistry()
	metrics.Register(reg, m)
	_, url := serve(t, Config{Registry: reg}, MemberSource(m))
	resp, body := do(t, "GET", url+"/metrics", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `qmgr_peer_state{group="T",member="QM1",peer="QM1",state="active"} 1`) {
		t.Fatalf("metrics: %d %q", resp.StatusCode, body)
	}
}
