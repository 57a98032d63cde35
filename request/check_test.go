package request_test

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
	"github.com/qmgr/qmgr/shm"
)

// The end-of-test checks of the request tests (newEnv registers
// finalCheck, sub registers stepCheck): after the processes a test killed
// and the ones still running are gone, nothing of a request is left in
// flight and the structure checker finds nothing wrong: no message lost,
// held twice or leaked by a SIGKILLed manager, server or member.

// quietQueues are the queues that must be empty, with nothing
// uncommitted, once every request ended and every manager and server
// stopped: the input queue, the reply and cancel queues, the subordinate
// servers' queues and their backout queues. The state queue must be
// empty too (no record nor live marker: tombstones are on the tombstone
// queue); the tombstone queue, the Unexpected Message Queue, the
// requester's reply queue and PERFORMED keep what the test looks at.
func quietQueues() []string {
	qs := []string{inputQ, request.DefaultReplyQueue, request.DefaultCancelQueue, "NOANSWER"}
	for _, q := range serverQueues {
		qs = append(qs, q, q+".BO")
	}
	return qs
}

// stopChildren ends every child still running, in order (SIGTERM), and
// waits for each.
func (e *env) stopChildren() {
	e.t.Helper()
	e.mu.Lock()
	children := append([]*child(nil), e.children...)
	e.mu.Unlock()
	for _, ch := range children {
		select {
		case <-ch.done:
			continue
		default:
		}
		ch.p.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.done:
		case <-time.After(15 * time.Second):
			e.t.Fatalf("child did not stop: %s", ch.p.Log())
		}
	}
}

// queueInfo is what the structure says of every queue of the group, by
// name (committed and uncommitted messages alike).
func (e *env) queueInfo() map[string]lockfree.QueueInfo {
	e.t.Helper()
	g, err := group.Open(e.cfg, false)
	if err != nil {
		e.t.Fatal(err)
	}
	defer g.Close()
	out, err := g.QueueInfos()
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// wantNothingInFlight fails the test with each of leftovers.
func (e *env) wantNothingInFlight() {
	e.t.Helper()
	for _, l := range e.leftovers() {
		e.t.Error(l)
	}
}

// leftovers waits until no queue of the group holds an uncommitted put or
// get (the units of work of killed processes are recovered by their
// member), then says what a quiet queue or the state queue holds: a
// request's record, marker, call, reply or cancel left behind.
func (e *env) leftovers() []string {
	e.t.Helper()
	var uncom []string
	waitFor(e.t, 30*time.Second, "no unit of work open on any queue", func() bool {
		uncom = uncom[:0]
		for name, qi := range e.queueInfo() {
			if qi.Uncom != 0 {
				uncom = append(uncom, fmt.Sprintf("%s(%d)", name, qi.Uncom))
			}
		}
		return len(uncom) == 0
	})
	var out []string
	info := e.queueInfo()
	for _, q := range quietQueues() {
		if d := info[q].Depth; d != 0 {
			out = append(out, fmt.Sprintf("%d messages left on %s", d, q))
		}
	}
	for _, m := range e.browse(request.DefaultStateQueue) {
		out = append(out, fmt.Sprintf("left on the state queue: a %s message, CorrelID %x", m.Format, m.CorrelID))
	}
	return out
}

// checkStructures runs qmgr check (the members running, so not a
// quiescent walk) and fails on any broken invariant.
func (e *env) checkStructures() {
	e.t.Helper()
	var out, errb bytes.Buffer
	if code := cli.Main(e.cfg.Args("check"), &out, &errb); code != 0 {
		e.t.Errorf("qmgr check: exit %d\n%s%s", code, out.String(), errb.String())
	}
}

// checkQuiescent stops every member in order and runs the checker on
// every structure as a quiescent one: counts must match exactly and
// nothing may be half done.
func (e *env) checkQuiescent() {
	e.t.Helper()
	if e.c != nil {
		e.c.Disconnect()
		e.c = nil
	}
	for _, n := range e.g.Names() {
		if m := e.g.Member(n); m != nil && !m.Exited() {
			if err := e.g.StopMember(n, 20*time.Second); err != nil {
				e.t.Fatal(err)
			}
		}
	}
	g, err := group.Open(e.cfg, false)
	if err != nil {
		e.t.Fatal(err)
	}
	defer g.Close()
	names, err := g.Structures()
	if err != nil {
		e.t.Fatal(err)
	}
	checked := 0
	for _, n := range append(names, shm.AdminStructure) {
		s := g.Admin()
		if n != shm.AdminStructure {
			if s, err = g.Structure(n, false); err != nil {
				e.t.Fatal(err)
			}
		}
		if r := s.Check(lockfree.CheckOptions{Quiescent: true}); !r.OK() {
			e.t.Errorf("structure %s, every member stopped: %v", n, r)
		}
		checked++
	}
	if checked < 2 {
		e.t.Errorf("checked %d structures: want the admin structure and an application one", checked)
	}
}

// finalCheck is the end of every multi-process request test that did not
// fail already: children stopped, nothing in flight, qmgr check clean,
// then the members stopped and the quiescent checker clean.
func (e *env) finalCheck() {
	if e.t.Failed() {
		return
	}
	e.t.Helper()
	e.stopChildren()
	e.wantNothingInFlight()
	e.checkStructures()
	if e.t.Failed() {
		return
	}
	e.checkQuiescent()
}

// stepCheck is the end of one crash-point subtest: nothing in flight and
// qmgr check clean, with the members and the server still running.
func (e *env) stepCheck() {
	if e.t.Failed() {
		return
	}
	e.t.Helper()
	e.wantNothingInFlight()
	e.checkStructures()
}

// TestCheckSeesALeftover: the end-of-test check is not vacuous: a call
// left on a server's queue, with nobody to take it, is reported.
func TestCheckSeesALeftover(t *testing.T) {
	e := newEnv(t)
	q, err := e.c.Open("FLIGHT", mq.OpenOptions{Output: true, Input: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if err := q.Put(&mq.Message{Body: []byte("left")}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if l := e.leftovers(); fmt.Sprint(l) != "[1 messages left on FLIGHT]" {
		t.Fatalf("leftovers %q", l)
	}
	// The cleanup's own check must not see it.
	if _, err := q.Get(mq.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}
