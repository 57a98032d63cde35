package request_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// TestServePoisonCall: a call its server dies on (SIGKILLed while it holds
// the call, every time) is a poison call. Its request must learn so
// promptly, well before its call timeout (30 s), and end as its program
// says, instead of waiting for a reply that never comes once the queue's
// BOTHRESH (5) moved the call aside. The recoverable request's manager is
// killed once the failure is recorded: the request resumed replays it and
// ends the same way. The call is never performed, and ends up on the
// queue's backout queue.
func TestServePoisonCall(t *testing.T) {
	e := newEnv(t)
	const prompt = 15 * time.Second
	for _, mode := range []request.Mode{request.ModeRecoverable, request.ModeRestartable} {
		once := filepath.Join(t.TempDir(), "hit")
		var env []string
		if mode == request.ModeRecoverable {
			// Killed once the call's outcome is recorded.
			env = []string{crashpoint.EnvVar + "=request.reply.committed:1", crashpoint.OnceVar + "=" + once}
		}
		m1 := e.start("manager", "QM1", env)
		t0 := time.Now()
		id := e.put(mode, "poison")
		kills := 0
		var s *child
		for e.endedBy(id) == "" && !exited(m1) {
			if s == nil || exited(s) {
				s = e.start("server", "QM1", nil, "-kill-on", "poison")
			}
			select {
			case <-s.done:
				kills++
			case <-m1.done:
			case <-time.After(50 * time.Millisecond): // polling endedBy
			}
			if time.Since(t0) > prompt {
				t.Fatalf("%v: the request still waits for its poison call after %v (%d server kills; the call timeout is 30 s)", mode, prompt, kills)
			}
		}
		if mode == request.ModeRecoverable {
			<-m1.done
			if _, err := os.Stat(once); err != nil {
				t.Fatalf("the crash point was not reached: %s", m1.p.Log())
			}
			e.start("manager", "QM1", nil)
		}
		f := e.waitEnded(id)
		d := time.Since(t0)
		if d > prompt {
			t.Errorf("%v: ended %v after its put", mode, d)
		}
		t.Logf("%v: ended %v after its put, %d server kills: %q", mode, d.Round(time.Millisecond), kills, f.finals)
		wantFinal := request.FormatFinal + ":poison: request: call 1 to FLIGHT failed: "
		if len(f.finals) != 1 || !strings.HasPrefix(f.finals[0], wantFinal) {
			t.Errorf("%v: finals %q, want one beginning %q", mode, f.finals, wantFinal)
		}
		if kills != 4 || f.performed["FLIGHT"] != 0 {
			t.Errorf("%v: the server died %d times (want 4: BOTHRESH(5) less one), FLIGHT performed %d times", mode, kills, f.performed["FLIGHT"])
		}
		bo := e.browse("FLIGHT.BO")
		if len(bo) != 1 || bo[0].CorrelID != (request.CallID{Key: request.KeyOf(id), Attempt: 1, Seq: 1}.Bytes()) {
			t.Errorf("%v: %d messages on FLIGHT.BO, want the poison call", mode, len(bo))
		}
		drain(t, e, "FLIGHT.BO") // for the checker at the end
		e.stopChildren()
	}
}

// TestRecordOutcomeFailed: a call its server gave up on is journaled as
// such, with the server's reason, and a record holding one decodes.
func TestRecordOutcomeFailed(t *testing.T) {
	r := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 2,
		Journal: []request.Entry{{Kind: request.EntryCall, Outcome: request.OutcomeFailed, Attempt: 1, Seq: 1, Name: "FLIGHT", Value: []byte("backed out 4 times")}}}
	got, err := request.ParseRecord(r.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if e := got.Journal[0]; e.Outcome != request.OutcomeFailed || string(e.Value) != "backed out 4 times" {
		t.Errorf("journal entry %+v", e)
	}
	r.Journal[0].Outcome = request.OutcomeFailed + 1
	if _, err := request.ParseRecord(r.Encode()); !errors.Is(err, request.ErrBadHeader) {
		t.Errorf("outcome %d: %v, want ErrBadHeader", request.OutcomeFailed+1, err)
	}
}

// TestServeGivesUpOnAFailingHandler: a call whose handler always fails is
// answered with a failure reply after ServeOptions.MaxTries runs (below
// the queue's BOTHRESH), and moved to the queue's BOQNAME; on a queue
// without BOTHRESH nor BOQNAME, MaxTries still applies and the call is
// removed.
func TestServeGivesUpOnAFailingHandler(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		queue    string
		maxTries int
		runs     int
		aside    string
	}{{"FLIGHT", 2, 2, "FLIGHT.BO"}, {"FLIGHT", 0, 4, "FLIGHT.BO"}, {"FLIGHT", 9, 4, "FLIGHT.BO"}, {"NOANSWER", 3, 3, ""}} {
		q, err := e.c.Open(c.queue, mq.OpenOptions{Output: true})
		if err != nil {
			t.Fatal(err)
		}
		call := &mq.Message{CorrelID: [24]byte{7}, ReplyToQ: clientQ, Body: []byte("call")}
		if err := q.Put(call, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		q.Close()
		conn, err := mq.Connect(e.connect("QM1"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		var mu sync.Mutex
		runs := 0
		go func() {
			served <- request.ServeWith(ctx, conn, c.queue, func(*mq.Message) ([]byte, error) {
				mu.Lock()
				runs++
				mu.Unlock()
				return nil, errors.New("no")
			}, request.ServeOptions{MaxTries: c.maxTries})
		}()
		var reply *mq.Message
		waitFor(t, 10*time.Second, "the failure reply", func() bool {
			for _, m := range e.browse(clientQ) {
				if m.CorrelID == call.CorrelID {
					reply = m
					return true
				}
			}
			return false
		})
		cancel()
		if err := <-served; err != nil {
			t.Errorf("%+v: Serve: %v", c, err)
		}
		conn.Disconnect()
		mu.Lock()
		if runs != c.runs || reply.Format != request.FormatCallFailed || !strings.Contains(string(reply.Body), "not performed") {
			t.Errorf("%+v: %d runs, reply %s %q", c, runs, reply.Format, reply.Body)
		}
		mu.Unlock()
		if c.aside != "" {
			if bo := e.browse(c.aside); len(bo) != 1 || bo[0].MsgID != call.MsgID || string(bo[0].Body) != "call" {
				t.Errorf("%+v: %d messages on %s, want the call", c, len(bo), c.aside)
			}
			drain(t, e, c.aside)
		} else if !strings.HasSuffix(string(reply.Body), "; removed") {
			t.Errorf("%+v: reply %q", c, reply.Body)
		}
		if n := len(e.browse(c.queue)); n != 0 {
			t.Errorf("%+v: %d left on %s", c, n, c.queue)
		}
		drain(t, e, clientQ)
	}
}
