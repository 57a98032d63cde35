package shm

import (
	"errors"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Futex operations without FUTEX_PRIVATE_FLAG: the kernel keys the wait queue
// on the (inode, offset) of the mapped word, so a waiter in one process is
// woken by a waker in another.
const (
	futexWait       = 0  // FUTEX_WAIT
	futexWake       = 1  // FUTEX_WAKE
	futexWaitBitset = 9  // FUTEX_WAIT_BITSET: the timeout is absolute, CLOCK_MONOTONIC
	futexWakeBitset = 10 // FUTEX_WAKE_BITSET
)

// FutexWait sleeps while *p == val, for at most d (d <= 0 waits for no time
// at all and returns at once). It returns nil when woken, when *p != val on
// entry, on a timeout and on a signal: the caller always rechecks its
// condition. Waits are bounded by d so a waiter whose waker died is never
// stuck.
func FutexWait(p *uint32, val uint32, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	ts := unix.NsecToTimespec(int64(d))
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(p)), futexWait, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, 0)
	switch e {
	case 0, unix.EAGAIN, unix.ETIMEDOUT, unix.EINTR:
		return nil
	default:
		return errors.Join(ErrFault, e)
	}
}

// FutexWake wakes up to n waiters sleeping on p and returns how many it woke.
func FutexWake(p *uint32, n int) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(p)), futexWake, uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0, errors.Join(ErrFault, e)
	}
	return int(r), nil
}

// FutexWaitBits is FutexWait for a waiter tagged with bits (not 0): it is
// woken by FutexWake, which wakes any waiter, and by FutexWakeBits only
// when their bits share one, so a waker can wake one waiter (or a few)
// among many on the same word.
func FutexWaitBits(p *uint32, val uint32, d time.Duration, bits uint32) error {
	if d <= 0 {
		return nil
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return errors.Join(ErrFault, err)
	}
	ts := unix.NsecToTimespec(now.Nano() + int64(d))
	_, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(p)), futexWaitBitset, uintptr(val), uintptr(unsafe.Pointer(&ts)), 0, uintptr(bits))
	switch e {
	case 0, unix.EAGAIN, unix.ETIMEDOUT, unix.EINTR:
		return nil
	default:
		return errors.Join(ErrFault, e)
	}
}

// FutexWakeBits wakes up to n waiters sleeping on p whose bits (as given
// to FutexWaitBits) share one with bits, and returns how many it woke.
func FutexWakeBits(p *uint32, n int, bits uint32) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(p)), futexWakeBitset, uintptr(n), 0, 0, uintptr(bits))
	if e != 0 {
		return 0, errors.Join(ErrFault, e)
	}
	return int(r), nil
}
