package lockfree

import (
	"fmt"
	"sync/atomic"

	"github.com/qmgr/qmgr/crashpoint"
)

// The three pools (entries, data elements, segments) share one allocator.
// Each thing has a state word (gen | kind | value, see words.go) and the word
// is the only truth about who has it: kind 0 is free, the cached kind
// (entries: cached, elements and segments: owned) holds the owner tag in
// value. Allocation is a single CAS free -> cached(tag), so a process
// killed at any instruction either has the thing (and Repair, which frees
// everything a dead tag has, gets it back) or does not. There is no free
// list whose head could be popped by a process that then dies before
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
//
// A cache is at most 256 entries and 256 elements, and an owner that goes
// idle (a connection waiting for its application) keeps it: a thousand idle
// connections could hold every entry of a structure whose queues are
// empty. So a cache is not the owner's to keep: a taker whose sweep finds
// too few free things takes cached ones from other owners, by the same
// single CAS, cached(other) -> cached(tag). An owner therefore claims what
// it takes from its own cache before using it, by a CAS cached(tag) -> in
// use (an entry: alloc; an element: msg(entry); a segment: linked), and
// drops the index from its cache when the CAS fails: the thing was taken,
// or (see Owner.checkAlive) is no longer its own. Things in use are never
// taken. Giving back (cached(tag) -> free) is a CAS too, so a give-back
// racing a take loses nothing. Every step is one CAS of one word naming
// its owner, so a process killed at any instruction of a give-back or a
// take leaves each thing free or cached by a tag Repair frees.

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

// cachedKind is the kind of a thing of pool k in an owner's cache.
func cachedKind(k poolKind) uint8 {
	if k == poolEntries {
		return stCached
	}
	return ekOwned // = skOwned
}

// grab claims up to want free things of pool k for tag, appending their
// indexes to dst. It sweeps the whole pool at most once; when that finds
// fewer than need, it takes cached things from other owners (the pool is
// low, and idle owners' caches may hold most of it). Fewer than need means
// the structure is full.
func (s *Structure) grab(k poolKind, tag OwnerTag, need, want int, dst []uint32) []uint32 {
	n := uint64(s.poolN(k))
	hand := s.u64(poolHand(k))
	ck := cachedKind(k)
	got := 0
	type seen struct {
		i uint32
		w uint64
	}
	var others []seen // cached by other owners, in case the pool is low
	for scanned := uint64(0); got < want && scanned < n+sweepWindow; scanned += sweepWindow {
		start := atomic.AddUint64(hand, sweepWindow) - sweepWindow
		for j := uint64(0); j < sweepWindow && got < want; j++ {
			i := uint32((start + j) % n)
			off := s.poolWordOff(k, i)
			w := s.load(off)
			if wKind(w) == ck && wVal(w) != uint32(tag) && len(others) < want {
				others = append(others, seen{i, w})
			}
			if wKind(w) != 0 {
				continue
			}
			if s.cas(off, w, mkWord(wGen(w), ck, uint32(tag))) {
				cpAllocClaimed.Hit()
				dst = append(dst, i)
				got++
			}
		}
	}
	for _, o := range others {
		if got >= need {
			break
		}
		if s.cas(s.poolWordOff(k, o.i), o.w, mkWord(wGen(o.w), ck, uint32(tag))) {
			cpAllocClaimed.Hit()
			dst = append(dst, o.i)
			got++
		}
	}
	return dst
}

// release gives a thing in tag's cache back to the pool (its gen
// unchanged: callers bump the gen when a thing dies after use, see
// freeEntry). It is a CAS cached(tag) -> free, never a store: another owner
// may have taken the thing meanwhile, or the owner was revoked while it
// releases its cache (a member slow to stop), its repairer freed the
// things and a third owner may have taken them since; such a thing is left
// alone. It reports whether it released the thing.
func (s *Structure) release(k poolKind, i uint32, tag OwnerTag) bool {
	off := s.poolWordOff(k, i)
	w := s.load(off)
	if wKind(w) != cachedKind(k) || wVal(w) != uint32(tag) {
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

// allocEntry takes an entry from the owner's cache, refilling it, and
// claims it: cached(tag) -> alloc(tag).
func (o *Owner) allocEntry() (idx, gen uint32, err error) {
	for {
		if len(o.entries) == 0 {
			o.markTook()
			o.entries = o.s.grab(poolEntries, o.tag, 1, entryBatch, o.entries)
			if len(o.entries) == 0 {
				return 0, 0, errStructureFull(o.s, "message entries")
			}
		}
		idx = o.entries[len(o.entries)-1]
		o.entries = o.entries[:len(o.entries)-1]
		off := o.s.entryOff(idx) + enCtl
		w := o.s.load(off)
		if w == mkWord(wGen(w), stCached, uint32(o.tag)) && o.s.cas(off, w, mkWord(wGen(w), stAlloc, uint32(o.tag))) {
			return idx, wGen(w), nil
		}
		// Taken from the cache by an owner that found the pool low.
	}
}

// recacheEntry puts entry e (alloc(tag), gen g, never made visible) back
// in the cache.
func (o *Owner) recacheEntry(e, g uint32) {
	o.s.store(o.s.entryOff(e)+enCtl, mkWord(g, stCached, uint32(o.tag)))
	o.entries = append(o.entries, e)
}

// allocElems appends to dst n data elements from the cache, claimed for
// entry e (owned(tag) -> msg(e)): from here a repair that frees the entry
// finds them by their tag. On failure it claims none.
func (o *Owner) allocElems(n int, e uint32, dst []uint32) ([]uint32, error) {
	s := o.s
	k := len(dst)
	for len(dst)-k < n {
		if len(o.elems) == 0 {
			o.markTook()
			left := n - (len(dst) - k)
			o.elems = s.grab(poolElems, o.tag, left, left+elemBatch, o.elems)
			if len(o.elems) == 0 {
				for _, el := range dst[k:] {
					wo := s.elemWordOff(el)
					s.store(wo, mkWord(wGen(s.load(wo)), ekOwned, uint32(o.tag)))
					o.elems = append(o.elems, el)
				}
				return dst[:k], errStructureFull(s, "data elements")
			}
		}
		el := o.elems[len(o.elems)-1]
		o.elems = o.elems[:len(o.elems)-1]
		wo := s.elemWordOff(el)
		if w := s.load(wo); w == mkWord(wGen(w), ekOwned, uint32(o.tag)) && s.cas(wo, w, mkWord(wGen(w), ekMsg, e)) {
			dst = append(dst, el)
		}
	}
	return dst, nil
}

// allocSeg takes a segment from the cache and claims it for sublog qp:
// owned(tag) -> linked(qp), with the segment descriptor naming it first, so
// that Repair frees it if the owner dies before it is in the chain.
func (o *Owner) allocSeg(qp uint32) (ref, error) {
	s := o.s
	for {
		if len(o.segs) == 0 {
			o.markTook()
			o.segs = s.grab(poolSegs, o.tag, 1, segBatch, o.segs)
			if len(o.segs) == 0 {
				return 0, errStructureFull(s, "list segments")
			}
		}
		i := o.segs[len(o.segs)-1]
		o.segs = o.segs[:len(o.segs)-1]
		so := s.segOff(i)
		w := s.load(so + sgWord)
		if w != mkWord(wGen(w), skOwned, uint32(o.tag)) {
			continue // taken from the cache
		}
		sr := mkRef(i, wGen(w))
		o.setSegDesc(opSegLink, uint64(sr), uint64(qp))
		if s.cas(so+sgWord, w, mkWord(wGen(w), skLink, qp)) {
			return sr, nil
		}
		o.clearSegDesc()
	}
}

// cacheEntry keeps a dead entry for reuse (word already cached(tag), gen
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
