package logbuf

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/recovery/rlog"
)

// oneRing is a member's log buffer of one ring with its consumer, and the
// buffer as a connection attaches it; all closed when t ends.
func oneRing(t *testing.T) (b *Buffer, cons *Consumer, pb *Buffer) {
	t.Helper()
	dir := t.TempDir()
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "log"), LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	cfg := Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 1, RingSize: testRingSize}
	if b, err = Create(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if cons, err = NewConsumer(b, l, t.Logf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cons.Close() })
	if pb, err = Attach(cfg.CFDir, "QM1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pb.Close() })
	return b, cons, pb
}

// TestEndVisibleAfterFree: a connection marks an operation in flight
// (BeginVisible); its member's recovery frees its ring (Consumer.Free,
// which evens the in-flight sequence) while the connection, revoked but
// alive, has not reached EndVisible yet. Its late EndVisible was a plain
// add: the freed ring's sequence was odd again, and the next connection
// to claim the ring had its marks inverted: nothing in flight looks in
// flight, and the ring looks in flight while nothing is.
func TestEndVisibleAfterFree(t *testing.T) {
	b, cons, pb := oneRing(t)
	old, err := pb.Claim(1)
	if err != nil {
		t.Fatal(err)
	}
	old.BeginVisible()
	if err := cons.Free(1); err != nil { // the member recovers connection 1
		t.Fatal(err)
	}
	old.EndVisible() // the revoked connection's deferred EndVisible, late
	next, err := pb.Claim(2)
	if err != nil {
		t.Fatal(err)
	}
	fl, _ := b.InFlight()
	if len(fl) != 0 {
		t.Errorf("connection 2 has nothing in flight, yet InFlight lists %v: a backup or structure recovery waits for it", fl)
	}
	next.BeginVisible()
	fl, _ = b.InFlight()
	if len(fl) != 1 {
		t.Errorf("connection 2 is in flight, yet InFlight lists %v: a backup or structure recovery does not wait for it", fl)
	}
}

// TestAppendAfterFree: a connection whose ring its member freed (it
// recovered the connection, revoked but alive) appends no more: the ring
// may be another connection's by then, and its record would land among
// that connection's.
func TestAppendAfterFree(t *testing.T) {
	_, cons, pb := oneRing(t)
	old, err := pb.Claim(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := cons.Free(1); err != nil { // the member recovers connection 1
		t.Fatal(err)
	}
	if _, err := pb.Claim(2); err != nil { // the one ring, another connection's now
		t.Fatal(err)
	}
	if _, err := old.Append(7, []byte("late backout record")); !errors.Is(err, ErrReleased) {
		t.Fatalf("an append into a ring freed and claimed again: %v, want ErrReleased", err)
	}
}
