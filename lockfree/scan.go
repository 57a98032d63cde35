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
var maxFutexSleep = 50 * time.Millisecond // a variable so that tests can make it long

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
		if (s.load(eo+enQueue)>>24)&(efPersistent|efOffloaded) != 0 {
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

// scanNext says how a scan goes on after one of its steps.
type scanNext uint8

const (
	scanOn      scanNext = iota // the step is done: go on with the next one
	scanRestart                 // the sublog changed under the pass: start a new pass
	scanDone                    // nothing more to claim: claimSublog returns
	scanStopped                 // take asked to stop: claimSublog returns
)

// claimReq is what claimSublog's caller asks for. It is kept apart from
// the scan's state (sublogScan), whose pointers reach error values: escape
// analysis does not tell one field of a struct from another, so in the
// same struct the caller's taker, and what it captures, would escape to
// the heap.
type claimReq struct {
	m    *matcher // nil: any message (and the scan may use the cache)
	now  *int64   // the caller's clock for expiry, read once when first needed
	take taker
}

// sublogScan is one claimSublog call: a pass walks the sublog from its
// head (or from where the scan cache lets it resume) to its tail; a pass
// that sees the sublog change under it starts again. It lives on the
// caller's stack (claimSublog is on the get path: no allocation).
type sublogScan struct {
	o    *Owner
	s    *Structure
	q    uint32
	prio int
	sl   uint64 // the sublog's offset
	qp   uint32
	mode claimMode
	// cache is this owner's scan cache of the sublog; nil for a scan by
	// message or correlation id (what it skips depends on the matcher),
	// and after a restart that distrusts it (then neither used nor
	// written again in this call).
	cache *scanCache
	n     int // messages claimed, over every pass

	// Order of a producer's messages (see breaksOrder). skipped[:nskip]
	// are the putters (owner tag << 32 | unit-of-work seq) of the invisible
	// puts this pass passed over since its last claim; overflow says that
	// more were passed than skipped holds; overflowRestarts counts, over
	// every pass, the restarts an overflow caused (at most 3).
	skipped          [32]uint64
	nskip            int
	overflow         bool
	overflowRestarts int

	// One pass. aseq, tail and head are the sublog's availSeq, tail and
	// head positions as the pass read them (head moved on by a catch-up);
	// start is the first position the pass looks at, above head when the
	// cache lets it skip [head, start).
	aseq, tail, head, start uint64
	hs                      ref    // the head segment as the pass read it
	seg                     ref    // the segment holding the position looked at
	base                    uint64 // seg's base position
	prev                    ref    // the segment before seg, nil when unknown (compacted past, or resumed from the cache)
	// resume is where this pass's cache entry resumes: the first position
	// the pass did not see settled (being filled, or not looked at).
	resume uint64
	// advancing: every position from head up to the one looked at was
	// dead, so the pass moves the head over each dead one. leftHead: an
	// advancing pass walked past the head segment, which it then retires.
	advancing, leftHead bool
	// fromStart: the pass looked at seg from its first slot on; allDead:
	// every slot of seg it looked at was dead. With both, a fully dead
	// seg is unlinked (compacted) when the pass leaves it.
	fromStart, allDead bool
}

// claimSublog scans sublog q/prio from its head for available entries that
// m accepts and claims them in order, handing each to take, until take
// says stop or the sublog has no more. It returns how many it claimed and
// whether take asked to stop. On the way it advances the head over dead
// positions, frees head segments behind it and unlinks fully dead
// segments, and removes expired messages.
func (o *Owner) claimSublog(q uint32, prio int, m *matcher, mode claimMode, now *int64, take taker) (int, bool, error) {
	req := claimReq{m: m, now: now, take: take}
	var sc sublogScan // zeroed in place: a composite literal costs a copy of the whole struct
	sc.o, sc.s, sc.q, sc.prio, sc.mode = o, o.s, q, prio, mode
	sc.sl, sc.qp = o.s.sublogOff(q, prio), qpOf(q, prio)
	if m == nil {
		sc.cache = o.scanCacheFor(sc.qp)
	}
	for attempt := 0; attempt < maxRetries; attempt++ {
		next, err := sc.pass(&req)
		if err != nil {
			return sc.n, false, err
		}
		if next != scanRestart {
			return sc.n, next == scanStopped, nil
		}
	}
	return sc.n, false, errCorrupt(o.s, "scan of queue %d priority %d does not settle", q, prio)
}

// pass is one walk of the sublog, from its head or where the cache lets
// it resume, to its tail.
func (sc *sublogScan) pass(req *claimReq) (scanNext, error) {
	if sc.readEnds() == scanDone || sc.skipCached() == scanDone {
		return scanDone, nil
	}
	if next, err := sc.findHead(); next != scanOn || err != nil {
		return next, err
	}
	if sc.start > sc.head { // out of line only when the cache let the pass skip positions
		sc.resumeFromCache()
	}
	if sc.start >= sc.base+segSlots { // out of line only when start is past seg
		if next, err := sc.seekStart(); next != scanOn || err != nil {
			return next, err
		}
	}
	return sc.walk(req)
}

// readEnds reads availSeq, then the tail, then the head; scanDone when
// the sublog holds nothing.
func (sc *sublogScan) readEnds() scanNext {
	s := sc.s
	sc.aseq = s.load(sc.sl + slAvailSeq)
	sc.tail = s.load(sc.sl + slTailPos)
	sc.head = s.load(sc.sl + slHeadPos)
	if sc.head >= sc.tail {
		return scanDone
	}
	sc.start = sc.head
	return scanOn
}

// skipCached skips the positions the cache says hold nothing available
// (scanDone when that is every one below the tail). The head must still
// move over the dead ones among them (what this owner consumed since):
// it catches up first.
func (sc *sublogScan) skipCached() scanNext {
	c := sc.cache
	if c == nil || c.seq != sc.aseq || c.resume <= sc.head {
		return scanOn
	}
	sc.head = sc.o.catchUpHead(sc.q, sc.prio, sc.head, c.resume)
	if c.resume >= sc.tail {
		return scanDone
	}
	sc.start = c.resume
	return scanOn
}

// findHead reads and validates the head segment: scanRestart when it
// changed meanwhile or starts after the head (which it then moves over
// the gap), an error when it is corrupt.
func (sc *sublogScan) findHead() (scanNext, error) {
	s := sc.s
	sc.hs = ref(s.load(sc.sl + slHeadSeg))
	base, ok := s.segRead(sc.hs, sc.qp)
	if !ok {
		return scanRestart, s.badHeadSeg(sc.q, sc.prio, sc.hs)
	}
	if sc.head < base {
		s.cas(sc.sl+slHeadPos, sc.head, base) // the head segment starts after a gap
		return scanRestart, nil
	}
	sc.seg, sc.base, sc.prev = sc.hs, base, 0
	return scanOn, nil
}

// resumeFromCache starts the walk in the cached segment when the pass
// resumes past the head and that segment still is the one cached: the
// walk from the head would only pass segments before it. Its predecessor
// is unknown, so it is not compacted.
func (sc *sublogScan) resumeFromCache() {
	c := sc.cache
	if c == nil || sc.start <= sc.head || c.seg.nil() || c.segBase <= sc.base || c.segBase > sc.start {
		return
	}
	if cb, ok := sc.s.segRead(c.seg, sc.qp); ok && cb == c.segBase {
		sc.seg, sc.base = c.seg, cb
	}
}

// seekStart walks the segments from seg to the one holding start (or,
// across a gap, to the first after it: start moves to its base). Before
// it start is at or past seg's base: the head is past the head segment's
// base (findHead), a cached segment's base is at or before start.
func (sc *sublogScan) seekStart() (scanNext, error) {
	for sc.start >= sc.base+segSlots {
		nx := ref(sc.s.load(sc.s.segOff(sc.seg.idx()) + sgNext))
		// start is below the tail, which never passes the last segment: a
		// nil next is corrupt too.
		nb, next, err := sc.follow(nx)
		if next != scanOn {
			return next, err
		}
		sc.prev, sc.seg, sc.base = sc.seg, nx, nb
	}
	if sc.start < sc.base {
		sc.start = sc.base
	}
	return scanOn, nil
}

// follow validates the hop from seg to nx, the next segment it names, and
// returns nx's base: scanRestart when the chain changed under the pass,
// an error when it is corrupt (see hopError).
func (sc *sublogScan) follow(nx ref) (uint64, scanNext, error) {
	s := sc.s
	nb, ok1 := s.segRead(nx, sc.qp)
	_, ok2 := s.segRead(sc.seg, sc.qp)
	if !ok1 || !ok2 || nb <= sc.base {
		return 0, scanRestart, s.hopError(sc.q, sc.prio, sc.seg, sc.base, nx, nb, ok1, ok2)
	}
	return nb, scanOn, nil
}

// walk looks at every position from start to the tail, claiming what it
// may take and moving the head over the dead positions in front.
func (sc *sublogScan) walk(req *claimReq) (scanNext, error) {
	sc.advancing = sc.start == sc.head
	sc.leftHead = false
	sc.resume = sc.tail
	sc.nskip, sc.overflow = 0, false
	sc.fromStart, sc.allDead = sc.start == sc.base, true
	for pos := sc.start; pos < sc.tail; pos++ {
		if pos >= sc.base+segSlots {
			var next scanNext
			var err error
			if pos, next, err = sc.nextSegment(pos); next == scanDone {
				break
			} else if next != scanOn {
				return next, err
			}
		}
		dead, next := sc.visit(pos, req)
		if next == scanRestart {
			return scanRestart, nil
		}
		if next == scanStopped {
			if sc.leftHead {
				sc.o.retireHead(sc.q, sc.prio)
			}
			return scanStopped, nil
		}
		if dead {
			if sc.advancing {
				sc.s.cas(sc.sl+slHeadPos, pos, pos+1)
			}
		} else {
			sc.advancing, sc.allDead = false, false
		}
	}
	if sc.cache != nil {
		sc.cache.set(sc.aseq, sc.tail, sc.resume, sc.seg, sc.base)
	}
	if sc.leftHead {
		sc.o.retireHead(sc.q, sc.prio)
	}
	return scanDone, nil
}

// nextSegment moves the walk at pos, past seg's last slot, to the next
// segment, unlinking seg on the way when it was fully dead. It returns
// the position to look at next (the next segment's base when pos falls
// in a gap before it), or scanDone when the walk ends (the end of the
// list, or a gap up to the tail), scanRestart or an error.
func (sc *sublogScan) nextSegment(pos uint64) (uint64, scanNext, error) {
	s := sc.s
	nx := ref(s.load(s.segOff(sc.seg.idx()) + sgNext))
	if nx.nil() {
		// The end of the list, if seg is still ours: a segment freed and
		// reused meanwhile has no next either. Either way positions from
		// here were not looked at (the next segment may be being linked):
		// the cache stops here.
		next := scanDone
		if _, ok := s.segRead(sc.seg, sc.qp); !ok {
			next = scanRestart
		}
		sc.resume = min(sc.resume, pos)
		return pos, next, nil
	}
	nb, next, err := sc.follow(nx)
	if next != scanOn {
		return pos, next, err
	}
	if sc.fromStart && sc.allDead && !sc.prev.nil() && sc.o.compact(sc.q, sc.prio, sc.prev, sc.seg) {
		// seg is gone; prev now links to nx
	} else {
		sc.prev = sc.seg
	}
	if sc.advancing && sc.seg == sc.hs {
		sc.leftHead = true
	}
	sc.seg, sc.base = nx, nb
	if pos < sc.base {
		if sc.advancing {
			s.cas(sc.sl+slHeadPos, pos, sc.base)
		}
		pos = sc.base
		if pos >= sc.tail {
			return pos, scanDone, nil
		}
	}
	sc.fromStart, sc.allDead = pos == sc.base, true
	return pos, scanOn, nil
}

// visit looks at position pos of seg: it says whether the position is
// dead (the head may move over it), and scanRestart or scanStopped when
// the pass ends there.
func (sc *sublogScan) visit(pos uint64, req *claimReq) (dead bool, next scanNext) {
	s := sc.s
	sw := s.load(s.slotOff(sc.seg.idx(), pos-sc.base))
	if ref(sw).nil() {
		sc.resume = min(sc.resume, pos) // being filled; cannot be below the tail, but stay safe
		return false, scanOn
	}
	r := ref(sw)
	if r.idx() >= uint32(s.p.Entries) {
		return true, scanOn
	}
	eo := s.entryOff(r.idx())
	w := s.load(eo + enCtl)
	if wGen(w) != r.gen() || !s.entryAt(eo, sc.q, sc.prio, pos) {
		// Stale: the message died. With 24-bit gens an entry reused 2^24
		// times can match the gen again, but then it names another
		// position: the identity decides.
		return true, scanOn
	}
	switch wKind(w) {
	case stFree, stDead, stCached:
		return true, scanOn
	case stAlloc, stPutU:
		if wKind(w) == stAlloc {
			sc.resume = min(sc.resume, pos)
		}
		sc.skipPut(s.load(eo + enPutter))
	case stAvail:
		return sc.visitAvail(r, w, eo, pos, req)
	}
	return false, scanOn
}

// skipPut remembers, once, the putter p of an invisible put the pass
// passes over, if it is a put of a unit of work.
func (sc *sublogScan) skipPut(p uint64) {
	if p&(1<<31) != 0 {
		return
	}
	dup := false
	for _, sp := range sc.skipped[:sc.nskip] {
		dup = dup || sp == p
	}
	if !dup && sc.nskip < len(sc.skipped) {
		sc.skipped[sc.nskip] = p
		sc.nskip++
	} else if !dup {
		sc.overflow = true
	}
}

// visitAvail looks at available entry r (ctl word w, at eo) at pos: it
// removes it if expired, or claims it if the matcher accepts it and the
// pass may take it, and hands it to take.
func (sc *sublogScan) visitAvail(r ref, w, eo, pos uint64, req *claimReq) (dead bool, next scanNext) {
	s := sc.s
	if exp := int64(s.load(eo + enExpiry)); exp != 0 {
		if *req.now == 0 {
			*req.now = coarseNow()
		}
		if exp <= *req.now {
			return sc.o.expire(r, w, sc.q), scanOn
		}
	}
	if req.m != nil && !s.entryMatches(eo, req.m) {
		return false, scanOn
	}
	if sc.breaksOrder(s.load(eo + enPutter)) {
		sc.cache = nil
		return false, scanRestart
	}
	if sc.start > sc.head && s.load(sc.sl+slAvailSeq) != sc.aseq {
		// We skipped [head, start) on the strength of the cache, and
		// entries became available since: rescan.
		sc.cache = nil
		return false, scanRestart
	}
	took, ok := sc.o.tryClaim(r, w, sc.q, sc.mode)
	if !ok {
		return false, scanOn
	}
	sc.n++
	if sc.cache != nil {
		sc.cache.set(sc.aseq, sc.tail, min(sc.resume, pos+1), sc.seg, sc.base)
	}
	if !req.take(claimed{idx: r.idx(), gen: r.gen(), q: sc.q, prio: sc.prio, pos: pos, mode: took}) {
		return false, scanStopped
	}
	sc.nskip, sc.overflow = 0, false
	return took == claimDead, scanOn // consumed by take
}

// breaksOrder says whether taking a message put by p would break the
// order of its producer: the pass passed over an earlier, then invisible
// message of the same unit of work, which committed while it scanned, so
// it starts again. Each restart follows a commit, so restarts are
// bounded; with more than len(skipped) units of work pending in front,
// those beyond are not remembered (and overflowRestarts bounds the
// restarts they cause).
func (sc *sublogScan) breaksOrder(p uint64) bool {
	if sc.nskip == 0 || p&(1<<31) != 0 {
		return false
	}
	found := sc.overflow && sc.overflowRestarts < 3
	for _, sp := range sc.skipped[:sc.nskip] {
		found = found || sp == p
	}
	if found && sc.overflow {
		sc.overflowRestarts++
	}
	return found
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
	in := opt.Interrupt
	if in != nil && in.Interrupted() {
		return c, ErrInterrupted
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
				if in != nil && in.Interrupted() {
					return c, ErrInterrupted
				}
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
	fw := s.futexWord(q)
	bits := futexBits(o.slot)
	if in != nil {
		// Published before the first look below: an Interrupt from now
		// on bumps fw, so the look's sequence goes stale or the sleep
		// is woken.
		if !in.enter(fw, bits) {
			return c, ErrInterrupted
		}
		defer in.leave()
	}
	o.setWaiting(q, true)
	defer func() {
		if !o.revoked { // a revoked owner's bit was cleared by its repairer
			o.setWaiting(q, false)
		}
	}()
	for {
		seq := atomic.LoadUint32(fw)
		if c, ok, err = try(); ok || err != nil {
			return c, err
		}
		if in != nil && in.Interrupted() {
			return c, ErrInterrupted
		}
		left := time.Until(deadline)
		if left <= 0 {
			return c, ErrNoMessage
		}
		o.pause()
		// Tagged with the slot's bit whether interruptible or not: a
		// plain wait would match every bit, so every interrupt of a
		// waiter on this queue would wake it too.
		werr := shm.FutexWaitBits(fw, seq, min(left, maxFutexSleep), bits)
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
