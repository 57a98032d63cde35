// Package histogram is a fixed-bucket histogram that processes record into
// with atomic adds and no lock, for figures recorded off the data path (a
// log sync, a recovery, a backup) that package metrics exports: it turns a
// Snapshot into a Prometheus histogram (prometheus.MustNewConstHistogram),
// so the packages that record need not import the Prometheus client.
package histogram

import (
	"math"
	"slices"
	"sync/atomic"
)

// H is a histogram with fixed upper bounds. Observe may be called by any
// number of goroutines; Snapshot may run concurrently with them (it may
// then see an observation in the count and not yet in the sum, or the
// reverse: statistics).
type H struct {
	bounds  []float64       // upper bounds, ascending
	buckets []atomic.Uint64 // observations <= bounds[i] and > bounds[i-1]; the last: above every bound
	count   atomic.Uint64
	sumBits atomic.Uint64 // float64 bits of the sum (CAS loop)
}

// New returns a histogram with the given upper bounds (sorted ascending,
// as prometheus.ExponentialBuckets and its kin return them). It panics on
// bounds out of order: a programmer's bug.
func New(bounds []float64) *H {
	if !slices.IsSorted(bounds) {
		panic("histogram: bounds not ascending")
	}
	return &H{bounds: slices.Clone(bounds), buckets: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v.
func (h *H) Observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v) // the first bound >= v
	h.buckets[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sumBits.Load()
		if h.sumBits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Snapshot is what a histogram recorded: Buckets maps each upper bound to
// the cumulative count of observations at or below it (Prometheus's
// form).
type Snapshot struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
}

// Snapshot returns what h recorded so far.
func (h *H) Snapshot() Snapshot {
	s := Snapshot{Buckets: make(map[float64]uint64, len(h.bounds))}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.buckets[i].Load()
		s.Buckets[b] = cum
	}
	// The count is at least the buckets' (the +Inf bucket is the count).
	s.Count = max(h.count.Load(), cum+h.buckets[len(h.bounds)].Load())
	s.Sum = math.Float64frombits(h.sumBits.Load())
	return s
}
