package lockfree

import (
	"slices"
	"testing"
)

// TestReleaseAfterRevokeFreesNothingOfAnother: an owner gives its cached
// entries back (Close) while a peer revokes it; between the owner's load
// of an entry's word and its release, the revoker frees the entry and a
// third owner takes it. The release must leave the third owner's entry
// alone instead of freeing it under it.
func TestReleaseAfterRevokeFreesNothingOfAnother(t *testing.T) {
	s := newStructure(t, Params{Owners: 8, Queues: 2, Entries: 256, Elements: 256})
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	if err := a.Put(q, &Message{Body: []byte("x")}, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(a.entries) == 0 {
		t.Fatal("the put left no entry in the owner's cache")
	}
	idx := a.entries[len(a.entries)-1] // released first
	var taken []uint32
	fired := false
	testHookReleaseLoaded = func(k poolKind, i uint32) {
		if k != poolEntries || i != idx || fired {
			return
		}
		fired = true
		if _, err := s.Revoke(a.Tag(), OutcomeBackout); err != nil {
			t.Errorf("revoke: %v", err)
		}
		taken = s.grab(poolEntries, b.Tag(), s.Params().Entries, s.Params().Entries, nil)
	}
	defer func() { testHookReleaseLoaded = func(poolKind, uint32) {} }()
	a.Close()
	if !fired || !slices.Contains(taken, idx) {
		t.Fatalf("the race was not staged (fired %v, entry %d taken by the third owner %v)", fired, idx, slices.Contains(taken, idx))
	}
	w := s.load(s.poolWordOff(poolEntries, idx))
	if wKind(w) != cachedKind(poolEntries) || wVal(w) != uint32(b.Tag()) {
		t.Fatalf("entry %d, taken by %v, is kind %d of %#x after the revoked owner's release", idx, b.Tag(), wKind(w), wVal(w))
	}
}
