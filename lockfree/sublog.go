package lockfree

import (
	"fmt"

	"github.com/qmgr/qmgr/crashpoint"
)

// A queue holds one sublog per priority. A sublog is an unbounded sequence
// of positions 0, 1, 2, ... stored 64 at a time in segments chained from
// headSeg. Each position's slot holds an entry reference (index+1, gen) or
// a tombstone. Producers fill slots at the tail by CAS (empty -> ref): the
// CAS both reserves the position and links the entry, and the entry carries
// its position and owner, so Repair can tell from the mapping alone whether
// a dead producer's entry was linked. tailPos is advanced after the slot is
// filled, by the filler or by anyone who finds the slot full, so tailPos
// never passes an empty slot.
//
// An empty slot, and the next field of a segment with no successor, hold an
// empty mark that carries the segment's gen (emptyMark). Producers CAS from
// the mark of the segment incarnation they validated, so a producer that was
// descheduled while the segment was freed and reused (for this or another
// queue) fails its CAS instead of writing into someone else's list.
//
// An entry stays at its position from put to consumption: a get claims it
// in place (avail -> held) and a backout releases it in place, which is what
// puts a backed-out message back at its original position. A consumed
// entry is freed (its gen changes), leaving a stale reference: a dead slot.
// Scanners advance headPos over dead slots; the janitor (whoever holds the
// sublog's janitor token) frees head segments behind headPos and unlinks
// fully dead segments from the middle of the chain, so a message held for a
// long time pins only its own segment.

// emptyMark is the content of an empty slot or next field of a segment with
// gen g: bit 31 set, zero high half (so it reads as a nil reference).
func emptyMark(g uint32) uint64 { return 1<<31 | uint64(g&genMask) }

const maxRetries = 1 << 20 // a lock-free loop retrying this often means a corrupt structure

var (
	cpLinkSlot    = crashpoint.New("lockfree.link.slot")
	cpSegLinking  = crashpoint.New("lockfree.seg.linking")
	cpSegLinked   = crashpoint.New("lockfree.seg.linked")
	cpSegUnlinked = crashpoint.New("lockfree.seg.unlinked")
)

func qpOf(q uint32, prio int) uint32 { return q<<8 | uint32(prio) }

func (s *Structure) slotOff(seg uint32, k uint64) uint64 { return s.segOff(seg) + sgSlots + k*8 }

// segRead validates that sr still names a segment linked into sublog qp and
// returns its base position. The word is read before and after the base so
// the base belongs to that incarnation of the segment.
func (s *Structure) segRead(sr ref, qp uint32) (uint64, bool) {
	if sr.nil() || sr.idx() >= uint32(s.p.Segments) {
		return 0, false
	}
	so := s.segOff(sr.idx())
	w := s.load(so + sgWord)
	if wKind(w) != skLink || wGen(w) != sr.gen() || wVal(w) != qp {
		return 0, false
	}
	base := s.load(so + sgBase)
	if s.load(so+sgWord) != w {
		return 0, false
	}
	return base, true
}

func errCorrupt(s *Structure, format string, args ...any) error {
	return fmt.Errorf("%w: structure %s: %s", ErrCorrupt, s.Name(), fmt.Sprintf(format, args...))
}

// link puts entry (e, g) into the next free position of sublog q/prio and
// returns the position. The entry must be alloc(o) and its fields written.
func (o *Owner) link(q uint32, prio int, e, g uint32) (uint64, error) {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	r := uint64(mkRef(e, g))
	for attempt := 0; attempt < maxRetries; attempt++ {
		t := s.load(sl + slTailPos)
		ts := ref(s.load(sl + slTailSeg))
		if ts.nil() {
			if hs := ref(s.load(sl + slHeadSeg)); !hs.nil() {
				s.cas(sl+slTailSeg, 0, uint64(hs))
			} else if err := o.extend(q, prio, 0, 0); err != nil {
				return 0, err
			}
			continue
		}
		base, ok := s.segRead(ts, qp)
		if !ok {
			if ref(s.load(sl+slTailSeg)) == ts {
				s.repairTailSeg(q, prio, ts) // cannot happen by design; recover anyway
				if ref(s.load(sl+slTailSeg)) == ts && s.queueActive(q) {
					return 0, errCorrupt(s, "queue %d priority %d: tail segment %d is not linked to it, nor is the chain from its head", q, prio, ts.idx())
				}
			}
			continue
		}
		if t < base {
			continue // read tail and segment across a change; reread
		}
		if t >= base+segSlots {
			nx := ref(s.load(s.segOff(ts.idx()) + sgNext))
			if nx.nil() && t > base+segSlots {
				// The tail fills the last segment before it passes it.
				if s.load(sl+slTailPos) == t && ref(s.load(sl+slTailSeg)) == ts && ref(s.load(s.segOff(ts.idx())+sgNext)).nil() {
					if _, ok := s.segRead(ts, qp); ok {
						return 0, errCorrupt(s, "queue %d priority %d: tail %d beyond the last segment (base %d)", q, prio, t, base)
					}
				}
				continue
			}
			if nx.nil() {
				if err := o.extend(q, prio, ts, base+segSlots); err != nil {
					return 0, err
				}
			} else if nb, ok := s.segRead(nx, qp); ok && nb == base+segSlots {
				s.cas(sl+slTailSeg, uint64(ts), uint64(nx))
			} else if s.badLink(ts, nx, qp) && !s.catchUpTailSeg(q, prio, ts, t) &&
				s.load(sl+slTailPos) == t && ref(s.load(sl+slTailSeg)) == ts && s.badLink(ts, nx, qp) {
				// No segment of the chain after the tail segment holds the
				// tail, and nothing moved meanwhile.
				return 0, errCorrupt(s, "queue %d priority %d: tail segment %d is followed by %#x, and no segment after it holds the tail %d", q, prio, ts.idx(), uint64(nx), t)
			}
			continue
		}
		so := s.slotOff(ts.idx(), t-base)
		s.storeOwned(s.entryOff(e)+enPos, t)
		if !s.cas(so, emptyMark(ts.gen()), r) {
			if !ref(s.load(so)).nil() {
				s.cas(sl+slTailPos, t, t+1) // help whoever filled slot t
			}
			continue // or the segment was recycled under us: reread
		}
		cpLinkSlot.Hit()
		s.cas(sl+slTailPos, t, t+1)
		return t, nil
	}
	return 0, errCorrupt(s, "cannot link into queue %d priority %d", q, prio)
}

// linkRun lets one call put several messages at consecutive positions of a
// sublog without moving its tail for each: after a normal link at position
// p, the next message goes straight into slot p+1 if it is in the same
// segment and still empty, and endRun moves the tail past the run at the
// end. The tail never passes an empty slot: every slot in a run is filled.
// A producer killed inside a run leaves filled slots beyond the tail;
// other producers move the tail over them, and so does Repair.
type linkRun struct {
	active bool
	q      uint32
	prio   int
	seg    ref
	base   uint64
	last   uint64 // last position filled
}

// linkInRun links e like link, continuing run when it can.
func (o *Owner) linkInRun(q uint32, prio int, e, g uint32, run *linkRun) error {
	s := o.s
	if run.active && run.q == q && run.prio == prio && run.last+1 < run.base+segSlots {
		pos := run.last + 1
		s.storeOwned(s.entryOff(e)+enPos, pos)
		if s.cas(s.slotOff(run.seg.idx(), pos-run.base), emptyMark(run.seg.gen()), uint64(mkRef(e, g))) {
			cpLinkSlot.Hit()
			run.last = pos
			return nil
		}
	}
	o.endRun(run)
	pos, err := o.link(q, prio, e, g)
	if err != nil {
		return err
	}
	sl := s.sublogOff(q, prio)
	ts := ref(s.load(sl + slTailSeg))
	if base, ok := s.segRead(ts, qpOf(q, prio)); ok && pos >= base && pos < base+segSlots {
		*run = linkRun{active: true, q: q, prio: prio, seg: ts, base: base, last: pos}
	}
	return nil
}

// endRun moves the tail past the run's last position.
func (o *Owner) endRun(run *linkRun) {
	if !run.active {
		return
	}
	run.active = false
	s := o.s
	sl := s.sublogOff(run.q, run.prio)
	for {
		t := s.load(sl + slTailPos)
		if t > run.last || s.cas(sl+slTailPos, t, run.last+1) {
			return
		}
	}
}

// helpTail moves the tail of q/prio over filled slots (those of a producer
// that died in a run, or between filling a slot and moving the tail).
func (s *Structure) helpTail(q uint32, prio int) {
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	for n := 0; n < 1<<20; n++ {
		t := s.load(sl + slTailPos)
		ts := ref(s.load(sl + slTailSeg))
		if ts.nil() {
			// Killed between installing the first segment and the tail.
			if hs := ref(s.load(sl + slHeadSeg)); !hs.nil() && s.cas(sl+slTailSeg, 0, uint64(hs)) {
				continue
			}
			return
		}
		base, ok := s.segRead(ts, qp)
		if !ok || t < base {
			return
		}
		if t >= base+segSlots {
			nx := ref(s.load(s.segOff(ts.idx()) + sgNext))
			if nb, ok := s.segRead(nx, qp); ok && nb == base+segSlots {
				s.cas(sl+slTailSeg, uint64(ts), uint64(nx))
				continue
			}
			return
		}
		if ref(s.load(s.slotOff(ts.idx(), t-base))).nil() {
			return
		}
		s.cas(sl+slTailPos, t, t+1)
	}
}

// extend links a new segment with the given base after prev (or as the
// first segment when prev is nil).
func (o *Owner) extend(q uint32, prio int, prev ref, base uint64) error {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	// Claimed as linked to qp, not yet in the chain (nobody reaches it
	// before it is): the segment descriptor names it.
	sr, err := o.allocSeg(qp)
	if err != nil {
		return err
	}
	i, g := sr.idx(), sr.gen()
	so := s.segOff(i)
	for k := uint64(0); k < segSlots; k++ {
		s.store(so+sgSlots+k*8, emptyMark(g))
	}
	s.store(so+sgNext, emptyMark(g))
	s.store(so+sgBase, base)
	cpSegLinking.Hit()
	var linked bool
	if prev.nil() {
		if linked = s.cas(sl+slHeadSeg, 0, uint64(sr)); linked {
			cpSegLinked.Hit()
			s.cas(sl+slTailSeg, 0, uint64(sr))
		}
	} else if linked = s.cas(s.segOff(prev.idx())+sgNext, emptyMark(prev.gen()), uint64(sr)); linked {
		// The mark carries prev's gen: had prev been freed and reused
		// since we validated it, the CAS would have failed.
		cpSegLinked.Hit()
		s.cas(sl+slTailSeg, uint64(prev), uint64(sr))
	}
	if !linked {
		s.store(so+sgWord, mkWord(g, skOwned, uint32(o.tag)))
		o.segs = append(o.segs, i)
	}
	o.clearSegDesc()
	if linked && !prev.nil() {
		o.tidy(q, prio)
	}
	return nil
}

// catchUpTailSeg points tailSeg, ts, at the segment of the chain after it
// that holds position t, and reports whether it found one. The tail
// segment may lag the tail, and a fully dead segment after it may have
// been unlinked meanwhile (compact), so its next need not start where it
// ends.
func (s *Structure) catchUpTailSeg(q uint32, prio int, ts ref, t uint64) bool {
	qp := qpOf(q, prio)
	sl := s.sublogOff(q, prio)
	cur := ts
	for n := 0; n <= s.p.Segments; n++ {
		base, ok := s.segRead(cur, qp)
		if !ok {
			return false
		}
		if t >= base && t < base+segSlots {
			s.cas(sl+slTailSeg, uint64(ts), uint64(cur))
			return true
		}
		nx := ref(s.load(s.segOff(cur.idx()) + sgNext))
		nb, ok := s.segRead(nx, qp)
		if !ok || nb <= base {
			return false
		}
		cur = nx
	}
	return false
}

// repairTailSeg points tailSeg at the last segment of the chain when it
// names a segment that is no longer linked.
func (s *Structure) repairTailSeg(q uint32, prio int, bad ref) {
	qp := qpOf(q, prio)
	sl := s.sublogOff(q, prio)
	cur := ref(s.load(sl + slHeadSeg))
	for n := 0; n <= s.p.Segments; n++ {
		if _, ok := s.segRead(cur, qp); !ok {
			return
		}
		nx := ref(s.load(s.segOff(cur.idx()) + sgNext))
		if nx.nil() {
			s.cas(sl+slTailSeg, uint64(bad), uint64(cur))
			return
		}
		cur = nx
	}
}

// segReachable reports whether segment sr is in the chain of sublog qp.
// Used by Repair, never on the data path. A walk that keeps meeting
// concurrent changes answers true: keeping a segment is safe (the checker
// reports a leak), freeing a linked one is not.
func (s *Structure) segReachable(q uint32, prio int, sr ref) bool {
	qp := qpOf(q, prio)
	sl := s.sublogOff(q, prio)
	for attempt := 0; attempt < 1000; attempt++ {
		cur := ref(s.load(sl + slHeadSeg))
		restart := false
		for n := 0; !cur.nil() && n <= s.p.Segments; n++ {
			if cur == sr {
				return true
			}
			if _, ok := s.segRead(cur, qp); !ok {
				restart = true
				break
			}
			nx := ref(s.load(s.segOff(cur.idx()) + sgNext))
			if _, ok := s.segRead(cur, qp); !ok {
				restart = true
				break
			}
			cur = nx
		}
		if !restart {
			return false
		}
	}
	return true
}

// janitorLock takes the sublog's janitor token without waiting.
func (o *Owner) janitorLock(sl uint64) bool {
	return o.s.cas(sl+slJanitor, 0, uint64(o.tag))
}

func (o *Owner) janitorUnlock(sl uint64) { o.s.cas(sl+slJanitor, uint64(o.tag), 0) }

// freeSeg frees a segment this owner unlinked (word linked -> free, gen
// bumped so stale references fail validation).
func (s *Structure) freeSeg(sr ref, qp uint32) bool {
	so := s.segOff(sr.idx())
	return s.cas(so+sgWord, mkWord(sr.gen(), skLink, qp), mkWord(nextGen(sr.gen()), skFree, 0))
}

// retireHead frees head segments that headPos has passed. Only the janitor
// token holder changes headSeg, so the unlink is a plain CAS.
func (o *Owner) retireHead(q uint32, prio int) {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	if !o.janitorLock(sl) {
		return
	}
	defer o.janitorUnlock(sl)
	for n := 0; n < 8; n++ {
		hs := ref(s.load(sl + slHeadSeg))
		base, ok := s.segRead(hs, qp)
		if !ok || s.load(sl+slHeadPos) < base+segSlots {
			return
		}
		nx := ref(s.load(s.segOff(hs.idx()) + sgNext))
		if nx.nil() {
			return // the tail segment stays
		}
		if _, ok := s.segRead(nx, qp); !ok {
			return // hs's next is always linked (only this token's holder unlinks): corrupt
		}
		if ref(s.load(sl+slTailSeg)) == hs {
			// tailSeg lags (its producer was slow or died between linking
			// nx and moving tailSeg): move it on before freeing hs.
			s.cas(sl+slTailSeg, uint64(hs), uint64(nx))
			if ref(s.load(sl+slTailSeg)) == hs {
				return
			}
		}
		o.setSegDesc(opSegFree, uint64(hs), uint64(qp))
		if !s.cas(sl+slHeadSeg, uint64(hs), uint64(nx)) {
			o.clearSegDesc()
			return
		}
		cpSegUnlinked.Hit()
		s.freeSeg(hs, qp)
		o.clearSegDesc()
		if nb, ok := s.segRead(nx, qp); ok {
			if h := s.load(sl + slHeadPos); h < nb {
				s.cas(sl+slHeadPos, h, nb) // positions in unlinked gaps are dead
			}
		}
	}
}

// compact unlinks seg, found fully dead by a scanner, from between prev and
// its successor. seg is never the head segment (prev is before it) nor the
// tail (its next is set, so every position in it is below the tail).
func (o *Owner) compact(q uint32, prio int, prev, seg ref) bool {
	sl := o.s.sublogOff(q, prio)
	if !o.janitorLock(sl) {
		return false
	}
	defer o.janitorUnlock(sl)
	return o.compactLocked(q, prio, prev, seg)
}

func (o *Owner) compactLocked(q uint32, prio int, prev, seg ref) bool {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	if _, ok := s.segRead(prev, qp); !ok {
		return false
	}
	if _, ok := s.segRead(seg, qp); !ok {
		return false
	}
	po := s.segOff(prev.idx()) + sgNext
	if ref(s.load(po)) != seg || ref(s.load(sl+slTailSeg)) == seg {
		return false
	}
	nx := ref(s.load(s.segOff(seg.idx()) + sgNext))
	if _, ok := s.segRead(nx, qp); !ok {
		return false // no next (seg is the tail), or a corrupt one
	}
	// Dead slots stay dead (stale references and tombstones never come
	// back), but check again under the token: the scanner's view is old.
	base, _ := s.segRead(seg, qp)
	for k := uint64(0); k < segSlots; k++ {
		if !s.slotDead(s.load(s.slotOff(seg.idx(), k)), q, prio, base+k) {
			return false
		}
	}
	o.setSegDesc(opSegFree, uint64(seg), uint64(qp))
	done := s.cas(po, uint64(seg), uint64(nx))
	if done {
		cpSegUnlinked.Hit()
		s.freeSeg(seg, qp)
	}
	o.clearSegDesc()
	return done
}

// tidy runs after a producer linked a new segment: when the head segment is
// pinned (a message at the head is held or uncommitted), scanners that
// resume from their cache never walk the segments behind it, so the
// producer unlinks the first few that are fully dead. One pass per 64
// puts, and only while the head is pinned.
func (o *Owner) tidy(q uint32, prio int) {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	hs := ref(s.load(sl + slHeadSeg))
	base, ok := s.segRead(hs, qp)
	if !ok {
		return
	}
	if s.load(sl+slHeadPos) >= base+segSlots {
		o.retireHead(q, prio)
		return
	}
	if !o.janitorLock(sl) {
		return
	}
	defer o.janitorUnlock(sl)
	prev := hs
	for k := 0; k < 4; k++ {
		cur := ref(s.load(s.segOff(prev.idx()) + sgNext))
		if _, ok := s.segRead(cur, qp); !ok || cur == ref(s.load(sl+slTailSeg)) {
			return
		}
		if !o.compactLocked(q, prio, prev, cur) {
			prev = cur
		}
	}
}

// slotDead reports whether the slot word w at position pos of sublog q/prio
// can never again hold a live entry.
func (s *Structure) slotDead(w uint64, q uint32, prio int, pos uint64) bool {
	r := ref(w)
	if r.nil() {
		return false
	}
	if r.idx() >= uint32(s.p.Entries) {
		return true
	}
	eo := s.entryOff(r.idx())
	c := s.load(eo + enCtl)
	return wGen(c) != r.gen() || wKind(c) == stFree || wKind(c) == stDead || !s.entryAt(eo, q, prio, pos)
}

// entryAt reports whether the entry at eo says it is at position pos of
// sublog q/prio. A reference whose gen matches but whose entry is elsewhere
// is stale: its gen wrapped (24 bits) while the slot kept the old reference.
func (s *Structure) entryAt(eo uint64, q uint32, prio int, pos uint64) bool {
	return s.load(eo+enPos) == pos && uint32(s.load(eo+enQueue))&0xffffff == q|uint32(prio)<<16
}
