package request_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/request"
)

// TestTombstoneStorm: a storm of requests that fail (each leaves a
// tombstone, for TombstoneTTL: 10 min here) must not stop requests from
// running or ending. A tombstone is advisory: it only lets the sweeper say
// why a late reply is unexpected. Here the state queue holds 12 messages
// (three workers' requests in flight need 6: a record and a live marker
// each) and 30 requests fail: their tombstones go to the tombstone queue.
// Then the tombstone queue is full: requests that fail still end, without
// their tombstones, and the late reply of one whose call timed out is
// moved saying UNKNOWN_REQUEST, since nothing says how it ended.
func TestTombstoneStorm(t *testing.T) {
	e := newEnv(t)
	if out, err := e.g.MQSC("QM1", "ALTER QLOCAL("+request.DefaultStateQueue+") MAXDEPTH(12)"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e.start("server", "QM1", nil)
	rm := e.start("manager", "QM1", nil, "-workers", "3")
	var failing []request.ID
	for i := range 30 {
		failing = append(failing, e.put(modes[i%2], "fail")) // non-recoverable: purged; restartable: retried
	}
	for _, id := range failing {
		e.waitEnded(id)
	}
	e.wantRequestsRun("after the storm")
	tombs := len(e.browse(request.DefaultTombstoneQueue))
	if tombs != len(failing) {
		t.Errorf("%d tombstones for %d failed requests", tombs, len(failing))
	}

	if out, err := e.g.MQSC("QM1", fmt.Sprintf("ALTER QLOCAL(%s) MAXDEPTH(%d)", request.DefaultTombstoneQueue, tombs)); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	failing = failing[:0]
	for i := range 6 {
		failing = append(failing, e.put(modes[i%2], "fail"))
	}
	slow := e.put(request.ModeRestartable, "slow")
	for _, id := range failing {
		if f := e.waitEnded(id); f.tomb != nil {
			t.Errorf("%s: a tombstone on a full queue", id)
		}
	}
	f := e.waitEnded(slow)
	if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":withdrawn=false" || f.tomb != nil {
		t.Errorf("the slow request: finals %q, tombstone %+v", f.finals, f.tomb)
	}
	waitFor(t, 10*time.Second, "the late reply on the Unexpected Message Queue", func() bool { return len(e.facts(slow).strays) == 1 })
	if s := e.facts(slow).strays[0]; s.Reason != request.ReasonUnknownRequest {
		t.Errorf("the late reply moved as %v, want UNKNOWN_REQUEST", s.Reason)
	}
	if n := len(e.browse(request.DefaultTombstoneQueue)); n != tombs {
		t.Errorf("%d tombstones, want %d", n, tombs)
	}
	if n := strings.Count(rm.p.Log(), "request ended without its tombstone"); n != len(failing)+1 {
		t.Errorf("the manager said %d times that a request ended without its tombstone, want %d", n, len(failing)+1)
	}
	e.wantRequestsRun("with the tombstone queue full")
}

// wantRequestsRun puts an "ok" request of each mode and waits until each
// ended with its final reply.
func (e *env) wantRequestsRun(when string) {
	e.t.Helper()
	for _, mode := range modes {
		f := e.waitEnded(e.put(mode, "ok"))
		if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":FLIGHT-ok+HOTEL-ok" {
			e.t.Errorf("%v %s: finals %q", mode, when, f.finals)
		}
	}
}

// TestStartNeedsTheTombstoneQueue: a deployment of an earlier version
// has no tombstone queue; Start refuses to start, naming the MQSC that
// defines it.
func TestStartNeedsTheTombstoneQueue(t *testing.T) {
	e := newEnv(t)
	if out, err := e.g.MQSC("QM1", "DELETE QLOCAL("+request.DefaultTombstoneQueue+")"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var def string
	for _, l := range strings.Split(request.Definitions(), "\n") {
		if strings.Contains(l, "QLOCAL("+request.DefaultTombstoneQueue+")") {
			def = l
		}
	}
	m, err := request.Start(request.Config{Connect: e.connect("QM1"), Input: inputQ, Program: func(*request.Ctx, *request.Request) error { return nil }})
	if err == nil {
		m.Stop(context.Background())
		t.Fatal("Start without the tombstone queue")
	}
	if def == "" || !strings.Contains(err.Error(), def) {
		t.Errorf("Start: %v, want it to name %q", err, def)
	}
	if out, err := e.g.MQSC("QM1", def); err != nil {
		t.Fatalf("%v %s", err, out)
	}
}
