package rlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Sentinel errors; every error from this package wraps one of them.
var (
	ErrConfig  = errors.New("rlog: invalid configuration")
	ErrCorrupt = errors.New("rlog: log corrupt")
	// ErrFailed: the record is not durable and never will be (a write,
	// sync or segment reservation failed, or the log refused it while
	// failed; the log writes again once it can).
	ErrFailed = errors.New("rlog: log failed: record not durable")
	// ErrUncertain: a write holding the record failed and the log could
	// not yet seal it off: the record may or may not be durable.
	ErrUncertain = errors.New("rlog: a write failed and could not be sealed off: the record may or may not be durable")
	ErrClosed    = errors.New("rlog: log closed")
	ErrTooLarge  = errors.New("rlog: record larger than a segment holds")
	ErrType      = errors.New("rlog: record type 0 is reserved")
)

const (
	segMagic      = "QMRL"
	segVersion    = 2 // 2: the seal at 48 (shSeal); 1 (read only): zero there
	segHeaderSize = 64
	recHeaderSize = 32
	flagLast      = 1 // last record of a write
	segSuffix     = ".seg"
)

// Segment header (segHeaderSize bytes at the start of every segment file,
// little-endian):
//
//	offset  size  constant   field
//	     0     4  shMagic    magic "QMRL"
//	     4     2  shVersion  format version (segVersion; version 1, read too, has zero at 48)
//	     6     2  -          zero
//	     8     8  shSeq      segment sequence number (the same as the file name's)
//	    16     8  shSize     segment size in bytes
//	    24    24  shName     member name, zero padded
//	    48     8  shSeal     seal: where the records of the previous segment end (a failed write may have left bytes after it); 0: where its valid records end
//	    56     8  shSum      xxhash64 of bytes [0,56)
const (
	shMagic   = 0
	shVersion = 4
	shSeq     = 8
	shSize    = 16
	shName    = 24
	shSeal    = 48
	shSum     = 56
)

// Record header (recHeaderSize bytes; records follow the segment header,
// each 8-byte aligned):
//
//	offset  size  constant    field
//	     0     4  rhLen       payload length n
//	     4     1  rhType      type (1..255, set by the caller; 0 is never written)
//	     5     1  rhFlags     flags: flagLast on the last record of a write
//	     6     2  -           zero
//	     8     8  rhLRSN      LRSN
//	    16     8  rhWrite     write number (1, 2, ...: every write of the log has its own)
//	    24     8  rhSum       xxhash64 of the segment sequence number (8 bytes LE), bytes [0,24) of this header, then the payload
//	    32     *  rhPayload   n bytes of payload, then zeros up to the next multiple of 8
const (
	rhLen     = 0
	rhType    = 4
	rhFlags   = 5
	rhLRSN    = 8
	rhWrite   = 16
	rhSum     = 24
	rhPayload = recHeaderSize
)

func segName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segSuffix) }

// parseSegName returns the sequence number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	return seq, err == nil && seq > 0
}

// encodeSegHeader writes the header of segment seq; seal is where the
// records of segment seq-1 end (0: where its records end).
func encodeSegHeader(b []byte, seq uint64, size int64, name string, seal uint64) {
	clear(b[:segHeaderSize])
	copy(b[shMagic:shMagic+len(segMagic)], segMagic)
	binary.LittleEndian.PutUint16(b[shVersion:], segVersion)
	binary.LittleEndian.PutUint64(b[shSeq:], seq)
	binary.LittleEndian.PutUint64(b[shSize:], uint64(size))
	copy(b[shName:shSeal], name)
	binary.LittleEndian.PutUint64(b[shSeal:], seal)
	binary.LittleEndian.PutUint64(b[shSum:], xxhash.Sum64(b[:shSum]))
}

// segSeal returns the seal of a header checkSegHeader accepted: where the
// records of the previous segment end, or 0 when it ends where its
// records do.
func segSeal(b []byte) uint64 {
	if binary.LittleEndian.Uint16(b[shVersion:]) < 2 {
		return 0
	}
	return binary.LittleEndian.Uint64(b[shSeal:])
}

// checkSegHeader reports why a segment header is not the one of segment
// seq, or nil.
func checkSegHeader(b []byte, seq uint64) error {
	if len(b) < segHeaderSize {
		return fmt.Errorf("segment header: short (%d bytes)", len(b))
	}
	if m := b[shMagic : shMagic+len(segMagic)]; string(m) != segMagic {
		return fmt.Errorf("segment header: bad magic %q", m)
	}
	if binary.LittleEndian.Uint64(b[shSum:]) != xxhash.Sum64(b[:shSum]) {
		return errors.New("segment header: checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[shVersion:]); v < 1 || v > segVersion {
		return fmt.Errorf("segment header: format version %d, this build reads 1 to %d", v, segVersion)
	}
	if v := binary.LittleEndian.Uint16(b[shVersion:]); v == 1 && binary.LittleEndian.Uint64(b[shSeal:]) != 0 {
		return errors.New("segment header: format version 1 with a seal")
	}
	if s := binary.LittleEndian.Uint64(b[shSeq:]); s != seq {
		return fmt.Errorf("segment header: sequence %d, file name says %d", s, seq)
	}
	return nil
}

// recSize is the bytes a record with an n-byte payload takes.
func recSize(n int) int { return recHeaderSize + (n+7)&^7 }

// Record is one record read back from a log.
type Record struct {
	LRSN uint64
	Type uint8
	// Payload aliases the reader's buffer: valid until the next call to
	// Next.
	Payload []byte
}

// hdr is a decoded record header.
type hdr struct {
	n     int
	typ   uint8
	flags uint8
	lrsn  uint64
	write uint64
}

func putHeader(b []byte, seq uint64, h hdr) {
	binary.LittleEndian.PutUint32(b[rhLen:], uint32(h.n))
	b[rhType] = h.typ
	b[rhFlags] = h.flags
	clear(b[rhFlags+1 : rhLRSN])
	binary.LittleEndian.PutUint64(b[rhLRSN:], h.lrsn)
	binary.LittleEndian.PutUint64(b[rhWrite:], h.write)
	binary.LittleEndian.PutUint64(b[rhSum:], recSum(seq, b[:rhSum], b[rhPayload:rhPayload+h.n]))
}

func recSum(seq uint64, head, payload []byte) uint64 {
	var d xxhash.Digest
	d.Reset()
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seq)
	d.Write(s[:])
	d.Write(head)
	d.Write(payload)
	return d.Sum64()
}

// parseRecord decodes the record at the start of b, which holds the rest
// of segment seq. ok is false unless a whole, valid record starts there.
func parseRecord(b []byte, seq uint64) (h hdr, ok bool) {
	if len(b) < recHeaderSize {
		return h, false
	}
	h.n = int(binary.LittleEndian.Uint32(b[rhLen:]))
	h.typ = b[rhType]
	h.flags = b[rhFlags]
	if h.typ == 0 || h.flags&^flagLast != 0 || binary.LittleEndian.Uint16(b[rhFlags+1:]) != 0 {
		return h, false
	}
	if recSize(h.n) > len(b) || h.n < 0 {
		return h, false
	}
	h.lrsn = binary.LittleEndian.Uint64(b[rhLRSN:])
	h.write = binary.LittleEndian.Uint64(b[rhWrite:])
	if h.write == 0 {
		return h, false
	}
	if binary.LittleEndian.Uint64(b[rhSum:]) != recSum(seq, b[:rhSum], b[rhPayload:rhPayload+h.n]) {
		return h, false
	}
	return h, true
}
