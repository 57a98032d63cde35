package rlog

import (
	"encoding/binary"
	"fmt"
)

// segScan is what reading one whole segment found.
type segScan struct {
	headerErr error // the header is not segment seq's
	records   int
	first     hdr // first valid record (records > 0)
	last      hdr // last valid record before end
	end       int // offset just after the last valid record (or the header)
	// dirtyEnd is the offset just after the last non-zero byte at or
	// after end: end when the segment ends cleanly.
	dirtyEnd int
	// tornWrites are the write numbers of the valid records found after
	// end, among the damage.
	tornWrites map[uint64]bool
	maxWrite   uint64
}

// damaged reports whether anything but zeros follows the records.
func (s *segScan) damaged() bool { return s.dirtyEnd > s.end }

// corruption says why the damage after end cannot be a torn last write,
// or returns nil when it can (or there is no damage). A segment that is
// not the last one holding records is never allowed damage: the writer
// synced it before it wrote to the next.
func (s *segScan) corruption(seq uint64, lastWithRecords bool) error {
	if s.headerErr != nil {
		if s.records > 0 || len(s.tornWrites) > 0 {
			return fmt.Errorf("%w: segment %s: %v, yet it holds records", ErrCorrupt, segName(seq), s.headerErr)
		}
		return nil
	}
	if !s.damaged() {
		return nil
	}
	if !lastWithRecords {
		return fmt.Errorf("%w: segment %s: damaged at offset %d, and a later segment holds records", ErrCorrupt, segName(seq), s.end)
	}
	if s.records > 0 {
		expected := s.last.write
		if s.last.flags&flagLast != 0 {
			expected++
		}
		for w := range s.tornWrites {
			if w != expected {
				return fmt.Errorf("%w: segment %s: damaged at offset %d, followed by records of write %d (the damage belongs to write %d)",
					ErrCorrupt, segName(seq), s.end, w, expected)
			}
		}
		return nil
	}
	if len(s.tornWrites) > 1 {
		return fmt.Errorf("%w: segment %s: damaged at offset %d, followed by records of %d different writes",
			ErrCorrupt, segName(seq), s.end, len(s.tornWrites))
	}
	return nil
}

// scanSegment reads every record of segment seq held in b (the whole
// file), calling visit for each valid one before the first damage, then
// examines what follows. visit may be nil; an error from it stops the scan
// and is returned.
func scanSegment(b []byte, seq uint64, visit func(h hdr, payload []byte) error) (segScan, error) {
	s := segScan{end: segHeaderSize, dirtyEnd: segHeaderSize}
	if len(b) < segHeaderSize {
		s.headerErr = fmt.Errorf("segment header: short file (%d bytes)", len(b))
		s.end, s.dirtyEnd = len(b), len(b)
		return s, nil
	}
	s.headerErr = checkSegHeader(b, seq)
	p := segHeaderSize
	if s.headerErr == nil {
		for {
			h, ok := parseRecord(b[p:], seq)
			if !ok {
				break
			}
			if s.records == 0 {
				s.first = h
			}
			s.records++
			s.last = h
			s.maxWrite = max(s.maxWrite, h.write)
			if visit != nil {
				if err := visit(h, b[p+recHeaderSize:p+recHeaderSize+h.n]); err != nil {
					return s, err
				}
			}
			p += recSize(h.n)
		}
	}
	s.end = p
	examineTail(b, seq, &s)
	return s, nil
}

// examineTail fills in s.dirtyEnd and s.tornWrites: what lies after the
// last valid record at s.end, where no valid record starts.
func examineTail(b []byte, seq uint64, s *segScan) {
	p := s.end
	s.dirtyEnd = lastNonZero(b, p)
	// Look for valid records among the damage, at every 8-byte boundary.
	for q := p; q+recHeaderSize <= s.dirtyEnd; {
		if s.headerErr == nil && q == p {
			q += 8 // p itself is known not to hold a valid record
			continue
		}
		if allZero(b[q : q+recHeaderSize]) {
			q += 8
			continue
		}
		h, ok := parseRecord(b[q:], seq)
		if !ok {
			q += 8
			continue
		}
		if s.tornWrites == nil {
			s.tornWrites = map[uint64]bool{}
		}
		s.tornWrites[h.write] = true
		s.maxWrite = max(s.maxWrite, h.write)
		q += recSize(h.n)
	}
}

// lastNonZero returns the offset just after the last non-zero byte of b
// at or after from, or from when there is none.
func lastNonZero(b []byte, from int) int {
	i := len(b)
	for i-8 >= from && binary.LittleEndian.Uint64(b[i-8:]) == 0 {
		i -= 8
	}
	for i > from && b[i-1] == 0 {
		i--
	}
	return i
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
