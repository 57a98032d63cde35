package lockfree

import (
	"fmt"
	"time"

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
	// Interrupt, when set, lets another goroutine end the wait: the get
	// returns ErrInterrupted if it is interrupted when the get would
	// wait or while it waits (see Interrupter).
	Interrupt *Interrupter
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

const (
	claimHeld claimMode = iota // avail -> held(o): syncpoint get or view
	claimDead                  // avail -> dead(o): non-syncpoint get, consumed at once
	claimView                  // avail -> view(o): view outside syncpoint, removed on release
	// claimAuto: a persistent message as claimView (its get must be made
	// durable before it is removed), and an offloaded one (its run is
	// freed with its entry, so it stays claimed until its body was read
	// from its data set), any other as claimDead. The taker
	// learns which from claimed.mode.
	claimAuto
)

var (
	cpGetClaimed = crashpoint.New("lockfree.get.claimed")
	cpGetCounted = crashpoint.New("lockfree.get.counted")
	cpGetFreed   = crashpoint.New("lockfree.get.freed")
)

// expire removes an expired available message; it reports whether it did.
func (o *Owner) expire(r ref, w uint64, q uint32) bool {
	if _, ok := o.tryClaim(r, w, q, claimDead); !ok {
		return false
	}
	o.s.countShared(q, qExpired, o.s.bodyLen(o.s.entryOff(r.idx())))
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
// persistent or offloaded one: that one is claimed as a view in v (viewed
// true), to be removed by Release once its get is durable or its body was
// read from its data set, or given back by Return. Any other is copied
// into dst and removed at once, as by Get. (Get outside syncpoint of an
// offloaded message frees its run before it returns: its caller gets the
// reference to a freed run.)
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
		o.countMsg(c.q, clGets, o.s.bodyLen(o.s.entryOff(c.idx)))
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
			o.countMsg(c.q, clGets, s.bodyLen(s.entryOff(c.idx)))
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
	s.freeOffload(eo)
	o.walkElems(e, s.load(eo+enDataRef), func(el uint32, w uint64) {
		s.store(s.elemWordOff(el), mkWord(nextGen(wGen(w)), ekOwned, uint32(o.tag)))
		o.cacheElem(el)
	})
	s.store(eo+enCtl, mkWord(nextGen(g), stCached, uint32(o.tag)))
	o.cacheEntry(e)
}

// removeHeld consumes a message this owner holds, or takes off its queue
// one it put and has not committed (state from: held, view or putu):
// -> dead, depth decremented, data and entry freed. The descriptor names
// the removal first, so a repair finishes it.
func (o *Owner) removeHeld(c claimed, from uint8) error {
	s := o.s
	eo := s.entryOff(c.idx)
	r := mkRef(c.idx, c.gen)
	before := o.cellDepth(c.q)
	o.setDesc(opRemove, uint64(r), uint64(c.q), before)
	if !s.cas(eo+enCtl, mkWord(c.gen, from, uint32(o.tag)), mkWord(c.gen, stDead, uint32(o.tag))) {
		return fmt.Errorf("%w: %s message %d was taken back", ErrOwnerRevoked, stateName(from), c.idx)
	}
	cpRemoveDead.Hit()
	o.setCellDepth(c.q, before-1)
	cpRemoveCounted.Hit()
	if from != stPutU { // a get made final, not a put backed out
		o.countMsg(c.q, clGets, s.bodyLen(eo))
	}
	o.freeEntry(c.idx, c.gen)
	return nil
}

var (
	cpRemoveDead    = crashpoint.New("lockfree.remove.dead")
	cpRemoveCounted = crashpoint.New("lockfree.remove.counted")
)
