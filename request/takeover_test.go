package request_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

func init() {
	testproc.Register("holder", holderMain)
	testproc.Register("creator", creatorMain)
}

// recordID is the CorrelID of request id's state record (the call id
// layout with the reserved attempt and the record's tag).
func recordID(id request.ID) [24]byte {
	return request.CallID{Key: request.KeyOf(id), Attempt: 0xffffffff, Seq: 0xfffffffe}.Bytes()
}

// holderMain gets the state record of request -id under syncpoint, says
// READY, and holds it until it is killed: what a manager killed in the
// middle of a step (its record got, the new one not yet committed) leaves
// behind until its member recovers its connection.
func holderMain(args []string) int {
	fs := flag.NewFlagSet("holder", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	idHex := fs.String("id", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id, err := request.ParseID(*idHex)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := mq.Connect(cf.options())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	q, err := c.Open(request.DefaultStateQueue, mq.OpenOptions{Input: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	correl := recordID(id)
	if _, err := q.Get(mq.GetOptions{Syncpoint: true, CorrelID: &correl}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}

// TestTakeoverWhileTheRecordIsInFlight: a manager dies in the middle of a
// step, its record got and not yet replaced, and its member recovers the
// connection that held the request before the one that holds the record
// (TestTorture found it so). The manager that takes the request sees its
// live marker but not its record: it must not take the request for one
// that never started (a second record and marker, the calls made again),
// but wait until the record is back and resume from it.
//
// The dead manager's step is played by a holder process that gets the
// record under syncpoint before the manager is SIGKILLed, and is
// SIGKILLed itself once the second manager has taken the request.
func TestTakeoverWhileTheRecordIsInFlight(t *testing.T) {
	e := newEnv(t)
	a := e.start("manager", "QM1", nil, "-name", "RMA", "-workers", "1")
	id := e.put(request.ModeRecoverable, "wait")
	waitFor(t, 10*time.Second, "the request to wait for its call", func() bool {
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(rs) == 1 && rs[0].RequestID == id && len(rs[0].Pending) == 1
	})
	holder := e.start("holder", "QM1", nil, "-id", id.String())
	if rs, _ := request.List(e.c, ""); len(rs) != 0 {
		t.Fatalf("the holder does not hold the record: %d records visible", len(rs))
	}
	a.p.Process.Signal(syscall.SIGKILL)
	<-a.done
	b := e.start("manager", "QM1", nil, "-name", "RMB", "-workers", "1")
	// B takes the request once A's connection is recovered, and decides:
	// wrongly, a second live marker and record; rightly, it backs the
	// request out to take it again later (its backout count goes past
	// the one A's death gave it).
	waitFor(t, 10*time.Second, "the second manager to decide", func() bool {
		if e.markers(id) > 1 {
			return true
		}
		for _, m := range e.browse(inputQ) {
			if m.MsgID == id && m.BackoutCount >= 2 {
				return true
			}
		}
		return false
	})
	holder.p.Process.Signal(syscall.SIGKILL)
	<-holder.done
	// The record is back: B resumes the request (attempt 2), which waits
	// for its call again; a cancel ends it.
	waitFor(t, 10*time.Second, "the request resumed by RMB", func() bool {
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(rs) >= 1 && rs[0].Manager == "RMB" && len(rs[0].Pending) == 1
	})
	if n := e.markers(id); n != 1 {
		t.Errorf("%d live markers of the request on the state queue, want 1", n)
	}
	if rs, _ := request.List(e.c, ""); len(rs) != 1 || rs[0].Attempts != 2 {
		for _, r := range rs {
			t.Logf("record: manager %s attempts %d status %v pending %d", r.Manager, r.Attempts, r.Status, len(r.Pending))
		}
		t.Errorf("%d records, want one, of attempt 2", len(rs))
	}
	if err := request.Cancel(e.c, "", id); err != nil {
		t.Fatal(err)
	}
	f := e.waitEnded(id)
	if len(f.finals) != 1 || f.finals[0] != request.FormatPurged+":request purged" {
		t.Errorf("finals %q, want one \"request purged\"", f.finals)
	}
	b.stop(t)
}

// markers is how many live markers of request id the state queue holds.
func (e *env) markers(id request.ID) int {
	n := 0
	k := request.KeyOf(id)
	for _, m := range e.browse(request.DefaultStateQueue) {
		if m.Format == request.FormatLive && request.Key(m.CorrelID[:16]) == k {
			n++
		}
	}
	return n
}

// creatorMain puts a live marker and a state record of request -id under
// syncpoint, says READY, commits them on SIGUSR1 (saying COMMITTED) and
// then waits for SIGTERM: what a manager killed inside the commit that
// creates a request's state leaves, when its member's recovery carries
// the commit out (it was decided) after the connection that held the
// request was recovered.
func creatorMain(args []string) int {
	fs := flag.NewFlagSet("creator", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	idHex := fs.String("id", "", "")
	mode := fs.Int("mode", int(request.ModeRecoverable), "")
	ahead := fs.Duration("ahead", 0, "how far the dead manager's clock runs ahead")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	id, err := request.ParseID(*idHex)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := mq.Connect(cf.options())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	q, err := c.Open(request.DefaultStateQueue, mq.OpenOptions{Output: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	now := time.Now().Add(*ahead)
	rec := &request.Record{Mode: request.Mode(*mode), Status: request.StatusRunning, Attempts: 1, NextSeq: 1, RequestID: id,
		Created: now, Updated: now, Manager: "RMDEAD", ReplyToQ: clientQ}
	body := rec.Encode()
	live := recordID(id)
	live[23] = 0xfd // the live marker's tag
	for _, m := range []*mq.Message{
		{CorrelID: live, Format: request.FormatLive, Body: body},
		{CorrelID: recordID(id), Format: request.FormatState, Body: body},
	} {
		if err := q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	term, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	fmt.Println("READY")
	select {
	case <-usr1:
	case <-term.Done():
		return 0
	}
	if err := c.Commit(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("COMMITTED")
	<-term.Done()
	return 0
}

// TestTakeoverWhileTheCreateIsInFlight: a manager dies inside the commit
// that creates a request's state (the record and the live marker), after
// the commit was decided; its member recovers the connection that held
// the request first, so a second manager takes the request with nothing
// on the state queue, and creates its state; then the recovery carries
// the first commit out: two records and two markers. The request must
// still end leaving nothing behind but its tombstone.
//
// The dead manager's commit is played by a creator process, committed
// once the second manager runs the request.
func TestTakeoverWhileTheCreateIsInFlight(t *testing.T) {
	e := newEnv(t)
	id, creator, b := e.twoRecords(request.ModeRecoverable)
	f := e.cancelAndWaitEnded(id)
	if f.live {
		t.Errorf("state left on the state queue: %d live markers", e.markers(id))
	}
	if len(f.finals) != 1 || f.finals[0] != request.FormatPurged+":request purged" {
		t.Errorf("finals %q, want one \"request purged\"", f.finals)
	}
	b.stop(t)
	creator.stop(t)
}

// TestResumeFromTheMostAdvancedRecord: with the two records
// TestTakeoverWhileTheCreateIsInFlight makes (the late create's, never run,
// and the running manager's, its call sent), the running manager is
// SIGKILLed too: the manager that takes the request over must resume it
// from the running one's record, so its call, recorded as sent, is not
// sent again, and not from the stale one, as if nothing had been done.
func TestResumeFromTheMostAdvancedRecord(t *testing.T) {
	e := newEnv(t)
	id, creator, b := e.twoRecords(request.ModeRecoverable)
	b.p.Process.Kill()
	<-b.done
	e.start("manager", "QM1", nil, "-name", "RMC", "-workers", "1")
	// Its take recorded (the step label is not: replay).
	e.waitRecord(10*time.Second, "RMC to run the request", func(r *request.Record) bool { return r.RequestID == id && r.Manager == "RMC" })
	// RMC has taken the request and is replaying or waiting: give a call
	// sent again the time to show (a condition cannot say "not sent").
	e.waitRecord(10*time.Second, "RMC's record to show the call pending", func(r *request.Record) bool { return r.Manager == "RMC" && len(r.Pending) >= 1 })
	if n := len(e.browse("NOANSWER")); n != 1 {
		t.Errorf("%d calls on NOANSWER, want the one RMB sent: the request was resumed from the stale record and its call sent again", n)
	}
	f := e.cancelAndWaitEnded(id)
	if f.live {
		t.Errorf("state left on the state queue: %d live markers", e.markers(id))
	}
	if len(f.finals) != 1 || f.finals[0] != request.FormatPurged+":request purged" {
		t.Errorf("finals %q, want one \"request purged\"", f.finals)
	}
	creator.stop(t)
}

// TestResumeFromTheMostAdvancedRecordClockAhead: as
// TestResumeFromTheMostAdvancedRecord, for a restartable request (whose
// record keeps no journal before its final reply, so the two records have
// the same attempts and journal), the dead manager's host clock running
// an hour ahead of the others'. The taker must still resume from the
// running manager's record, which says a call was sent (its next call's
// number, its pending call), not from the stale one by its later Updated:
// its restart withdraws that call, and the call of its new attempt is the
// only one left on NOANSWER.
func TestResumeFromTheMostAdvancedRecordClockAhead(t *testing.T) {
	e := newEnv(t)
	id, creator, b := e.twoRecords(request.ModeRestartable, "-mode", fmt.Sprint(int(request.ModeRestartable)), "-ahead", "1h")
	b.p.Process.Kill()
	<-b.done
	e.start("manager", "QM1", nil, "-name", "RMC", "-workers", "1")
	e.waitRecord(10*time.Second, "RMC's second attempt to wait for its call", func(r *request.Record) bool {
		return r.RequestID == id && r.Manager == "RMC" && r.Attempts == 2 && len(r.Pending) == 1
	})
	var attempts []uint32
	for _, m := range e.browse("NOANSWER") {
		ci, err := request.ParseCallID(m.CorrelID)
		if err != nil {
			t.Fatal(err)
		}
		attempts = append(attempts, ci.Attempt)
	}
	if len(attempts) != 1 || attempts[0] != 2 {
		t.Errorf("calls on NOANSWER of attempts %v, want [2]: RMC resumed from the stale record and did not withdraw RMB's call", attempts)
	}
	e.cancelAndWaitEnded(id)
	if n := len(e.browse("NOANSWER")); n != 0 {
		// Not withdrawn by the end either: take it away for the
		// checker at the test's end, the failure being reported.
		t.Errorf("%d calls left on NOANSWER after the end", n)
		drain(t, e, "NOANSWER")
	}
	creator.stop(t)
}

// drain takes every message off queue.
func drain(t *testing.T, e *env, queue string) {
	t.Helper()
	h, err := e.c.Open(queue, mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for {
		if _, err := h.Get(mq.GetOptions{}); errors.Is(err, mq.ErrNoMessage) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// twoRecords sets up what TestTakeoverWhileTheCreateIsInFlight describes:
// a request of mode (body "wait") run by manager RMB, waiting for its call,
// and a creator process (with creatorArgs) whose create commit of a second
// record and marker is carried out late. It returns once both records are
// on the state queue.
func (e *env) twoRecords(mode request.Mode, creatorArgs ...string) (id request.ID, creator, rmb *child) {
	t := e.t
	t.Helper()
	id = e.put(mode, "wait")
	creator = e.start("creator", "QM1", nil, append([]string{"-id", id.String()}, creatorArgs...)...)
	rmb = e.start("manager", "QM1", nil, "-name", "RMB", "-workers", "1")
	waitFor(t, 10*time.Second, "the request to wait for its call", func() bool {
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		return len(rs) == 1 && rs[0].Manager == "RMB" && len(rs[0].Pending) == 1
	})
	creator.p.Process.Signal(syscall.SIGUSR1)
	waitFor(t, 10*time.Second, "the creator's commit", func() bool {
		creator.mu.Lock()
		defer creator.mu.Unlock()
		return slices.Contains(creator.lines, "COMMITTED")
	})
	if n := e.markers(id); n != 2 {
		t.Fatalf("%d live markers after the late commit, want 2 (the test's premise)", n)
	}
	return id, creator, rmb
}

// cancelAndWaitEnded cancels request id, waits until it has ended and
// gives what became of it.
func (e *env) cancelAndWaitEnded(id request.ID) facts {
	e.t.Helper()
	if err := request.Cancel(e.c, "", id); err != nil {
		e.t.Fatal(err)
	}
	waitFor(e.t, 10*time.Second, "the request to end", func() bool { return e.endedBy(id) != "" })
	return e.facts(id)
}
