package shm

import (
	"fmt"
	"unsafe"
)

// Mem is a typed view of a range of mapped memory. Offsets are relative to
// the start of the range. The accessors check bounds and alignment and panic
// on a violation: a bad offset is a layout bug, not a runtime condition.
//
// Words returned by U64 and U32 are meant for sync/atomic; Go's atomics are
// sequentially consistent, which is the ordering every protocol in package
// lockfree assumes.
type Mem struct {
	base unsafe.Pointer
	n    uint64
}

// MemOf returns a Mem over b. b must stay alive (and, for the atomic
// accessors, be 8-byte aligned) for as long as the Mem is used. Tests use it
// to build structures in ordinary memory.
func MemOf(b []byte) Mem {
	if len(b) == 0 {
		return Mem{}
	}
	return Mem{base: unsafe.Pointer(&b[0]), n: uint64(len(b))}
}

// Len is the size of the range in bytes.
func (m Mem) Len() uint64 { return m.n }

// Sub returns the view of [off, off+n).
func (m Mem) Sub(off, n uint64) Mem {
	if off > m.n || n > m.n-off {
		panic(fmt.Sprintf("shm: Sub(%d,%d) out of range %d", off, n, m.n))
	}
	return Mem{base: unsafe.Add(m.base, off), n: n}
}

// U64 returns the 8-byte aligned word at off.
func (m Mem) U64(off uint64) *uint64 {
	if off+8 > m.n || off&7 != 0 {
		badAccess(off)
	}
	return (*uint64)(unsafe.Add(m.base, off))
}

// U32 returns the 4-byte aligned word at off.
func (m Mem) U32(off uint64) *uint32 {
	if off+4 > m.n || off&3 != 0 {
		badAccess(off)
	}
	return (*uint32)(unsafe.Add(m.base, off))
}

// Bytes returns the n bytes at off as a slice aliasing the mapping. The slice
// is valid until the mapping is detached.
func (m Mem) Bytes(off, n uint64) []byte {
	if off > m.n || n > m.n-off {
		badAccess(off)
	}
	return unsafe.Slice((*byte)(unsafe.Add(m.base, off)), n)
}

// badAccess is out of line so the accessors above stay small enough to be
// inlined on the data path.
//
//go:noinline
func badAccess(off uint64) {
	panic(fmt.Sprintf("shm: access at offset %d outside the mapping or misaligned", off))
}

// Addr is the address of the byte at off (for diagnostics only).
func (m Mem) Addr(off uint64) uintptr { return uintptr(m.base) + uintptr(off) }
