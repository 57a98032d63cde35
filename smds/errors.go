package smds

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/procid"
)

// Sentinel errors. Every error of this package wraps exactly one of them;
// test with errors.Is.
var (
	ErrNotFound     = errors.New("smds: data set not found")
	ErrExist        = errors.New("smds: data set exists")
	ErrBadMagic     = errors.New("smds: not a shared message data set file (bad magic)")
	ErrVersion      = errors.New("smds: layout version mismatch")
	ErrCorrupt      = errors.New("smds: header or space map corrupt")
	ErrTruncated    = errors.New("smds: data set truncated")
	ErrDamaged      = errors.New("smds: message data damaged")
	ErrStale        = errors.New("smds: reference to space that was freed")
	ErrFull         = errors.New("smds: data set full")
	ErrNoSpace      = errors.New("smds: no space on device")
	ErrTooLarge     = errors.New("smds: body larger than an extent")
	ErrParams       = errors.New("smds: invalid parameters")
	ErrNoOwnerSlot  = errors.New("smds: no free owner slot")
	ErrOwnerAlive   = errors.New("smds: owner still alive")
	ErrBusy         = errors.New("smds: space being freed by a live owner")
	ErrClosed       = errors.New("smds: closed")
	ErrFault        = errors.New("smds: memory fault on mapping")
	ErrNeedRebuild  = errors.New("smds: space map missing or stale, rebuild it from the CF")
	ErrOwnerRevoked = errors.New("smds: owner slot taken by a repairer")
	ErrRetired      = errors.New("smds: space map retired (replaced by a rebuild): reopen the data set")
	ErrIO           = errors.New("smds: i/o error")
	ErrStalled      = errors.New("smds: a live process stalled between claiming blocks in the space map being replaced and writing them")
)

// StalledError is returned (wrapping ErrStalled) by Create, Rebuild and
// RebuildFrom when replacing a space map waited longer than
// Options.StallLimit for a live process that is between claiming blocks
// in the old map and writing them (docs/design/smds.md, section 6a): it
// is stopped (SIGSTOP, a debugger), starved, or its write is stuck. The
// old map stays retired. The caller may kill Process (when it is stopped:
// procid.Stopped) and call again: the retirement is taken up where it was
// and a dead process holds nothing.
type StalledError struct {
	Path    string    // the space map being replaced
	Process procid.ID // the live process of the owner (or of its repairer)
	Slot    int       // its owner slot in the old map
	Waited  time.Duration
}

func (e *StalledError) Error() string {
	return fmt.Sprintf("retire %s: %v: process %v (owner slot %d), waited %v", e.Path, ErrStalled, e.Process, e.Slot, e.Waited.Round(time.Millisecond))
}

func (e *StalledError) Unwrap() error { return ErrStalled }

// Error is the error type of this package: what was being done, to which
// data set (its file), where in it, and which sentinel applies.
type Error struct {
	Op     string // "open", "read", "free", ...
	Path   string // the data set file (or the space map file)
	Offset int64  // byte offset in the file, -1 when none applies
	Err    error  // one of the sentinels above
	Msg    string // what was found
	cause  error  // an error of another package behind Err, or nil
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s", e.Op, e.Path)
	if e.Offset >= 0 {
		s += fmt.Sprintf(" at offset %d", e.Offset)
	}
	s += ": " + e.Err.Error()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Unwrap returns the sentinel and the cause, if any.
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Err, e.cause}
	}
	return []error{e.Err}
}

func newErr(op, path string, off int64, sentinel error, format string, args ...any) *Error {
	return &Error{Op: op, Path: path, Offset: off, Err: sentinel, Msg: fmt.Sprintf(format, args...)}
}

func wrapErr(op, path string, off int64, sentinel, cause error) *Error {
	return &Error{Op: op, Path: path, Offset: off, Err: sentinel, Msg: cause.Error(), cause: cause}
}
