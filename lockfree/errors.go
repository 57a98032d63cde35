package lockfree

import "errors"

// Sentinel errors; every error from this package wraps one of them.
var (
	ErrParams          = errors.New("lockfree: invalid structure parameters")
	ErrCorrupt         = errors.New("lockfree: structure corrupt")
	ErrQueueFull       = errors.New("lockfree: queue full")
	ErrMsgTooLong      = errors.New("lockfree: message too long")
	ErrNoMessage       = errors.New("lockfree: no message available")
	ErrStructureFull   = errors.New("lockfree: structure full")
	ErrNoOwnerSlot     = errors.New("lockfree: no free owner slot")
	ErrUnknownQueue    = errors.New("lockfree: unknown queue")
	ErrQueueExists     = errors.New("lockfree: queue already exists")
	ErrQueueNotEmpty   = errors.New("lockfree: queue not empty")
	ErrNoQueueSlot     = errors.New("lockfree: no free queue slot")
	ErrBadName         = errors.New("lockfree: invalid name")
	ErrBadPriority     = errors.New("lockfree: priority not in 0..9")
	ErrStatusChanged   = errors.New("lockfree: status record changed (before-image mismatch)")
	ErrStatusBusy      = errors.New("lockfree: status slot reserved by a live process that does not finish")
	ErrStatusRange     = errors.New("lockfree: status slot or record size out of range")
	ErrOwnerRevoked    = errors.New("lockfree: owner was repaired; its work was undone")
	ErrOwnerAlive      = errors.New("lockfree: owner's process is alive")
	ErrOwnerBusy       = errors.New("lockfree: owner is being repaired by another process")
	ErrNotOwner        = errors.New("lockfree: no such owner")
	ErrClosed          = errors.New("lockfree: owner closed")
	ErrViewReleased    = errors.New("lockfree: view already released")
	ErrStructureFailed = errors.New("lockfree: structure failed (its file is gone or damaged) or being recovered")
)
