package lockfree

import (
	"math"
	"sync/atomic"

	"github.com/qmgr/qmgr/shm"
)

// Waiting: each queue has a 32-bit futex word and a bitmap with one bit per
// owner slot. A getter that wants to sleep sets its bit, reads the futex
// word, looks for a message once more and sleeps only if the word is
// unchanged. A putter that made a message visible reads the bitmap and, only
// when some bit is set, bumps the word and wakes. Go's atomics are
// sequentially consistent, so either the putter sees the bit or the getter's
// last look sees the message: no lost wake-ups, and no system call for a
// putter when nobody waits. A bit is a precise, idempotent record of who
// waits (unlike a counter, which a waiter killed mid-update would leave
// wrong): Repair clears the dead owner's bits.

func (s *Structure) futexWord(q uint32) *uint32 { return s.mem.U32(s.queueOff(q) + qFutex) }

func (o *Owner) setWaiting(q uint32, on bool) {
	off := o.s.queueOff(q) + qBitmaps + uint64(o.slot/64)*8
	bit := uint64(1) << (o.slot % 64)
	if on {
		atomic.OrUint64(o.s.u64(off), bit)
	} else {
		atomic.AndUint64(o.s.u64(off), ^bit)
	}
}

// wake wakes up to n waiters of q if there are any; every waiter once a
// browse has waited on q (qBrowseWait).
func (s *Structure) wake(q uint32, n int) {
	base := s.queueOff(q) + qBitmaps
	words := uint64(s.p.Owners+63) / 64
	for i := uint64(0); i < words; i++ {
		if s.load(base+i*8) != 0 {
			if atomic.LoadUint32(s.mem.U32(s.queueOff(q)+qBrowseWait)) != 0 {
				n = math.MaxInt32
			}
			fw := s.futexWord(q)
			atomic.AddUint32(fw, 1)
			shm.FutexWake(fw, n)
			return
		}
	}
}

// markBrowseWait records that a browse waits on q (qBrowseWait); called
// before the browser sets its waiter bit.
func (s *Structure) markBrowseWait(q uint32) {
	if w := s.mem.U32(s.queueOff(q) + qBrowseWait); atomic.LoadUint32(w) == 0 {
		atomic.StoreUint32(w, 1)
	}
}

// Waiters counts the owners waiting on q.
func (s *Structure) Waiters(q QueueID) int {
	if !s.queueOK(uint64(q)) {
		return 0
	}
	base := s.queueOff(uint32(q)) + qBitmaps
	n := 0
	for i := uint64(0); i < uint64(s.p.Owners+63)/64; i++ {
		w := s.load(base + i*8)
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}
