package lockfree

import (
	"errors"
	"testing"
	"time"
)

// browseBodies browses q from cur with next until it finds no message and
// returns the bodies it saw.
func browseBodies(t *testing.T, next func(*Message) error) []string {
	t.Helper()
	var out []string
	for {
		var m Message
		err := next(&m)
		if errors.Is(err, ErrNoMessage) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m.Body))
	}
}

// TestBrowseStepsOverUncommitted shows why a log reader needs
// StopAtUncommitted: a plain browse steps over a message put under
// syncpoint and returns a later one, and once the earlier one is
// committed the cursor is past it: a reader following a log that way
// loses it for good.
func TestBrowseStepsOverUncommitted(t *testing.T) {
	s := newStructure(t, Params{Owners: 8, Queues: 4, Entries: 256, Elements: 256, ElementSize: 64})
	o1, o2, rd := register(t, s), register(t, s), register(t, s)
	q := mustQueue(t, o1, "LOG", QueueAttrs{})
	put(t, o1, q, "A", 5, true) // under syncpoint, not committed
	put(t, o2, q, "B", 5, false)
	cur := rd.NewBrowseCursor(q)
	next := func(m *Message) error { return rd.BrowseNext(cur, GetOptions{}, m) }
	if got := browseBodies(t, next); len(got) != 1 || got[0] != "B" {
		t.Fatalf("first browse: %q, want [B]", got)
	}
	if err := o1.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := browseBodies(t, next); len(got) != 0 {
		t.Fatalf("after the commit: %q (the plain browse now stops at uncommitted?)", got)
	}
}

// TestBrowseStopAtUncommitted: with StopAtUncommitted the browse stops
// before the uncommitted put, returns it once committed, then the later
// one; a backed-out put is stepped over.
func TestBrowseStopAtUncommitted(t *testing.T) {
	s := newStructure(t, Params{Owners: 8, Queues: 4, Entries: 256, Elements: 256, ElementSize: 64})
	o1, o2, rd := register(t, s), register(t, s), register(t, s)
	q := mustQueue(t, o1, "LOG", QueueAttrs{})
	put(t, o2, q, "0", 5, false)
	put(t, o1, q, "A", 5, true)
	put(t, o2, q, "B", 5, false)
	cur := rd.NewBrowseCursor(q)
	next := func(m *Message) error {
		return rd.BrowseNextWith(cur, GetOptions{}, BrowseOptions{StopAtUncommitted: true}, m)
	}
	if got := browseBodies(t, next); len(got) != 1 || got[0] != "0" {
		t.Fatalf("before the commit: %q, want [0]", got)
	}
	if got := browseBodies(t, next); len(got) != 0 {
		t.Fatalf("again before the commit: %q, want none", got)
	}
	if err := o1.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := browseBodies(t, next); len(got) != 2 || got[0] != "A" || got[1] != "B" {
		t.Fatalf("after the commit: %q, want [A B]", got)
	}
	// A put backed out is stepped over once it is gone.
	put(t, o1, q, "C", 5, true)
	put(t, o2, q, "D", 5, false)
	if got := browseBodies(t, next); len(got) != 0 {
		t.Fatalf("before the backout: %q", got)
	}
	if err := o1.Backout(); err != nil {
		t.Fatal(err)
	}
	if got := browseBodies(t, next); len(got) != 1 || got[0] != "D" {
		t.Fatalf("after the backout: %q, want [D]", got)
	}
	// IncludeUncommitted wins over StopAtUncommitted: nothing to stop at.
	put(t, o1, q, "E", 5, true)
	var m Message
	if err := rd.BrowseNextWith(cur, GetOptions{IncludeUncommitted: true}, BrowseOptions{StopAtUncommitted: true}, &m); err != nil || string(m.Body) != "E" || !cur.Uncommitted() {
		t.Fatalf("including uncommitted: %q %v", m.Body, err)
	}
}

// TestBrowseWait: a waiting browse is woken by a put and by the commit of
// the uncommitted put it stopped at, and ends at once when interrupted.
func TestBrowseWait(t *testing.T) {
	s := newStructure(t, Params{Owners: 8, Queues: 4, Entries: 256, Elements: 256, ElementSize: 64})
	o1, rd := register(t, s), register(t, s)
	q := mustQueue(t, o1, "LOG", QueueAttrs{})
	cur := rd.NewBrowseCursor(q)
	wait := func(bo BrowseOptions) (string, time.Duration, error) {
		var m Message
		t0 := time.Now()
		err := rd.BrowseNextWith(cur, GetOptions{}, bo, &m)
		return string(m.Body), time.Since(t0), err
	}
	// Nothing comes: the wait ends at its limit with ErrNoMessage.
	if _, d, err := wait(BrowseOptions{Wait: 30 * time.Millisecond, StopAtUncommitted: true}); !errors.Is(err, ErrNoMessage) || d < 30*time.Millisecond {
		t.Fatalf("empty: %v after %v", err, d)
	}
	// A put 100 ms later wakes it. (maxFutexSleep is made long, so the
	// wake, not a timed recheck, ends the sleep.)
	old := maxFutexSleep
	maxFutexSleep = time.Hour
	defer func() { maxFutexSleep = old }()
	// An owner serves one goroutine at a time: each helper goroutine is
	// joined before o1 is used again.
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		time.Sleep(100 * time.Millisecond)
		put(t, o1, q, "P", 5, false)
	}()
	if b, d, err := wait(BrowseOptions{Wait: 10 * time.Second, StopAtUncommitted: true}); err != nil || b != "P" || d > 5*time.Second {
		t.Fatalf("put: %q %v after %v", b, err, d)
	}
	<-joined
	// Stopped at an uncommitted put: woken by its commit.
	put(t, o1, q, "U", 5, true)
	go func() {
		time.Sleep(100 * time.Millisecond)
		if err := o1.Commit(); err != nil {
			t.Error(err)
		}
	}()
	if b, d, err := wait(BrowseOptions{Wait: 10 * time.Second, StopAtUncommitted: true}); err != nil || b != "U" || d < 50*time.Millisecond || d > 5*time.Second {
		t.Fatalf("commit: %q %v after %v", b, err, d)
	}
	// Interrupted while waiting.
	var in Interrupter
	go func() {
		time.Sleep(50 * time.Millisecond)
		in.Interrupt()
	}()
	if _, d, err := wait(BrowseOptions{Wait: -1, StopAtUncommitted: true, Interrupt: &in}); !errors.Is(err, ErrInterrupted) || d > 5*time.Second {
		t.Fatalf("interrupt: %v after %v", err, d)
	}
	if s.Waiters(q) != 0 {
		t.Fatalf("%d waiters left", s.Waiters(q))
	}
}
