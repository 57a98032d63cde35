package lockfree

import (
	"errors"
	"testing"
)

// TestIncarnationWrap: an owner revoked while idle keeps its Owner (its
// process lives on and makes no call for a while). Its slot is
// re-registered 65,535 times, so the slot's 16-bit incarnation comes round
// to the stale owner's own and the new owner has the same tag. The stale
// owner must still know it was revoked: no get, no put, nothing of its old
// caches used.
func TestIncarnationWrap(t *testing.T) {
	s := newStructure(t, Params{Owners: 4, Queues: 2, Entries: 256, Elements: 256, ElementSize: 64})
	admin, err := s.RegisterSlot(0)
	if err != nil {
		t.Fatal(err)
	}
	q := mustQueue(t, admin, "Q", QueueAttrs{})
	stale, err := s.RegisterSlot(1)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ { // fills its caches
		put(t, stale, q, "x", 0, false)
		get(t, stale, q, false)
		put(t, stale, q, string(make([]byte, 200)), 0, false)
		get(t, stale, q, false)
	}
	if _, err := s.Revoke(stale.Tag(), OutcomeBackout); err != nil {
		t.Fatal(err)
	}
	var fresh *Owner
	for i := 0; fresh == nil; i++ {
		o, err := s.RegisterSlot(1)
		if err != nil {
			t.Fatal(err)
		}
		if o.Tag() == stale.Tag() {
			fresh = o
			t.Logf("slot 1 has the stale owner's tag %v again after %d registrations", o.Tag(), i+1)
			break
		}
		if i > 1<<16 {
			t.Fatalf("no wrap after %d registrations (%v)", i, o.Tag())
		}
		o.Close()
	}
	put(t, fresh, q, "fresh", 0, false)
	var m Message
	if err := stale.Get(q, GetOptions{}, &m); !errors.Is(err, ErrOwnerRevoked) {
		t.Fatalf("the stale owner's get: %q %v", m.Body, err)
	}
	if err := stale.Put(q, &Message{Body: []byte("stale")}, PutOptions{}); !errors.Is(err, ErrOwnerRevoked) {
		t.Fatalf("the stale owner's put: %v", err)
	}
	if err := stale.Close(); err != nil {
		t.Fatal(err)
	}
	checkOK(t, s)
	if got := get(t, fresh, q, false); got != "fresh" {
		t.Fatalf("got %q", got)
	}
	expectEmpty(t, fresh, q)
	fresh.Close()
	admin.Close()
	checkOK(t, s)
	if u := s.Usage(); u.EntriesUsed != 0 || u.ElementsUsed != 0 || u.Owners != 0 {
		t.Fatalf("after everyone closed: %+v", u)
	}
}

// TestCacheTakenIsNotUsed: entries, elements and segments an owner has in
// its cache but whose state word no longer names it as cached by it (taken
// by an owner that found the pool low, or freed by a repair) are dropped
// from the cache, never used.
func TestCacheTakenIsNotUsed(t *testing.T) {
	s := newStructure(t, Params{Owners: 4, Queues: 2, Entries: 256, Elements: 256, ElementSize: 64, Segments: 16})
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	big := string(make([]byte, 200)) // 4 elements
	put(t, a, q, big, 0, false)
	get(t, a, q, false)
	if len(a.entries) == 0 || len(a.elems) < 8 || len(a.segs) == 0 {
		t.Fatalf("caches: %d entries, %d elements, %d segments", len(a.entries), len(a.elems), len(a.segs))
	}
	// b takes everything a has cached; one element goes back to the pool.
	taken := map[uint64]uint64{}
	take := func(off uint64, kind uint8) {
		w := s.load(off)
		nw := mkWord(wGen(w), kind, uint32(b.Tag()))
		if !s.cas(off, w, nw) {
			t.Fatal("take")
		}
		taken[off] = nw
	}
	for _, e := range a.entries {
		take(s.entryOff(e)+enCtl, stCached)
		b.entries = append(b.entries, e)
	}
	for _, el := range a.elems[1:] {
		take(s.elemWordOff(el), ekOwned)
		b.elems = append(b.elems, el)
	}
	freed := s.elemWordOff(a.elems[0])
	s.store(freed, mkWord(wGen(s.load(freed)), ekFree, 0))
	for _, sg := range a.segs {
		take(s.segOff(sg)+sgWord, skOwned)
		b.segs = append(b.segs, sg)
	}
	for i := 0; i < 40; i++ { // within what the pool has free: a needs not take from b
		put(t, a, q, big, i%2, false) // priority 1 needs a new segment
	}
	for off, w := range taken {
		if s.load(off) != w {
			t.Fatalf("a used what b took: word at %d is %#x, b had %#x", off, s.load(off), w)
		}
	}
	for i := 0; i < 40; i++ {
		if got := get(t, b, q, false); got != big {
			t.Fatalf("got %d bytes", len(got))
		}
	}
	b.Close()
	a.Close()
	checkOK(t, s)
	if u := s.Usage(); u.EntriesUsed != 0 || u.ElementsUsed != 0 {
		t.Fatalf("after everyone closed: %+v", u)
	}
}
