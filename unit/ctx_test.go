package unit

import (
	"errors"
	"testing"

	"github.com/qmgr/qmgr/unit/logrec"
)

// TestCtxReplay: a secondary's Ctx returns the primary's logged choices
// (and never calls Choose's function); asking another kind, or one choice
// more than the primary made, is divergence.
func TestCtxReplay(t *testing.T) {
	p := &Ctx{lsn: 7}
	at := p.Now()
	r1 := p.Rand().Uint64()
	r2 := p.Rand().Uint64()
	b := p.Choose(func() []byte { return []byte("x") })
	if len(p.choices) != 3 {
		t.Fatalf("%d choices logged, want 3 (TIME, one SEED for all of Rand, BYTES)", len(p.choices))
	}
	s := &Ctx{lsn: 7, replay: true, choices: p.choices}
	called := false
	if s.Now() != at || s.Rand().Uint64() != r1 || s.Rand().Uint64() != r2 ||
		string(s.Choose(func() []byte { called = true; return []byte("y") })) != string(b) || called || s.diverged != nil {
		t.Fatalf("replay differs (called %v, diverged %v)", called, s.diverged)
	}
	// Another kind.
	s = &Ctx{lsn: 7, replay: true, choices: p.choices}
	s.Choose(func() []byte { return nil })
	if !errors.Is(s.diverged, ErrDiverged) {
		t.Fatalf("another kind: %v", s.diverged)
	}
	// One too many.
	s = &Ctx{lsn: 7, replay: true, choices: []logrec.Choice{p.choices[0]}}
	s.Now()
	s.Now()
	if !errors.Is(s.diverged, ErrDiverged) {
		t.Fatalf("one too many: %v", s.diverged)
	}
}
