package lockfree

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/shm"
)

// Scans and claims: a getter walks a sublog from its head (or from where
// its scan cache says nothing changed) and claims the first message it may
// take with one CAS of the entry's control word. Get, views and expiry
// (get.go, view.go) take what is claimed here; browse (browse.go) walks
// without claiming.

// claimMode is the state a claim moves an available entry to.
type claimMode uint8

// maxFutexSleep bounds one futex sleep so a waiter whose waker died is never
// stuck: it rechecks the queue at least this often.
const maxFutexSleep = 50 * time.Millisecond

type matcher struct {
	msgID, correlID *[idBytes]byte
	none            bool // match nothing: a scan that only removes expired messages
}

func (s *Structure) entryMatches(eo uint64, m *matcher) bool {
	if m.none {
		return false
	}
	if m.msgID != nil && !bytes.Equal(s.mem.Bytes(eo+enMsgID, idBytes), m.msgID[:]) {
		return false
	}
	if m.correlID != nil && !bytes.Equal(s.mem.Bytes(eo+enCorrelID, idBytes), m.correlID[:]) {
		return false
	}
	return true
}

// scanCache lets a getter skip positions it already found unavailable:
// positions in [head, resume) held nothing available when availSeq was seq,
// and no entry becomes available again without bumping availSeq (entries
// still being linked are excluded by resume).
type scanCache struct {
	seq, tail, resume uint64
	// seg (base segBase) is the segment holding resume when it was
	// cached, or nil: a scan that resumes starts there instead of walking
	// the segments from the head, which a held message pins (a channel's
	// batches in flight hold hundreds). It is used only while segRead
	// says it is still that segment of the sublog.
	seg     ref
	segBase uint64
}

// set caches a scan that found nothing available for this owner before
// resume, with seg (base) the segment the scan was in: kept only when it
// holds resume or ends just before it.
func (c *scanCache) set(seq, tail, resume uint64, seg ref, base uint64) {
	c.seq, c.tail, c.resume = seq, tail, resume
	if resume >= base && resume <= base+segSlots {
		c.seg, c.segBase = seg, base
	} else {
		c.seg = 0
	}
}

func (o *Owner) scanCacheFor(qp uint32) *scanCache {
	if o.scans == nil {
		o.scans = map[uint32]*scanCache{}
	}
	c := o.scans[qp]
	if c == nil {
		c = &scanCache{seq: ^uint64(0)}
		o.scans[qp] = c
	}
	return c
}

type claimed struct {
	idx, gen uint32
	q        uint32
	prio     int
	pos      uint64
	mode     claimMode // how it was claimed (claimAuto resolved)
}

// tryClaim claims entry r (ctl word w, available) for this owner, and
// returns the mode it claimed it in (claimAuto resolved), or false.
func (o *Owner) tryClaim(r ref, w uint64, q uint32, mode claimMode) (claimMode, bool) {
	o.markTook()
	s := o.s
	eo := s.entryOff(r.idx())
	if mode == claimAuto {
		// The flags are immutable while the entry is linked with the gen
		// of w: if it was freed and reused since, the CAS below fails.
		mode = claimDead
		if (s.load(eo+enQueue)>>24)&efPersistent != 0 {
			mode = claimView
		}
	}
	if mode != claimDead {
		st := stHeld
		if mode == claimView {
			st = stView
		}
		if !s.cas(eo+enCtl, w, mkWord(r.gen(), st, uint32(o.tag))) {
			return mode, false
		}
		cpGetClaimed.Hit()
		return mode, true
	}
	before := o.cellDepth(q)
	o.setDesc(opRemove, uint64(r), uint64(q), before)
	if !s.cas(eo+enCtl, w, mkWord(r.gen(), stDead, uint32(o.tag))) {
		return mode, false
	}
	cpGetClaimed.Hit()
	o.setCellDepth(q, before-1)
	cpGetCounted.Hit()
	return mode, true
}

// taker receives each claimed message and says whether to claim another.
// In claimDead mode it must consume the message before returning (the
// owner's descriptor names it until the next claim).
type taker func(claimed) bool

// claimSublog scans sublog q/prio from its head for available entries that
// m accepts and claims them in order, handing each to take, until take
// says stop or the sublog has no more. It returns how many it claimed and
// whether take asked to stop. On the way it advances the head over dead
// positions, frees head segments behind it and unlinks fully dead
// segments, and removes expired messages.
func (o *Owner) claimSublog(q uint32, prio int, m *matcher, mode claimMode, now *int64, take taker) (int, bool, error) {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	var cache *scanCache
	if m == nil {
		cache = o.scanCacheFor(qp)
	}
	var skipped [32]uint64
	overflowRestarts := 0
	n := 0
	for attempt := 0; attempt < maxRetries; attempt++ {
		aseq := s.load(sl + slAvailSeq)
		t := s.load(sl + slTailPos)
		h := s.load(sl + slHeadPos)
		if h >= t {
			return n, false, nil
		}
		start := h
		if cache != nil && cache.seq == aseq && cache.resume > h {
			// Positions before resume need no look for messages, but the
			// head must still move over the dead ones (what this owner
			// consumed since): catch it up first.
			h = o.catchUpHead(q, prio, h, cache.resume)
			if cache.resume >= t {
				return n, false, nil
			}
			start = cache.resume
		}
		hs := ref(s.load(sl + slHeadSeg))
		base, ok := s.segRead(hs, qp)
		if !ok {
			if err := s.badHeadSeg(q, prio, hs); err != nil {
				return n, false, err
			}
			continue
		}
		if h < base {
			s.cas(sl+slHeadPos, h, base) // the head segment starts after a gap
			continue
		}
		seg, prev := hs, ref(0)
		if cache != nil && start > h && !cache.seg.nil() && cache.segBase > base && cache.segBase <= start {
			// Resume in the cached segment, if it still is that one: the
			// walk from the head would only pass segments before it. Its
			// predecessor is unknown, so it is not compacted.
			if cb, ok := s.segRead(cache.seg, qp); ok && cb == cache.segBase {
				seg, base = cache.seg, cb
			}
		}
		restart := false
		for start >= base+segSlots && !restart {
			nx := ref(s.load(s.segOff(seg.idx()) + sgNext))
			nb, ok1 := s.segRead(nx, qp)
			_, ok2 := s.segRead(seg, qp)
			if !ok1 || !ok2 || nb <= base {
				// start is below the tail, which never passes the last
				// segment: a nil next is corrupt too.
				if err := s.hopError(q, prio, seg, base, nx, nb, ok1, ok2); err != nil {
					return n, false, err
				}
				restart = true
				break
			}
			prev, seg, base = seg, nx, nb
		}
		if restart {
			continue
		}
		if start < base {
			start = base
		}
		advancing := start == h
		leftHead := false
		resume := t
		nskip, overflow := 0, false
		fromStart, allDead := start == base, true
		for pos := start; pos < t; pos++ {
			if pos >= base+segSlots {
				nx := ref(s.load(s.segOff(seg.idx()) + sgNext))
				if nx.nil() {
					// The end of the list, if seg is still ours: a segment
					// freed and reused meanwhile has no next either. Either
					// way positions from here were not looked at (the next
					// segment may be being linked): the cache stops here.
					if _, ok := s.segRead(seg, qp); !ok {
						restart = true
					}
					resume = min(resume, pos)
					break
				}
				nb, ok1 := s.segRead(nx, qp)
				_, ok2 := s.segRead(seg, qp)
				if !ok1 || !ok2 || nb <= base {
					if err := s.hopError(q, prio, seg, base, nx, nb, ok1, ok2); err != nil {
						return n, false, err
					}
					restart = true
					break
				}
				if fromStart && allDead && !prev.nil() && o.compact(q, prio, prev, seg) {
					// seg is gone; prev now links to nx
				} else {
					prev = seg
				}
				if advancing && seg == hs {
					leftHead = true
				}
				seg, base = nx, nb
				if pos < base {
					if advancing {
						s.cas(sl+slHeadPos, pos, base)
					}
					pos = base
					if pos >= t {
						break
					}
				}
				fromStart, allDead = pos == base, true
			}
			sw := s.load(s.slotOff(seg.idx(), pos-base))
			dead := false
			switch {
			case ref(sw).nil():
				resume = min(resume, pos) // being filled; cannot be below the tail, but stay safe
			default:
				r := ref(sw)
				if r.idx() >= uint32(s.p.Entries) {
					dead = true
					break
				}
				eo := s.entryOff(r.idx())
				w := s.load(eo + enCtl)
				if wGen(w) != r.gen() || !s.entryAt(eo, q, prio, pos) {
					// Stale: the message died. With 24-bit gens an entry
					// reused 2^24 times can match the gen again, but then it
					// names another position: the identity decides.
					dead = true
					break
				}
				switch wKind(w) {
				case stFree, stDead, stCached:
					dead = true
				case stAlloc, stPutU:
					if wKind(w) == stAlloc {
						resume = min(resume, pos)
					}
					if p := s.load(eo + enPutter); p&(1<<31) == 0 {
						// A put of a unit of work: remember it once.
						dup := false
						for _, sp := range skipped[:nskip] {
							dup = dup || sp == p
						}
						if !dup && nskip < len(skipped) {
							skipped[nskip] = p
							nskip++
						} else if !dup {
							overflow = true
						}
					}
				case stAvail:
					if exp := int64(s.load(eo + enExpiry)); exp != 0 {
						if *now == 0 {
							*now = coarseNow()
						}
						if exp <= *now {
							dead = o.expire(r, w, q)
							break
						}
					}
					if m != nil && !s.entryMatches(eo, m) {
						break
					}
					if p := s.load(eo + enPutter); nskip > 0 && p&(1<<31) == 0 {
						// Taking this message while we passed over an earlier,
						// then invisible message of the same unit of work would
						// break the order of that producer: its unit of work
						// committed while we scanned, so start again. Each
						// restart follows a commit, so restarts are bounded;
						// with more than len(skipped) units of work pending in
						// front, those beyond are not remembered (and
						// overflowRestarts bounds the restarts they cause).
						found := overflow && overflowRestarts < 3
						for _, sp := range skipped[:nskip] {
							found = found || sp == p
						}
						if found {
							if overflow {
								overflowRestarts++
							}
							restart, cache = true, nil
							break
						}
					}
					if start > h && s.load(sl+slAvailSeq) != aseq {
						// We skipped [h, start) on the strength of the cache,
						// and entries became available since: rescan.
						restart, cache = true, nil
						break
					}
					if took, ok := o.tryClaim(r, w, q, mode); ok {
						n++
						if cache != nil {
							cache.set(aseq, t, min(resume, pos+1), seg, base)
						}
						if !take(claimed{idx: r.idx(), gen: r.gen(), q: q, prio: prio, pos: pos, mode: took}) {
							if leftHead {
								o.retireHead(q, prio)
							}
							return n, true, nil
						}
						dead = took == claimDead // consumed by take
						nskip, overflow = 0, false
					}
				}
			}
			if restart {
				break
			}
			if dead {
				if advancing {
					s.cas(sl+slHeadPos, pos, pos+1)
				}
			} else {
				advancing, allDead = false, false
			}
		}
		if restart {
			continue
		}
		if cache != nil {
			cache.set(aseq, t, resume, seg, base)
		}
		if leftHead {
			o.retireHead(q, prio)
		}
		return n, false, nil
	}
	return n, false, errCorrupt(s, "scan of queue %d priority %d does not settle", q, prio)
}

// badHeadSeg tells why the head segment hs of a sublog with positions
// below its tail did not validate: nil when the head moved meanwhile (the
// janitor unlinks a segment before it frees it) or the queue is being
// deleted (which frees first), ErrCorrupt when it still names hs.
func (s *Structure) badHeadSeg(q uint32, prio int, hs ref) error {
	if ref(s.load(s.sublogOff(q, prio)+slHeadSeg)) != hs || !s.queueActive(q) {
		return nil
	}
	return errCorrupt(s, "queue %d priority %d: head segment %d is not linked to it", q, prio, hs.idx())
}

// hopError tells why a walk along sublog q/prio could not move from
// segment seg (at base) to the next one it names, nx (at nb; ok1 and ok2
// say whether nx and seg validated): nil when the chain changed under the
// walker (it starts again), ErrCorrupt when the chain is corrupt: both
// segments linked and the bases not increasing (a walk could go round for
// ever), or seg still linked and still naming a next that is not a
// segment of the sublog, or none while the walk needs one. Out of line:
// the walks call it only when a hop fails.
//
//go:noinline
func (s *Structure) hopError(q uint32, prio int, seg ref, base uint64, nx ref, nb uint64, ok1, ok2 bool) error {
	switch {
	case !ok2:
		return nil
	case ok1:
		return errCorrupt(s, "queue %d priority %d: segment %d (base %d) is followed by segment %d (base %d)", q, prio, seg.idx(), base, nx.idx(), nb)
	case !s.badLink(seg, nx, qpOf(q, prio)):
		return nil
	case nx.nil():
		return errCorrupt(s, "queue %d priority %d: positions below the tail beyond the last segment (base %d)", q, prio, base)
	}
	return errCorrupt(s, "queue %d priority %d: segment %d is followed by %#x, which is not a segment of it", q, prio, seg.idx(), uint64(nx))
}

// badLink tells whether a link seg -> nx that did not validate (nx is not
// linked to sublog qp, or not where the chain's order puts it) is corrupt
// rather than changing under the caller: seg is still linked and still
// names nx. A segment leaves a chain only after its predecessor stopped
// naming it (a janitor unlinks, then frees).
func (s *Structure) badLink(seg, nx ref, qp uint32) bool {
	if _, ok := s.segRead(seg, qp); !ok {
		return false
	}
	return ref(s.load(s.segOff(seg.idx())+sgNext)) == nx
}

// catchUpHead advances the head of q/prio from h over dead positions, up to
// limit, and frees the head segments it leaves. It returns the new head.
func (o *Owner) catchUpHead(q uint32, prio int, h, limit uint64) uint64 {
	s := o.s
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	seg := ref(s.load(sl + slHeadSeg))
	base, ok := s.segRead(seg, qp)
	if !ok || h < base {
		return h
	}
	left := false
	for h < limit {
		if h >= base+segSlots {
			nx := ref(s.load(s.segOff(seg.idx()) + sgNext))
			nb, ok1 := s.segRead(nx, qp)
			if _, ok2 := s.segRead(seg, qp); !ok1 || !ok2 || nb < h {
				break
			}
			seg, base, left = nx, nb, true
			if h < base && !s.cas(sl+slHeadPos, h, base) {
				break
			}
			h = base
			continue
		}
		if !s.slotDead(s.load(s.slotOff(seg.idx(), h-base)), q, prio, h) || !s.cas(sl+slHeadPos, h, h+1) {
			break
		}
		h++
	}
	if left {
		o.retireHead(q, prio)
	}
	return h
}

// claimQueue claims from each used priority of q, highest first, until
// take says stop. It returns how many it claimed.
func (o *Owner) claimQueue(q uint32, m *matcher, mode claimMode, now *int64, take taker) (int, error) {
	s := o.s
	if m != nil {
		if c, ok, used, err := o.claimIndexed(q, m, mode, now); used {
			if ok {
				take(c)
				return 1, err
			}
			return 0, err
		}
	}
	mask := s.load(s.queueOff(q) + qPrioMask)
	total := 0
	for p := Priorities - 1; p >= 0; p-- {
		if mask&(1<<p) == 0 {
			continue
		}
		n, stop, err := o.claimSublog(q, p, m, mode, now, take)
		total += n
		if stop || err != nil {
			return total, err
		}
	}
	return total, nil
}

// claimWait claims messages for take, waiting as the options say for the
// first; it fails with ErrNoMessage when none came.
func (o *Owner) claimWait(q uint32, opt GetOptions, mode claimMode, take taker) (int, error) {
	s := o.s
	var m *matcher
	if opt.MsgID != nil || opt.CorrelID != nil {
		m = &matcher{msgID: opt.MsgID, correlID: opt.CorrelID}
	}
	var now int64
	try := func() (int, bool, error) {
		now = 0
		n, err := o.claimQueue(q, m, mode, &now, take)
		return n, n > 0, err
	}
	c, ok, err := try()
	if ok || err != nil {
		return c, err
	}
	if opt.Wait == 0 {
		return c, ErrNoMessage
	}
	t0 := time.Now()
	deadline := t0.Add(opt.Wait)
	if opt.Wait < 0 {
		deadline = t0.Add(100 * 365 * 24 * time.Hour)
	}
	if opt.Spin > 0 {
		spinUntil := t0.Add(min(opt.Spin, time.Until(deadline)))
		for i := 0; ; i++ {
			if c, ok, err = try(); ok || err != nil {
				return c, err
			}
			if i%64 == 63 {
				if time.Now().After(spinUntil) {
					break
				}
				o.pause()
				runtime.Gosched()
				if err := o.resume(); err != nil {
					return c, err
				}
			}
		}
	}
	o.setWaiting(q, true)
	defer func() {
		if !o.revoked { // a revoked owner's bit was cleared by its repairer
			o.setWaiting(q, false)
		}
	}()
	fw := s.futexWord(q)
	for {
		seq := atomic.LoadUint32(fw)
		if c, ok, err = try(); ok || err != nil {
			return c, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return c, ErrNoMessage
		}
		o.pause()
		werr := shm.FutexWait(fw, seq, min(left, maxFutexSleep))
		if err := o.resume(); err != nil {
			return c, err
		}
		if werr != nil {
			return c, fmt.Errorf("wait on queue %d: %w", q, werr)
		}
		if !s.queueActive(q) {
			return c, fmt.Errorf("%w: slot %d deleted while waiting", ErrUnknownQueue, q)
		}
	}
}
