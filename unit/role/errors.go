package role

import "errors"

// Sentinel errors. Every error of this package wraps exactly one of them.
var (
	ErrTruncated = errors.New("role: record truncated")
	ErrBadMagic  = errors.New("role: bad magic")
	ErrVersion   = errors.New("role: layout version not supported")
	ErrCorrupt   = errors.New("role: record corrupt")
	// ErrStale: the event is about an entry that is no longer what the
	// event saw (another process got there first); nothing to do.
	ErrStale = errors.New("role: record changed since the event")
	// ErrNotAllowed: the event does not apply to a record in this state.
	ErrNotAllowed = errors.New("role: transition not allowed")
	// ErrInvalid: a value that cannot be encoded.
	ErrInvalid = errors.New("role: invalid value")
)
