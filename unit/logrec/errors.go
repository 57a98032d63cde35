package logrec

import "errors"

// Sentinel errors. Every error of this package wraps exactly one of them;
// test with errors.Is.
var (
	ErrTruncated = errors.New("logrec: record truncated")
	ErrBadMagic  = errors.New("logrec: bad magic")
	ErrVersion   = errors.New("logrec: layout version not supported")
	ErrCorrupt   = errors.New("logrec: record corrupt")
	ErrTooLarge  = errors.New("logrec: record too large")
	ErrInvalid   = errors.New("logrec: invalid value to encode")
)
