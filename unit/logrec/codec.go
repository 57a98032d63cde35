package logrec

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian
var be = binary.BigEndian

// zero reports whether every byte of b is zero.
func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// putName writes s NUL padded into b (len(b) bytes). The caller has
// checked it with validName.
func putName(b []byte, s string) { copy(b, s) }

// validName: at most n bytes and no NUL (a NUL would not survive the
// padding).
func validName(s string, n int) bool {
	return len(s) <= n && bytes.IndexByte([]byte(s), 0) < 0
}

// getName reads a NUL padded string and checks it is canonical: nothing
// but NULs after the first NUL.
func getName(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return string(b), true
	}
	if !zero(b[i:]) {
		return "", false
	}
	return string(b[:i]), true
}

// reader walks a byte slice and never slices past its end.
type reader struct {
	b   []byte
	off int
	err error
	// what is being decoded, for error messages
	what string
}

func (r *reader) fail(sentinel error, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s at byte %d: %s", sentinel, r.what, r.off, fmt.Sprintf(format, args...))
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

// take returns the next n bytes, or nil and an error when fewer remain.
func (r *reader) take(n uint64, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(r.left()) {
		r.fail(ErrTruncated, "%s needs %d bytes, %d remain", field, n, r.left())
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// clone copies b, keeping nil for empty so that decoded values compare
// equal to encoded ones built with nil.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}
