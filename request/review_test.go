package request_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// reviewPutTo puts a request of mode with body whose reply-to queue is replyTo
// and returns its id.
func (e *env) reviewPutTo(mode request.Mode, body, replyTo string) request.ID {
	e.t.Helper()
	q, err := e.c.Open(inputQ, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	m := &mq.Message{Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(body)), ReplyToQ: replyTo}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return request.ID(m.MsgID)
}

// TestUndeliverableManagerReply: a request whose reply-to queue does not
// exist, and whose manager must send a final reply of its own (the
// recoverable one's FAILED, the restartable one's RETRIED after its X
// attempts, a cancelled one's PURGED), still ends: the reply that cannot
// be delivered goes to the Unexpected Message Queue saying so, instead of
// the request being taken again and again for ever.
func TestUndeliverableManagerReply(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil)
	const noQ = "NO.SUCH.REPLYQ"
	cn := e.reviewPutTo(request.ModeRestartable, "wait", noQ)
	e.waitRecord(10*time.Second, "the request to wait for its call", func(r *request.Record) bool { return r.RequestID == cn && r.Step == "waiting" })
	if err := request.Cancel(e.c, "", cn); err != nil {
		t.Fatal(err)
	}
	rc := e.reviewPutTo(request.ModeRecoverable, "fail", noQ)
	rs := e.reviewPutTo(request.ModeRestartable, "fail", noQ)
	for _, c := range []struct {
		id     request.ID
		how    string
		format string
	}{{rc, "DONE", request.FormatFailed}, {rs, "DONE", request.FormatRetried}, {cn, "CANCELLED", request.FormatPurged}} {
		f := e.waitEnded(c.id)
		if how := e.endedBy(c.id); how != c.how {
			t.Errorf("%s: ended %s, want %s", c.id, how, c.how)
		}
		var got []string
		for _, m := range e.browse(request.DefaultUnexpectedQueue) {
			h, _, err := request.ParseUnexpectedHeader(m.Body)
			if err == nil && h.RequestID == c.id && h.Reason == request.ReasonUndeliverable {
				if h.OrigQ != noQ || h.OrigFormat != c.format {
					t.Errorf("%s: undeliverable reply %+v, want for %s of format %s", c.id, h, noQ, c.format)
				}
				got = append(got, h.OrigFormat)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s: undeliverable replies on the Unexpected Message Queue %q, want one; facts %+v", c.id, got, f)
		}
	}
}

// reviewManager starts a request manager in the test's process, through
// member via, and stops it at the end of the test. Its log goes to the
// test's log when the test fails.
func (e *env) reviewManager(via string, cfg request.Config) *request.Manager {
	e.t.Helper()
	cfg.Connect = e.connect(via)
	if cfg.Input == "" {
		cfg.Input = inputQ
	}
	var logs reviewLogBuffer
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(&logs, nil))
	}
	m, err := request.Start(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	t := e.t
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m.Stop(ctx)
		if t.Failed() {
			t.Logf("manager %s:\n%s", cfg.Name, logs.String())
		}
	})
	return m
}

type reviewLogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *reviewLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *reviewLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestTakenOverWhileRunning: a manager's lock on a request (its L unit of
// work) is backed out while the request runs: here by the member's
// --uow-max-age, which breaks L's connection only, so that the worker
// goes on with W. Another worker takes the request and resumes it. The
// first one must not write the request's state or send anything any more
// (its steps are fenced): a recoverable request still gets exactly one
// final reply.
//
// The program blocks its first run (attempt 1) until the second one
// (attempt 2, the taker) is running, and the second until the first tried
// its final reply.
func TestTakenOverWhileRunning(t *testing.T) {
	e := newEnv(t)
	if _, err := e.g.Start("QM2", "--uow-max-age", "1s"); err != nil {
		t.Fatal(err)
	}
	release1, release2 := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	e.reviewManager("QM2", request.Config{
		Name: "RMX", Workers: 2, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Program: func(ctx *request.Ctx, req *request.Request) error {
			if err := ctx.Save("x", []byte("saved")); err != nil {
				return err
			}
			switch ctx.Attempt() {
			case 1:
				<-release1
				err := ctx.FinalReply([]byte("from the first"))
				first <- err
				return err
			case 2:
				<-release2
			}
			return ctx.FinalReply(fmt.Appendf(nil, "from attempt %d", ctx.Attempt()))
		},
	})
	id := e.put(request.ModeRecoverable, "ok")
	e.waitRecord(30*time.Second, "a second worker to take the request over", func(r *request.Record) bool { return r.RequestID == id && r.Attempts >= 2 })
	close(release1)
	select {
	case err := <-first:
		t.Logf("the first run's final reply: %v", err)
		if err == nil {
			// It was not fenced: let it end the request before the
			// second goes on.
			e.waitRecord(20*time.Second, "the first run to mark the request ended", func(r *request.Record) bool { return r.RequestID == id && r.Status == request.StatusDone })
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the first run did not try its final reply")
	}
	close(release2)
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 {
		t.Errorf("final replies %q, want one", f.finals)
	}
}

// reviewWaitGone waits until no message of request id is left in flight (for
// managers of the test's own process, which print no ENDED line).
func (e *env) reviewWaitGone(id request.ID) facts {
	e.t.Helper()
	var f facts
	waitFor(e.t, 30*time.Second, "request "+id.String()+" to leave nothing in flight", func() bool {
		f = e.facts(id)
		return !f.live && !f.onInput && f.onReplyQ == 0
	})
	return f
}

// TestStateRecordTooBig: a recoverable request whose journal outgrows the
// state queue's MAXMSGL (here a saved value bigger than it) cannot record
// its progress: it must end, with exactly one final reply saying why,
// instead of being abandoned and taken again for ever.
func TestStateRecordTooBig(t *testing.T) {
	e := newEnv(t)
	if out, err := e.g.MQSC("QM1", "ALTER QLOCAL("+request.DefaultStateQueue+") MAXMSGL(4096)"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var mu sync.Mutex
	ended := map[request.ID]request.Status{}
	var saveErr error
	e.reviewManager("QM1", request.Config{
		Name: "RMX", Workers: 1, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Program: func(ctx *request.Ctx, req *request.Request) error {
			if err := ctx.Save("big", bytes.Repeat([]byte("x"), 5000)); err != nil {
				mu.Lock()
				saveErr = err
				mu.Unlock()
				return err
			}
			return ctx.FinalReply([]byte("saved"))
		},
		Ended: func(id request.ID, how request.Status) {
			mu.Lock()
			ended[id] = how
			mu.Unlock()
		},
	})
	id := e.put(request.ModeRecoverable, "ok")
	waitFor(t, 20*time.Second, "the request to end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := ended[id]
		return ok
	})
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 || !strings.HasPrefix(f.finals[0], request.FormatFailed+":") {
		t.Errorf("final replies %q, want one %s", f.finals, request.FormatFailed)
	}
	mu.Lock()
	defer mu.Unlock()
	if !errors.Is(saveErr, request.ErrStateTooBig) {
		t.Errorf("Save: %v, want ErrStateTooBig", saveErr)
	}
	if f.tomb != nil && len(f.tomb.Encode()) > 4096 {
		t.Errorf("tombstone of %d bytes", len(f.tomb.Encode()))
	}
}

// TestReplayReturnsEarly: a program that is not deterministic and, when
// its request is resumed, returns before it replayed its whole journal
// (here: it saved "a" and "b" and waited for a call the first time, and
// only saves "a" the second) did something other than its journal: it
// gets ErrNondeterministic, and the recoverable request ends with a
// failure reply, not silently as if it had succeeded.
func TestReplayReturnsEarly(t *testing.T) {
	e := newEnv(t)
	prog := func(ctx *request.Ctx, req *request.Request) error {
		if err := ctx.Save("a", []byte("1")); err != nil {
			return err
		}
		if ctx.Attempt() > 1 {
			return nil // the second run forgets the rest
		}
		if err := ctx.Save("b", []byte("2")); err != nil {
			return err
		}
		ctx.Step("waiting")
		if _, err := ctx.Call("NOANSWER", nil, request.CallOptions{Timeout: time.Minute}); err != nil {
			return err
		}
		return ctx.FinalReply([]byte("done"))
	}
	e.wantNondeterministicOnResume(prog)
}

// wantNondeterministicOnResume runs a recoverable request of prog on RM1
// until it waits for its call (step "waiting", one call pending), abandons
// it there (RM1 stops), and checks that RM2, resuming it, ends it with one
// FormatFailed reply saying ErrNondeterministic.
func (e *env) wantNondeterministicOnResume(prog request.Program) {
	t := e.t
	t.Helper()
	cfg := request.Config{Name: "RM1", Workers: 1, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond, Program: prog}
	m1 := e.reviewManager("QM1", cfg)
	id := e.put(request.ModeRecoverable, "ok")
	e.waitRecord(10*time.Second, "the request to wait for its call", func(r *request.Record) bool { return r.RequestID == id && r.Step == "waiting" && len(r.Pending) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m1.Stop(ctx) // abandons the request: it goes back to the input queue
	cfg.Name = "RM2"
	e.reviewManager("QM1", cfg)
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 || !strings.HasPrefix(f.finals[0], request.FormatFailed+":") || !strings.Contains(f.finals[0], request.ErrNondeterministic.Error()) {
		t.Errorf("final replies %q, want one %s saying %q", f.finals, request.FormatFailed, request.ErrNondeterministic)
	}
}

// TestStrayForEndedButNotRemoved: a reply that comes for a request whose
// record says it ended (purged here) but which is still there (its
// manager died between its last two commits, and nobody took it yet) is
// moved saying how the request ended (PURGED), not TIMED_OUT.
func TestStrayForEndedButNotRemoved(t *testing.T) {
	e := newEnv(t)
	if out, err := e.g.MQSC("QM1", "DEFINE QLOCAL(OTHER.IN)"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e.start("server", "QM1", nil)
	once := filepath.Join(t.TempDir(), "hit")
	id := e.put(request.ModeNonRecoverable, "fail")
	a := e.start("manager", "QM1", []string{crashpoint.EnvVar + "=request.done.committed:1", crashpoint.OnceVar + "=" + once})
	<-a.done
	if _, err := os.Stat(once); err != nil {
		t.Fatalf("the crash point was not reached: %v\n%s", err, a.p.Log())
	}
	// A late reply of the request's (a call it never waited for).
	rq, err := e.c.Open(request.DefaultReplyQueue, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	late := request.CallID{Key: request.KeyOf(id), Attempt: 1, Seq: 2}.Bytes()
	if err := rq.Put(&mq.Message{CorrelID: late, Body: []byte("late")}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A manager of another input queue: only its sweeper sees the request.
	e.reviewManager("QM1", request.Config{Name: "RMS", Input: "OTHER.IN", SweepInterval: 50 * time.Millisecond,
		Program: func(*request.Ctx, *request.Request) error { return nil }})
	var h request.UnexpectedHeader
	waitFor(t, 10*time.Second, "the late reply moved", func() bool {
		for _, m := range e.browse(request.DefaultUnexpectedQueue) {
			if hh, _, err := request.ParseUnexpectedHeader(m.Body); err == nil && hh.CorrelID == late {
				h = hh
				return true
			}
		}
		return false
	})
	if h.Reason != request.ReasonPurged || h.RequestID != id {
		t.Errorf("moved as %v of request %s, want PURGED of %s", h.Reason, h.RequestID, id)
	}
	// A manager of its input finds the ended record and only removes the
	// request, its record and marker (the test's end checks nothing is
	// left), without running it again.
	e.start("manager", "QM1", nil)
	f := e.reviewWaitGone(id)
	if len(f.finals) != 0 {
		t.Errorf("the ended request replied when it was taken again: %q", f.finals)
	}
}

// TestServePoisonReplyTo: a call whose reply-to queue does not exist is a
// poison message for its server, as a call whose handler fails: Serve
// backs it out and goes on (the queue's BOTHRESH moves it aside) instead
// of returning, which stopped every server that took it, one after the
// other.
func TestServePoisonReplyTo(t *testing.T) {
	e := newEnv(t)
	q, err := e.c.Open("FLIGHT", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	bad := &mq.Message{CorrelID: [24]byte{1}, ReplyToQ: "NO.SUCH.REPLYQ", Body: []byte("bad")}
	good := &mq.Message{CorrelID: [24]byte{2}, ReplyToQ: clientQ, Body: []byte("good")}
	for _, m := range []*mq.Message{bad, good} {
		if err := q.Put(m, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := mq.Connect(e.connect("QM1"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Disconnect()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- request.Serve(ctx, conn, "FLIGHT", func(call *mq.Message) ([]byte, error) {
			return append([]byte("re:"), call.Body...), nil
		})
	}()
	waitFor(t, 10*time.Second, "the good call's reply, or Serve to return", func() bool {
		select {
		case err := <-served:
			t.Fatalf("Serve returned: %v", err)
		default:
		}
		for _, m := range e.browse(clientQ) {
			if m.CorrelID == good.CorrelID {
				return true
			}
		}
		return false
	})
	if n := len(e.browse("FLIGHT.BO")); n != 1 {
		t.Errorf("%d calls on FLIGHT.BO, want the bad one", n)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	// Take the bad call and the good reply away: the test's end checks
	// that nothing is left on the queues.
	for _, qn := range []string{"FLIGHT.BO", clientQ} {
		drain(t, e, qn)
	}
}

// reviewFailAPPL1 fails the application structure APPL1 (the loss of a CF
// structure: its non-persistent messages are gone) and recovers it.
func (e *env) reviewFailAPPL1() {
	e.t.Helper()
	s, err := lockfree.Attach(e.cfg.CFDir, "APPL1")
	if err != nil {
		e.t.Fatal(err)
	}
	s.Fail()
	s.Close()
	waitFor(e.t, 30*time.Second, "APPL1 recovered", func() bool {
		out, _ := e.g.MQSC("QM1", "DISPLAY CFSTATUS(APPL1)")
		if strings.Contains(out, "STATUS(ACTIVE)") {
			return true
		}
		e.g.MQSC("QM1", "RECOVER CFSTRUCT(APPL1)")
		return false
	})
}

// TestStructureFailureAfterFinalReply: a restartable request whose request
// message is persistent, and which sent its final reply (the requester
// took it), survives the loss of the structure as its mode says: it
// restarts from its final reply, which is not sent again. Its state must
// be as persistent as its request message: a state lost with the
// structure while the request comes back makes it start again from the
// top, a second final reply.
func TestStructureFailureAfterFinalReply(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	var mu sync.Mutex
	ended := map[request.ID]request.Status{}
	var logs reviewLogBuffer
	e.reviewManager("QM1", request.Config{
		Name: "RMX", Workers: 1, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Program: func(ctx *request.Ctx, req *request.Request) error {
			if _, err := ctx.Call("FLIGHT", req.Body, request.CallOptions{Timeout: 5 * time.Second}); err != nil {
				return err
			}
			if err := ctx.FinalReply([]byte("booked")); err != nil {
				return err
			}
			ctx.Step("waiting")
			ctx.Call("NOANSWER", nil, request.CallOptions{Timeout: 3 * time.Second})
			return nil
		},
		Ended: func(id request.ID, how request.Status) {
			mu.Lock()
			ended[id] = how
			mu.Unlock()
		},
	})
	q, err := e.c.Open(inputQ, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	m := &mq.Message{Format: request.FormatRequest, Body: request.RequestHeader{Mode: request.ModeRestartable}.Encode([]byte("ok")), ReplyToQ: clientQ, Persistence: mq.Persistent}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	q.Close()
	id := request.ID(m.MsgID)
	e.waitRecord(10*time.Second, "the final reply sent, the request waiting", func(r *request.Record) bool {
		return r.RequestID == id && r.Status == request.StatusFinalReplied && r.Step == "waiting"
	})
	finals := 0
	takeFinals := func(c *mq.Conn) {
		cq, err := c.Open(clientQ, mq.OpenOptions{Input: true})
		if err != nil {
			t.Fatal(err)
		}
		defer cq.Close()
		for {
			r, err := cq.Get(mq.GetOptions{CorrelID: (*[24]byte)(&id)})
			if errors.Is(err, mq.ErrNoMessage) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if request.IsFinalFormat(r.Format) {
				finals++
			}
		}
	}
	takeFinals(e.c) // the requester takes its final reply
	if finals != 1 {
		t.Fatalf("%d final replies before the failure", finals)
	}
	e.reviewFailAPPL1()
	e.start("server", "QM1", nil) // the first one stopped with the structure
	c, err := mq.Connect(e.connect("QM1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	waitFor(t, 60*time.Second, "the request to end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := ended[id]
		return ok
	})
	takeFinals(c)
	if finals != 1 {
		t.Errorf("%d final replies, want one: the request started again from the top", finals)
	}
	t.Logf("the manager connected %d times", strings.Count(logs.String(), "request manager connected"))
}

// TestStartRefusesReplyQueueBOTHRESH: a reply got and backed out (its
// manager died after getting it, before its commit) is taken again by the
// request's next run; with a BOTHRESH on the reply queue, mq would move it
// to the backout queue instead, and a recoverable request would wait for
// a reply that never comes, its call performed. Start refuses a reply
// queue (or cancel queue) with a backout threshold, as it does the input
// and state queues.
func TestStartRefusesReplyQueueBOTHRESH(t *testing.T) {
	e := newEnv(t)
	for _, q := range []string{request.DefaultReplyQueue, request.DefaultCancelQueue} {
		if out, err := e.g.MQSC("QM1", "ALTER QLOCAL("+q+") BOTHRESH(1) BOQNAME(PERFORMED)"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		m, err := request.Start(request.Config{Connect: e.connect("QM1"), Input: inputQ, Program: func(*request.Ctx, *request.Request) error { return nil }})
		if err == nil {
			m.Stop(context.Background())
			t.Errorf("Start accepted %s with BOTHRESH(1)", q)
		} else if !strings.Contains(err.Error(), "BOTHRESH") {
			t.Errorf("Start: %v, want a refusal naming BOTHRESH", err)
		}
		if out, err := e.g.MQSC("QM1", "ALTER QLOCAL("+q+") BOTHRESH(0)"); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
}

// TestReplaySendsADifferentBody: a program that, resumed, sends a call
// with another body than the one its journal recorded as sent (here: the
// clock's reading, which is not deterministic) gets ErrNondeterministic,
// and the recoverable request ends with a failure reply; it is not given
// the reply of the call it sent before as the reply of a call it did not.
func TestReplaySendsADifferentBody(t *testing.T) {
	e := newEnv(t)
	prog := func(ctx *request.Ctx, req *request.Request) error {
		ctx.Step("waiting")
		if _, err := ctx.Call("NOANSWER", fmt.Appendf(nil, "%d", time.Now().UnixNano()), request.CallOptions{Timeout: 3 * time.Second}); err != nil {
			return err
		}
		return ctx.FinalReply([]byte("done"))
	}
	e.wantNondeterministicOnResume(prog)
}

// holdFirst is a test hook that holds the first run to reach it (closing
// held) until release is closed, and lets every later one through (not
// sync.Once: the others would wait too).
func holdFirst(held, release chan struct{}) func(request.ID) {
	var first atomic.Bool
	return func(request.ID) {
		if first.CompareAndSwap(false, true) {
			close(held)
			<-release
		}
	}
}

// TestCreateAfterTheLockWasLost: a run whose lock (L) is backed out between
// its read of the request's state (none yet) and the commit that creates it
// (here by the member's --uow-max-age while the run is held there) creates
// a second record after another run took the request over, created the
// state and went on. The late run must be fenced at its first step (its
// record beside one further on), not go on: one final reply.
func TestCreateAfterTheLockWasLost(t *testing.T) {
	e := newEnv(t)
	if _, err := e.g.Start("QM2", "--uow-max-age", "1s"); err != nil {
		t.Fatal(err)
	}
	held, release := make(chan struct{}), make(chan struct{})
	defer request.SetTestHookBeforeCreate(holdFirst(held, release))()
	lateSave := make(chan error, 1)
	releaseTaker := make(chan struct{})
	var runs atomic.Int32
	e.reviewManager("QM2", request.Config{
		Name: "RMX", Workers: 2, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Program: func(ctx *request.Ctx, req *request.Request) error {
			n := runs.Add(1)
			err := ctx.Save("x", fmt.Appendf(nil, "run %d", n))
			if n == 2 { // the run held before its create: started second
				lateSave <- err
				return err
			}
			if err != nil {
				return err
			}
			<-releaseTaker
			return ctx.FinalReply([]byte("from the taker"))
		},
	})
	id := e.put(request.ModeRecoverable, "ok")
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("no run reached its create")
	}
	e.waitRecord(30*time.Second, "another run to take the request over and save", func(r *request.Record) bool { return r.RequestID == id && len(r.Journal) == 1 })
	close(release)
	select {
	case err := <-lateSave:
		if !errors.Is(err, request.ErrTakenOver) {
			t.Errorf("the late run's first step: %v, want ErrTakenOver", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the late run did not try its first step")
	}
	close(releaseTaker)
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":from the taker" {
		t.Errorf("final replies %q, want the taker's alone", f.finals)
	}
}

// TestLateReplyWhileTheRequestIsRemoved: a late reply swept while the unit
// of work that removes an ended request runs (its record and live marker
// got, so invisible, and not committed yet) is moved saying how the
// request ended (CANCELLED), not UNKNOWN_REQUEST: the request's tombstone
// must be visible before its record and marker go.
func TestLateReplyWhileTheRequestIsRemoved(t *testing.T) {
	e := newEnv(t)
	held, release := make(chan struct{}), make(chan struct{})
	defer request.SetTestHookBeforeFinishCommit(holdFirst(held, release))()
	e.reviewManager("QM1", request.Config{
		Name: "RMX", Workers: 1, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Program: func(ctx *request.Ctx, req *request.Request) error {
			ctx.Step("waiting")
			_, err := ctx.Call("NOANSWER", nil, request.CallOptions{Timeout: time.Minute})
			return err
		},
	})
	id := e.put(request.ModeRecoverable, "ok")
	e.waitRecord(10*time.Second, "the request to wait for its call", func(r *request.Record) bool { return r.RequestID == id && r.Step == "waiting" })
	if err := request.Cancel(e.c, "", id); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the request was not removed")
	}
	rq, err := e.c.Open(request.DefaultReplyQueue, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	late := request.CallID{Key: request.KeyOf(id), Attempt: 1, Seq: 1}.Bytes()
	if err := rq.Put(&mq.Message{CorrelID: late, Body: []byte("late")}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	rq.Close()
	// Swept while the request's removal is held.
	waitFor(t, 20*time.Second, "the late reply moved", func() bool { return len(e.facts(id).strays) > 0 })
	close(release)
	f := e.reviewWaitGone(id)
	var reasons []string
	for _, h := range f.strays {
		reasons = append(reasons, h.Reason.String())
	}
	if fmt.Sprint(reasons) != "[CANCELLED]" {
		t.Errorf("the late reply moved as %v, want [CANCELLED]", reasons)
	}
}
