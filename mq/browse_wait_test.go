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
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		time.Sleep(50 * time.Millisecond) // the browse waits first (not synchronisation: it must work either way)
		if err := w1.Commit(); err != nil {
			t.Error(err)
		}
	}()
	defer func() { <-committed }() // w1 is disconnected at the end: not while its commit still runs
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

// TestBrowseIncludeHeld: a browse by MsgID with IncludeHeld finds a
// message another connection holds as a view outside syncpoint, and one
// adopted into its unit of work, where a plain browse does not; after
// the commit removes it neither finds it. (LOGGING(INDEPENDENT): the
// secondaries read the input the primary holds.)
func TestBrowseIncludeHeld(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(IN) INDXTYPE(MSGID)")
	p, rd := connect(t, g), connect(t, g)
	qp, qr := open(t, p, "IN"), open(t, rd, "IN")
	id := [24]byte{'R', 'E', 'F'}
	put(t, qp, &mq.Message{MsgID: id, Body: []byte("held")})
	v, err := qp.GetView(mq.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	look := func(held bool) error {
		cur, err := qr.Browse()
		if err != nil {
			t.Fatal(err)
		}
		m, err := cur.NextWith(mq.GetOptions{MsgID: &id}, mq.BrowseOptions{IncludeHeld: held})
		if err == nil && string(m.Body) != "held" {
			t.Fatalf("browsed %q", m.Body)
		}
		return err
	}
	if err := look(false); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("a plain browse of a held view: %v", err)
	}
	if err := look(true); err != nil {
		t.Fatalf("IncludeHeld, a view: %v", err)
	}
	if err := v.Adopt(); err != nil {
		t.Fatal(err)
	}
	if err := look(true); err != nil {
		t.Fatalf("IncludeHeld, adopted: %v", err)
	}
	if err := p.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := look(true); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("IncludeHeld after the commit: %v", err)
	}
}
