package histogram

import (
	"sync"
	"testing"
)

// TestObserve: observations land in the first bucket whose bound is at
// or above them, the buckets are cumulative, and concurrent observers
// lose nothing.
func TestObserve(t *testing.T) {
	h := New([]float64{1, 2, 4})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, v := range []float64{0.5, 1, 1.5, 3, 10} {
				h.Observe(v)
			}
		}()
	}
	wg.Wait()
	s := h.Snapshot()
	want := map[float64]uint64{1: 8, 2: 12, 4: 16}
	for b, n := range want {
		if s.Buckets[b] != n {
			t.Errorf("bucket %v: %d, want %d", b, s.Buckets[b], n)
		}
	}
	if s.Count != 20 || s.Sum != 4*16 {
		t.Errorf("count %d sum %v, want 20 and 64", s.Count, s.Sum)
	}
}
