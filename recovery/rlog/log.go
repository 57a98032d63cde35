package rlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/vfs"
)

// LRSNSource hands out the group-wide log record sequence numbers.
type LRSNSource interface {
	// Next reserves n consecutive LRSNs and returns the first. Every LRSN
	// it returns is greater than every one it returned before and than
	// every value passed to AtLeast. An error fails the log.
	Next(n uint64) (uint64, error)
	// AtLeast makes every later LRSN greater than v.
	AtLeast(v uint64) error
}

// Counter is an LRSNSource in process memory, for a log whose LRSNs need
// not merge with other processes' (tests, tools).
type Counter struct {
	v atomic.Uint64 // the last LRSN handed out
}

func (c *Counter) Next(n uint64) (uint64, error) { return c.v.Add(n) - n + 1, nil }

func (c *Counter) AtLeast(v uint64) error {
	for {
		cur := c.v.Load()
		if cur >= v || c.v.CompareAndSwap(cur, v) {
			return nil
		}
	}
}

// Defaults of Config.
const (
	DefaultSegmentSize = 64 << 20
	DefaultMaxPending  = 64 << 20
	MinSegmentSize     = 4096
)

// Config says where a log lives and how it writes.
type Config struct {
	// FS is the file layer; nil means vfs.OS().
	FS vfs.FS
	// Dir is the log's own directory (created if missing). Required.
	Dir string
	// Name is recorded in segment headers (the member's name; at most 24
	// bytes).
	Name string
	// LRSN hands out sequence numbers. Required.
	LRSN LRSNSource
	// SegmentSize is the size of each segment file; default 64 MiB, at
	// least 4 KiB. A record must fit in one segment. A log reopened with
	// another size keeps its old segments as they are.
	SegmentSize int64
	// MaxPending is how many bytes of records may wait for the writer
	// before Append blocks; default 64 MiB.
	MaxPending int
	// ArchiveDir, when set, receives released segments instead of their
	// being deleted.
	ArchiveDir string
}

// Validate fills in defaults and reports a configuration that cannot work.
func (c *Config) Validate() error {
	if c.FS == nil {
		c.FS = vfs.OS()
	}
	if c.Dir == "" {
		return fmt.Errorf("%w: no directory", ErrConfig)
	}
	if c.LRSN == nil {
		return fmt.Errorf("%w: no LRSN source", ErrConfig)
	}
	if len(c.Name) > 24 {
		return fmt.Errorf("%w: name %q longer than 24 bytes", ErrConfig, c.Name)
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.SegmentSize < MinSegmentSize || c.SegmentSize%8 != 0 || c.SegmentSize > 1<<40 {
		return fmt.Errorf("%w: segment size %d (at least %d, a multiple of 8)", ErrConfig, c.SegmentSize, MinSegmentSize)
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.MaxPending < 0 {
		return fmt.Errorf("%w: MaxPending %d", ErrConfig, c.MaxPending)
	}
	return nil
}

// MaxPayload is the largest payload a record can carry in segments of
// the given size.
func MaxPayload(segmentSize int64) int {
	return int(segmentSize) - segHeaderSize - recHeaderSize
}

// Ticket names an appended record until it is durable.
type Ticket uint64

// Stats counts what a log did since it was opened.
type Stats struct {
	Records uint64 // records made durable
	Bytes   uint64 // bytes written, headers and padding included
	Writes  uint64 // writes (one per batch, more when a batch crosses segments)
	Syncs   uint64 // fdatasyncs of segments
	Segment uint64 // the segment being written
}

// Log is an open recovery log. Its methods may be called from any number
// of goroutines.
type Log struct {
	cfg Config

	mu       sync.Mutex
	work     sync.Cond // the writer waits here for records
	room     sync.Cond // Append waits here for room in pend
	done     sync.Cond // Wait waits here for durability
	pend     []byte    // encoded records waiting; their headers hold n and type only
	pendN    int       // records in pend
	next     Ticket    // ticket of the next Append
	durable  Ticket    // every ticket up to this one is durable
	lastLRSN uint64    // LRSN of the last durable record
	err      error     // sticky: the log failed
	closing  bool
	stats    Stats
	segs     []segInfo // every segment, oldest first; the last is written
	exited   chan struct{}
	onDur    func(Ticket, error) // called by the writer after each batch (OnDurable)

	// Writer goroutine only.
	spare    []byte
	seg      vfs.File
	segSeq   uint64
	off      int64
	filled   int64  // the segment is written (zeros or records) up to here
	zeros    []byte // fillStep zeros
	write    uint64 // write number of the last write
	prepared chan prepResult
}

type segInfo struct {
	seq       uint64
	firstLRSN uint64 // 0 while the segment holds no record
}

type prepResult struct {
	seq uint64
	f   vfs.File
	err error
}

// Open opens the log in cfg.Dir, creating it if there is none. It repairs
// a torn tail left by a crash and fails with ErrCorrupt if it finds damage
// that a crash cannot explain.
func Open(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The directory's name (and its parents' it creates) must survive a
	// power cut as the segments in it must.
	if err := vfs.MkdirDurable(cfg.FS, cfg.Dir); err != nil {
		return nil, fmt.Errorf("rlog: create %s: %w", cfg.Dir, err)
	}
	l := &Log{cfg: cfg, next: 1, exited: make(chan struct{}), zeros: make([]byte, fillStep)}
	l.work.L, l.room.L, l.done.L = &l.mu, &l.mu, &l.mu
	if err := l.recover(); err != nil {
		if l.seg != nil {
			l.seg.Close()
		}
		return nil, err
	}
	l.prepareNext()
	go l.writer()
	return l, nil
}

// listSegments returns the sequence numbers of the segments in dir,
// ascending.
func listSegments(fsys vfs.FS, dir string) ([]uint64, error) {
	names, err := fsys.List(dir)
	if err != nil {
		return nil, fmt.Errorf("rlog: list %s: %w", dir, err)
	}
	var seqs []uint64
	for _, n := range names {
		if seq, ok := parseSegName(n); ok {
			seqs = append(seqs, seq)
		}
	}
	return seqs, nil
}

// readAll reads a whole file.
func readAll(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, err
	}
	return b, nil
}

// firstRecord reads the header of segment seq and its first record.
func firstRecord(fsys vfs.FS, path string, seq uint64, segSize int64) (hdr, bool, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return hdr{}, false, err
	}
	defer f.Close()
	b := make([]byte, segHeaderSize+recHeaderSize)
	if _, err := f.ReadAt(b, 0); err != nil {
		return hdr{}, false, nil // too short to hold a record
	}
	if checkSegHeader(b, seq) != nil {
		return hdr{}, false, nil
	}
	n := int(binary.LittleEndian.Uint32(b[segHeaderSize:]))
	if recSize(n) > int(segSize) {
		return hdr{}, false, nil
	}
	b = make([]byte, segHeaderSize+recSize(n))
	if _, err := f.ReadAt(b, 0); err != nil {
		return hdr{}, false, nil
	}
	h, ok := parseRecord(b[segHeaderSize:], seq)
	return h, ok, nil
}

// recover finds the tail of the log and positions the writer after it.
func (l *Log) recover() error {
	fsys, dir := l.cfg.FS, l.cfg.Dir
	seqs, err := listSegments(fsys, dir)
	if err != nil {
		return err
	}
	// Drop trailing segments without records: spares prepared ahead, or
	// ones a crash interrupted while they were prepared.
	var tail segScan
	var tailBuf []byte
	removed := false
	for len(seqs) > 0 {
		seq := seqs[len(seqs)-1]
		b, err := readAll(fsys, filepath.Join(dir, segName(seq)))
		if err != nil {
			return fmt.Errorf("rlog: read %s: %w", segName(seq), err)
		}
		s, _ := scanSegment(b, seq, nil)
		if s.records > 0 || len(s.tornWrites) > 0 {
			tail, tailBuf = s, b
			break
		}
		if err := fsys.Remove(filepath.Join(dir, segName(seq))); err != nil {
			return fmt.Errorf("rlog: remove empty segment %s: %w", segName(seq), err)
		}
		removed = true
		seqs = seqs[:len(seqs)-1]
	}
	if removed {
		if err := fsys.SyncDir(dir); err != nil {
			return fmt.Errorf("rlog: %w", err)
		}
	}
	if len(seqs) == 0 {
		l.segSeq = 0
		return l.switchSegment()
	}
	tailSeq := seqs[len(seqs)-1]
	if err := tail.corruption(tailSeq, true); err != nil {
		return err
	}
	// Every earlier segment must start with a valid record.
	for _, seq := range seqs[:len(seqs)-1] {
		h, ok, err := firstRecord(fsys, filepath.Join(dir, segName(seq)), seq, l.cfg.SegmentSize)
		if err != nil {
			return fmt.Errorf("rlog: read %s: %w", segName(seq), err)
		}
		if !ok {
			return fmt.Errorf("%w: segment %s holds no valid first record, and later segments hold records", ErrCorrupt, segName(seq))
		}
		l.segs = append(l.segs, segInfo{seq: seq, firstLRSN: h.lrsn})
	}
	l.write = tail.maxWrite
	if tail.records > 0 {
		l.lastLRSN = tail.last.lrsn
	} else if len(seqs) > 1 {
		// The tail segment holds only a torn write: the last record is in
		// the segment before.
		prev := seqs[len(seqs)-2]
		b, err := readAll(fsys, filepath.Join(dir, segName(prev)))
		if err != nil {
			return fmt.Errorf("rlog: read %s: %w", segName(prev), err)
		}
		s, _ := scanSegment(b, prev, nil)
		if err := s.corruption(prev, false); err != nil {
			return err
		}
		l.lastLRSN = s.last.lrsn
		l.write = max(l.write, s.maxWrite)
	}
	f, err := fsys.Open(filepath.Join(dir, segName(tailSeq)))
	if err != nil {
		return fmt.Errorf("rlog: open %s: %w", segName(tailSeq), err)
	}
	l.seg, l.segSeq, l.off = f, tailSeq, int64(tail.end)
	l.filled = int64(tail.dirtyEnd) // beyond it, blocks may be holes: fill again
	if tail.damaged() {
		// A torn last write: nothing of it was acknowledged. Zero it so
		// that no piece of it is ever read as a record again.
		if _, err := f.WriteAt(make([]byte, tail.dirtyEnd-tail.end), int64(tail.end)); err != nil {
			return fmt.Errorf("rlog: zero torn tail of %s: %w", segName(tailSeq), err)
		}
		if err := f.Sync(); err != nil {
			return fmt.Errorf("rlog: zero torn tail of %s: %w", segName(tailSeq), err)
		}
	}
	if int64(len(tailBuf)) != l.cfg.SegmentSize {
		// Written with another segment size: keep appending as far as
		// this one goes.
		l.off = min(l.off, int64(len(tailBuf)))
	}
	first := uint64(0)
	if tail.records > 0 {
		first = tail.first.lrsn
	}
	l.segs = append(l.segs, segInfo{seq: tailSeq, firstLRSN: first})
	if err := l.cfg.LRSN.AtLeast(l.lastLRSN); err != nil {
		return fmt.Errorf("rlog: raise the LRSN past the log's last (%d): %w", l.lastLRSN, err)
	}
	return nil
}

// segLimit is the size of the segment being written.
func (l *Log) segLimit() int64 {
	if sz, err := l.seg.Size(); err == nil && sz > 0 {
		return sz
	}
	return l.cfg.SegmentSize
}

// prepare creates segment seq at its full size (a sparse file) with its
// header, and makes it durable. The blocks are written with zeros ahead of
// the records as the segment fills (fillAhead).
func (l *Log) prepare(seq uint64) (vfs.File, error) {
	path := filepath.Join(l.cfg.Dir, segName(seq))
	f, err := l.cfg.FS.Create(path)
	if err != nil {
		return nil, fmt.Errorf("rlog: create segment %s: %w", segName(seq), err)
	}
	fail := func(err error) (vfs.File, error) {
		f.Close()
		l.cfg.FS.Remove(path)
		return nil, fmt.Errorf("rlog: prepare segment %s: %w", segName(seq), err)
	}
	head := make([]byte, min(l.cfg.SegmentSize, fillStep))
	encodeSegHeader(head, seq, l.cfg.SegmentSize, l.cfg.Name)
	if _, err := f.WriteAt(head, 0); err != nil {
		return fail(err)
	}
	if err := f.Truncate(l.cfg.SegmentSize); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := vfs.SyncParent(l.cfg.FS, path); err != nil {
		return fail(err)
	}
	return f, nil
}

// fillStep is how far ahead of the records a segment's blocks are written
// with zeros: a write that reaches past the zeroed part first zeros the
// next fillStep bytes, so the file system allocates blocks once per step
// and the syncs of the records after it have no allocation to write.
const fillStep = 1 << 20

// fillAhead zeros the segment past end, when end reaches past the zeroed
// part. The caller's next sync covers it.
func (l *Log) fillAhead(end int64, limit int64) error {
	if end <= l.filled || l.filled >= limit {
		return nil
	}
	from := max(l.filled, end)
	to := min(from+fillStep, limit)
	if to > from {
		if _, err := l.seg.WriteAt(l.zeros[:to-from], from); err != nil {
			return fmt.Errorf("zero %s at %d: %w", segName(l.segSeq), from, err)
		}
	}
	l.filled = to
	return nil
}

// prepareNext starts preparing the segment after the current one.
func (l *Log) prepareNext() {
	seq := l.segSeq + 1
	ch := make(chan prepResult, 1)
	l.prepared = ch
	go func() {
		f, err := l.prepare(seq)
		ch <- prepResult{seq, f, err}
	}()
}

// switchSegment makes the next segment the current one.
func (l *Log) switchSegment() error {
	var r prepResult
	if l.prepared != nil {
		r = <-l.prepared
		l.prepared = nil
	} else {
		f, err := l.prepare(l.segSeq + 1)
		r = prepResult{l.segSeq + 1, f, err}
	}
	if r.err != nil {
		return r.err
	}
	if l.seg != nil {
		l.seg.Close()
	}
	l.seg, l.segSeq, l.off, l.filled = r.f, r.seq, segHeaderSize, min(fillStep, l.cfg.SegmentSize)
	l.mu.Lock()
	l.segs = append(l.segs, segInfo{seq: r.seq})
	l.stats.Segment = r.seq
	l.mu.Unlock()
	return nil
}

// Append adds a record whose payload is the concatenation of parts and
// returns its ticket; the record is durable once Wait returns nil for it.
// Append blocks while MaxPending bytes already wait.
func (l *Log) Append(typ uint8, parts ...[]byte) (Ticket, error) {
	if typ == 0 {
		return 0, ErrType
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	size := recSize(n)
	if n > MaxPayload(l.cfg.SegmentSize) {
		return 0, fmt.Errorf("%w: payload of %d bytes, at most %d", ErrTooLarge, n, MaxPayload(l.cfg.SegmentSize))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.err == nil && !l.closing && len(l.pend) > 0 && len(l.pend)+size > l.cfg.MaxPending {
		l.room.Wait()
	}
	if l.err != nil {
		return 0, l.err
	}
	if l.closing {
		return 0, ErrClosed
	}
	at := len(l.pend)
	l.pend = grow(l.pend, size)
	b := l.pend[at : at+size]
	binary.LittleEndian.PutUint32(b, uint32(n))
	b[4] = typ
	o := recHeaderSize
	for _, p := range parts {
		o += copy(b[o:], p)
	}
	clear(b[o:])
	l.pendN++
	t := l.next
	l.next++
	l.work.Signal()
	return t, nil
}

func grow(b []byte, n int) []byte {
	if len(b)+n <= cap(b) {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n, 64<<10))
	copy(nb, b)
	return nb
}

// OnDurable makes the writer call f after every batch: with the last
// durable ticket, or with the error that failed the log. f must not block.
// It replaces any earlier f.
func (l *Log) OnDurable(f func(Ticket, error)) {
	l.mu.Lock()
	l.onDur = f
	l.mu.Unlock()
}

// Wait blocks until the record of ticket t is durable, or returns why it
// never will be.
func (l *Log) Wait(t Ticket) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.durable < t && l.err == nil {
		l.done.Wait()
	}
	if l.durable >= t {
		return nil
	}
	return l.err
}

// Write appends a record and waits until it is durable.
func (l *Log) Write(typ uint8, parts ...[]byte) error {
	t, err := l.Append(typ, parts...)
	if err != nil {
		return err
	}
	return l.Wait(t)
}

// Durable returns the last durable ticket and the LRSN of the last
// durable record (0 for a log that never held one).
func (l *Log) Durable() (Ticket, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable, l.lastLRSN
}

// Err returns why the log failed, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close makes every record appended so far durable (unless the log has
// failed), stops the writer and closes the files. It returns the log's
// failure, if any.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		<-l.exited
		return l.Err()
	}
	l.closing = true
	l.work.Signal()
	l.room.Broadcast()
	l.mu.Unlock()
	<-l.exited
	l.mu.Lock()
	l.done.Broadcast()
	l.mu.Unlock()
	if l.prepared != nil {
		if r := <-l.prepared; r.f != nil {
			r.f.Close()
		}
	}
	if l.seg != nil {
		l.seg.Close()
	}
	return l.Err()
}

// writer is the goroutine that writes batches.
func (l *Log) writer() {
	defer close(l.exited)
	for {
		l.mu.Lock()
		for l.pendN == 0 && !l.closing && l.err == nil {
			l.work.Wait()
		}
		if l.err != nil || l.pendN == 0 {
			l.mu.Unlock()
			return
		}
		batch, count, last := l.pend, l.pendN, l.next-1
		l.pend, l.pendN = l.spare[:0], 0
		l.room.Broadcast()
		l.mu.Unlock()

		lastLRSN, err := l.writeBatch(batch, count)
		l.spare = batch

		l.mu.Lock()
		if err != nil {
			l.err = fmt.Errorf("%w: %w", ErrFailed, err)
			l.room.Broadcast()
		} else {
			l.durable = last
			l.lastLRSN = lastLRSN
			l.stats.Records += uint64(count)
		}
		f := l.onDur
		l.done.Broadcast()
		l.mu.Unlock()
		if f != nil {
			if err != nil {
				f(0, l.Err())
			} else {
				f(last, nil)
			}
		}
	}
}

// writeBatch assigns LRSNs to the count records of batch and writes them,
// syncing each segment it wrote to. It returns the last LRSN.
func (l *Log) writeBatch(batch []byte, count int) (uint64, error) {
	lrsn, err := l.cfg.LRSN.Next(uint64(count))
	if err != nil {
		return 0, fmt.Errorf("reserve %d LRSNs: %w", count, err)
	}
	limit := l.segLimit()
	start := 0
	p := 0
	for p < len(batch) {
		size := recSize(int(binary.LittleEndian.Uint32(batch[p:])))
		if l.off+int64(p-start+size) > limit {
			if p > start {
				var err error
				if lrsn, err = l.writeChunk(batch[start:p], lrsn); err != nil {
					return 0, err
				}
			}
			if err := l.switchSegment(); err != nil {
				return 0, err
			}
			l.prepareNext()
			limit = l.segLimit()
			start = p
			continue
		}
		p += size
	}
	lrsn, err = l.writeChunk(batch[start:], lrsn)
	return lrsn - 1, err
}

// writeChunk completes the headers of the records in chunk (LRSNs from
// lrsn on, this write's number, checksums), writes it at the end of the
// current segment and syncs. It returns the next LRSN.
func (l *Log) writeChunk(chunk []byte, lrsn uint64) (uint64, error) {
	l.write++
	first := lrsn
	for p := 0; p < len(chunk); {
		n := int(binary.LittleEndian.Uint32(chunk[p:]))
		size := recSize(n)
		var flags uint8
		if p+size == len(chunk) {
			flags = flagLast
		}
		putHeader(chunk[p:], l.segSeq, hdr{n: n, typ: chunk[p+4], flags: flags, lrsn: lrsn, write: l.write})
		lrsn++
		p += size
	}
	name := segName(l.segSeq)
	if err := l.fillAhead(l.off+int64(len(chunk)), l.segLimit()); err != nil {
		return 0, err
	}
	if _, err := l.seg.WriteAt(chunk, l.off); err != nil {
		return 0, fmt.Errorf("write %s at %d: %w", name, l.off, err)
	}
	if err := l.seg.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", name, err)
	}
	l.off += int64(len(chunk))
	l.mu.Lock()
	if s := &l.segs[len(l.segs)-1]; s.firstLRSN == 0 {
		s.firstLRSN = first
	}
	l.stats.Bytes += uint64(len(chunk))
	l.stats.Writes++
	l.stats.Syncs++
	l.mu.Unlock()
	return lrsn, nil
}

// Release removes (or archives) every segment all of whose records have
// an LRSN below before, except the one being written, and returns how many
// it removed.
func (l *Log) Release(before uint64) (int, error) {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	var drop []uint64
	for i := 0; i+1 < len(l.segs); i++ {
		next := l.segs[i+1].firstLRSN
		if next == 0 || next > before {
			break
		}
		drop = append(drop, l.segs[i].seq)
	}
	l.mu.Unlock()
	if len(drop) == 0 {
		return 0, nil
	}
	fsys := l.cfg.FS
	if l.cfg.ArchiveDir != "" {
		if err := vfs.MkdirDurable(fsys, l.cfg.ArchiveDir); err != nil {
			return 0, fmt.Errorf("rlog: archive directory: %w", err)
		}
	}
	done := 0
	var err error
	for _, seq := range drop {
		path := filepath.Join(l.cfg.Dir, segName(seq))
		if l.cfg.ArchiveDir != "" {
			err = fsys.Rename(path, filepath.Join(l.cfg.ArchiveDir, segName(seq)))
		} else {
			err = fsys.Remove(path)
		}
		if err != nil {
			err = fmt.Errorf("rlog: release %s: %w", segName(seq), err)
			break
		}
		done++
	}
	l.mu.Lock()
	l.segs = l.segs[done:]
	l.mu.Unlock()
	if serr := fsys.SyncDir(l.cfg.Dir); serr != nil && err == nil {
		err = fmt.Errorf("rlog: %w", serr)
	}
	if l.cfg.ArchiveDir != "" {
		if serr := fsys.SyncDir(l.cfg.ArchiveDir); serr != nil && err == nil {
			err = fmt.Errorf("rlog: %w", serr)
		}
	}
	return done, err
}
