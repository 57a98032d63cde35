package lockfree

import (
	"testing"
	"time"
)

// TestQueueCounts: QueueInfo.Counts counts what two owners did to a queue,
// exactly, on every path that makes a put or a get final, gives a message
// back or removes an expired one; a queue created again in the slot starts
// from zero.
func TestQueueCounts(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "COUNT.Q", QueueAttrs{MaxDepth: 100})
	put(t, a, q, "12345", 0, false) // put outside syncpoint: 5 bytes
	put(t, b, q, "123", 0, true)    // committed below: 3 bytes
	put(t, b, q, "1234567", 0, true)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	put(t, a, q, "backed-out-put", 0, true) // never counted
	if err := a.Backout(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, q, false); got != "12345" { // get outside syncpoint
		t.Fatalf("got %q", got)
	}
	if got := get(t, a, q, true); got != "123" { // backed out: a backout, not a get
		t.Fatalf("got %q", got)
	}
	if err := a.Backout(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, a, q, true); got != "123" { // committed get
		t.Fatalf("got %q", got)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	// One expired message, removed by the expiry scan.
	if err := a.Put(q, &Message{Body: []byte("gone"), Expiry: time.Now().Add(-time.Second).UnixNano()}, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.RemoveExpired(q); err != nil || n != 1 {
		t.Fatalf("RemoveExpired: %d %v", n, err)
	}
	want := QueueCounts{Puts: 4, PutBytes: 5 + 3 + 7 + 4, Gets: 2, GetBytes: 5 + 3, Backouts: 1, BackoutBytes: 3, Expired: 1, ExpiredBytes: 4}
	info, err := s.QueueInfo(q)
	if err != nil {
		t.Fatal(err)
	}
	if info.Counts != want || info.Depth != 1 {
		t.Fatalf("counts %+v depth %d, want %+v depth 1", info.Counts, info.Depth, want)
	}
	// Units of work: b committed one; a backed out two, committed one.
	if c, bo, err := s.UOWCounts(); err != nil || c != 2 || bo != 2 {
		t.Fatalf("UOWCounts: committed %d backed out %d (%v), want 2 and 2", c, bo, err)
	}
	// Empty the queue, delete it and create it again: it starts from zero,
	// although the owners' cells go on from where they were.
	get(t, b, q, false)
	if err := a.DeleteQueue(q); err != nil {
		t.Fatal(err)
	}
	q2 := mustQueue(t, a, "COUNT.Q2", QueueAttrs{MaxDepth: 100})
	if q2 != q {
		t.Fatalf("queue created in slot %d, not the deleted queue's %d", q2, q)
	}
	put(t, b, q2, "xy", 0, false)
	info, err = s.QueueInfo(q2)
	if err != nil {
		t.Fatal(err)
	}
	if want := (QueueCounts{Puts: 1, PutBytes: 2}); info.Counts != want {
		t.Fatalf("new queue's counts %+v, want %+v", info.Counts, want)
	}
	checkOK(t, s)
}

// TestOldestPutTime: the oldest message of any priority, held or
// uncommitted ones included, and none on an empty queue.
func TestOldestPutTime(t *testing.T) {
	s := newStructure(t, smallParams)
	a := register(t, s)
	q := mustQueue(t, a, "AGE.Q", QueueAttrs{MaxDepth: 100})
	if _, ok, err := s.OldestPutTime(q); ok || err != nil {
		t.Fatalf("empty queue: ok %v err %v", ok, err)
	}
	for i, m := range []Message{{Body: []byte("b"), Priority: 5, PutTime: 3000}, {Body: []byte("a"), Priority: 1, PutTime: 2000}, {Body: []byte("c"), Priority: 9, PutTime: 4000}} {
		if err := a.Put(q, &m, PutOptions{Syncpoint: i == 1}); err != nil {
			t.Fatal(err)
		}
	}
	if pt, ok, err := s.OldestPutTime(q); !ok || err != nil || pt != 2000 {
		t.Fatalf("oldest: %d %v %v, want 2000 (the uncommitted put)", pt, ok, err)
	}
	if err := a.Backout(); err != nil {
		t.Fatal(err)
	}
	if pt, ok, err := s.OldestPutTime(q); !ok || err != nil || pt != 3000 {
		t.Fatalf("oldest after the backout: %d %v %v, want 3000", pt, ok, err)
	}
}
