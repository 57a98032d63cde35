package rlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/qmgr/qmgr/vfs"
)

// Reader reads the records of a log directory in order, from a given LRSN
// on. It never changes the files, so it may read the log of a member that
// is running (it sees what has been written so far) or dead (a torn tail
// is where its records end). It holds one segment in memory at a time.
type Reader struct {
	fsys vfs.FS
	dir  string
	from uint64
	segs []uint64
	i    int // index in segs of the segment in buf
	buf  []byte
	pos  int
	scan segScan // the segment in buf: records read so far
	err  error
	// loaded: a segment was read (one that vanishes after that is not a
	// released head segment).
	loaded bool
}

// NewReader opens the log in dir for reading records with an LRSN of at
// least from (0: all of them).
func NewReader(fsys vfs.FS, dir string, from uint64) (*Reader, error) {
	if fsys == nil {
		fsys = vfs.OS()
	}
	seqs, err := listSegments(fsys, dir)
	if err != nil {
		return nil, err
	}
	r := &Reader{fsys: fsys, dir: dir, from: from, segs: seqs, i: -1}
	// Skip the segments whose successor starts at or before from: all
	// their records are older.
	if from > 0 {
		for len(r.segs) > 1 {
			h, ok, err := firstRecord(fsys, dir, r.segs[1], 1<<40)
			if err != nil {
				return nil, fmt.Errorf("rlog: read %s: %w", segName(r.segs[1]), err)
			}
			if !ok || h.lrsn > from {
				break
			}
			r.segs = r.segs[1:]
		}
	}
	return r, nil
}

// Next returns the next record, io.EOF after the last one, or an error
// wrapping ErrCorrupt where the log is damaged in a way a crash cannot
// explain.
func (r *Reader) Next() (Record, error) {
	for r.err == nil {
		if r.i >= 0 && r.i < len(r.segs) {
			seq := r.segs[r.i]
			if h, ok := parseRecord(r.buf[r.pos:], seq); ok {
				p := r.pos
				r.pos += recSize(h.n)
				r.scan.records++
				r.scan.last = h
				if h.lrsn < r.from {
					continue
				}
				return Record{LRSN: h.lrsn, Type: h.typ, Payload: r.buf[p+recHeaderSize : p+recHeaderSize+h.n]}, nil
			}
			// The records of this segment end here: check what follows.
			r.scan.end = r.pos
			examineTail(r.buf, seq, &r.scan)
			if err := r.scan.corruption(seq, !r.laterRecords()); err != nil {
				r.err = err
				break
			}
		}
		r.i++
		if r.i >= len(r.segs) {
			r.err = io.EOF
			break
		}
		if err := r.load(); err != nil {
			if r.vanished(err) {
				r.segs = append(r.segs[:r.i], r.segs[r.i+1:]...)
				r.i--
				continue
			}
			r.err = err
		}
		r.loaded = true
	}
	return Record{}, r.err
}

// vanished reports whether err is a segment removed since NewReader listed
// it by the writer of a live log, which never removes one that a reader
// from r.from needs: an empty spare at the tail (dropped when its member
// opens the log again) or released segments at the head (below every
// replay point). A segment missing between others is an error.
func (r *Reader) vanished(err error) bool {
	if !errors.Is(err, fs.ErrNotExist) {
		return false
	}
	if !r.loaded {
		return true // the head
	}
	for _, seq := range r.segs[r.i+1:] {
		if f, err := r.fsys.Open(filepath.Join(r.dir, segName(seq))); err == nil {
			f.Close()
			return false
		}
	}
	return true // the tail
}

// load reads segment r.segs[r.i] into buf.
func (r *Reader) load() error {
	seq := r.segs[r.i]
	f, err := r.fsys.Open(filepath.Join(r.dir, segName(seq)))
	if err != nil {
		return fmt.Errorf("rlog: open %s: %w", segName(seq), err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("rlog: %s: %w", segName(seq), err)
	}
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	r.buf = r.buf[:size]
	if n, err := f.ReadAt(r.buf, 0); err != nil && !(err == io.EOF && int64(n) == size) {
		return fmt.Errorf("rlog: read %s: %w", segName(seq), err)
	}
	// What a failed write left after the segment's seal is not read.
	r.buf = sealed(r.buf, sealOf(r.fsys, r.dir, seq))
	r.scan = segScan{}
	r.scan.headerErr = checkSegHeader(r.buf, seq)
	r.pos = segHeaderSize
	if r.scan.headerErr != nil {
		// No record is read from a segment whose header is wrong; what the
		// segment holds decides whether that is corruption.
		r.pos = len(r.buf)
		r.scan.end = segHeaderSize
		if len(r.buf) < segHeaderSize {
			r.scan.end = len(r.buf)
		}
		examineTail(r.buf, seq, &r.scan)
		if err := r.scan.corruption(seq, !r.laterRecords()); err != nil {
			return err
		}
		return nil
	}
	return nil
}

// laterRecords reports whether a segment after the current one starts
// with a valid record (so the current one was complete and synced).
func (r *Reader) laterRecords() bool {
	for _, seq := range r.segs[r.i+1:] {
		if _, ok, _ := firstRecord(r.fsys, r.dir, seq, 1<<40); ok {
			return true
		}
	}
	return false
}
