package rlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/histogram"
	"github.com/qmgr/qmgr/vfs"
	"golang.org/x/sys/unix"
)

// Fault injection (QMGR_CRASHPOINT=name:n:fail:k): a segment reservation
// that finds no space, and a sync that fails.
var (
	cpReserve = crashpoint.New("rlog.reserve")
	cpSync    = crashpoint.New("rlog.sync")
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
	// RetryInterval is how often a failed log tries to write again;
	// default 1s.
	RetryInterval time.Duration
}

// withDefaults is c with the defaults documented on its fields applied.
func (c Config) withDefaults() Config {
	if c.FS == nil {
		c.FS = vfs.OS()
	}
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	return c
}

// Validate reports a configuration that cannot work, as Open will use it
// (with its defaults applied); it changes nothing.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return fmt.Errorf("%w: no directory", ErrConfig)
	case c.LRSN == nil:
		return fmt.Errorf("%w: no LRSN source", ErrConfig)
	case len(c.Name) > 24:
		return fmt.Errorf("%w: name %q longer than 24 bytes", ErrConfig, c.Name)
	}
	if err := CheckSegmentSize(c.SegmentSize); err != nil {
		return err
	}
	switch {
	case c.MaxPending < 0:
		return fmt.Errorf("%w: MaxPending %d", ErrConfig, c.MaxPending)
	case c.RetryInterval < 0:
		return fmt.Errorf("%w: RetryInterval %v", ErrConfig, c.RetryInterval)
	}
	return nil
}

// CheckSegmentSize reports a segment size a log cannot use: under
// MinSegmentSize, not a multiple of 8, or over 1 TiB. (A member checks
// its configuration's size with it before it opens its log.)
func CheckSegmentSize(size int64) error {
	if size < MinSegmentSize || size%8 != 0 || size > 1<<40 {
		return fmt.Errorf("%w: segment size %d (at least %d, a multiple of 8, at most 1 TiB)", ErrConfig, size, MinSegmentSize)
	}
	return nil
}

// MaxPayload is the largest payload a record can carry in segments of
// the given size.
func MaxPayload(segmentSize int64) int {
	return int(segmentSize) - segHeaderSize - recHeaderSize
}

// Ticket names an appended record until it is settled: durable, or
// failed.
type Ticket uint64

// Stats counts what a log did since it was opened.
type Stats struct {
	Records  uint64 // records made durable
	Bytes    uint64 // bytes written, headers and padding included
	Writes   uint64 // writes (one per batch, more when a batch crosses segments)
	Syncs    uint64 // fdatasyncs of segments
	Segment  uint64 // the segment being written
	Failures uint64 // times a write, sync or reservation failed
	Failed   uint64 // records that failed (or whose outcome is uncertain)
}

// State says whether the log writes, and what went wrong last.
type State struct {
	// Failed: the log refuses records now (Append fails with ErrFailed);
	// it tries again every RetryInterval. Since is when it failed, Reason
	// why (the error of the write, sync or reservation).
	Failed bool
	Since  time.Time
	Reason string
	// Failures counts the times a write, sync or reservation failed since
	// the log was opened; LastFailure and LastReason are the latest.
	Failures    uint64
	LastFailure time.Time
	LastReason  string
	// ReserveErr says why the segment after the one being written could
	// not be reserved ("" when it is): the log writes on until the
	// current segment is full, then fails unless space has come back.
	ReserveErr string
}

// Log is an open recovery log. Its methods may be called from any number
// of goroutines.
type Log struct {
	cfg Config

	mu   sync.Mutex
	work sync.Cond // the writer waits here for records
	room sync.Cond // Append waits here for room in pend
	done sync.Cond // Wait waits here for records to settle
	pend []byte    // encoded records waiting; their headers hold n and type only
	// pendN records in pend; next is the ticket of the next Append.
	pendN int
	next  Ticket
	// Every ticket up to settled is settled: durable, or in failed.
	settled  Ticket
	failed   []failRange // tickets that failed, in order
	lastLRSN uint64      // LRSN of the last durable record
	// failure is why the log refuses records, nil while it writes.
	failure    error
	since      time.Time
	lastFail   error
	lastFailAt time.Time
	reserveErr error // the last reservation of the next segment failed
	closing    bool
	stats      Stats
	segs       []segInfo // every segment, oldest first; the last is written
	exited     chan struct{}
	closeCh    chan struct{} // closed by Close: a paused writer stops
	onSettle   func()        // called by the writer after records settle (OnSettle)
	onState    func(State)   // called when the State changes (OnState)

	// syncSeconds and syncRecords record every write's sync: how long it
	// took, and how many records it made durable (Histograms).
	syncSeconds, syncRecords *histogram.H

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

// failRange is tickets from..to that failed, and what their Waits return.
type failRange struct {
	from, to Ticket
	err      error
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
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// The directory's name (and its parents' it creates) must survive a
	// power cut as the segments in it must.
	if err := vfs.MkdirDurable(cfg.FS, cfg.Dir); err != nil {
		return nil, fmt.Errorf("rlog: create %s: %w", cfg.Dir, err)
	}
	l := &Log{cfg: cfg, next: 1, exited: make(chan struct{}), closeCh: make(chan struct{}), zeros: make([]byte, fillStep),
		syncSeconds: histogram.New(SyncSecondsBuckets), syncRecords: histogram.New(SyncRecordsBuckets)}
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

// sealOf returns where the records of segment seq end by the seal in the
// header of segment seq+1, or 0 when that segment does not exist or
// carries no seal (its records end where they end).
func sealOf(fsys vfs.FS, dir string, seq uint64) int {
	f, err := fsys.Open(filepath.Join(dir, segName(seq+1)))
	if err != nil {
		return 0
	}
	defer f.Close()
	b := make([]byte, segHeaderSize)
	if _, err := f.ReadAt(b, 0); err != nil || checkSegHeader(b, seq+1) != nil {
		return 0
	}
	return int(min(segSeal(b), 1<<40))
}

// sealed cuts b, the bytes of a segment, at seal (where the segment's
// records end by its successor's seal; 0: no seal). Whatever a failed
// write left after the seal is not part of the log.
func sealed(b []byte, seal int) []byte {
	if seal > 0 && seal < len(b) {
		return b[:max(seal, min(segHeaderSize, len(b)))]
	}
	return b
}

// firstRecord reads the header of segment seq and its first record (not
// one past the segment's seal).
func firstRecord(fsys vfs.FS, dir string, seq uint64, segSize int64) (hdr, bool, error) {
	f, err := fsys.Open(filepath.Join(dir, segName(seq)))
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
	h, ok := parseRecord(sealed(b, sealOf(fsys, dir, seq))[segHeaderSize:], seq)
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
	// ones a crash interrupted while they were prepared. A segment that
	// seals its predecessor stays (the seal hides what a failed write
	// left there), and becomes the tail.
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
		if s.records > 0 || len(s.tornWrites) > 0 || s.headerErr == nil && segSeal(b) != 0 {
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
	// Every earlier segment must start with a valid record, unless its
	// successor sealed it before its first.
	for _, seq := range seqs[:len(seqs)-1] {
		h, ok, err := firstRecord(fsys, dir, seq, l.cfg.SegmentSize)
		if err != nil {
			return fmt.Errorf("rlog: read %s: %w", segName(seq), err)
		}
		if !ok && sealOf(fsys, dir, seq) != segHeaderSize {
			return fmt.Errorf("%w: segment %s holds no valid first record, and later segments hold records", ErrCorrupt, segName(seq))
		}
		l.segs = append(l.segs, segInfo{seq: seq, firstLRSN: h.lrsn})
	}
	l.write = tail.maxWrite
	if tail.records > 0 {
		l.lastLRSN = tail.last.lrsn
	} else {
		// The tail segment holds only a torn write, or nothing (it seals
		// its predecessor): the last record is in an earlier segment.
		if err := l.lastBefore(seqs); err != nil {
			return err
		}
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

// lastBefore finds the last record and write number of the segments
// before the tail (the tail holds no record), reading them back from the
// newest until one holds a record.
func (l *Log) lastBefore(seqs []uint64) error {
	fsys, dir := l.cfg.FS, l.cfg.Dir
	for i := len(seqs) - 2; i >= 0; i-- {
		seq := seqs[i]
		b, err := readAll(fsys, filepath.Join(dir, segName(seq)))
		if err != nil {
			return fmt.Errorf("rlog: read %s: %w", segName(seq), err)
		}
		s, _ := scanSegment(sealed(b, sealOf(fsys, dir, seq)), seq, nil)
		if err := s.corruption(seq, false); err != nil {
			return err
		}
		l.write = max(l.write, s.maxWrite)
		if s.records > 0 {
			l.lastLRSN = s.last.lrsn
			return nil
		}
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

// prepare creates segment seq with its header and its whole space
// reserved (fallocate; a file system that cannot reserve gets a sparse
// file), and makes it and its name durable. The blocks are written with
// zeros ahead of the records as the segment fills (fillAhead).
func (l *Log) prepare(seq uint64) (vfs.File, error) {
	path := filepath.Join(l.cfg.Dir, segName(seq))
	f, err := l.cfg.FS.Create(path)
	if errors.Is(err, os.ErrExist) {
		// Left by an earlier attempt of this run that failed half way:
		// segments past the one being written hold no record.
		l.cfg.FS.Remove(path)
		f, err = l.cfg.FS.Create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("rlog: create segment %s: %w", segName(seq), err)
	}
	fail := func(err error) (vfs.File, error) {
		f.Close()
		l.cfg.FS.Remove(path)
		return nil, fmt.Errorf("rlog: reserve segment %s: %w", segName(seq), err)
	}
	head := make([]byte, min(l.cfg.SegmentSize, fillStep))
	encodeSegHeader(head, seq, l.cfg.SegmentSize, l.cfg.Name, 0)
	if _, err := f.WriteAt(head, 0); err != nil {
		return fail(err)
	}
	if cpReserve.Fail() {
		return fail(fmt.Errorf("%w (injected at %s)", unix.ENOSPC, cpReserve.Name()))
	}
	if err := f.Allocate(0, l.cfg.SegmentSize); errors.Is(err, vfs.ErrNotSupported) {
		err = f.Truncate(l.cfg.SegmentSize)
		if err != nil {
			return fail(err)
		}
	} else if err != nil {
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
		l.setReserve(err)
		ch <- prepResult{seq, f, err}
	}()
}

// setReserve records how the last reservation of a next segment went.
func (l *Log) setReserve(err error) {
	l.mu.Lock()
	changed := (err == nil) != (l.reserveErr == nil)
	l.reserveErr = err
	f, st := l.onState, l.stateLocked()
	l.mu.Unlock()
	if changed && f != nil {
		f(st)
	}
}

// nextSegment returns the segment after the current one: the one
// prepared ahead, or, when that failed, one prepared now (space may have
// come back).
func (l *Log) nextSegment() (vfs.File, uint64, error) {
	if l.prepared != nil {
		r := <-l.prepared
		l.prepared = nil
		if r.err == nil && r.seq == l.segSeq+1 {
			return r.f, r.seq, nil
		}
		if r.f != nil {
			r.f.Close()
		}
	}
	seq := l.segSeq + 1
	f, err := l.prepare(seq)
	l.setReserve(err)
	return f, seq, err
}

// keepNext makes f, segment seq (prepared, not yet current), the one the
// next nextSegment returns.
func (l *Log) keepNext(f vfs.File, seq uint64) {
	ch := make(chan prepResult, 1)
	ch <- prepResult{seq: seq, f: f}
	l.prepared = ch
}

// useSegment makes f, segment seq, the one written, from its start.
func (l *Log) useSegment(f vfs.File, seq uint64) {
	if l.seg != nil {
		l.seg.Close()
	}
	l.seg, l.segSeq, l.off, l.filled = f, seq, segHeaderSize, min(fillStep, l.cfg.SegmentSize)
	l.mu.Lock()
	l.segs = append(l.segs, segInfo{seq: seq})
	l.stats.Segment = seq
	l.mu.Unlock()
}

// switchSegment makes the next segment the current one.
func (l *Log) switchSegment() error {
	f, seq, err := l.nextSegment()
	if err != nil {
		return err
	}
	l.useSegment(f, seq)
	return nil
}

// seal ends the segment being written at its last durable point (off)
// and makes a fresh segment the current one, whose header records that
// point: recovery and readers ignore whatever a failed write or sync left
// in the old segment after it. The fresh segment, its header and its
// name are durable when seal returns nil.
func (l *Log) seal() error {
	f, seq, err := l.nextSegment()
	if err != nil {
		return err
	}
	head := make([]byte, segHeaderSize)
	encodeSegHeader(head, seq, l.cfg.SegmentSize, l.cfg.Name, uint64(l.off))
	if _, err := f.WriteAt(head, 0); err != nil {
		l.keepNext(f, seq)
		return fmt.Errorf("rlog: seal %s in %s: %w", segName(l.segSeq), segName(seq), err)
	}
	if err := l.sync(f, seq); err != nil {
		l.keepNext(f, seq)
		return fmt.Errorf("rlog: seal %s in %s: %w", segName(l.segSeq), segName(seq), err)
	}
	l.useSegment(f, seq)
	l.prepareNext()
	return nil
}

// sync makes what was written to f, segment seq, durable.
func (l *Log) sync(f vfs.File, seq uint64) error {
	if cpSync.Fail() {
		return fmt.Errorf("sync %s: %w (injected at %s)", segName(seq), unix.EIO, cpSync.Name())
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", segName(seq), err)
	}
	return nil
}

// Append adds a record whose payload is the concatenation of parts and
// returns its ticket; the record is durable once Wait returns nil for it.
// Append blocks while MaxPending bytes already wait, and fails with
// ErrFailed (wrapping the cause) while the log is failed.
func (l *Log) Append(typ uint8, parts ...[]byte) (Ticket, error) {
	return l.AppendAfter(0, typ, parts...)
}

// AppendAfter is Append for a record that must not be durable unless the
// record of ticket dep is (0: none): it fails with ErrFailed when dep
// failed or its outcome is uncertain. (While dep waits, the record waits
// behind it: a failure of dep's write fails every record waiting.)
func (l *Log) AppendAfter(dep Ticket, typ uint8, parts ...[]byte) (Ticket, error) {
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
	for l.failure == nil && !l.closing && len(l.pend) > 0 && len(l.pend)+size > l.cfg.MaxPending {
		l.room.Wait()
	}
	if l.closing {
		return 0, ErrClosed
	}
	if l.failure != nil {
		return 0, fmt.Errorf("%w: %w", ErrFailed, l.failure)
	}
	if settled, err := l.outcome(dep); dep != 0 && settled && err != nil {
		return 0, fmt.Errorf("%w: the record it follows was not logged: %v", ErrFailed, err)
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

// OnSettle makes the writer call f after records settle (became durable
// or failed; Outcome tells which). f must not block. It replaces any
// earlier f.
func (l *Log) OnSettle(f func()) {
	l.mu.Lock()
	l.onSettle = f
	l.mu.Unlock()
}

// OnState makes the log call f with its State whenever the log fails,
// writes again, or the reservation of its next segment fails or works
// again. f must not block or call the log. It replaces any earlier f.
func (l *Log) OnState(f func(State)) {
	l.mu.Lock()
	l.onState = f
	l.mu.Unlock()
}

// Outcome reports whether the record of ticket t has settled and, if it
// has, nil when it is durable or why it is not (an error wrapping
// ErrFailed, or ErrUncertain).
func (l *Log) Outcome(t Ticket) (settled bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcome(t)
}

// Outcomes is Outcome for several tickets, in ascending order, at once:
// it fills errs[i] for ticket ts[i] and returns how many of them (a
// prefix) have settled.
func (l *Log) Outcomes(ts []Ticket, errs []error) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, t := range ts {
		settled, err := l.outcome(t)
		if !settled {
			return i
		}
		errs[i] = err
	}
	return len(ts)
}

func (l *Log) outcome(t Ticket) (bool, error) {
	for i := len(l.failed) - 1; i >= 0 && l.failed[i].to >= t; i-- {
		if r := l.failed[i]; r.from <= t {
			return true, r.err
		}
	}
	return t <= l.settled, nil
}

// Wait blocks until the record of ticket t is durable, or returns why it
// is not: an error wrapping ErrFailed (it never will be) or ErrUncertain.
func (l *Log) Wait(t Ticket) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if settled, err := l.outcome(t); settled {
			return err
		}
		select {
		case <-l.exited:
			return ErrClosed
		default:
		}
		l.done.Wait()
	}
}

// Write appends a record and waits until it is durable.
func (l *Log) Write(typ uint8, parts ...[]byte) error {
	t, err := l.Append(typ, parts...)
	if err != nil {
		return err
	}
	return l.Wait(t)
}

// Durable returns the last settled ticket (every ticket up to it is
// durable or failed) and the LRSN of the last durable record (0 for a log
// that never held one).
func (l *Log) Durable() (Ticket, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.settled, l.lastLRSN
}

// Err returns why the log refuses records now (wrapping ErrFailed), or
// nil while it writes.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failure == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrFailed, l.failure)
}

// State returns the log's state.
func (l *Log) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stateLocked()
}

func (l *Log) stateLocked() State {
	st := State{Failed: l.failure != nil, Failures: l.stats.Failures, LastFailure: l.lastFailAt}
	if l.failure != nil {
		st.Since, st.Reason = l.since, l.failure.Error()
	}
	if l.lastFail != nil {
		st.LastReason = l.lastFail.Error()
	}
	if l.reserveErr != nil {
		st.ReserveErr = l.reserveErr.Error()
	}
	return st
}

// The bounds of the sync histograms (Histograms): 50µs to about 3.3s, and
// 1 to 4096 records.
var (
	SyncSecondsBuckets = []float64{50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 1.6e-3, 3.2e-3, 6.4e-3, 12.8e-3, 25.6e-3, 51.2e-3, 102.4e-3, 204.8e-3, 409.6e-3, 819.2e-3, 1.6384, 3.2768}
	SyncRecordsBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096}
)

// Histograms returns what the log's writes recorded since it was opened:
// how long each sync (fdatasync) of a write took, in seconds, and how
// many records each made durable.
func (l *Log) Histograms() (syncSeconds, recordsPerSync histogram.Snapshot) {
	return l.syncSeconds.Snapshot(), l.syncRecords.Snapshot()
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// Close makes every record appended so far durable (unless the log has
// failed), stops the writer and closes the files. It returns the log's
// failure, if it is failed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		<-l.exited
		return l.Err()
	}
	l.closing = true
	close(l.closeCh)
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

// writer is the goroutine that writes batches, and makes a failed log
// write again.
func (l *Log) writer() {
	defer close(l.exited)
	for {
		l.mu.Lock()
		for l.pendN == 0 && !l.closing && l.failure == nil {
			l.work.Wait()
		}
		if l.failure != nil {
			l.mu.Unlock()
			if !l.pause() {
				return
			}
			l.resume()
			continue
		}
		if l.pendN == 0 {
			l.mu.Unlock()
			return
		}
		batch, count, first := l.pend, l.pendN, l.settled+1
		l.pend, l.pendN = l.spare[:0], 0
		l.room.Broadcast()
		l.mu.Unlock()

		r := l.writeBatch(batch, count)
		l.spare = batch
		l.settle(first, r)
	}
}

// pause waits RetryInterval before a failed log tries again; false when
// the log is closed meanwhile.
func (l *Log) pause() bool {
	t := time.NewTimer(l.cfg.RetryInterval)
	defer t.Stop()
	select {
	case <-l.closeCh:
		return false
	case <-t.C:
		return true
	}
}

// resume tries to make a failed log write again: it seals the segment
// being written (a failed write may have left bytes after its last
// durable point) and goes on in a fresh one.
func (l *Log) resume() {
	err := l.seal()
	l.mu.Lock()
	if err != nil {
		l.failure = err
		l.mu.Unlock()
		return
	}
	l.failure = nil
	f, st := l.onState, l.stateLocked()
	l.mu.Unlock()
	if f != nil {
		f(st)
	}
}

// batchResult is what writeBatch did with a batch of records.
type batchResult struct {
	durable  int    // records made durable: the first durable of the batch
	lastLRSN uint64 // LRSN of the last of them
	// written: records after them that a failed write or sync may have
	// put (whole or in part) into a segment.
	written int
	err     error // why the records after the durable ones are not
}

// settle records what became of the records of a batch whose first
// ticket is first. After a failure it seals the segment off at once, so
// that whatever the failed write left there is never read as records,
// and fails every record of the batch and every record waiting: those
// whose write failed with ErrFailed when the seal worked and
// ErrUncertain when it did not, the others with ErrFailed. The log then
// refuses records until a seal works (the writer retries every
// RetryInterval). Records are reported settled only after the seal.
func (l *Log) settle(first Ticket, r batchResult) {
	var sealErr error
	if r.err != nil {
		sealErr = l.seal()
	}
	now := time.Now()
	l.mu.Lock()
	if r.durable > 0 {
		l.settled = first + Ticket(r.durable) - 1
		l.lastLRSN = r.lastLRSN
		l.stats.Records += uint64(r.durable)
	}
	if r.err != nil {
		failErr := fmt.Errorf("%w: %w", ErrFailed, r.err)
		from, last := first+Ticket(r.durable), l.next-1
		if r.written > 0 {
			werr := failErr
			if sealErr != nil {
				werr = fmt.Errorf("%w: %w (sealing it off: %v)", ErrUncertain, r.err, sealErr)
			}
			l.failed = append(l.failed, failRange{from, from + Ticket(r.written) - 1, werr})
			from += Ticket(r.written)
		}
		if from <= last {
			l.failed = append(l.failed, failRange{from, last, failErr})
		}
		l.stats.Failed += uint64(last - first - Ticket(r.durable) + 1)
		l.settled = last
		l.pend, l.pendN = l.pend[:0], 0
		l.stats.Failures++
		l.lastFail, l.lastFailAt = r.err, now
		if sealErr != nil {
			l.failure, l.since = r.err, now
		}
		l.room.Broadcast()
	}
	fs, fst, st := l.onSettle, l.onState, l.stateLocked()
	l.done.Broadcast()
	l.mu.Unlock()
	// The state first: whoever learns of a failed record from the
	// settlement finds the reason in the state.
	if r.err != nil && fst != nil {
		fst(st)
	}
	if fs != nil {
		fs()
	}
}

// writeBatch assigns LRSNs to the count records of batch and writes them,
// syncing each segment it wrote to.
func (l *Log) writeBatch(batch []byte, count int) batchResult {
	lrsn, err := l.cfg.LRSN.Next(uint64(count))
	if err != nil {
		return batchResult{err: fmt.Errorf("reserve %d LRSNs: %w", count, err)}
	}
	var r batchResult
	limit := l.segLimit()
	start, inChunk := 0, 0
	write := func(end int) bool {
		next, err := l.writeChunk(batch[start:end], lrsn)
		if err != nil {
			r.written, r.err = inChunk, err
			return false
		}
		r.durable += inChunk
		r.lastLRSN = next - 1
		lrsn, start, inChunk = next, end, 0
		return true
	}
	for p := 0; p < len(batch); {
		size := recSize(int(binary.LittleEndian.Uint32(batch[p:])))
		if l.off+int64(p-start+size) > limit {
			if p > start && !write(p) {
				return r
			}
			if err := l.switchSegment(); err != nil {
				r.err = err
				return r
			}
			l.prepareNext()
			limit = l.segLimit()
			continue
		}
		p += size
		inChunk++
	}
	write(len(batch))
	return r
}

// writeChunk completes the headers of the records in chunk (LRSNs from
// lrsn on, this write's number, checksums), writes it at the end of the
// current segment and syncs. It returns the next LRSN. On an error the
// chunk may be in the segment in whole or in part, synced or not.
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
	t0 := time.Now()
	if err := l.sync(l.seg, l.segSeq); err != nil {
		return 0, err
	}
	l.syncSeconds.Observe(time.Since(t0).Seconds())
	l.syncRecords.Observe(float64(lrsn - first))
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
// it removed. A segment holding no record (sealed before its first) goes
// with the segments before it.
func (l *Log) Release(before uint64) (int, error) {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	var drop []uint64
	for i := 0; i+1 < len(l.segs); i++ {
		next := uint64(0) // the first LRSN after segment i
		for _, s := range l.segs[i+1:] {
			if next = s.firstLRSN; next != 0 {
				break
			}
		}
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
