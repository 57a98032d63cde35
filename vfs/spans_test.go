package vfs

import (
	"math/rand/v2"
	"testing"
)

// TestSpans checks the span set against a byte map.
func TestSpans(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var s spans
		var ref [256]bool
		for range 20 {
			a, b := rng.Int64N(256), rng.Int64N(256)
			from, to := min(a, b), max(a, b)
			switch rng.IntN(3) {
			case 0, 1:
				s = s.add(from, to)
				for i := from; i < to; i++ {
					ref[i] = true
				}
			case 2:
				s = s.cut(to)
				for i := to; i < 256; i++ {
					ref[i] = false
				}
			}
			var want int64
			for _, b := range ref {
				if b {
					want++
				}
			}
			if s.total() != want {
				t.Fatalf("round %d: total %d, want %d (%v)", round, s.total(), want, s)
			}
			for i := 1; i < len(s); i++ {
				if s[i-1].to >= s[i].from || s[i].from >= s[i].to {
					t.Fatalf("round %d: not sorted and disjoint: %v", round, s)
				}
			}
			c, d := rng.Int64N(256), rng.Int64N(256)
			from, to = min(c, d), max(c, d)
			var miss int64
			for i := from; i < to; i++ {
				if !ref[i] {
					miss++
				}
			}
			if s.missing(from, to) != miss {
				t.Fatalf("round %d: missing(%d,%d) = %d, want %d", round, from, to, s.missing(from, to), miss)
			}
			budget := rng.Int64N(40)
			k := s.fit(from, to, budget)
			if s.missing(from, from+k) > budget || k < to-from && s.missing(from, from+k+1) <= budget {
				t.Fatalf("round %d: fit(%d,%d,%d) = %d (%v)", round, from, to, budget, k, s)
			}
		}
	}
}
