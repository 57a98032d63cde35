package unit

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
)

func divergeReplica(h Handler) *replica {
	r := donorForTest(h)
	r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	r.svc.Name = "LEDGER"
	return r
}

// TestOutputHash: the output hash depends on every output's destination,
// sequence number and body and on their order, and on nothing else (not
// the MsgID, priority or properties, which the sender sets or the handler
// may leave to the queue).
func TestOutputHash(t *testing.T) {
	o := output{lsn: 1, dest: "CONFIRM", seq: 1, msg: mq.Message{Body: []byte("1 1 1 1700000000 7 true")}}
	h := foldOutput(0, &o)
	if h == 0 || h == foldOutput(1, &o) {
		t.Fatalf("the hash %x ignores what came before", h)
	}
	same := o
	same.lsn, same.msg.MsgID, same.msg.Priority, same.msg.Properties = 9, [24]byte{1}, 4, []byte("p=1")
	if foldOutput(0, &same) != h {
		t.Fatal("the hash depends on fields other than destination, sequence and body")
	}
	for name, mut := range map[string]func(*output){
		"dest": func(o *output) { o.dest = "CONFIRN" },
		"seq":  func(o *output) { o.seq = 2 },
		"body": func(o *output) { o.msg.Body = []byte("1 1 1 1700000001 7 true") },
		// The destination and body are not confused with each other.
		"split": func(o *output) { o.dest, o.msg.Body = "CONFIRM1", []byte(" 1 1 1700000000 7 true") },
	} {
		d := o
		mut(&d)
		if foldOutput(0, &d) == h {
			t.Errorf("%s: same hash", name)
		}
	}
	a, b := o, o
	b.seq, b.msg.Body = 2, []byte("other")
	if foldOutput(foldOutput(0, &a), &b) == foldOutput(foldOutput(0, &b), &a) {
		t.Error("the hash ignores the outputs' order")
	}
}

// TestStateHash: replicas at the same LSN with the same handler state,
// destinations and output hash agree, whatever their resend queues and
// LSN_out (which differ between a sender and the others); a different
// handler state, destination table or output hash does not.
func TestStateHash(t *testing.T) {
	a := divergeReplica(newCounts(map[string]int{"a": 1, "b": 2}))
	b := divergeReplica(newCounts(map[string]int{"b": 2, "a": 1}))
	a.dseq = map[string]uint64{"CONFIRM": 4, "AUDIT": 2}
	b.dseq = map[string]uint64{"AUDIT": 2, "CONFIRM": 4}
	a.outHash, b.outHash = 77, 77
	a.resend = []output{{lsn: 42, dest: "CONFIRM", seq: 3, msg: mq.Message{Body: []byte("x")}}}
	b.lsnOut = 42
	ha, na, err := a.stateHash()
	if err != nil {
		t.Fatal(err)
	}
	hb, nb, err := b.stateHash()
	if err != nil || ha != hb || na != nb || na == 0 {
		t.Fatalf("equal states: %x (%d bytes) and %x (%d bytes), %v", ha, na, hb, nb, err)
	}
	for name, mut := range map[string]func(r *replica){
		"handler": func(r *replica) { r.h = newCounts(map[string]int{"a": 1, "b": 3}) },
		"dests":   func(r *replica) { r.dseq = map[string]uint64{"CONFIRM": 5, "AUDIT": 2} },
		"outhash": func(r *replica) { r.outHash = 78 },
		"lsn":     func(r *replica) { r.applied = 43 },
	} {
		c := divergeReplica(newCounts(map[string]int{"a": 1, "b": 2}))
		c.dseq, c.outHash = map[string]uint64{"CONFIRM": 4, "AUDIT": 2}, 77
		mut(c)
		if h, _, err := c.stateHash(); err != nil || h == ha {
			t.Errorf("%s: hash %x, %v", name, h, err)
		}
	}
}

// TestVerifyHashes: a CHECK record or a log message's output hash that
// differs from the replica's is ErrDiverged with the LSN kept for the
// progress record; equal ones pass; a CHECK of an LSN the replica is not
// at is skipped; a promoted replica catching up reports and goes on.
func TestVerifyHashes(t *testing.T) {
	r := divergeReplica(newCounts(map[string]int{"a": 1}))
	h, n, err := r.stateHash()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.verifyCheck(&logrec.Record{Kind: logrec.KindCheck, LSN: 42, CheckHash: h, CheckLen: n}); err != nil || r.divergedLSN != 0 {
		t.Fatalf("equal CHECK: %v, diverged at %d", err, r.divergedLSN)
	}
	if r.checkLSN != 42 || r.checkHash != h {
		t.Fatalf("check published as %d %x", r.checkLSN, r.checkHash)
	}
	if err := r.verifyCheck(&logrec.Record{Kind: logrec.KindCheck, LSN: 40, CheckHash: h + 1, CheckLen: n}); err != nil {
		t.Fatalf("CHECK of another LSN: %v", err)
	}
	if err := r.verifyCheck(&logrec.Record{Kind: logrec.KindCheck, LSN: 42, CheckHash: h, CheckLen: n + 1}); !errors.Is(err, ErrDiverged) {
		t.Fatalf("CHECK of another length: %v", err)
	}
	r.divergedLSN = 0
	r.outHash = 5
	lm := &logrec.LogMessage{FirstLSN: 41, LastLSN: 42, Completed: 42, OutHash: 5}
	if err := r.verifyOutHash(lm); err != nil {
		t.Fatalf("equal output hash: %v", err)
	}
	lm.OutHash = 6
	if err := r.verifyOutHash(lm); !errors.Is(err, ErrDiverged) || r.divergedLSN != 42 {
		t.Fatalf("other output hash: %v, diverged at %d", err, r.divergedLSN)
	}
	r.divergedLSN, r.promoting = 0, true
	if err := r.verifyOutHash(lm); err != nil || r.divergedLSN != 0 {
		t.Fatalf("while catching up after a promotion: %v, diverged at %d", err, r.divergedLSN)
	}
}
