package lockfree

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/procid"
)

// Sentinel errors; every error from this package wraps one of them.
var (
	ErrParams          = errors.New("lockfree: invalid structure parameters")
	ErrCorrupt         = errors.New("lockfree: structure corrupt")
	ErrQueueFull       = errors.New("lockfree: queue full")
	ErrMsgTooLong      = errors.New("lockfree: message too long")
	ErrBadMessage      = errors.New("lockfree: malformed message")
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
	ErrViewInUOW       = errors.New("lockfree: view got under syncpoint belongs to its unit of work")
	ErrViewLone        = errors.New("lockfree: view is the owner's lone operation")
	ErrInterrupted     = errors.New("lockfree: waiting get interrupted")
	ErrStructureFailed = errors.New("lockfree: structure failed (its file is gone or damaged) or being recovered")
	ErrOwnerStalled    = errors.New("lockfree: owner's process is stalled in the middle of an operation")
)

// StalledError is returned (wrapping ErrOwnerStalled) when a fence or a
// repair waited longer than the structure's stall limit for a live
// owner's operation in flight to end: its process is stopped (SIGSTOP, a
// debugger) or starved. The caller may kill Process and try again; the
// owner stays fenced meanwhile (its next operation fails).
type StalledError struct {
	Owner   OwnerTag
	Process procid.ID
	Waited  time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("%v: owner %v, process %v, waited %v", ErrOwnerStalled, e.Owner, e.Process, e.Waited)
}

func (e *StalledError) Unwrap() error { return ErrOwnerStalled }
