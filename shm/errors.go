package shm

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them; test with errors.Is.
var (
	ErrNotFound   = errors.New("shm: structure not found")
	ErrPermission = errors.New("shm: not authorised")
	ErrBadMagic   = errors.New("shm: not a CF structure file (bad magic)")
	ErrVersion    = errors.New("shm: layout version mismatch")
	ErrTruncated  = errors.New("shm: structure file truncated")
	ErrCorrupt    = errors.New("shm: structure header corrupt")
	ErrNoSpace    = errors.New("shm: no space for structure")
	ErrBadName    = errors.New("shm: invalid structure name")
	ErrBadSize    = errors.New("shm: invalid structure size")
	ErrFault      = errors.New("shm: memory fault on mapping")
	ErrClosed     = errors.New("shm: structure detached")
)

// Error is the error type of this package: what was being done, to which
// file, which sentinel applies, and a hint for the operator.
type Error struct {
	Op   string // "create", "attach", ...
	Path string // the structure file
	Err  error  // one of the sentinels above
	Msg  string // detail: what was found
	Hint string // what to do about it

	cause error // the error of another package behind Err (an *ownedfs.Error), or nil
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err)
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Unwrap returns the sentinel, and the refusal of package ownedfs behind
// an ErrPermission (errors.Is(err, ownedfs.ErrNotOwned) holds too).
func (e *Error) Unwrap() []error {
	if e.cause != nil {
		return []error{e.Err, e.cause}
	}
	return []error{e.Err}
}

// CatchFault turns a memory fault raised while SetPanicOnFault is on into
// ErrFault stored in *err. Use it as
//
//	old := debug.SetPanicOnFault(true)
//	defer debug.SetPanicOnFault(old)
//	defer shm.CatchFault(&err)
//
// or simply wrap the work in Guard. Panics that are not memory faults are
// re-raised: they are programmer bugs.
func CatchFault(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if re, ok := r.(runtime.Error); ok {
		if a, ok := r.(interface{ Addr() uintptr }); ok {
			*err = fmt.Errorf("%w at address %#x: %v (the structure file was probably truncated or removed while mapped; run `qmgr check`)", ErrFault, a.Addr(), re)
			return
		}
	}
	panic(r)
}

// BeginGuard and EndGuard bracket an operation on a mapping so a memory
// fault (the file was truncated under the mapping) becomes ErrFault instead
// of killing the process, without the cost of a closure:
//
//	func (x *T) Op() (err error) {
//		defer shm.EndGuard(shm.BeginGuard(), &err)
//		...
//	}
func BeginGuard() bool { return debug.SetPanicOnFault(true) }

// EndGuard restores the goroutine's fault mode and converts a fault into
// ErrFault in *err. It must be deferred directly (it calls recover).
func EndGuard(old bool, err *error) {
	debug.SetPanicOnFault(old)
	r := recover()
	if r == nil {
		return
	}
	if re, ok := r.(runtime.Error); ok {
		if a, ok := r.(interface{ Addr() uintptr }); ok {
			*err = fmt.Errorf("%w at address %#x: %v (the structure file was probably truncated or removed while mapped; run `qmgr check`)", ErrFault, a.Addr(), re)
			return
		}
	}
	panic(r)
}

// Guard runs f with memory faults turned into ErrFault.
func Guard(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer CatchFault(&err)
	return f()
}
