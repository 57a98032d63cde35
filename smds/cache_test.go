package smds

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// twoHandles opens the data set twice, each with a cache of its own: two
// processes, as far as the cache is concerned.
func twoHandles(t *testing.T, opts Options) (a, b *DataSet, ca, cb *Cache) {
	t.Helper()
	var err error
	if ca, err = NewCache(4 << 20); err != nil {
		t.Fatal(err)
	}
	if cb, err = NewCache(4 << 20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close(); cb.Close() })
	opts.Cache = ca
	a = mustCreate(t, opts)
	opts.Cache = cb
	if b, err = Open(opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b, ca, cb
}

// TestCacheNeverStaleTargeted: a run read (and cached) by one process,
// freed by another and allocated again at the same block for another
// body, is read as the new body by the first; the old reference never
// yields the new body.
func TestCacheNeverStaleTargeted(t *testing.T) {
	a, b, ca, _ := twoHandles(t, testOpts(t.TempDir()))
	ob := mustRegister(t, b)
	defer ob.Close()
	x := put(t, ob, body(1, 20000))
	xb, err := a.Read(x, nil)
	if err != nil || !bytes.Equal(xb, body(1, 20000)) {
		t.Fatalf("first read: %v", err)
	}
	ca.Wait()
	if _, err := a.Read(x, nil); err != nil {
		t.Fatal(err)
	}
	if m := ca.Metrics(); m.Hits != 1 {
		t.Fatalf("second read of x was not a hit: %+v", m)
	}
	if err := ob.Free(x); err != nil {
		t.Fatal(err)
	}
	b.store(mhHand, uint64(x.Head)) // make the next run start where x was
	y := put(t, ob, body(2, 20000))
	if y.Head != x.Head || y.Gen == x.Gen {
		t.Fatalf("y %v does not reuse x's block %d with a new gen", y, x.Head)
	}
	got, err := a.Read(y, nil)
	if err != nil || !bytes.Equal(got, body(2, 20000)) {
		t.Fatalf("read of y through the cache that holds x: %v, body ok %v", err, bytes.Equal(got, body(2, 20000)))
	}
	ca.Wait()
	for i := 0; i < 3; i++ {
		old, err := a.Read(x, nil)
		if err == nil && !bytes.Equal(old, body(1, 20000)) {
			t.Fatalf("stale reference x read %d bytes that are not x's body", len(old))
		}
		if err != nil && !errors.Is(err, ErrStale) {
			t.Fatalf("stale reference x: %v", err)
		}
		if got, err := a.Read(y, nil); err != nil || !bytes.Equal(got, body(2, 20000)) {
			t.Fatalf("read %d of y: %v", i, err)
		}
	}
	// The process that freed x dropped it from its own cache: x is stale.
	if _, err := b.Read(x, nil); !errors.Is(err, ErrStale) {
		t.Fatalf("read of freed x by the freer: %v, want ErrStale", err)
	}
}

// TestCacheNeverStaleRandomized: two processes' worth of caches over a
// small data set where runs are freed and reused all the time; every read
// of a live reference, from either, returns its own body, and a read of a
// freed one returns its own old body or ErrStale, never another's.
func TestCacheNeverStaleRandomized(t *testing.T) {
	opts := testOpts(t.TempDir())
	opts.MaxExtents = 1 // 64 blocks: constant reuse
	a, b, ca, cb := twoHandles(t, opts)
	oa, ob := mustRegister(t, a), mustRegister(t, b)
	defer oa.Close()
	defer ob.Close()
	type msg struct {
		r    Ref
		seed uint64
		n    int
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var live, dead []msg
	seed := uint64(0)
	reuses := 0
	heads := map[uint32]int{}
	for op := 0; op < 20000; op++ {
		ds, o := a, oa
		if rng.IntN(2) == 1 {
			ds, o = b, ob
		}
		switch k := rng.IntN(10); {
		case k < 3 && len(live) < 20:
			seed++
			n := 1 + rng.IntN(5*4096)
			r, err := o.Put(body(seed, n), false)
			if errors.Is(err, ErrFull) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			o.Published()
			if heads[r.Head]++; heads[r.Head] > 1 {
				reuses++
			}
			live = append(live, msg{r, seed, n})
		case k < 5 && len(live) > 0:
			i := rng.IntN(len(live))
			m := live[i]
			if err := o.Free(m.r); err != nil {
				t.Fatalf("free %v: %v", m.r, err)
			}
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			dead = append(dead, m)
			if len(dead) > 50 {
				dead = dead[1:]
			}
		case k < 8 && len(live) > 0:
			m := live[rng.IntN(len(live))]
			got, err := ds.Read(m.r, nil)
			if err != nil || !bytes.Equal(got, body(m.seed, m.n)) {
				t.Fatalf("op %d: read of live %v: %v (right body: %v)", op, m.r, err, err == nil && bytes.Equal(got, body(m.seed, m.n)))
			}
		case len(dead) > 0:
			m := dead[rng.IntN(len(dead))]
			got, err := ds.Read(m.r, nil)
			if err == nil && !bytes.Equal(got, body(m.seed, m.n)) {
				t.Fatalf("op %d: read of freed %v returned another body", op, m.r)
			}
			if err != nil && !errors.Is(err, ErrStale) {
				t.Fatalf("op %d: read of freed %v: %v", op, m.r, err)
			}
		}
		if op%100 == 0 {
			ca.Wait()
			cb.Wait()
		}
	}
	var refs []Ref
	for _, m := range live {
		refs = append(refs, m.r)
	}
	checkClean(t, a, refs)
	ma, mb := ca.Metrics(), cb.Metrics()
	t.Logf("runs started at a reused block %d times; cache a %+v, b %+v", reuses, ma, mb)
	if reuses < 100 || ma.Hits == 0 || mb.Hits == 0 {
		t.Fatalf("the test did not exercise reuse (%d) or the caches (hits %d, %d)", reuses, ma.Hits, mb.Hits)
	}
}

// TestReadNoFill: ReadNoFill serves a cached body from the cache, and on
// a miss reads the file without caching what it read.
func TestReadNoFill(t *testing.T) {
	a, b, ca, _ := twoHandles(t, testOpts(t.TempDir()))
	ob := mustRegister(t, b)
	defer ob.Close()
	x, y := put(t, ob, body(1, 20000)), put(t, ob, body(2, 30000))
	if got, err := a.ReadNoFill(x, nil); err != nil || !bytes.Equal(got, body(1, 20000)) {
		t.Fatalf("ReadNoFill of x: %v", err)
	}
	ca.Wait()
	if _, err := a.Read(x, nil); err != nil {
		t.Fatal(err)
	}
	if m := ca.Metrics(); m.Hits != 0 {
		t.Fatalf("ReadNoFill cached x: %+v", m)
	}
	if _, err := a.Read(y, nil); err != nil { // cached
		t.Fatal(err)
	}
	ca.Wait()
	if got, err := a.ReadNoFill(y, nil); err != nil || !bytes.Equal(got, body(2, 30000)) {
		t.Fatalf("ReadNoFill of y: %v", err)
	}
	if m := ca.Metrics(); m.Hits != 1 {
		t.Fatalf("ReadNoFill of a cached body was not a hit: %+v", m)
	}
}
