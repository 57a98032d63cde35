package role

import "testing"

// TestDivergencePolicy: DivergeLimit deaths for divergence within
// DivergeWindow minutes mark the unit DIVERGED (EffDiverged once, at the
// one that reaches the limit); divergences further apart, or other
// deaths, do not; START SERVICE clears the mark and the count.
func TestDivergencePolicy(t *testing.T) {
	const minute = int64(60e9)
	t0 := int64(1_800_000_000) * 1e9 // any time
	diverge := func(r *Role, at int64, reason ExitReason) (*Role, Effect) {
		t.Helper()
		r = join(t, r, 1)
		return step(t, r, Event{Kind: EvDeath, Pos: 1, Tag: r.Pos[1].Tag, Reason: reason, Now: at})
	}
	r := join(t, newUnit(t, 2, true), 0)

	// Two in the window, one after it: a new window of one.
	r, eff := diverge(r, t0, ExitDiverged)
	r, eff2 := diverge(r, t0+9*minute, ExitDiverged)
	if r.Divergences != 2 || r.Diverged || (eff|eff2)&EffDiverged != 0 {
		t.Fatalf("two divergences: count %d diverged %v", r.Divergences, r.Diverged)
	}
	r, eff = diverge(r, t0+10*minute, ExitDiverged)
	if r.Divergences != 1 || r.Diverged || eff&EffDiverged != 0 {
		t.Fatalf("after the window: count %d diverged %v", r.Divergences, r.Diverged)
	}
	// Other deaths count nothing.
	r, _ = diverge(r, t0+11*minute, ExitDied)
	r, _ = diverge(r, t0+11*minute, ExitFailStop)
	if r.Divergences != 1 {
		t.Fatalf("other deaths counted: %d", r.Divergences)
	}
	// Three within ten minutes: DIVERGED, once.
	r, eff = diverge(r, t0+12*minute, ExitDiverged)
	if r.Diverged || eff&EffDiverged != 0 {
		t.Fatal("DIVERGED at the second divergence of a window")
	}
	r, eff = diverge(r, t0+19*minute, ExitDiverged)
	if !r.Diverged || r.Divergences != DivergeLimit || eff&EffDiverged == 0 {
		t.Fatalf("third divergence: count %d diverged %v eff %b", r.Divergences, r.Diverged, eff)
	}
	r, eff = diverge(r, t0+19*minute, ExitDiverged)
	if !r.Diverged || eff&EffDiverged != 0 {
		t.Fatalf("fourth divergence: diverged %v eff %b", r.Diverged, eff)
	}
	// The window wraps with the minute byte.
	w := newUnit(t, 2, true)
	w.DivWindow, w.Divergences = 250, 2
	if !countDivergence(w, int64(256+3)*minute) || !w.Diverged {
		t.Fatal("a window across the minute byte's wrap")
	}
	// STOP and START: cleared.
	r, _ = step(t, r, Event{Kind: EvStop})
	r, _ = step(t, r, Event{Kind: EvDeath, Pos: 0, Tag: r.Pos[0].Tag, Reason: ExitFailStop})
	r, _ = step(t, r, Event{Kind: EvStopped})
	r, _ = step(t, r, Event{Kind: EvStart})
	if r.Diverged || r.Divergences != 0 || r.DivWindow != 0 {
		t.Fatalf("after START: count %d window %d diverged %v", r.Divergences, r.DivWindow, r.Diverged)
	}
}
