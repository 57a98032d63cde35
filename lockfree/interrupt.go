package lockfree

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/shm"
)

// Interrupter ends waiting gets from another goroutine, at once and
// without polling (an AMQP basic.cancel or a channel closing stops its
// consumer's get). A get given one in GetOptions.Interrupt returns
// ErrInterrupted, without a message, if the Interrupter is interrupted
// when the get would wait, or while it waits; a get that finds a message
// without waiting returns it. Once interrupted it stays so (every later
// get that would wait with it returns at once, so an interrupt that comes
// between two gets is not lost) until Reset.
//
// How it wakes one get: a get sleeps on its queue's futex word tagged
// with a bit of its owner slot (FutexWaitBits; a put's FutexWake wakes
// every waiter whatever its bits). Interrupt bumps the word (so a get
// about to sleep sees it changed) and wakes only the sleepers with that
// bit: the interrupted get, and at most the other owners waiting on the
// same queue whose slot has the same bit (slot mod 32), which look once
// more and sleep again.
//
// The zero value is ready to use. An Interrupter serves one waiting get
// at a time (a connection's gets are serial; give each consumer its own);
// Interrupt, Reset and Interrupted may be called from any goroutine.
type Interrupter struct {
	interrupted atomic.Bool // set by Interrupt, cleared by Reset; read by the get
	// mu serialises Interrupt with a get entering and leaving its sleep,
	// so Interrupt never touches a futex word of a mapping the get's
	// owner may have unmapped since.
	mu    sync.Mutex
	fw    *uint32 // the futex word the get sleeps on; nil when none does
	bits  uint32  // its futex bits
	woken int     // how many sleepers the last wake woke (for tests)
}

// Interrupt interrupts the get waiting with in, if any, and every later
// get that would wait with it, until Reset.
func (in *Interrupter) Interrupt() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.interrupted.Store(true)
	if in.fw != nil {
		in.wake()
	}
}

// wake wakes the sleeping get (in.mu held).
func (in *Interrupter) wake() {
	var err error
	defer shm.EndGuard(shm.BeginGuard(), &err) // a mapping truncated under the get: its get fails on its own
	atomic.AddUint32(in.fw, 1)
	in.woken, _ = shm.FutexWakeBits(in.fw, math.MaxInt32, in.bits)
}

// Reset ends the interrupt: gets wait again.
func (in *Interrupter) Reset() { in.interrupted.Store(false) }

// Interrupted reports whether in is interrupted.
func (in *Interrupter) Interrupted() bool { return in.interrupted.Load() }

// enter records that a get is about to sleep on fw with bits; false if
// in is interrupted (the get returns instead).
func (in *Interrupter) enter(fw *uint32, bits uint32) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.interrupted.Load() {
		return false
	}
	in.fw, in.bits = fw, bits
	return true
}

// leave records that the get sleeps no more.
func (in *Interrupter) leave() {
	in.mu.Lock()
	in.fw = nil
	in.mu.Unlock()
}

// futexBits is the futex bit owner slot slot waits with.
func futexBits(slot int) uint32 { return 1 << (uint(slot) % 32) }
