package request

import (
	"testing"
	"time"
)

// TestBackoff: the back-off doubles from its base up to its cap, and stays
// there however many times (no overflow).
func TestBackoff(t *testing.T) {
	const base, max = 20 * time.Millisecond, 5 * time.Second
	want := []time.Duration{20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000}
	for i, w := range want {
		if got := backoff(base, max, i+1); got != w*time.Millisecond {
			t.Errorf("backoff %d: %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := backoff(base, max, 1000); got != max {
		t.Errorf("backoff 1000: %v", got)
	}
	if got := backoff(time.Hour, time.Hour, 100); got != time.Hour {
		t.Errorf("backoff of an hour, 100: %v", got)
	}
}

// TestStateWaits: the takes of a request whose record is in flight wait
// longer and longer (its own schedule, another request's apart), say how
// long it has lasted, and start again once it settled or was not taken
// for long.
func TestStateWaits(t *testing.T) {
	const base, max = 100 * time.Millisecond, time.Second
	var s stateWaits
	a, b := ID{1}, ID{2}
	t0 := time.Unix(1000, 0)
	now := t0
	var waits []time.Duration
	for range 6 {
		w, since, _ := s.take(a, now, base, max)
		if since != now.Sub(t0) {
			t.Errorf("since %v at %v", since, now.Sub(t0))
		}
		waits = append(waits, w)
		now = now.Add(w)
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if waits[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", waits, want)
		}
	}
	if w, since, takes := s.take(b, now, base, max); w != base || since != 0 || takes != 1 {
		t.Errorf("another request: wait %v since %v takes %d", w, since, takes)
	}
	if _, since, takes := s.take(a, now, base, max); since != now.Sub(t0) || takes != 7 {
		t.Errorf("a, 7th take: since %v takes %d", since, takes)
	}
	s.settle(a)
	if w, since, takes := s.take(a, now, base, max); w != base || since != 0 || takes != 1 {
		t.Errorf("after settle: wait %v since %v takes %d", w, since, takes)
	}
	// Not taken for longer than 2*max: a new episode, and b forgotten.
	now = now.Add(3 * max)
	if w, since, takes := s.take(a, now, base, max); w != base || since != 0 || takes != 1 {
		t.Errorf("after a long while: wait %v since %v takes %d", w, since, takes)
	}
	if _, ok := s.m[b]; ok {
		t.Errorf("b not forgotten")
	}
}
