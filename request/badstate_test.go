package request_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// putState puts a message of format with body on the state queue under
// tag (0xfe the record, 0xfd the live marker) of request id.
func (e *env) putState(id request.ID, tag byte, format string, body []byte) {
	e.t.Helper()
	q, err := e.c.Open(request.DefaultStateQueue, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	correl := recordID(id)
	correl[23] = tag
	if err := q.Put(&mq.Message{CorrelID: correl, Format: format, Body: body}, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// putRequestID puts a request of mode with body whose MsgID is id (the
// test must know its id before the request is on the input queue).
func (e *env) putRequestID(id request.ID, mode request.Mode, body string) {
	e.t.Helper()
	q, err := e.c.Open(inputQ, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	m := &mq.Message{MsgID: id, Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(body)), ReplyToQ: clientQ}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// unexpected is request id's messages on the Unexpected Message Queue:
// each header and the original body.
func (e *env) unexpected(id request.ID) (hs []request.UnexpectedHeader, bodies [][]byte) {
	e.t.Helper()
	for _, m := range e.browse(request.DefaultUnexpectedQueue) {
		h, body, err := request.ParseUnexpectedHeader(m.Body)
		if err != nil {
			e.t.Fatalf("unexpected message queue: %v", err)
		}
		if h.RequestID == id || [16]byte(h.CorrelID[:16]) == [16]byte(request.KeyOf(id)) {
			hs = append(hs, h)
			bodies = append(bodies, body)
		}
	}
	return hs, bodies
}

// badStates puts two requests whose state cannot be read: A's record is
// not a record at all (its live marker is fine), and B's record and
// marker are of a version newer than this code knows. It gives their
// ids and the bytes of B's record.
func (e *env) badStates() (a, b request.ID, newer []byte) {
	e.t.Helper()
	copy(a[:], "bad-state-request-A-0000")
	copy(b[:], "bad-state-request-B-0000")
	now := time.Now()
	recA := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 2, RequestID: a,
		Created: now, Updated: now, Manager: "RMDEAD", ReplyToQ: clientQ,
		Pending: []request.PendingCall{{Attempt: 1, Seq: 1, Sent: now, Timeout: time.Minute, Queue: "NOANSWER"}}}
	e.putState(a, 0xfd, request.FormatLive, recA.Encode())
	e.putState(a, 0xfe, request.FormatState, []byte("RQST this is no state record at all"))
	recB := &request.Record{Mode: request.ModeRestartable, Status: request.StatusRunning, Attempts: 1, NextSeq: 1, RequestID: b,
		Created: now, Updated: now, Manager: "RMNEWER", ReplyToQ: clientQ}
	newer = recB.Encode()
	newer[4] = 0xff // the record's version (255): a newer manager's
	e.putState(b, 0xfd, request.FormatLive, newer)
	e.putState(b, 0xfe, request.FormatState, newer)
	// A late reply of A's pending call: the sweeper holds it while A's
	// marker says A is in flight, and must move it once A is gone.
	rq, err := e.c.Open(request.DefaultReplyQueue, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer rq.Close()
	late := request.CallID{Key: request.KeyOf(a), Attempt: 1, Seq: 1}.Bytes()
	if err := rq.Put(&mq.Message{CorrelID: late, Body: []byte("late")}, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.putRequestID(a, request.ModeRecoverable, "ok")
	e.putRequestID(b, request.ModeRestartable, "ok")
	return a, b, newer
}

// wantQuarantined checks that request id, its state unreadable, was moved
// whole to the Unexpected Message Queue saying BAD_STATE, once: its request
// message, its record and its live marker, with their bytes unchanged
// (want: the record's, nil not to compare); that nothing of it is left in
// flight; that it never ran (no reply, no call).
func (e *env) wantQuarantined(id request.ID, record []byte) {
	t := e.t
	t.Helper()
	var f facts
	waitFor(t, 20*time.Second, "request "+id.String()+" to leave nothing in flight", func() bool {
		f = e.facts(id)
		return !f.live && !f.onInput && f.onReplyQ == 0
	})
	hs, bodies := e.unexpected(id)
	got := map[string]int{}
	for i, h := range hs {
		if h.Reason != request.ReasonBadState {
			continue
		}
		if h.RequestID != id {
			t.Errorf("%s: quarantined %s message names request %s", id, h.OrigFormat, h.RequestID)
		}
		got[h.OrigQ+"/"+h.OrigFormat]++
		if h.OrigFormat == request.FormatState && record != nil && !bytes.Equal(bodies[i], record) {
			t.Errorf("%s: the quarantined record is not the one that was there: %q", id, bodies[i])
		}
	}
	want := map[string]int{inputQ + "/" + request.FormatRequest: 1, request.DefaultStateQueue + "/" + request.FormatState: 1, request.DefaultStateQueue + "/" + request.FormatLive: 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: moved to the Unexpected Message Queue saying BAD_STATE: %v, want %v (all: %+v)", id, got, want, hs)
	}
	if len(f.finals) != 0 || f.replies != 0 || len(f.performed) != 0 {
		t.Errorf("%s: it ran: finals %q, %d replies, performed %v", id, f.finals, f.replies, f.performed)
	}
}

// TestBadStateQuarantined: a request whose state record cannot be read
// (corrupt, or written by a newer manager) is neither run nor taken
// again for ever: its request message, record and live marker go to the
// Unexpected Message Queue saying BAD_STATE, in one unit of work, and the
// newer record is not overwritten. The sweeper then moves the request's
// late reply, which it held while the marker was there.
func TestBadStateQuarantined(t *testing.T) {
	e := newEnv(t)
	a, b, newer := e.badStates()
	m := e.start("manager", "QM1", nil)
	e.wantQuarantined(a, nil)
	e.wantQuarantined(b, newer)
	waitFor(t, 10*time.Second, "A's late reply moved", func() bool {
		hs, _ := e.unexpected(a)
		for _, h := range hs {
			if h.OrigQ == request.DefaultReplyQueue && h.Reason == request.ReasonUnknownRequest {
				return true
			}
		}
		return false
	})
	if !slices.ContainsFunc(strings.Split(m.p.Log(), "\n"), func(l string) bool {
		return strings.Contains(l, "level=ERROR") && strings.Contains(l, "quarantined")
	}) {
		t.Errorf("the manager logged no error saying it quarantined a request")
	}
	if t.Failed() {
		t.Logf("manager:\n%s", m.p.Log())
	}
}

// TestBadStateQuarantineKilled: a manager SIGKILLed inside the unit of
// work that quarantines a request whose state cannot be read, before its
// commit, leaves everything as it was (the unit of work is backed out);
// the next manager quarantines it, once.
func TestBadStateQuarantineKilled(t *testing.T) {
	e := newEnv(t)
	a, b, newer := e.badStates()
	once := filepath.Join(t.TempDir(), "hit")
	ma := e.start("manager", "QM1", []string{crashpoint.EnvVar + "=request.quarantine.put:1", crashpoint.OnceVar + "=" + once}, "-name", "RMA", "-workers", "1")
	select {
	case <-ma.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the manager was not killed at request.quarantine.put:\n%s", ma.p.Log())
	}
	if _, err := os.Stat(once); err != nil {
		t.Fatalf("the crash point was not reached: %v\n%s", err, ma.p.Log())
	}
	mb := e.start("manager", "QM1", nil, "-name", "RMB")
	e.wantQuarantined(a, nil)
	e.wantQuarantined(b, newer)
	if t.Failed() {
		t.Logf("RMA:\n%s\nRMB:\n%s", ma.p.Log(), mb.p.Log())
	}
}
