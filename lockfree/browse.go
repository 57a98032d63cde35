package lockfree

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/shm"
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
//
// BrowseNext steps over a message put and not yet committed (unless
// IncludeUncommitted), so a message committed after a later one was
// browsed is never seen by that cursor: a reader following a
// single-producer log browses with BrowseNextWith and StopAtUncommitted.
func (o *Owner) BrowseNext(cur *BrowseCursor, opt GetOptions, dst *Message) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	found, _, err := o.browseOnce(cur, opt, false, dst)
	if err != nil {
		return err
	}
	if !found {
		return ErrNoMessage
	}
	return nil
}

// BrowseOptions are the options of BrowseNextWith beyond GetOptions.
type BrowseOptions struct {
	// Wait is how long to wait for a message after the cursor: 0 does
	// not wait, a negative value waits without limit. The browse sleeps
	// on the queue's futex word like a waiting get, woken by puts and
	// commits. (A put wakes one waiter, so with several waiters on one
	// queue a browse may see a put up to the futex sleep bound late.)
	Wait time.Duration
	// StopAtUncommitted makes the browse stop at a message put and not
	// yet visible (put under syncpoint and not committed, or still being
	// put) instead of stepping over it: the browse returns ErrNoMessage
	// (or waits) with the cursor before it, and returns it once it is
	// committed, or steps over it once it is backed out. A reader of a
	// log whose messages are put in order by one producer at a time thus
	// sees every message, in order. Ignored with IncludeUncommitted.
	StopAtUncommitted bool
	// Interrupt, when set, ends the wait from another goroutine (see
	// Interrupter): the browse returns ErrInterrupted.
	Interrupt *Interrupter
}

// BrowseNextWith is BrowseNext with the options of bo. When it finds no
// message it leaves the cursor where it was, so a later call (or the
// wait) looks again from the same place: a waiting browse never falls
// off the end of its cursor's priority. Messages put at a higher
// priority than the cursor's are not seen (a log uses one priority).
func (o *Owner) BrowseNextWith(cur *BrowseCursor, opt GetOptions, bo BrowseOptions, dst *Message) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	stopAt := bo.StopAtUncommitted && !opt.IncludeUncommitted
	saved := *cur
	try := func() (bool, error) {
		*cur = saved
		found, _, err := o.browseOnce(cur, opt, stopAt, dst)
		if err != nil || !found {
			*cur = saved
		}
		return found, err
	}
	if found, err := try(); found || err != nil {
		return err
	}
	if bo.Wait == 0 {
		return ErrNoMessage
	}
	in := bo.Interrupt
	if in != nil && in.Interrupted() {
		return ErrInterrupted
	}
	s := o.s
	deadline := time.Now().Add(bo.Wait)
	if bo.Wait < 0 {
		deadline = time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	fw := s.futexWord(cur.q)
	bits := futexBits(o.slot)
	if in != nil {
		if !in.enter(fw, bits) {
			return ErrInterrupted
		}
		defer in.leave()
	}
	s.markBrowseWait(cur.q) // before the waiter bit: every wake of q wakes every browser
	o.setWaiting(cur.q, true)
	defer func() {
		if !o.revoked {
			o.setWaiting(cur.q, false)
		}
	}()
	for {
		// The futex word is read before the look: a put or commit after
		// the look bumps it, so the sleep returns at once.
		seq := atomic.LoadUint32(fw)
		if found, err := try(); found || err != nil {
			return err
		}
		if in != nil && in.Interrupted() {
			return ErrInterrupted
		}
		left := time.Until(deadline)
		if left <= 0 {
			return ErrNoMessage
		}
		o.pause()
		werr := shm.FutexWaitBits(fw, seq, min(left, maxFutexSleep), bits)
		if err := o.resume(); err != nil {
			return err
		}
		if werr != nil {
			return fmt.Errorf("browse wait on queue %d: %w", cur.q, werr)
		}
	}
}

// browseOnce walks from the cursor to the next message browse may return
// and copies it into dst (found). With stopAt it stops at the first
// message not yet visible (stopped), leaving the cursor before it.
func (o *Owner) browseOnce(cur *BrowseCursor, opt GetOptions, stopAt bool, dst *Message) (found, stopped bool, err error) {
	s := o.s
	if !s.queueActive(cur.q) {
		return false, false, fmt.Errorf("%w: slot %d", ErrUnknownQueue, cur.q)
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
		werr := s.walk(cur.q, cur.prio, from, func(pos uint64, r ref) bool {
			eo := s.entryOff(r.idx())
			w := s.load(eo + enCtl)
			k := wKind(w)
			notVisible := k == stPutU || k == stAlloc // put under syncpoint, or linked and not yet made visible
			if wGen(w) != r.gen() || s.load(eo+enPos) != pos {
				return true
			}
			if stopAt && notVisible {
				stopped = true
				return false
			}
			if !(k == stAvail || opt.IncludeHeld && (k == stHeld || k == stView) || opt.IncludeUncommitted && notVisible) {
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
		if found || stopped {
			return found, stopped, nil
		}
		if werr != nil {
			return false, false, werr
		}
	}
	return false, false, nil
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

// OldestPutTime is the put time (Unix ns) of the oldest message on q that
// counts in its depth (available, held, viewed, or put under syncpoint and
// not committed): the first such message of each priority, the oldest of
// them (MQ's MSGAGE). ok is false when it finds none. It changes nothing,
// like a browse, and reads from each sublog's head to its first such
// message: for displays and metrics.
func (s *Structure) OldestPutTime(q QueueID) (putTime int64, ok bool, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if !s.queueActive(uint32(q)) {
		return 0, false, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	mask := s.load(s.queueOff(uint32(q)) + qPrioMask)
	for p := 0; p < Priorities; p++ {
		if mask&(1<<p) == 0 {
			continue
		}
		werr := s.walk(uint32(q), p, 0, func(pos uint64, r ref) bool {
			eo := s.entryOff(r.idx())
			w := s.load(eo + enCtl)
			switch wKind(w) {
			case stAvail, stHeld, stView, stPutU:
			default:
				return true
			}
			if wGen(w) != r.gen() || s.load(eo+enPos) != pos {
				return true
			}
			t := int64(s.load(eo + enPutTime))
			// The entry may have been freed and reused while we read: the
			// gen tells (as BrowseNext).
			fullFence()
			if wGen(s.load(eo+enCtl)) != r.gen() || s.load(eo+enPos) != pos {
				return true
			}
			if !ok || t < putTime {
				putTime, ok = t, true
			}
			return false
		})
		if werr != nil {
			return 0, false, werr
		}
	}
	return putTime, ok, nil
}
