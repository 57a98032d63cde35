package mq_test

import (
	"errors"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
)

// TestBrowseNextWith: through mq, a browse stopping at uncommitted puts
// sees a log's messages in order even when a later one is committed
// first, waits for a put, and is interrupted.
func TestBrowseNextWith(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(LOG)")
	w1, w2, rd := connect(t, g), connect(t, g), connect(t, g)
	q1, q2, qr := open(t, w1, "LOG"), open(t, w2, "LOG"), open(t, rd, "LOG")
	if err := q1.Put(&mq.Message{Body: []byte("1")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	put(t, q2, &mq.Message{Body: []byte("2")})
	cur, err := qr.Browse()
	if err != nil {
		t.Fatal(err)
	}
	bo := mq.BrowseOptions{StopAtUncommitted: true}
	if m, err := cur.NextWith(mq.GetOptions{}, bo); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("before the commit: %v %v", m, err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		if err := w1.Commit(); err != nil {
			t.Error(err)
		}
	}()
	bo.Wait = 10 * time.Second
	for _, want := range []string{"1", "2"} {
		m, err := cur.NextWith(mq.GetOptions{}, bo)
		if err != nil || string(m.Body) != want {
			t.Fatalf("want %s: %v %v", want, m, err)
		}
	}
	var in mq.Interrupter
	go func() {
		time.Sleep(50 * time.Millisecond)
		in.Interrupt()
	}()
	bo.Wait, bo.Interrupt = mq.WaitForever, &in
	if _, err := cur.NextWith(mq.GetOptions{}, bo); !errors.Is(err, mq.ErrInterrupted) {
		t.Fatalf("interrupted: %v", err)
	}
}

// TestAppStructureStatusSlots: a new application structure has the
// status slots recovery units need (group.AppStatusSlots).
func TestAppStructureStatusSlots(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	s, err := mqconn.Of(c).Group.Structure(q.Def().CFStruct, false)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.StatusSlots(); n != group.AppStatusSlots || n < 512 {
		t.Fatalf("%d status slots, want %d", n, group.AppStatusSlots)
	}
}
