package request_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// putIDTo puts a non-persistent request message of mode with body and
// request id id to queue.
func (e *env) putIDTo(queue string, id request.ID, mode request.Mode, body string) {
	e.t.Helper()
	q, err := e.c.Open(queue, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	m := &mq.Message{MsgID: id, Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(body)), ReplyToQ: clientQ, Persistence: mq.NotPersistent}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// TestDuplicateOnAnotherStructure: two managers whose input queues are in
// two structures share the group-wide state queue. A client puts one
// request message (non-persistent) to the first, and the same message
// (its MsgID) to the second while the first runs. The second must go to
// the Unexpected Message Queue as a DUPLICATE, as it would on the same
// input queue: two messages alive at once must not have one token
// (mq.Message.Token), whatever the structure each is in. With the entry's
// token alone, the first message of each of two fresh structures has the
// same one, the second is taken for the first coming back, and the two
// runs fence and resume each other, the request running again.
func TestDuplicateOnAnotherStructure(t *testing.T) {
	e := newEnv(t)
	for _, line := range []string{
		"DEFINE CFSTRUCT(APPL2) SIZE(24)",
		"DEFINE CFSTRUCT(APPL3) SIZE(24)",
		"DEFINE QLOCAL(IN.A) CFSTRUCT(APPL2) MAXDEPTH(1000)",
		"DEFINE QLOCAL(IN.B) CFSTRUCT(APPL3) MAXDEPTH(1000)",
	} {
		if out, err := e.g.MQSC("QM1", line); err != nil {
			t.Fatalf("%s: %v %s", line, err, out)
		}
	}
	cfg := request.Config{Workers: 1, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond, Program: travel}
	cfg.Name, cfg.Input = "RMA", "IN.A"
	e.reviewManager("QM1", cfg)
	cfg.Name, cfg.Input = "RMB", "IN.B"
	mb := e.reviewManager("QM1", cfg)

	id := request.ID{0xab, 0x17}
	e.putIDTo("IN.A", id, request.ModeRecoverable, "ok")
	e.waitRecord(20*time.Second, "the request to wait for its first call", func(r *request.Record) bool { return r.RequestID == id && len(r.Pending) == 1 })
	// The same message, to the other manager: taken while the first runs.
	t.Logf("the first waits for its call")
	e.putIDTo("IN.B", id, request.ModeRecoverable, "ok")
	dup := false
	waitFor(t, 20*time.Second, "the second message taken", func() bool {
		for _, h := range e.facts(id).strays {
			if h.Reason == request.ReasonDuplicate {
				dup = true
			}
		}
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.RequestID == id && r.Attempts > 1 {
				return true // resumed: taken for the first
			}
		}
		return dup
	})
	if !dup {
		var got []string
		rs, _ := request.List(e.c, "")
		for _, r := range rs {
			if r.RequestID == id {
				got = append(got, fmt.Sprintf("attempts %d lock %x manager %s", r.Attempts, r.Lock, r.Manager))
			}
		}
		t.Fatalf("the second request message was taken for the first (records: %q), not moved aside as a duplicate", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mb.Stop(ctx)
	e.start("server", "QM1", nil)
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 {
		t.Errorf("final replies %q, want one", f.finals)
	}
	for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
		if f.performed[q] != 1 {
			t.Errorf("%s performed %d times, want once", q, f.performed[q])
		}
	}
}

// TestSweeperKeepsANewerManagersReplies: a request run by a manager of a
// newer version (its record and live marker of a version this code does
// not know: a rolling upgrade) is in flight; its request message is held
// by that manager, so no manager of this version takes it to quarantine
// it. A reply of its pending call must wait on the reply queue for the
// newer manager, as a reply of a request whose marker this code can read
// does: the sweeper must not take a marker it cannot read for no marker
// and move the reply to the Unexpected Message Queue (UNKNOWN_REQUEST),
// where the request never finds it.
func TestSweeperKeepsANewerManagersReplies(t *testing.T) {
	e := newEnv(t)
	var c, d request.ID
	copy(c[:], "newer-manager-request-C0")
	copy(d[:], "unknown-request-D-000000")
	now := time.Now()
	rec := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 2, RequestID: c,
		Created: now, Updated: now, Manager: "RMNEWER", ReplyToQ: clientQ,
		Pending: []request.PendingCall{{Attempt: 1, Seq: 1, Sent: now, Timeout: time.Minute, Queue: "FLIGHT"}}}
	newer := rec.Encode()
	newer[4] = 0xff // the version (255): a newer manager's
	e.putState(c, 0xfd, request.FormatLive, newer)
	e.putState(c, 0xfe, request.FormatState, newer)
	rq, err := e.c.Open(request.DefaultReplyQueue, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	// C's reply, and one of a request nobody knows (D), put before any
	// sweeper runs: D's moved says a sweep saw both.
	for _, k := range []request.Key{request.KeyOf(c), request.KeyOf(d)} {
		id := request.CallID{Key: k, Attempt: 1, Seq: 1}.Bytes()
		if err := rq.Put(&mq.Message{CorrelID: id, Body: []byte("reply")}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	m := e.start("manager", "QM1", nil)
	waitFor(t, 20*time.Second, "the reply of unknown request D moved", func() bool {
		hs, _ := e.unexpected(d)
		return len(hs) > 0
	})
	if hs, _ := e.unexpected(c); len(hs) > 0 || e.facts(c).onReplyQ != 1 {
		t.Errorf("the reply of request C, in flight on a newer manager, moved to the Unexpected Message Queue: %+v", hs)
	}
	m.stop(t)
	// What the newer manager would have taken and removed.
	drain(t, e, request.DefaultStateQueue)
	drain(t, e, request.DefaultReplyQueue)
}
