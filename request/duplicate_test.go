package request_test

import (
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// putWithID puts n request messages of mode with body, all with request
// id id (a client that put the same message twice), in one unit of work.
func (e *env) putWithID(id request.ID, n int, mode request.Mode, body string) {
	e.t.Helper()
	q, err := e.c.Open(inputQ, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	for range n {
		m := &mq.Message{MsgID: id, Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(body)), ReplyToQ: clientQ}
		if err := q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.c.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

// wantOneRun checks that request id ran once, as "ok" does (each of its
// three calls performed once, one final reply), and that its duplicates
// are on the Unexpected Message Queue saying so.
func (e *env) wantOneRun(id request.ID, duplicates int) {
	e.t.Helper()
	f := e.waitEnded(id)
	if len(f.finals) != 1 {
		e.t.Errorf("request %s: final replies %q, want one", id, f.finals)
	}
	for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
		if f.performed[q] != 1 {
			e.t.Errorf("request %s: %s performed %d times, want once", id, q, f.performed[q])
		}
	}
	f.wantNoDuplicates(e.t)
	n := 0
	for _, h := range f.strays {
		if h.Reason == request.ReasonDuplicate && h.RequestID == id {
			n++
		} else {
			e.t.Errorf("request %s: unexpected message %+v", id, h)
		}
	}
	if n != duplicates {
		e.t.Errorf("request %s: %d duplicates on the Unexpected Message Queue, want %d", id, n, duplicates)
	}
}

// TestDuplicateRequestID: two request messages with one request id (a
// client that put one mq.Message twice) are two locks on one state. The
// second one, taken while the first runs, must not be taken for the first
// one coming back after a failure (which would fence the run and resume
// it, attempt after attempt, or run the request twice): it goes to the
// Unexpected Message Queue (DUPLICATE) and the request runs once.
func TestDuplicateRequestID(t *testing.T) {
	e := newEnv(t)
	e.start("manager", "QM1", nil, "-name", "RM1")
	e.start("manager", "QM1", nil, "-name", "RM2")

	// One taken while the first waits for its first call's reply (its
	// server is not started yet).
	first := e.put(request.ModeRecoverable, "ok")
	e.waitRecord(20*time.Second, "the request to wait for its call", func(r *request.Record) bool { return r.RequestID == first && len(r.Pending) == 1 })
	e.putWithID(first, 1, request.ModeRecoverable, "ok")
	waitFor(t, 20*time.Second, "the duplicate on the Unexpected Message Queue", func() bool {
		for _, h := range e.facts(first).strays {
			if h.Reason == request.ReasonDuplicate {
				return true
			}
		}
		return false
	})
	srv := e.start("server", "QM1", nil)
	e.wantOneRun(first, 1)
	srv.stop(t)

	// Two put together, taken at once by two managers: both may create
	// the state, see each other's and give way; taken again, the one
	// that finds the other running is the duplicate. (The servers are
	// slow, so that a request runs far longer than a retake takes: one
	// taken again after the other ended would run again, as a new
	// request, which the package doc says.)
	e.start("server", "QM1", nil, "-delay", "300ms")
	var ids []request.ID
	for i := range 4 {
		id := request.ID{0xd0, byte(i)}
		copy(id[2:], first[2:])
		e.putWithID(id, 2, request.ModeRecoverable, "ok")
		ids = append(ids, id)
	}
	for _, id := range ids {
		e.wantOneRun(id, 1)
	}
}
