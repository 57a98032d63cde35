package mq

import (
	"errors"
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/recovery/logbuf"
	"github.com/qmgr/qmgr/shm"
	"github.com/qmgr/qmgr/smds"
)

// Reason is an MQ reason code (the MQRC_* values of IBM MQ).
type Reason int

// Reason codes.
const (
	RCNone                    Reason = 0
	RCBackedOut               Reason = 2003 // the unit of work was backed out
	RCConnectionBroken        Reason = 2009 // the member died or the connection was ended
	RCMaxConnsLimitReached    Reason = 2025 // every connection slot of the group is taken
	RCMsgTooBigForQ           Reason = 2030
	RCNoMsgAvailable          Reason = 2033
	RCNotAuthorized           Reason = 2035
	RCObjectInUse             Reason = 2042
	RCPriorityError           Reason = 2050
	RCQFull                   Reason = 2053
	RCQMgrNotAvailable        Reason = 2059
	RCUnknownObjectName       Reason = 2085
	RCQMgrStopping            Reason = 2162
	RCStorageMediumFull       Reason = 2192 // the CF structure is full
	RCUnexpectedError         Reason = 2195
	RCBackoutThresholdReached Reason = 2362
	RCCFStructFailed          Reason = 2373
	RCHandleNotAvailable      Reason = 2017 // handle closed
	RCOptionError             Reason = 2046 // bad option or parameter
	RCNotValidForType         Reason = 2045 // e.g. a remote queue opened for input
	RCUnknownXmitQ            Reason = 2196
	RCUnknownRemoteQMgr       Reason = 2087
	RCXmitQUsageError         Reason = 2091
	RCResourceProblem         Reason = 2102 // the member's recovery log failed, or has no ring free for the connection; a data set has no owner slot free, or its map's rebuild stalled on a stopped process
	RCCallInterrupted         Reason = 2549 // a waiting get was ended by its Interrupter
	RCMsgBodyLost             Reason = 6101 // qmgr's own (no MQ equivalent): a message's offloaded body is damaged or lost in its shared message data set (the DLH reason of its report)
	RCUnitHandlerFailed       Reason = 6102 // qmgr's own: a recovery unit's handler failed on the input (the DLH reason when the unit moves it to the dead-letter queue)
	RCUnitStateLost           Reason = 6103 // qmgr's own: every replica of a recovery unit died with no resting snapshot; the DLH reason of its old generation's log messages on the dead-letter queue
)

var reasonNames = map[Reason]string{
	RCNone: "none", RCBackedOut: "backed out", RCConnectionBroken: "connection broken", RCMaxConnsLimitReached: "maximum connections reached", RCMsgTooBigForQ: "message too big for queue",
	RCNoMsgAvailable: "no message available", RCNotAuthorized: "not authorised", RCObjectInUse: "object in use",
	RCPriorityError: "priority error", RCQFull: "queue full", RCQMgrNotAvailable: "queue manager not available",
	RCUnknownObjectName: "unknown object name", RCQMgrStopping: "queue manager stopping", RCStorageMediumFull: "CF structure full",
	RCUnexpectedError: "unexpected error", RCBackoutThresholdReached: "backout threshold reached", RCCFStructFailed: "CF structure failed",
	RCHandleNotAvailable: "handle not available", RCOptionError: "option error",
	RCNotValidForType: "option not valid for object type", RCUnknownXmitQ: "unknown transmission queue",
	RCXmitQUsageError: "transmission queue usage error", RCUnknownRemoteQMgr: "unknown remote queue manager",
	RCResourceProblem: "resource problem (recovery log)", RCCallInterrupted: "call interrupted",
	RCMsgBodyLost: "message body lost or damaged", RCUnitHandlerFailed: "unit handler failed",
	RCUnitStateLost: "unit state lost",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return fmt.Sprintf("MQRC %d (%s)", int(r), n)
	}
	return fmt.Sprintf("MQRC %d", int(r))
}

// Error is every error this package returns: the operation, the MQ reason
// code and the underlying error.
type Error struct {
	Op     string
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %v: %v", e.Op, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Op, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

// Is lets errors.Is(err, mq.ErrNoMessage) and the like match by reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Err == nil && t.Reason == e.Reason
}

// Sentinels for errors.Is, one per common reason.
var (
	ErrNoMessage        = &Error{Reason: RCNoMsgAvailable}
	ErrQueueFull        = &Error{Reason: RCQFull}
	ErrMsgTooBig        = &Error{Reason: RCMsgTooBigForQ}
	ErrUnknownObject    = &Error{Reason: RCUnknownObjectName}
	ErrConnectionBroken = &Error{Reason: RCConnectionBroken}
	ErrNotAuthorized    = &Error{Reason: RCNotAuthorized}
	ErrQMgrUnavailable  = &Error{Reason: RCQMgrNotAvailable}
	ErrResourceProblem  = &Error{Reason: RCResourceProblem}
	ErrBackedOut        = &Error{Reason: RCBackedOut}
	ErrMaxConns         = &Error{Reason: RCMaxConnsLimitReached}
	ErrInterrupted      = &Error{Reason: RCCallInterrupted} // a waiting get ended by its Interrupter
)

// ReasonOf returns the reason code of err (RCNone for nil).
func ReasonOf(err error) Reason {
	if err == nil {
		return RCNone
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return reasonFor(err)
}

// reasonFor maps the lower layers' errors to reason codes.
func reasonFor(err error) Reason {
	switch {
	case errors.Is(err, lockfree.ErrNoMessage):
		return RCNoMsgAvailable
	case errors.Is(err, lockfree.ErrQueueFull):
		return RCQFull
	case errors.Is(err, lockfree.ErrMsgTooLong):
		return RCMsgTooBigForQ
	case errors.Is(err, lockfree.ErrUnknownQueue), errors.Is(err, defs.ErrNotFound):
		return RCUnknownObjectName
	case errors.Is(err, lockfree.ErrOwnerRevoked), errors.Is(err, lockfree.ErrClosed):
		return RCConnectionBroken
	case errors.Is(err, lockfree.ErrStructureFull):
		return RCStorageMediumFull
	case errors.Is(err, lockfree.ErrInterrupted):
		return RCCallInterrupted
	case errors.Is(err, lockfree.ErrViewInUOW), errors.Is(err, lockfree.ErrViewReleased):
		return RCOptionError
	case errors.Is(err, lockfree.ErrBadPriority):
		return RCPriorityError
	case errors.Is(err, shm.ErrPermission), errors.Is(err, defs.ErrPermission):
		return RCNotAuthorized
	case errors.Is(err, logbuf.ErrBufferLost):
		// Before shm.ErrFault, which it wraps: the member's log buffer
		// (not a CF structure) lost its pages; connect again.
		return RCConnectionBroken
	case errors.Is(err, shm.ErrFault), errors.Is(err, shm.ErrTruncated), errors.Is(err, lockfree.ErrCorrupt), errors.Is(err, lockfree.ErrStructureFailed):
		return RCCFStructFailed
	case errors.Is(err, group.ErrNoGroup), errors.Is(err, shm.ErrNotFound):
		return RCQMgrNotAvailable
	case errors.Is(err, logbuf.ErrConsumerGone):
		return RCConnectionBroken
	case errors.Is(err, logbuf.ErrLogFailed), errors.Is(err, logbuf.ErrNoRing), errors.Is(err, smds.ErrNoOwnerSlot), errors.Is(err, smds.ErrStalled):
		return RCResourceProblem
	}
	return RCUnexpectedError
}

// connectReason is the reason of a connect whose registration in the
// group's connection table failed: every slot taken is MQRC 2025, not
// the member's absence.
func connectReason(err error) Reason {
	if errors.Is(err, lockfree.ErrNoOwnerSlot) {
		return RCMaxConnsLimitReached
	}
	return RCQMgrNotAvailable
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Reason: reasonFor(err), Err: err}
}
