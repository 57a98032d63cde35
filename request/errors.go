package request

import (
	"errors"
	"fmt"
)

// Errors a program sees from its Ctx.
var (
	// ErrNotConfirmable: a non-recoverable or restartable request asked
	// for a confirmed exchange (CallOptions.Confirmed), which only
	// request-level recoverable requests may use.
	ErrNotConfirmable = errors.New("request: a confirmed exchange needs a request-level recoverable request")
	// ErrCancelled: the request was cancelled; the program should return
	// (every later call of the Ctx fails with it too).
	ErrCancelled = errors.New("request: the request was cancelled")
	// ErrFinalReplySent: FinalReply called a second time.
	ErrFinalReplySent = errors.New("request: the final reply was sent already")
	// ErrNoReplyQueue: the request message names no reply-to queue.
	ErrNoReplyQueue = errors.New("request: the request has no reply-to queue")
	// ErrNondeterministic: on replay, the program did something other
	// than what its journal recorded at that point (a program must be
	// deterministic given its request and its calls' replies).
	ErrNondeterministic = errors.New("request: the program did not replay its journal")
	// ErrAbandoned: the manager lost its connection (or is stopping
	// abruptly) while the request ran; the request goes back to the
	// input queue and is taken again, as its mode says.
	ErrAbandoned = errors.New("request: the request was abandoned by its manager")
	// ErrTakenOver: the request's state record is not the one this run
	// last wrote: its lock (the request message held on L) was backed
	// out, by the member's --uow-max-age or a revocation of that
	// connection, and another run took the request over. This run may
	// not write anything more of it; its step is backed out.
	ErrTakenOver = errors.New("request: the request was taken over by another run")
	// ErrStopTimeout: Stop's ctx ended and a program still had not come
	// back to its Ctx StopGrace later; it is left running.
	ErrStopTimeout = errors.New("request: stop: a program still runs")
	// ErrStateTooBig: the request's state record (its journal: every
	// reply and saved value of a recoverable request) would be bigger
	// than the state queue's MAXMSGL. The step is backed out, and every
	// later step of the run fails with it too: the run fails as its mode
	// says (a recoverable request ends with a FormatFailed reply).
	ErrStateTooBig = errors.New("request: the state record would be bigger than the state queue's MAXMSGL")
	// ErrRecordVersion: a state record of a version this manager does
	// not know (written by a newer one); always with ErrBadHeader.
	ErrRecordVersion = errors.New("request: state record version unknown")
	// ErrDuplicate: a request message whose request id is another's in
	// flight (two messages with one MsgID); it is moved to the
	// Unexpected Message Queue (ReasonDuplicate), not run.
	ErrDuplicate = errors.New("request: another request message with this request id is in flight")
	// ErrCallTimeout is matched (errors.Is) by every *CallTimeoutError.
	ErrCallTimeout = errors.New("request: call timed out")
	// ErrCallFailed is matched (errors.Is) by every *CallFailedError.
	ErrCallFailed = errors.New("request: call failed")
)

// CallTimeoutError is a call's timeout. Withdrawn: the call was taken back
// from the server's queue, so it was certainly never performed; otherwise
// it may have been, or may yet be (its reply then goes to the Unexpected
// Message Queue).
type CallTimeoutError struct {
	Queue     string
	Seq       uint32
	Withdrawn bool
}

func (e *CallTimeoutError) Error() string {
	if e.Withdrawn {
		return fmt.Sprintf("request: call %d to %s timed out and was withdrawn: it was not performed", e.Seq, e.Queue)
	}
	return fmt.Sprintf("request: call %d to %s timed out; it may have been performed", e.Seq, e.Queue)
}

// Is makes errors.Is(err, ErrCallTimeout) true.
func (e *CallTimeoutError) Is(target error) bool { return target == ErrCallTimeout }

// CallFailedError is a call its server gave up on: a poison call (Serve:
// backed out ServeOptions.MaxTries times, its handler failing or its
// server dying each time), answered with a FormatCallFailed reply and
// moved aside, never performed. Reason is the reply's text. A resumption
// replays it (the journal records it as OutcomeFailed).
type CallFailedError struct {
	Queue  string
	Seq    uint32
	Reason string
}

func (e *CallFailedError) Error() string {
	return fmt.Sprintf("request: call %d to %s failed: %s", e.Seq, e.Queue, e.Reason)
}

// Is makes errors.Is(err, ErrCallFailed) true.
func (e *CallFailedError) Is(target error) bool { return target == ErrCallFailed }
