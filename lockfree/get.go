package lockfree

import (
	"bytes"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/shm"
)

// GetOptions control a get.
type GetOptions struct {
	// Syncpoint gets the message in the owner's unit of work: it stays on the
	// queue, held, until Commit removes it or Backout releases it.
	Syncpoint bool
	// MsgID and CorrelID, when set, select only messages with that id.
	MsgID, CorrelID *[idBytes]byte
	// Wait is how long to wait for a message: 0 does not wait, a negative
	// value waits until one arrives.
	Wait time.Duration
	// Spin is how long to poll before sleeping on the futex while waiting.
	Spin time.Duration
	// IncludeHeld makes a browse also return messages held by a get under
	// syncpoint or by a view, which may yet come back (a fuzzy backup
	// takes them).
	IncludeHeld bool
	// IncludeUncommitted makes a browse also return puts under syncpoint
	// not yet committed, and puts linked at their place but not yet made
	// visible (BrowseCursor.Uncommitted tells them apart): a fuzzy backup
	// records the place each takes if it becomes visible.
	IncludeUncommitted bool
}

type claimMode uint8

const (
	claimHeld claimMode = iota // avail -> held(o): syncpoint get or view
	claimDead                  // avail -> dead(o): non-syncpoint get, consumed at once
	claimView                  // avail -> view(o): view outside syncpoint, removed on release
	// claimAuto: a persistent message as claimView (its get must be made
	// durable before it is removed), any other as claimDead. The taker
	// learns which from claimed.mode.
	claimAuto
)

// maxFutexSleep bounds one futex sleep so a waiter whose waker died is never
// stuck: it rechecks the queue at least this often.
const maxFutexSleep = 50 * time.Millisecond

var (
	cpGetClaimed = crashpoint.New("lockfree.get.claimed")
	cpGetCounted = crashpoint.New("lockfree.get.counted")
	cpGetFreed   = crashpoint.New("lockfree.get.freed")
)

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

// expire removes an expired available message; it reports whether it did.
func (o *Owner) expire(r ref, w uint64, q uint32) bool {
	if _, ok := o.tryClaim(r, w, q, claimDead); !ok {
		return false
	}
	o.freeEntry(r.idx(), r.gen())
	o.expired++
	return true
}

// RemoveExpired walks q and removes every expired message (gets remove the
// expired messages they meet; this is MQ's periodic expiry scan for the ones
// nobody gets). It returns how many it removed.
func (o *Owner) RemoveExpired(q QueueID) (n int, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return 0, err
	}
	defer o.end()
	if !o.s.queueActive(uint32(q)) {
		return 0, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	o.touch(uint32(q))
	before := o.expired
	now := coarseNow()
	mask := o.s.load(o.s.queueOff(uint32(q)) + qPrioMask)
	for p := Priorities - 1; p >= 0; p-- {
		if mask&(1<<p) != 0 {
			if _, _, err := o.claimSublog(uint32(q), p, &matcher{none: true}, claimDead, &now, func(claimed) bool { return false }); err != nil {
				return o.expired - before, err
			}
		}
	}
	return o.expired - before, nil
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

// Get gets the next message from q into dst (whose slices are reused).
// Messages come highest priority first, then in arrival order.
func (o *Owner) Get(q QueueID, opt GetOptions, dst *Message) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	s := o.s
	if !s.queueActive(uint32(q)) {
		return fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	o.touch(uint32(q))
	mode := claimDead
	if opt.Syncpoint {
		mode = claimHeld
	}
	_, err = o.getInto(uint32(q), opt, mode, 1, func(int) *Message { return dst })
	return err
}

// GetOrView gets the next message outside syncpoint like Get, except a
// persistent one: that one is claimed as a view in v (viewed true), to be
// removed by Release once its get is durable, or given back by Return. A
// non-persistent one is copied into dst and removed at once, as by Get.
func (o *Owner) GetOrView(q QueueID, opt GetOptions, dst *Message, v *View) (viewed bool, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return false, err
	}
	defer o.end()
	if !o.s.queueActive(uint32(q)) {
		return false, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	o.touch(uint32(q))
	opt.Syncpoint = false
	var bad error
	_, err = o.claimWait(uint32(q), opt, claimAuto, func(c claimed) bool {
		if c.mode == claimView {
			viewed = true
			o.views = append(o.views, c)
			bad = o.fillView(v, c, false)
			return false
		}
		if !o.readEntry(o.s.entryOff(c.idx), dst) {
			bad = errCorrupt(o.s, "entry %d of queue %d has inconsistent lengths", c.idx, c.q)
		}
		o.freeEntry(c.idx, c.gen)
		cpGetFreed.Hit()
		return false
	})
	if bad != nil {
		return viewed, bad
	}
	return viewed, err
}

// getInto claims up to max messages in one scan and copies message i into
// at(i).
func (o *Owner) getInto(q uint32, opt GetOptions, mode claimMode, max int, at func(int) *Message) (int, error) {
	s := o.s
	i := 0
	var bad error
	n, err := o.claimWait(q, opt, mode, func(c claimed) bool {
		if !o.readEntry(s.entryOff(c.idx), at(i)) && bad == nil {
			bad = errCorrupt(s, "entry %d of queue %d has inconsistent lengths", c.idx, q)
		}
		i++
		if mode == claimHeld {
			o.holdInUOW(c)
		} else {
			o.freeEntry(c.idx, c.gen)
			cpGetFreed.Hit()
		}
		return i < max && bad == nil
	})
	if bad != nil {
		return n, bad
	}
	return n, err
}

// GetBatch gets up to len(dst) messages, in delivery order, in one scan of
// the queue; only the first may wait. It returns how many it got, and
// ErrNoMessage only when it got none.
func (o *Owner) GetBatch(q QueueID, opt GetOptions, dst []Message) (n int, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return 0, err
	}
	defer o.end()
	if !o.s.queueActive(uint32(q)) {
		return 0, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	if len(dst) == 0 {
		return 0, nil
	}
	o.touch(uint32(q))
	mode := claimDead
	if opt.Syncpoint {
		mode = claimHeld
	}
	return o.getInto(uint32(q), opt, mode, len(dst), func(i int) *Message { return &dst[i] })
}

// holdInUOW records a held message in the owner's unit of work.
func (o *Owner) holdInUOW(c claimed) {
	o.uowGets = append(o.uowGets, uowItem{idx: c.idx, gen: c.gen, q: c.q, prio: uint8(c.prio)})
	o.addUncom(c.q, 1)
	o.markUOW()
}

// freeEntry frees a dead entry of this owner and its data into the caches.
// The gen is bumped so every reference to the dead message goes stale.
func (o *Owner) freeEntry(e, g uint32) {
	s := o.s
	eo := s.entryOff(e)
	o.walkElems(e, s.load(eo+enDataRef), func(el uint32, w uint64) {
		s.store(s.elemWordOff(el), mkWord(nextGen(wGen(w)), ekOwned, uint32(o.tag)))
		o.cacheElem(el)
	})
	s.store(eo+enCtl, mkWord(nextGen(g), stCached, uint32(o.tag)))
	o.cacheEntry(e)
}

// View is a message held by its owner whose body is read in place, without
// copying: the slices point into the mapping. A view is valid until it is
// released, or, for a view got under syncpoint, until the unit of work ends.
// The channel sender writes views straight to its socket.
type View struct {
	o         *Owner
	c         claimed
	syncpoint bool
	done      bool
	Msg       Message  // descriptor fields and properties (copied); Body is empty
	Body      [][]byte // the body, in pieces, aliasing the mapping
}

// Len is the body length.
func (v *View) Len() int {
	n := 0
	for _, b := range v.Body {
		n += len(b)
	}
	return n
}

// GetView claims the next message like Get and returns a zero-copy view of
// it. Without Syncpoint the message is removed when the view is released;
// with Syncpoint it belongs to the unit of work like any syncpoint get.
func (o *Owner) GetView(q QueueID, opt GetOptions) (*View, error) {
	v := new(View)
	if err := o.GetViewInto(q, opt, v); err != nil {
		return nil, err
	}
	return v, nil
}

// GetViewInto is GetView into v, whose storage it reuses (its Body's
// pieces too): a sender that takes batch after batch allocates nothing per
// message. v must not be a view still in use.
func (o *Owner) GetViewInto(q QueueID, opt GetOptions, v *View) (err error) {
	_, err = o.GetViewsInto(q, opt, unsafe.Slice(v, 1))
	return err
}

// GetViewsInto claims up to len(vs) messages in one scan of q, like
// GetViewInto for each (only the first may wait), and returns how many it
// claimed: vs[:n] are views of them, in delivery order. It returns
// ErrNoMessage only when it claimed none. The views must not be in use.
func (o *Owner) GetViewsInto(q QueueID, opt GetOptions, vs []View) (n int, err error) {
	return o.GetViewsAt(q, opt, len(vs), func(i int) *View { return &vs[i] })
}

// GetViewsAt is GetViewsInto for views that are not in one slice: view i
// is at(i), for i below max.
func (o *Owner) GetViewsAt(q QueueID, opt GetOptions, max int, at func(int) *View) (n int, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return 0, err
	}
	defer o.end()
	s := o.s
	if !s.queueActive(uint32(q)) {
		return 0, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	if max <= 0 {
		return 0, nil
	}
	o.touch(uint32(q))
	mode := claimView
	if opt.Syncpoint {
		mode = claimHeld
	}
	var bad error
	_, err = o.claimWait(uint32(q), opt, mode, func(c claimed) bool {
		v := at(n)
		n++
		if opt.Syncpoint {
			o.holdInUOW(c)
		} else {
			o.views = append(o.views, c)
		}
		if err := o.fillView(v, c, opt.Syncpoint); err != nil {
			bad = err
			return false
		}
		return n < max
	})
	if bad != nil {
		// The bad one stays held (a backout or the owner's end returns
		// it) but is no view.
		return n - 1, bad
	}
	return n, err
}

// fillView makes v a view of the message of claimed entry c.
func (o *Owner) fillView(v *View, c claimed, syncpoint bool) error {
	s := o.s
	clear(v.Body)
	*v = View{o: o, c: c, syncpoint: syncpoint, Body: v.Body[:0]}
	eo := s.entryOff(c.idx)
	varLen, bodyLen, propsLen, rq, rqm := s.entryMeta(eo, &v.Msg)
	skip := rq + rqm + propsLen
	if varLen != skip+bodyLen || uint64(varLen) > s.maxVar() {
		return errCorrupt(s, "entry %d of queue %d has inconsistent lengths", c.idx, c.q)
	}
	var head []byte
	s.chunks(eo, func(b []byte) bool {
		if skip > 0 {
			k := min(skip, len(b))
			head = append(head, b[:k]...)
			b, skip = b[k:], skip-k
		}
		if len(b) > 0 {
			v.Body = appendPiece(v.Body, b)
		}
		return true
	})
	if body := v.Len(); len(head) != rq+rqm+propsLen || body != bodyLen {
		clear(v.Body)
		v.Body = v.Body[:0]
		return errCorrupt(s, "entry %d of queue %d: its data elements hold %d of its %d bytes", c.idx, c.q, len(head)+body, varLen)
	}
	v.Msg.ReplyToQ = string(head[:rq])
	v.Msg.ReplyToQMgr = string(head[rq : rq+rqm])
	v.Msg.Properties = append([]byte(nil), head[rq+rqm:]...)
	return nil
}

// appendPiece appends b to pieces, extending the last piece instead when b
// follows it in the mapping (consecutive elements), so a message stored in
// adjacent elements is one piece.
func appendPiece(pieces [][]byte, b []byte) [][]byte {
	if n := len(pieces); n > 0 {
		last := pieces[n-1]
		if unsafe.Add(unsafe.Pointer(unsafe.SliceData(last)), len(last)) == unsafe.Pointer(unsafe.SliceData(b)) {
			pieces[n-1] = unsafe.Slice(unsafe.SliceData(last), len(last)+len(b))
			return pieces
		}
	}
	return append(pieces, b)
}

// Release ends a view. A view got without syncpoint removes its message
// now; a syncpoint view's message is removed by Commit (or kept by Backout).
func (v *View) Release() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if v.done {
		return ErrViewReleased
	}
	v.done = true
	v.Body = nil
	if v.syncpoint {
		return nil
	}
	o := v.o
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.dropView(v.c)
	return o.removeHeld(v.c, stView)
}

// Return ends a view got without syncpoint without removing its message:
// the message goes back where it was, unchanged (a get that did not
// happen: its log record could not be made durable; its backout count is
// not raised, unlike a view given back by Close or a repair, whose
// application may have seen the message). A syncpoint view is left to its
// unit of work.
func (v *View) Return() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if v.done {
		return ErrViewReleased
	}
	v.done = true
	v.Body = nil
	if v.syncpoint {
		return nil
	}
	o := v.o
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.dropView(v.c)
	c := v.c
	ss := sublogSet{qpOf(c.q, c.prio)}
	o.s.bumpAvail(ss)
	// One CAS, no descriptor: nothing else changes.
	if !o.s.cas(o.s.entryOff(c.idx)+enCtl, mkWord(c.gen, stView, uint32(o.tag)), mkWord(c.gen, stAvail, 0)) {
		return fmt.Errorf("%w: viewed message %d taken back", ErrOwnerRevoked, c.idx)
	}
	o.s.announce(ss, 1)
	return nil
}

func (o *Owner) dropView(c claimed) {
	for i, x := range o.views {
		if x == c {
			o.views = append(o.views[:i], o.views[i+1:]...)
			return
		}
	}
}

// removeHeld consumes a message this owner holds (state from: held or
// view): -> dead, depth decremented, data and entry freed.
func (o *Owner) removeHeld(c claimed, from uint8) error {
	s := o.s
	eo := s.entryOff(c.idx)
	r := mkRef(c.idx, c.gen)
	before := o.cellDepth(c.q)
	o.setDesc(opRemove, uint64(r), uint64(c.q), before)
	if !s.cas(eo+enCtl, mkWord(c.gen, from, uint32(o.tag)), mkWord(c.gen, stDead, uint32(o.tag))) {
		return fmt.Errorf("%w: held message %d was taken back", ErrOwnerRevoked, c.idx)
	}
	cpRemoveDead.Hit()
	o.setCellDepth(c.q, before-1)
	cpRemoveCounted.Hit()
	o.freeEntry(c.idx, c.gen)
	return nil
}

var (
	cpRemoveDead    = crashpoint.New("lockfree.remove.dead")
	cpRemoveCounted = crashpoint.New("lockfree.remove.counted")
)

// BrowseCursor remembers where a browse got to.
type BrowseCursor struct {
	q           uint32
	prio        int
	pos         uint64
	started     bool
	uncommitted bool
}

// Uncommitted reports whether the message BrowseNext returned last is a
// put not yet visible: under syncpoint and not committed, or still being
// put (GetOptions.IncludeUncommitted).
func (c *BrowseCursor) Uncommitted() bool { return c.uncommitted }

// NewBrowseCursor starts a browse of q at its first message.
func (o *Owner) NewBrowseCursor(q QueueID) *BrowseCursor {
	return &BrowseCursor{q: uint32(q), prio: Priorities - 1}
}

// BrowseNext copies the next available message after the cursor into dst
// without claiming it, in delivery order (priority, then position), and
// moves the cursor. Messages that arrive behind the cursor are seen by a
// new cursor. Of opt, only the match fields, IncludeHeld and
// IncludeUncommitted are used.
func (o *Owner) BrowseNext(cur *BrowseCursor, opt GetOptions, dst *Message) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	s := o.s
	if !s.queueActive(cur.q) {
		return fmt.Errorf("%w: slot %d", ErrUnknownQueue, cur.q)
	}
	var m *matcher
	if opt.MsgID != nil || opt.CorrelID != nil {
		m = &matcher{msgID: opt.MsgID, correlID: opt.CorrelID}
	}
	now := nowNanos()
	mask := s.load(s.queueOff(cur.q) + qPrioMask)
	for ; cur.prio >= 0; cur.prio, cur.started = cur.prio-1, false {
		if mask&(1<<cur.prio) == 0 {
			continue
		}
		from := uint64(0)
		if cur.started {
			from = cur.pos + 1
		}
		found := false
		werr := s.walk(cur.q, cur.prio, from, func(pos uint64, r ref) bool {
			eo := s.entryOff(r.idx())
			w := s.load(eo + enCtl)
			k := wKind(w)
			notVisible := k == stPutU || k == stAlloc // put under syncpoint, or linked and not yet made visible
			if wGen(w) != r.gen() || s.load(eo+enPos) != pos || !(k == stAvail || opt.IncludeHeld && (k == stHeld || k == stView) || opt.IncludeUncommitted && notVisible) {
				return true
			}
			if exp := int64(s.load(eo + enExpiry)); exp != 0 && exp <= now {
				return true
			}
			if m != nil && !s.entryMatches(eo, m) {
				return true
			}
			ok := o.readEntry(eo, dst)
			// The message may have been consumed and its entry reused while we
			// copied: the gen tells. The fence keeps the copy's loads before
			// the recheck on machines that reorder loads.
			fullFence()
			if !ok || wGen(s.load(eo+enCtl)) != r.gen() || s.load(eo+enPos) != pos {
				return true
			}
			cur.pos, cur.started, found, cur.uncommitted = pos, true, true, notVisible
			return false
		})
		if found {
			return nil
		}
		if werr != nil {
			return werr
		}
	}
	return ErrNoMessage
}

// walk visits the filled slots of sublog q/prio from position from on,
// without changing anything. f returns false to stop. It fails only on a
// corrupt chain (one it could walk round for ever).
func (s *Structure) walk(q uint32, prio int, from uint64, f func(pos uint64, r ref) bool) error {
	sl := s.sublogOff(q, prio)
	qp := qpOf(q, prio)
	for attempt := 0; attempt < 64; attempt++ {
		t := s.load(sl + slTailPos)
		if h := s.load(sl + slHeadPos); from < h {
			from = h
		}
		seg := ref(s.load(sl + slHeadSeg))
		base, ok := s.segRead(seg, qp)
		if !ok {
			if seg.nil() {
				return nil
			}
			continue
		}
		restart := false
		pos := max(from, base)
		for pos < t {
			if pos >= base+segSlots {
				nx := ref(s.load(s.segOff(seg.idx()) + sgNext))
				nb, ok1 := s.segRead(nx, qp)
				_, ok2 := s.segRead(seg, qp)
				if nx.nil() {
					return nil
				}
				if !ok1 || !ok2 || nb <= base {
					if err := s.hopError(q, prio, seg, base, nx, nb, ok1, ok2); err != nil {
						return err
					}
					restart = true
					break
				}
				seg, base = nx, nb
				pos = max(pos, base)
				continue
			}
			sw := s.load(s.slotOff(seg.idx(), pos-base))
			if s.entryRefOK(ref(sw)) {
				if !f(pos, ref(sw)) {
					return nil
				}
			}
			pos++
		}
		if !restart {
			return nil
		}
		from = pos
	}
	return nil
}
