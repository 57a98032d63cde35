package request_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"syscall"
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

// TestDuplicateWhileTheRecordIsHeld: two request messages with one id
// each created the state (A's run went on: its claim, made before B's
// create committed, saw no other marker; B's manager died between its
// create and its claim). A's manager then dies in the middle of a step:
// A's record is held by that unit of work until its member recovers it,
// and A's message is back on the input queue first. The manager that
// takes A sees B's record alone: it must not take A for the duplicate
// (B's marker and record do not make B the request while A's marker says
// A's record exists), or, once A's record is back, B is moved aside too,
// and the request is lost: both messages on the Unexpected Message Queue,
// its state left for ever.
//
// A's step is played by a holder process; B's message is held by the
// test's own connection until A's record is back.
func TestDuplicateWhileTheRecordIsHeld(t *testing.T) {
	e := newEnv(t)
	id := request.ID{0xab, 0x18, 0x01}
	e.putWithID(id, 2, request.ModeRecoverable, "wait")
	var toks []uint64
	for _, m := range e.browse(inputQ) {
		if m.MsgID == id {
			toks = append(toks, m.Token)
		}
	}
	if len(toks) != 2 || toks[0] == toks[1] {
		t.Fatalf("tokens of the two request messages: %x", toks)
	}
	holdB, err := mq.Connect(e.connect("QM1"))
	if err != nil {
		t.Fatal(err)
	}
	defer holdB.Disconnect()
	in, err := holdB.Open(inputQ, mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := in.Get(mq.GetOptions{Syncpoint: true})
	if err != nil || b.Token != toks[0] {
		t.Fatalf("hold B: %v (token %x, want %x)", err, b.Token, toks[0])
	}
	tokB, tokA := toks[0], toks[1]
	now := time.Now()
	fresh := func(lock uint64) []byte {
		r := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 1, RequestID: id, Lock: lock,
			Created: now, Updated: now, Manager: "RMDEAD", ReplyToQ: clientQ}
		return r.Encode()
	}
	// A's: its program ran and waits for its call to NOANSWER.
	recA := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 2, RequestID: id, Lock: tokA,
		Created: now, Updated: now, Manager: "RMDEAD", Step: "waiting", ReplyToQ: clientQ,
		Pending: []request.PendingCall{{Attempt: 1, Seq: 1, Sent: now, Timeout: time.Minute, Queue: "NOANSWER"}},
		Journal: []request.Entry{{Kind: request.EntryCall, Outcome: request.OutcomePending, Attempt: 1, Seq: 1, Name: "NOANSWER", Hash: request.SentHash("", []byte("wait"))}}}
	e.putState(id, 0xfd, request.FormatLive, fresh(tokA))
	e.putState(id, 0xfe, request.FormatState, recA.Encode())
	// B's, as its create left it.
	e.putState(id, 0xfd, request.FormatLive, fresh(tokB))
	e.putState(id, 0xfe, request.FormatState, fresh(tokB))
	holder := e.start("holder", "QM1", nil, "-id", id.String()) // A's record: the first
	if rs, _ := request.List(e.c, ""); len(rs) != 1 || rs[0].Lock != tokB {
		t.Fatalf("the holder does not hold A's record: %+v", rs)
	}
	e.start("manager", "QM1", nil, "-name", "RM1", "-workers", "2")
	dupA := false
	waitFor(t, 20*time.Second, "the manager to take A", func() bool {
		for _, h := range e.facts(id).strays {
			if h.Reason == request.ReasonDuplicate {
				dupA = true
				return true
			}
		}
		for _, m := range e.browse(inputQ) {
			if m.MsgID == id && m.BackoutCount >= 1 {
				return true // taken, and backed out to be taken later
			}
		}
		return false
	})
	if dupA {
		t.Errorf("A, whose record was held by its dead step, moved aside as a duplicate of B")
	}
	holder.p.Process.Signal(syscall.SIGKILL)
	<-holder.done
	if err := holdB.Backout(); err != nil {
		t.Fatal(err)
	}
	// The request resumed from A's record (its call pending again), and
	// B moved aside; or, both moved aside, the request lost.
	deadline := time.Now().Add(20 * time.Second)
	waitFor(t, 25*time.Second, "both messages taken", func() bool {
		f := e.facts(id)
		if time.Now().After(deadline) {
			rs, _ := request.List(e.c, "")
			for _, r := range rs {
				t.Logf("record lock %x attempts %d pending %d", r.Lock, r.Attempts, len(r.Pending))
			}
			t.Logf("facts %+v", f)
		}
		if f.onInput {
			return false
		}
		n := 0
		for _, h := range f.strays {
			if h.Reason == request.ReasonDuplicate {
				n++
			}
		}
		if n >= 2 {
			return true
		}
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		return n == 1 && len(rs) == 1 && rs[0].Lock == tokA && rs[0].Attempts == 2 && len(rs[0].Pending) == 1
	})
	if t.Failed() {
		var left []string
		for _, m := range e.browse(request.DefaultStateQueue) {
			r, _ := request.ParseRecord(m.Body)
			left = append(left, fmt.Sprintf("%s lock %x", m.Format, r.Lock))
		}
		t.Fatalf("both request messages on the Unexpected Message Queue: the request is lost, its state left: %q", left)
	}
	if err := request.Cancel(e.c, "", id); err != nil {
		t.Fatal(err)
	}
	f := e.waitEnded(id)
	if len(f.finals) != 1 || f.finals[0] != request.FormatPurged+":request purged" {
		t.Errorf("finals %q, want one \"request purged\"", f.finals)
	}
}

// TestServePoisonQueueMissing: a poison call whose queue's BOQNAME names
// no queue (and no dead-letter queue takes it from mq either) is answered
// with its failure reply and removed, as on a queue without BOQNAME: Serve
// must not back it out and return, for a server run again would take it
// again first, fail the same way and return again, for ever, and no call
// behind it would be served.
func TestServePoisonQueueMissing(t *testing.T) {
	e := newEnv(t)
	if out, err := e.g.MQSC("QM1", "DEFINE QLOCAL(POISON.Q) BOTHRESH(3) BOQNAME(NO.SUCH.BOQ)"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	q, err := e.c.Open("POISON.Q", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	bad := &mq.Message{CorrelID: [24]byte{3}, ReplyToQ: clientQ, Body: []byte("bad")}
	good := &mq.Message{CorrelID: [24]byte{4}, ReplyToQ: clientQ, Body: []byte("good")}
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
	defer cancel()
	served := make(chan error, 1)
	go func() {
		served <- request.Serve(ctx, conn, "POISON.Q", func(call *mq.Message) ([]byte, error) {
			if string(call.Body) == "bad" {
				return nil, fmt.Errorf("the handler fails on %q", call.Body)
			}
			return append([]byte("re:"), call.Body...), nil
		})
	}()
	replies := map[[24]byte]string{}
	waitFor(t, 10*time.Second, "both replies, or Serve to return", func() bool {
		select {
		case err := <-served:
			t.Fatalf("Serve returned: %v", err)
		default:
		}
		for _, m := range e.browse(clientQ) {
			replies[m.CorrelID] = m.Format + ":" + string(m.Body)
		}
		return len(replies) == 2
	})
	if r := replies[bad.CorrelID]; !strings.HasPrefix(r, request.FormatCallFailed+":") {
		t.Errorf("the poison call's reply %q, want a %s", r, request.FormatCallFailed)
	}
	if r := replies[good.CorrelID]; r != ":re:good" {
		t.Errorf("the good call's reply %q", r)
	}
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	drain(t, e, clientQ)
}

// TestSweeperKeepsRepliesWithTwoRecords: request X has two records for a
// while (a second request message with its id created its state too and
// its manager died before its claim, or a dead manager's create was
// carried out late): the record of the run that goes on (A's), with its
// call pending, and the other's, created later and waiting for the run's
// next step to remove it. The reply of A's call must wait for A, whichever
// record the sweeper reads last: moved as TIMED_OUT because the other
// record has no call pending, it is lost, and A's call, performed, times
// out.
func TestSweeperKeepsRepliesWithTwoRecords(t *testing.T) {
	e := newEnv(t)
	var x, d request.ID
	copy(x[:], "two-records-request-X000")
	copy(d[:], "unknown-request-D-000001")
	now := time.Now()
	fresh := func(lock uint64) []byte {
		r := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 1, RequestID: x, Lock: lock,
			Created: now, Updated: now, Manager: "RMDEAD", ReplyToQ: clientQ}
		return r.Encode()
	}
	recA := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 2, RequestID: x, Lock: 0xa,
		Created: now, Updated: now, Manager: "RMA", Step: "FLIGHT", ReplyToQ: clientQ,
		Pending: []request.PendingCall{{Attempt: 1, Seq: 1, Sent: now, Timeout: time.Minute, Queue: "FLIGHT"}},
		Journal: []request.Entry{{Kind: request.EntryCall, Outcome: request.OutcomePending, Attempt: 1, Seq: 1, Name: "FLIGHT"}}}
	e.putState(x, 0xfd, request.FormatLive, fresh(0xa))
	e.putState(x, 0xfe, request.FormatState, recA.Encode())
	e.putState(x, 0xfd, request.FormatLive, fresh(0xb))
	e.putState(x, 0xfe, request.FormatState, fresh(0xb))
	rq, err := e.c.Open(request.DefaultReplyQueue, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rq.Close()
	for _, k := range []request.Key{request.KeyOf(x), request.KeyOf(d)} {
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
	if hs, _ := e.unexpected(x); len(hs) > 0 || e.facts(x).onReplyQ != 1 {
		t.Errorf("the reply of request X's pending call moved to the Unexpected Message Queue: %+v", hs)
	}
	m.stop(t)
	drain(t, e, request.DefaultStateQueue)
	drain(t, e, request.DefaultReplyQueue)
}

// TestDuplicateOfAVersion1Request: a request whose state a manager of
// version 1 created (its record and marker keep no lock: Record.Lock
// zero) and this version resumes is held by the request message that
// resumed it, like one this version created: a second request message
// with its id, taken while it runs, goes to the Unexpected Message Queue
// (DUPLICATE) instead of being taken for the first and resuming it too,
// the two runs fencing each other take after take.
func TestDuplicateOfAVersion1Request(t *testing.T) {
	e := newEnv(t)
	id := request.ID{0xab, 0x19, 0x01}
	now := time.Now()
	old := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 1, RequestID: id,
		Created: now, Updated: now, Manager: "RMV1", ReplyToQ: clientQ}
	e.putState(id, 0xfd, request.FormatLive, old.Encode())
	e.putState(id, 0xfe, request.FormatState, old.Encode())
	e.putWithID(id, 1, request.ModeRecoverable, "wait")
	e.start("manager", "QM1", nil, "-name", "RM1", "-workers", "2")
	e.waitRecord(20*time.Second, "the request resumed, waiting for its call", func(r *request.Record) bool {
		return r.RequestID == id && r.Attempts == 2 && len(r.Pending) == 1
	})
	e.putWithID(id, 1, request.ModeRecoverable, "wait")
	dup := false
	waitFor(t, 20*time.Second, "the second message taken", func() bool {
		for _, h := range e.facts(id).strays {
			if h.Reason == request.ReasonDuplicate {
				dup = true
				return true
			}
		}
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(rs, func(r *request.Record) bool { return r.RequestID == id && r.Attempts > 2 })
	})
	if !dup {
		t.Errorf("the second request message resumed the request (attempt 3) instead of going to the Unexpected Message Queue")
	}
	if err := request.Cancel(e.c, "", id); err != nil {
		t.Fatal(err)
	}
	f := e.waitEnded(id)
	if len(f.finals) != 1 || f.finals[0] != request.FormatPurged+":request purged" {
		t.Errorf("finals %q, want one \"request purged\"", f.finals)
	}
}
