package lockfree

import (
	"errors"
	"testing"
)

// TestLonePut: a lone put is counted in the depth but invisible until
// CommitLone; BackoutLone removes it; neither touches the owner's unit of
// work, which commits and backs out without it.
func TestLonePut(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "U", 0, true) // a's unit of work
	p, err := a.PutLone(q, &Message{Body: []byte("L")}, 7)
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := s.QueueInfo(q); info.Depth != 2 || info.Uncom != 2 {
		t.Fatalf("queue %+v, want depth 2 with 2 uncommitted", info)
	}
	expectEmpty(t, b, q)
	if err := a.Backout(); err != nil { // backs out U, not L
		t.Fatal(err)
	}
	if err := a.CommitLone(&p); err != nil {
		t.Fatal(err)
	}
	if got := get(t, b, q, false); got != "L" {
		t.Fatalf("got %q", got)
	}
	expectEmpty(t, b, q)
	p, err = a.PutLone(q, &Message{Body: []byte("B")}, 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.BackoutLone(&p); err != nil {
		t.Fatal(err)
	}
	if err := a.CommitLone(&p); !errors.Is(err, errLoneDone) {
		t.Fatalf("commit after backout: %v", err)
	}
	expectEmpty(t, b, q)
	if s.load(a.off+ownLone) != 0 {
		t.Fatal("lone operation not forgotten")
	}
	checkOK(t, s)
}

// TestRepairDecidesLonePut: a dead owner's lone put is made visible only
// when the recoverer passes its key as decided, and removed otherwise,
// also when the owner's unit of work is rolled forward.
func TestRepairDecidesLonePut(t *testing.T) {
	for _, c := range []struct {
		name    string
		out     Outcome
		lone    uint64
		visible []string
	}{
		{"decided", OutcomeBackout, 7, []string{"L"}},
		{"decided with the unit of work", OutcomeCommit, 7, []string{"U", "L"}},
		{"not decided", OutcomeBackout, 0, nil},
		{"not decided, unit of work committed", OutcomeCommit, 0, []string{"U"}},
		{"another key decided", OutcomeCommit, 8, []string{"U"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newStructure(t, smallParams)
			a, b := register(t, s), register(t, s)
			q := mustQueue(t, a, "Q", QueueAttrs{})
			put(t, a, q, "U", 0, true)
			if _, err := a.PutLone(q, &Message{Body: []byte("L")}, 7); err != nil {
				t.Fatal(err)
			}
			rep, err := s.RepairDecided(a.Tag(), c.out, c.lone, true)
			if err != nil || rep.LoneDone != (c.lone == 7) {
				t.Fatalf("repair %+v %v", rep, err)
			}
			for _, want := range c.visible {
				if got := get(t, b, q, false); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			expectEmpty(t, b, q)
			checkOK(t, s)
		})
	}
}

// TestRepairDecidesLoneGet: a dead owner's view marked as its lone get is
// removed when its key was decided and given back otherwise; its other
// views always go back.
func TestRepairDecidesLoneGet(t *testing.T) {
	for _, decided := range []bool{true, false} {
		s := newStructure(t, smallParams)
		a, b := register(t, s), register(t, s)
		q := mustQueue(t, a, "Q", QueueAttrs{})
		put(t, a, q, "M", 0, false)
		put(t, a, q, "N", 0, false)
		if _, err := b.GetView(q, GetOptions{}); err != nil { // M: a view kept
			t.Fatal(err)
		}
		v, err := b.GetView(q, GetOptions{}) // N: the lone get
		if err != nil {
			t.Fatal(err)
		}
		if err := b.MarkLone(v, 9); err != nil {
			t.Fatal(err)
		}
		lone := uint64(0)
		if decided {
			lone = 9
		}
		rep, err := s.RepairDecided(b.Tag(), OutcomeCommit, lone, true)
		if err != nil || rep.LoneDone != decided {
			t.Fatalf("decided %v: repair %+v %v", decided, rep, err)
		}
		if got := get(t, a, q, false); got != "M" {
			t.Fatalf("got %q", got)
		}
		if !decided {
			if got := get(t, a, q, false); got != "N" {
				t.Fatalf("got %q", got)
			}
		}
		expectEmpty(t, a, q)
		checkOK(t, s)
	}
}

// TestRevokedLoneOperationReportsRevoked: a live owner revoked with its
// lone put decided finds it carried out (CommitLone says revoked, the
// message is there), and one revoked undecided finds it gone.
func TestRevokedLoneOperationReportsRevoked(t *testing.T) {
	for _, decided := range []bool{true, false} {
		s := newStructure(t, smallParams)
		a, b := register(t, s), register(t, s)
		a.SetRevocable(true)
		q := mustQueue(t, a, "Q", QueueAttrs{})
		p, err := a.PutLone(q, &Message{Body: []byte("L")}, 7)
		if err != nil {
			t.Fatal(err)
		}
		lone := uint64(0)
		if decided {
			lone = 7
		}
		if _, err := s.RevokeDecided(a.Tag(), OutcomeAuto, lone); err != nil {
			t.Fatal(err)
		}
		if err := a.CommitLone(&p); !errors.Is(err, ErrOwnerRevoked) {
			t.Fatalf("commit after revoke: %v", err)
		}
		if decided {
			if got := get(t, b, q, false); got != "L" {
				t.Fatalf("got %q", got)
			}
		}
		expectEmpty(t, b, q)
		checkOK(t, s)
	}
}

// TestViewReturnLeavesTheMessageUnchanged: a view given back by Return (a
// get that did not happen) leaves the message where it was with its
// backout count as it was, and available to the next getter at once.
func TestViewReturnLeavesTheMessageUnchanged(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "M", 0, false)
	put(t, a, q, "N", 0, false)
	v, err := b.GetView(q, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Return(); err != nil {
		t.Fatal(err)
	}
	if err := v.Return(); !errors.Is(err, ErrViewReleased) {
		t.Fatalf("second return: %v", err)
	}
	var m Message
	if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "M" || m.BackoutCount != 0 {
		t.Fatalf("after return: %q backout count %d, %v", m.Body, m.BackoutCount, err)
	}
	checkOK(t, s)
}

// TestLonePutVisibleInOrderAfterScansSkippedIt: a getter whose scans went
// past a lone put while it was invisible gets it, once committed, before
// messages put after it.
func TestLonePutVisibleInOrderAfterScansSkippedIt(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "0", 0, false)
	if got := get(t, b, q, false); got != "0" {
		t.Fatalf("got %q", got)
	}
	p, err := a.PutLone(q, &Message{Body: []byte("L"), Persistent: true}, 7)
	if err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, b, q) // a scan past the invisible lone put
	if err := a.CommitLone(&p); err != nil {
		t.Fatal(err)
	}
	put(t, a, q, "1", 0, false)
	put(t, a, q, "2", 0, false)
	for _, want := range []string{"L", "1", "2"} {
		if got := get(t, b, q, false); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	checkOK(t, s)
}

// TestCloseRemovesAPendingLonePut: an owner closed with a lone put it
// never committed (its caller gave up on it: its connection was revoked
// in another structure before the decision) removes it, instead of
// leaving an invisible entry with its tag after its slot is free.
func TestCloseRemovesAPendingLonePut(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	if _, err := b.PutLone(q, &Message{Body: []byte("L")}, 7); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.QueueInfo(q); info.Depth != 0 || info.Uncom != 0 {
		t.Fatalf("after close: %+v", info)
	}
	expectEmpty(t, a, q)
	checkOK(t, s)
}
