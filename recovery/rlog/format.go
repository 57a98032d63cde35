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
	segVersion    = 2 // 2: the seal at 48; 1 (read only): zero there
	segHeaderSize = 64
	recHeaderSize = 32
	flagLast      = 1 // last record of a write
	segSuffix     = ".seg"
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
	copy(b[0:4], segMagic)
	binary.LittleEndian.PutUint16(b[4:], segVersion)
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint64(b[16:], uint64(size))
	copy(b[24:48], name)
	binary.LittleEndian.PutUint64(b[48:], seal)
	binary.LittleEndian.PutUint64(b[56:], xxhash.Sum64(b[:56]))
}

// segSeal returns the seal of a header checkSegHeader accepted: where the
// records of the previous segment end, or 0 when it ends where its
// records do.
func segSeal(b []byte) uint64 {
	if binary.LittleEndian.Uint16(b[4:]) < 2 {
		return 0
	}
	return binary.LittleEndian.Uint64(b[48:])
}

// checkSegHeader reports why a segment header is not the one of segment
// seq, or nil.
func checkSegHeader(b []byte, seq uint64) error {
	if len(b) < segHeaderSize {
		return fmt.Errorf("segment header: short (%d bytes)", len(b))
	}
	if string(b[0:4]) != segMagic {
		return fmt.Errorf("segment header: bad magic %q", b[0:4])
	}
	if binary.LittleEndian.Uint64(b[56:]) != xxhash.Sum64(b[:56]) {
		return errors.New("segment header: checksum mismatch")
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v < 1 || v > segVersion {
		return fmt.Errorf("segment header: format version %d, this build reads 1 to %d", v, segVersion)
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v == 1 && binary.LittleEndian.Uint64(b[48:]) != 0 {
		return errors.New("segment header: format version 1 with a seal")
	}
	if s := binary.LittleEndian.Uint64(b[8:]); s != seq {
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
	binary.LittleEndian.PutUint32(b[0:], uint32(h.n))
	b[4] = h.typ
	b[5] = h.flags
	b[6], b[7] = 0, 0
	binary.LittleEndian.PutUint64(b[8:], h.lrsn)
	binary.LittleEndian.PutUint64(b[16:], h.write)
	binary.LittleEndian.PutUint64(b[24:], recSum(seq, b[:24], b[recHeaderSize:recHeaderSize+h.n]))
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
	h.n = int(binary.LittleEndian.Uint32(b[0:]))
	h.typ = b[4]
	h.flags = b[5]
	if h.typ == 0 || h.flags&^flagLast != 0 || b[6] != 0 || b[7] != 0 {
		return h, false
	}
	if recSize(h.n) > len(b) || h.n < 0 {
		return h, false
	}
	h.lrsn = binary.LittleEndian.Uint64(b[8:])
	h.write = binary.LittleEndian.Uint64(b[16:])
	if h.write == 0 {
		return h, false
	}
	if binary.LittleEndian.Uint64(b[24:]) != recSum(seq, b[:24], b[recHeaderSize:recHeaderSize+h.n]) {
		return h, false
	}
	return h, true
}
