package lockfree

import (
	"fmt"
	"sync/atomic"

	"github.com/qmgr/qmgr/crashpoint"
)

// The three pools (entries, data elements, segments) share one allocator.
// Each thing has a state word (gen | kind | value, see words.go) and the word
// is the only truth about who has it: kind 0 is free, kind 1 is owned by the
// owner tag in value. Allocation is a single CAS free -> owned(tag), so a
// process killed at any instruction either owns the thing (and Repair, which
// frees everything owned by a dead tag, gets it back) or does not. There is
// no free list whose head could be popped by a process that then dies before
// recording what it popped, which is the weakness of a Treiber stack in
// memory shared by processes that can be killed.
//
// Finding free words is a clock sweep: a shared hand is advanced with a
// fetch-add by a window of 64 words, and the taker CASes the free ones in
// its window into its own per-owner cache. Owners free into their cache and
// give half back to the pool when it overflows, so the shared hand is
// touched once per batch, not per message. An owner that gives a batch back
// moves the hand to it (the hand is only a hint: any value is safe), so the
// next taker reuses entries that are still in some core's cache instead of
// sweeping the whole pool through memory.

type poolKind int

const (
	poolEntries poolKind = iota
	poolElems
	poolSegs
)

const sweepWindow = 64

var (
	cpAllocClaimed = crashpoint.New("lockfree.alloc.claimed")
	cpFreeReleased = crashpoint.New("lockfree.free.released")
)

func (s *Structure) poolWordOff(k poolKind, i uint32) uint64 {
	switch k {
	case poolEntries:
		return s.entryOff(i) + enCtl
	case poolElems:
		return s.elemWordOff(i)
	default:
		return s.segOff(i) + sgWord
	}
}

func (s *Structure) poolN(k poolKind) uint32 {
	switch k {
	case poolEntries:
		return uint32(s.p.Entries)
	case poolElems:
		return uint32(s.p.Elements)
	default:
		return uint32(s.p.Segments)
	}
}

func poolHand(k poolKind) uint64 {
	switch k {
	case poolEntries:
		return ctlEntryHand
	case poolElems:
		return ctlElemHand
	default:
		return ctlSegHand
	}
}

// grab claims up to want free things of pool k for tag, appending their
// indexes to dst. It sweeps the whole pool at most once; fewer than want
// means the pool is (nearly) exhausted.
func (s *Structure) grab(k poolKind, tag OwnerTag, want int, dst []uint32) []uint32 {
	n := uint64(s.poolN(k))
	hand := s.u64(poolHand(k))
	got := 0
	for scanned := uint64(0); got < want && scanned < n+sweepWindow; scanned += sweepWindow {
		start := atomic.AddUint64(hand, sweepWindow) - sweepWindow
		for j := uint64(0); j < sweepWindow && got < want; j++ {
			i := uint32((start + j) % n)
			off := s.poolWordOff(k, i)
			w := s.load(off)
			if wKind(w) != 0 {
				continue
			}
			if s.cas(off, w, mkWord(wGen(w), 1, uint32(tag))) {
				cpAllocClaimed.Hit()
				dst = append(dst, i)
				got++
			}
		}
	}
	return dst
}

// release gives a thing owned by tag back to the pool (its gen unchanged:
// callers bump the gen when a thing dies after use, see freeEntry). It is a
// CAS owned(tag) -> free, never a store: an owner revoked while it releases
// its cache (a member slow to stop) finds the things its repairer freed,
// and perhaps a third owner took since, no longer its own, and leaves them
// alone. It reports whether it released the thing.
func (s *Structure) release(k poolKind, i uint32, tag OwnerTag) bool {
	off := s.poolWordOff(k, i)
	w := s.load(off)
	if wKind(w) != 1 || wVal(w) != uint32(tag) {
		return false
	}
	testHookReleaseLoaded(k, i)
	if !s.cas(off, w, mkWord(wGen(w), 0, 0)) {
		return false
	}
	cpFreeReleased.Hit()
	return true
}

// testHookReleaseLoaded runs in release between the load of a thing's word
// and its release (tests stage a revocation there).
var testHookReleaseLoaded = func(poolKind, uint32) {}

// markTook records, before the owner first takes anything (from a pool,
// or a message by a claim), that Repair must sweep for what it holds.
func (o *Owner) markTook() {
	if !o.took {
		o.s.store(o.off+ownTook, 1)
		o.took = true
	}
}

// allocEntry takes an entry from the owner's cache, refilling it.
func (o *Owner) allocEntry() (idx, gen uint32, err error) {
	if len(o.entries) == 0 {
		o.markTook()
		o.entries = o.s.grab(poolEntries, o.tag, entryBatch, o.entries)
		if len(o.entries) == 0 {
			return 0, 0, errStructureFull(o.s, "message entries")
		}
	}
	idx = o.entries[len(o.entries)-1]
	o.entries = o.entries[:len(o.entries)-1]
	return idx, wGen(o.s.load(o.s.entryOff(idx) + enCtl)), nil
}

// allocElems appends n data elements from the cache to dst.
func (o *Owner) allocElems(n int, dst []uint32) ([]uint32, error) {
	if len(o.elems) < n {
		o.markTook()
		o.elems = o.s.grab(poolElems, o.tag, n-len(o.elems)+elemBatch, o.elems)
		if len(o.elems) < n {
			return dst, errStructureFull(o.s, "data elements")
		}
	}
	k := len(o.elems) - n
	dst = append(dst, o.elems[k:]...)
	o.elems = o.elems[:k]
	return dst, nil
}

// allocSeg takes a segment from the cache.
func (o *Owner) allocSeg() (uint32, error) {
	if len(o.segs) == 0 {
		o.markTook()
		o.segs = o.s.grab(poolSegs, o.tag, segBatch, o.segs)
		if len(o.segs) == 0 {
			return 0, errStructureFull(o.s, "list segments")
		}
	}
	i := o.segs[len(o.segs)-1]
	o.segs = o.segs[:len(o.segs)-1]
	return i, nil
}

// cacheEntry keeps a dead entry for reuse (word already alloc(tag), gen
// bumped) or gives entries back when the cache is full.
func (o *Owner) cacheEntry(i uint32) {
	o.entries = append(o.entries, i)
	if len(o.entries) > 4*entryBatch {
		o.entries = o.giveBack(poolEntries, o.entries, 2*entryBatch)
	}
}

func (o *Owner) cacheElem(i uint32) {
	o.elems = append(o.elems, i)
	if len(o.elems) > 4*elemBatch {
		o.elems = o.giveBack(poolElems, o.elems, 2*elemBatch)
	}
}

// giveBack releases the oldest n of a cache and points the sweep hand at
// them.
func (o *Owner) giveBack(k poolKind, cache []uint32, n int) []uint32 {
	lo := cache[0]
	for _, j := range cache[:n] {
		o.s.release(k, j, o.tag)
		lo = min(lo, j)
	}
	atomic.StoreUint64(o.s.u64(poolHand(k)), uint64(lo))
	return append(cache[:0], cache[n:]...)
}

func errStructureFull(s *Structure, what string) error {
	return fmt.Errorf("%w: no free %s in structure %s", ErrStructureFull, what, s.Name())
}
