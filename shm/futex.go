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
	futexWait = 0 // FUTEX_WAIT
	futexWake = 1 // FUTEX_WAKE
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
