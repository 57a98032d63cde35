package lockfree

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/shm"
)

// Status slots are fixed-size records (StatusSize bytes, more than a word)
// that change only by compare-and-swap of the whole record, before-image to
// after-image. Each slot has a control word and two copies of the record:
//
//	ctl = version(31) << 33 | current copy(1) << 32 | reserving owner tag(32)
//
// A writer reserves the slot by CAS (tag 0 -> its tag), compares the current
// copy with its before-image, writes the after-image into the other copy and
// publishes it by CAS (version+1, copies swapped, tag 0). Readers copy the
// current record and retry if the version moved, so they never wait and
// never see a torn record. A writer killed before the publish leaves only a
// half-written spare copy nobody reads and a reservation that the next
// writer clears as soon as it sees the reserving process is gone (and Repair
// clears it too): nobody waits longer than it takes to notice the death.

var (
	cpStatusReserved  = crashpoint.New("lockfree.status.reserved")
	cpStatusWritten   = crashpoint.New("lockfree.status.written")
	cpStatusPublished = crashpoint.New("lockfree.status.published")
)

// statusWaitLimit bounds how long a writer waits for a live process that
// holds a status slot's reservation (it holds it for a few stores).
const statusWaitLimit = time.Second

const (
	stTagMask = 0xffffffff
	stSelBit  = 1 << 32
)

func (s *Structure) statusOff(i int) uint64 { return s.l.stats + uint64(i)*s.l.statusRec }
func (s *Structure) statusCopy(i int, sel uint64) []byte {
	n := uint64(s.p.StatusSize)
	return s.mem.Bytes(s.statusOff(i)+stCopies+sel*roundUp(n, line), n)
}

// StatusSlots is the number of status slots; StatusSize the record size.
func (s *Structure) StatusSlots() int { return s.p.StatusSlots }

// StatusSize is the size of one status record in bytes.
func (s *Structure) StatusSize() int { return s.p.StatusSize }

func (s *Structure) checkStatus(i int, recs ...[]byte) error {
	if i < 0 || i >= s.p.StatusSlots {
		return fmt.Errorf("%w: slot %d not in 0..%d", ErrStatusRange, i, s.p.StatusSlots-1)
	}
	for _, r := range recs {
		if r != nil && len(r) != s.p.StatusSize {
			return fmt.Errorf("%w: record of %d bytes, slots hold %d", ErrStatusRange, len(r), s.p.StatusSize)
		}
	}
	return nil
}

// ReadStatus copies record i into dst (StatusSize bytes) and returns its
// version (the number of updates it has had).
func (s *Structure) ReadStatus(i int, dst []byte) (v uint64, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := s.checkStatus(i, dst); err != nil {
		return 0, err
	}
	ctl := s.statusOff(i)
	for {
		w := s.load(ctl)
		copy(dst, s.statusCopy(i, (w>>32)&1))
		fullFence() // the copy's plain loads complete before the recheck
		if s.load(ctl)>>32 == w>>32 {
			return w >> 33, nil
		}
	}
}

// StatusZero reports whether record i's first 8 bytes are zero, without
// copying it: a table that marks free records so scans past them cheaply.
// It is a snapshot like ReadStatus (the word is read from the current copy
// and the copy is checked to be still current).
func (s *Structure) StatusZero(i int) (zero bool, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := s.checkStatus(i); err != nil {
		return false, err
	}
	if s.p.StatusSize < 8 {
		return false, fmt.Errorf("%w: records of %d bytes", ErrStatusRange, s.p.StatusSize)
	}
	ctl := s.statusOff(i)
	n := uint64(s.p.StatusSize)
	for {
		w := s.load(ctl)
		sel := (w >> 32) & 1
		first := s.load(ctl + stCopies + sel*roundUp(n, line))
		if s.load(ctl)>>32 == w>>32 {
			return first == 0, nil
		}
	}
}

// CompareAndSwapStatus replaces record i with after if it currently equals
// before. On a mismatch it returns ErrStatusChanged and changes nothing.
func (o *Owner) CompareAndSwapStatus(i int, before, after []byte) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	s := o.s
	if err := s.checkStatus(i, before, after); err != nil {
		return err
	}
	ctl := s.statusOff(i)
	w, err := o.reserveStatus(ctl)
	if err != nil {
		return err
	}
	cpStatusReserved.Hit()
	sel := (w >> 32) & 1
	if !bytes.Equal(s.statusCopy(i, sel), before) {
		s.cas(ctl, w|uint64(o.tag), w)
		return fmt.Errorf("%w: slot %d", ErrStatusChanged, i)
	}
	copy(s.statusCopy(i, 1-sel), after)
	cpStatusWritten.Hit()
	s.cas(ctl, w|uint64(o.tag), ((w>>33)+1)<<33|(1-sel)<<32)
	cpStatusPublished.Hit()
	s.wakeStatusWaiters(i)
	return nil
}

// Waiting for a status record to change (WaitStatus). A waiter reads the
// slot's wake word, then sets the sleep word, then reads the control
// word, and sleeps on the wake word only if the version is still the one
// it saw. A publisher, after its publish CAS, swaps the sleep word to 0
// and, only if it was set, bumps the wake word and wakes every sleeper.
// Go's atomics are sequentially consistent, so either the publisher's
// swap sees the waiter's mark (and its bump comes after the waiter read
// the wake word: the sleep returns at once or is woken), or the mark came
// after the swap, hence after the publish, and the waiter's read of the
// control word sees the new version. No system call when nobody waits.
// A waiter killed leaves the mark set: the next publisher makes one spare
// wake and clears it. A publisher killed between its publish and its wake
// (crash point lockfree.status.published) leaves the sleepers asleep:
// each sleep is bounded by maxFutexSleep, after which they look again.

func (s *Structure) statusWakeWord(i int) *uint32 { return s.mem.U32(s.statusOff(i) + stWake) }

// wakeStatusWaiters wakes the waiters of slot i, if it has any.
func (s *Structure) wakeStatusWaiters(i int) {
	if atomic.SwapUint32(s.mem.U32(s.statusOff(i)+stSleep), 0) == 0 {
		return
	}
	fw := s.statusWakeWord(i)
	atomic.AddUint32(fw, 1)
	shm.FutexWake(fw, math.MaxInt32)
}

// WakeStatus wakes every WaitStatus sleeping on slot i, so that they look
// at their stop flags (it does not change the record).
func (s *Structure) WakeStatus(i int) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := s.checkStatus(i); err != nil {
		return err
	}
	fw := s.statusWakeWord(i)
	atomic.AddUint32(fw, 1)
	_, err = shm.FutexWake(fw, math.MaxInt32)
	return err
}

// WaitStatus waits until record i's version differs from seen, for at
// most d (0: do not wait; negative: no limit), and returns the version it
// found: seen again on a timeout. It returns ErrInterrupted when stop is
// set (check before each sleep; whoever sets it calls WakeStatus(i) to
// end a sleep at once). Woken by CompareAndSwapStatus on the slot, from
// any process, without polling (a wake lost to a killed publisher costs
// at most maxFutexSleep).
func (s *Structure) WaitStatus(i int, seen uint64, d time.Duration, stop *atomic.Bool) (v uint64, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := s.checkStatus(i); err != nil {
		return 0, err
	}
	ctl := s.statusOff(i)
	deadline := time.Now().Add(d)
	if d < 0 {
		deadline = time.Now().Add(100 * 365 * 24 * time.Hour)
	}
	fw := s.statusWakeWord(i)
	waiters := s.mem.U32(ctl + stSleep)
	for {
		seq := atomic.LoadUint32(fw)
		// A first look before marking: a waiter woken by the change it
		// waits for returns without leaving a mark for the next publisher.
		if v = s.load(ctl) >> 33; v != seen {
			return v, nil
		}
		if d != 0 {
			atomic.StoreUint32(waiters, 1)
		}
		if v = s.load(ctl) >> 33; v != seen {
			return v, nil
		}
		if stop != nil && stop.Load() {
			return v, fmt.Errorf("%w: wait on status slot %d", ErrInterrupted, i)
		}
		left := time.Until(deadline)
		if d == 0 || left <= 0 {
			return v, nil
		}
		if err := shm.FutexWait(fw, seq, min(left, maxFutexSleep)); err != nil {
			return v, fmt.Errorf("wait on status slot %d: %w", i, err)
		}
	}
}

// UpdateStatus applies f to record i until the CAS succeeds. f gets the
// current record and returns the new one, or nil to leave it unchanged.
func (o *Owner) UpdateStatus(i int, f func(cur []byte) []byte) error {
	cur := make([]byte, o.s.p.StatusSize)
	for {
		if _, err := o.s.ReadStatus(i, cur); err != nil {
			return err
		}
		next := f(append([]byte(nil), cur...))
		if next == nil {
			return nil
		}
		err := o.CompareAndSwapStatus(i, cur, next)
		if err == nil || !errors.Is(err, ErrStatusChanged) {
			return err
		}
	}
}

// reserveStatus takes the slot's reservation and returns the control word
// as it was (tag 0). A reservation held by a process that died is cleared.
func (o *Owner) reserveStatus(ctl uint64) (uint64, error) {
	s := o.s
	t0 := time.Now()
	for i := 0; ; i++ {
		w := s.load(ctl)
		holder := OwnerTag(w & stTagMask)
		if holder == 0 {
			if s.cas(ctl, w, w|uint64(o.tag)) {
				return w, nil
			}
			continue
		}
		if holder == o.tag {
			return 0, fmt.Errorf("%w: status slot already reserved by this owner", ErrCorrupt)
		}
		if i%256 == 255 || time.Since(t0) > 200*time.Microsecond {
			if !s.OwnerAlive(holder) {
				s.cas(ctl, w, w&^stTagMask)
				continue
			}
			// A live holder that does not publish within the limit is
			// stopped or hung: give up rather than make the caller (a
			// member's heartbeat, say) hang with it.
			if time.Since(t0) > statusWaitLimit {
				return 0, fmt.Errorf("%w: slot reserved by %v", ErrStatusBusy, holder)
			}
		}
		if i < 64 {
			runtime.Gosched()
		} else {
			time.Sleep(20 * time.Microsecond)
		}
	}
}
