package request_test

import (
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/request"
)

// TestStateInFlightBackoff: a manager that takes a request whose live
// marker is there but not its record (held by a unit of work not yet
// recovered: here a holder process's uncommitted get) backs the request
// out and takes it again later, less and less often, instead of every
// ReconnectWait for as long as it lasts, and warns once it has lasted
// longer than Config.StateWaitWarn; once the record is back, the request
// resumes once and ends once.
func TestStateInFlightBackoff(t *testing.T) {
	e := newEnv(t)
	a := e.start("manager", "QM1", nil, "-name", "RMA", "-workers", "1")
	id := e.put(request.ModeRecoverable, "wait")
	e.waitRecord(10*time.Second, "the request to wait for its call", func(r *request.Record) bool { return r.RequestID == id && len(r.Pending) == 1 })
	holder := e.start("holder", "QM1", nil, "-id", id.String())
	a.p.Process.Signal(syscall.SIGKILL)
	<-a.done
	b := e.start("manager", "QM1", nil, "-name", "RMB", "-workers", "1", "-state-wait-warn", "500ms")
	const held = "state held by a dead manager's step"
	waitFor(t, 10*time.Second, "RMB to find the record in flight", func() bool { return strings.Contains(b.p.Log(), held) })
	time.Sleep(2 * time.Second) // the record held "for a while": what is measured is how often RMB takes the request meanwhile
	takes := strings.Count(b.p.Log(), held)
	warned := slices.ContainsFunc(strings.Split(b.p.Log(), "\n"), func(l string) bool {
		return strings.Contains(l, held) && strings.Contains(l, "level=WARN") && strings.Contains(l, "waited=")
	})
	holder.p.Process.Signal(syscall.SIGKILL)
	<-holder.done
	e.waitRecord(20*time.Second, "the request resumed by RMB", func(r *request.Record) bool { return r.RequestID == id && r.Manager == "RMB" && len(r.Pending) == 1 })
	if err := request.Cancel(e.c, "", id); err != nil {
		t.Fatal(err)
	}
	f := e.waitEnded(id)
	if len(f.finals) != 1 || f.finals[0] != request.FormatPurged+":request purged" {
		t.Errorf("finals %q, want one \"request purged\"", f.finals)
	}
	if n := strings.Count(b.p.Log(), "request resumed"); n != 1 {
		t.Errorf("resumed %d times by RMB, want once", n)
	}
	if n := strings.Count(strings.Join(b.printed(), "\n"), "ENDED "+id.String()); n != 1 {
		t.Errorf("ended %d times, want once", n)
	}
	if f.tomb == nil || f.tomb.Attempts != 2 {
		t.Errorf("tombstone %+v, want 2 takes", f.tomb)
	}
	// With ReconnectWait 20 ms, taking it again at that pace would be
	// about a hundred takes in 2 s; backing off, about seven.
	if takes > 20 {
		t.Errorf("RMB took the request %d times in 2 s while its record was in flight", takes)
	}
	t.Logf("%d takes while the record was in flight", takes)
	if !warned {
		t.Errorf("RMB did not warn, with how long, once the record was in flight longer than StateWaitWarn (500 ms)")
	}
	if t.Failed() {
		t.Logf("RMB:\n%s", b.p.Log())
	}
}

// printed is what the child printed so far.
func (ch *child) printed() []string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return append([]string(nil), ch.lines...)
}
