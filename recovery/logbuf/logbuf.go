package logbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// Sentinel errors; every error from this package wraps one of them.
var (
	ErrConfig       = errors.New("logbuf: invalid configuration")
	ErrNoRing       = errors.New("logbuf: every ring of the member's log buffer is claimed")
	ErrConsumerGone = errors.New("logbuf: the member's log writer is gone (the outcome of the records not yet durable is unknown)")
	// ErrBufferLost: the buffer's file was truncated under its mapping
	// (a memory fault on it); the member replaces it. For the records
	// not yet durable it means what ErrConsumerGone means.
	ErrBufferLost = errors.New("logbuf: the member's log buffer was truncated or damaged while mapped (the outcome of the records not yet durable is unknown; connect again)")
	// ErrLogFailed: a record of the ring was not logged and never will be
	// (the member's recovery log failed: a full disk, a failed write), or
	// the log refuses records now. The error says why. The log writes
	// again by itself once it can.
	ErrLogFailed = errors.New("logbuf: the member's recovery log failed")
	// ErrLogUncertain: a write of the member's log holding a record of
	// the ring failed and could not be sealed off: the record may or may
	// not be durable. Errors wrapping it wrap ErrLogFailed too.
	ErrLogUncertain = errors.New("logbuf: a write of the member's recovery log failed: the outcome of a record is unknown")
	ErrReleased     = errors.New("logbuf: ring released")
	ErrType         = errors.New("logbuf: record type 0 is reserved")
)

// layoutVersion is the version of the layout below, stored in the shm
// header; bump it whenever an offset or encoding changes. 2: the log's
// status at 48 and 256, ring failure words. 3: the durable futex and its
// waiter count left the buffer header (they were at 128 and 132): each
// producer sleeps on the low half of its ring's rDurable and counts itself
// in rWaiting (the documentation still described version 2's header).
const layoutVersion = 3

// Buffer header (the start of the shm structure's data area; the ring
// headers follow at ringHdrs). Positions and counts are u64, futex words
// u32, all little-endian and accessed with sync/atomic:
//
//	offset  size  constant       field
//	     0     8  hRings         ring count
//	     8     8  hRingSize      ring size in bytes (a power of 2)
//	    16     8  hPid           consumer's pid
//	    24     8  hStart         consumer's process start time (procid)
//	    32     8  hGen           generation: the consumer bumps it when it starts
//	    40     8  hFailed        1 while the member's log refuses records
//	    48     8  hStatusSeq     status sequence: odd while the consumer writes the status words
//	    56     8  hFailures      failures of the log since the consumer started
//	    64     4  hWork          work futex
//	    68     4  hSleeping      consumer sleeping on hWork
//	    72   120  -              unused (version 2 had the durable futex at 128 and its waiters at 132)
//	   192     4  hSpaceFutex    space futex
//	   196     4  hSpaceWaiters  producers waiting for space
//	   200    56  -              unused
//	   256     8  hSince         failed since, Unix ns (0 while the log writes)
//	   264     8  hLastFailure   last failure, Unix ns (0: none)
//	   272     2  hReasonLen     reason length (u16; one u32 store with hReserveLen)
//	   274     2  hReserveLen    reserve-problem length (u16)
//	   276     4  -              unused
//	   280   480  hReason        why the log is failed, or why it failed last (maxReason bytes)
//	   760   248  hReserve       why the next segment could not be reserved (maxReserve bytes)
//	  1008    16  -              unused
//	  1024     *  ringHdrs       ring headers, ringHdrSize bytes each, then the rings at ringsOffset
const (
	hRings    = 0 // written by Create, before the file is linked into place; read by Attach
	hRingSize = 8 // as hRings
	// hPid, hStart: the consumer's process, stored by a starting
	// consumer before it bumps hGen; read by producers (is the consumer
	// alive?) with hGen.
	hPid   = 16
	hStart = 24
	// hGen: added to by a starting consumer (and by one that replaces the
	// buffer, on the old one); producers compare it with the generation
	// they claimed under before every piece and in Wait.
	hGen = 32
	// hFailed: stored by the consumer when the log refuses records and
	// when it writes again; loaded by producers in Append.
	hFailed = 40
	// hStatusSeq: the consumer adds 1 before and after it writes the
	// status words (hFailed, hFailures, hSince..hReserve); readers
	// (LogStatus) retry until they read one even value twice.
	hStatusSeq = 48
	hFailures  = 56 // under hStatusSeq
	// hWork: producers add 1 after publishing, then wake the consumer
	// when hSleeping is set; the consumer loads hWork, sets hSleeping,
	// looks for published work once more and sleeps on hWork (from the
	// value it loaded), then clears hSleeping.
	hWork     = 64
	hSleeping = 68
	// hSpaceFutex: the consumer adds 1 after freeing space and wakes
	// sleepers when hSpaceWaiters is not 0; a producer waiting for space
	// counts itself in hSpaceWaiters and sleeps on hSpaceFutex.
	hSpaceFutex   = 192
	hSpaceWaiters = 196
	hSince        = 256  // under hStatusSeq
	hLastFailure  = 264  // under hStatusSeq
	hReasonLen    = 272  // under hStatusSeq
	hReserveLen   = 274  // under hStatusSeq
	hReason       = 280  // under hStatusSeq
	hReserve      = 760  // under hStatusSeq
	ringHdrs      = 1024 // the first ring header
)

// Sizes of the header's text fields.
const (
	maxReason  = 480 // bytes at hReason
	maxReserve = 248 // bytes at hReserve
)

// Ring header (ringHdrSize bytes; ring i's at ringHdrs + i*ringHdrSize).
// Producer and consumer words are on separate lines:
//
//	offset  size  constant    field
//	     0     8  rOwner      owner: 0 free, else the producer's owner tag + 1
//	     8     8  rGen        generation the ring was claimed under
//	    16     8  rVisible    in-flight sequence: odd between BeginVisible and EndVisible
//	    24     8  rUOW        key of the producer's unit of work with persistent work (0: none)
//	    32    32  -           unused
//	    64     8  rHead       head: end of what the producer published
//	    72     8  rFailAck    failures acknowledged
//	    80     8  rResumeAt   resume position: the producer's head when it last acknowledged
//	    88    40  -           unused
//	   128     8  rTail       tail: end of what the consumer took
//	   136    56  -           unused
//	   192     8  rDurable    durable: end of what is durable; its low half is the ring's durable futex word
//	   200     4  rWaiting    the producer sleeps on the durable futex (u32)
//	   204     4  -           unused
//	   208     8  rFailed     records of the ring that failed
//	   216     8  rUncertain  of those, failures of unknown outcome
//	   224    32  -           unused
const (
	// rOwner: CAS 0 -> tag+1 by a claiming producer; back to 0 by the
	// producer releasing the ring (CAS) or the consumer freeing it; loaded
	// by both (is the ring still this claim?).
	rOwner = 0
	// rGen: stored by the claiming producer after its rOwner CAS; loaded
	// by the producer's in-flight marks with rOwner.
	rGen = 8
	// rVisible: moved by CAS from the parity expected by the ring's
	// producer (BeginVisible, EndVisible) while the ring is its claim; a
	// claim and the consumer freeing the ring end a stale odd mark; read
	// by InFlight.
	rVisible = 16
	// rUOW: stored by the producer; cleared when the ring is released or
	// freed; read by OldestUOW.
	rUOW     = 24
	rHead    = 64 // producer stores (release); consumer loads (acquire)
	rFailAck = 72 // producer stores after rResumeAt; consumer loads before rResumeAt
	// rResumeAt: producer stores before rFailAck; consumer loads after
	// rFailAck and drops what the ring holds before it.
	rResumeAt = 80
	rTail     = 128 // consumer stores; producer loads to find free space
	// rDurable: the consumer stores it (only forward), then wakes the
	// futex on its low half when rWaiting is not 0; the producer loads it
	// in Wait, stores 1 in rWaiting, loads it again and sleeps on its low
	// half while it has not moved, then stores 0 in rWaiting.
	rDurable    = 192
	rWaiting    = 200
	rFailed     = 208 // consumer adds 1 per failed record, before it stores rDurable past it; producer loads after rDurable
	rUncertain  = 216 // consumer adds before rFailed
	ringHdrSize = 256
)

// Record header (recHdr bytes, at a multiple of 8 of the ring; the
// payload follows, padded to 8 bytes). A record never wraps: one that
// does not fit before the ring's end is preceded by a padding header
// there (flagPad, type 0), and starts at the ring's beginning:
//
//	offset  size  constant  field
//	     0     4  recLen    payload length (u32)
//	     4     1  recType   record type (0: padding)
//	     5     1  recFlags  flagMore, flagPad, flagCont
//	     6     2  -         zero
const (
	recLen   = 0
	recType  = 4
	recFlags = 5
	recHdr   = 8
)

// Bits of a record header's flags.
const (
	flagMore = 1 // more pieces follow
	flagPad  = 2 // padding to the ring's end, no payload
	flagCont = 4 // a piece after the first
)

// Defaults of Config.
const (
	DefaultRings    = 64
	DefaultRingSize = 1 << 20
	MinRingSize     = 4096
)

// Config sizes a member's log buffer.
type Config struct {
	// CFDir is the group's CF directory; the buffer lives in its logbuf
	// subdirectory. Required.
	CFDir string
	// Member is the member's name, the file's name. Required.
	Member string
	// Rings is how many connections of the member can log at once;
	// default 64.
	Rings int
	// RingSize is each ring's size in bytes, a power of two of at least
	// 4 KiB; default 1 MiB. Records larger than half of it travel in
	// pieces.
	RingSize int
}

// withDefaults is c with the defaults documented on its fields applied.
func (c Config) withDefaults() Config {
	if c.Rings == 0 {
		c.Rings = DefaultRings
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	return c
}

// Validate reports what cannot work, as Create and Start will use c (with
// its defaults applied); it changes nothing.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.CFDir == "" || c.Member == "" {
		return fmt.Errorf("%w: CF directory and member name are required", ErrConfig)
	}
	if !shm.ValidName(c.Member) {
		return fmt.Errorf("%w: member name %q", ErrConfig, c.Member)
	}
	return CheckGeometry(c.Rings, c.RingSize)
}

// CheckGeometry reports a buffer geometry that cannot work: rings not in
// 1..4096, or a ring size that is not a power of two from MinRingSize to
// 1 GiB. (A member checks its configuration's geometry with it before it
// creates its buffer.)
func CheckGeometry(rings, ringSize int) error {
	if rings < 1 || rings > 4096 {
		return fmt.Errorf("%w: %d rings (1 to 4096)", ErrConfig, rings)
	}
	if ringSize < MinRingSize || ringSize&(ringSize-1) != 0 || ringSize > 1<<30 {
		return fmt.Errorf("%w: ring size %d (a power of two from %d to 1 GiB)", ErrConfig, ringSize, MinRingSize)
	}
	return nil
}

// Buffer is a mapped log buffer.
type Buffer struct {
	m        *shm.Mapping
	mem      shm.Mem
	rings    uint64
	size     uint64
	ringsOff uint64
}

// Dir is where the log buffers of a group live.
func Dir(cfDir string) string { return filepath.Join(cfDir, "logbuf") }

func ringsOffset(rings uint64) uint64 {
	return (ringHdrs + rings*ringHdrSize + shm.PageSize - 1) &^ (shm.PageSize - 1)
}

// Create creates the member's log buffer, or attaches the one a previous
// run of the member left (with the geometry it has).
func Create(cfg Config) (*Buffer, error) {
	o, err := createOptions(cfg)
	if err != nil {
		return nil, err
	}
	m, _, err := shm.Create(o)
	if err != nil {
		return nil, fmt.Errorf("logbuf: create %s: %w", cfg.Member, err)
	}
	return open(m)
}

// createOptions are the shm options of cfg's buffer.
func createOptions(cfg Config) (shm.CreateOptions, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return shm.CreateOptions{}, err
	}
	dir := Dir(cfg.CFDir)
	if err := ownedfs.MkdirAll(dir); err != nil {
		return shm.CreateOptions{}, fmt.Errorf("logbuf: %w", err)
	}
	rings, size := uint64(cfg.Rings), uint64(cfg.RingSize)
	return shm.CreateOptions{
		Dir: dir, Name: cfg.Member, Kind: shm.KindLogBuffer, Version: layoutVersion,
		Size: shm.HeaderSize + ringsOffset(rings) + rings*size,
		Init: func(mem shm.Mem) error {
			atomic.StoreUint64(mem.U64(hRings), rings)
			atomic.StoreUint64(mem.U64(hRingSize), size)
			return nil
		},
	}, nil
}

// Attach maps the log buffer of member.
func Attach(cfDir, member string) (*Buffer, error) {
	m, err := shm.Attach(Dir(cfDir), member, layoutVersion)
	if err != nil {
		return nil, fmt.Errorf("logbuf: attach %s: %w", member, err)
	}
	return open(m)
}

func open(m *shm.Mapping) (*Buffer, error) {
	mem := m.Mem()
	b := &Buffer{m: m, mem: mem}
	if err := shm.Guard(func() error {
		b.rings, b.size = atomic.LoadUint64(mem.U64(hRings)), atomic.LoadUint64(mem.U64(hRingSize))
		return nil
	}); err != nil {
		m.Close()
		return nil, fmt.Errorf("logbuf: %s: %w", m.Path(), err)
	}
	b.ringsOff = ringsOffset(b.rings)
	if b.rings == 0 || b.rings > 1<<20 || b.size < MinRingSize || b.size&(b.size-1) != 0 || b.size > 1<<30 || b.ringsOff+b.rings*b.size > mem.Len() {
		m.Close()
		return nil, fmt.Errorf("logbuf: %s: %w: %d rings of %d bytes in %d", m.Path(), shm.ErrCorrupt, b.rings, b.size, mem.Len())
	}
	return b, nil
}

// Close unmaps the buffer.
func (b *Buffer) Close() error { return b.m.Close() }

// Check fails when the buffer's file became shorter than its mapping
// (touching the lost pages would fault) or was removed.
func (b *Buffer) Check() error { return b.m.Check() }

// Path is the buffer's file.
func (b *Buffer) Path() string { return b.m.Path() }

// lostErr turns the ErrFault of a guarded access into ErrBufferLost.
func lostErr(err error) error {
	if errors.Is(err, shm.ErrFault) && !errors.Is(err, ErrBufferLost) {
		return fmt.Errorf("%w: %w", ErrBufferLost, err)
	}
	return err
}

func (b *Buffer) u64(off uint64) *uint64 { return b.mem.U64(off) }
func (b *Buffer) u32(off uint64) *uint32 { return b.mem.U32(off) }
func (b *Buffer) ring(i uint64) uint64   { return ringHdrs + i*ringHdrSize }
func (b *Buffer) data(i uint64) []byte   { return b.mem.Bytes(b.ringsOff+i*b.size, b.size) }

// consumer returns the consumer's identity and generation.
func (b *Buffer) consumer() (procid.ID, uint64) {
	gen := atomic.LoadUint64(b.u64(hGen))
	return procid.ID{Pid: int(atomic.LoadUint64(b.u64(hPid))), Start: atomic.LoadUint64(b.u64(hStart))}, gen
}

func pad8(n uint64) uint64 { return (n + 7) &^ 7 }

func putRecHdr(b []byte, n uint32, typ, flags uint8) {
	binary.LittleEndian.PutUint32(b[recLen:], n)
	b[recType], b[recFlags] = typ, flags
	clear(b[recFlags+1 : recHdr])
}

// Producer is a connection's ring: one goroutine at a time may use it.
type Producer struct {
	b    *Buffer
	i    uint64
	rh   uint64 // ring header offset
	data []byte
	gen  uint64
	cons procid.ID
	tag  uint64
	head uint64 // the producer's copy of the ring's head
	// The ring's failure counts the producer has reported (rFailed,
	// rUncertain).
	failSeen, uncSeen uint64
	freed             bool
	lost              error // the mapping faulted: every later use fails with it
}

// faulted records a fault of a guarded access (deferred after
// shm.EndGuard, which turned it into ErrFault in *err): the producer's
// mapping lost its pages, and every later use fails.
func (p *Producer) faulted(err *error) {
	if *err != nil && errors.Is(*err, shm.ErrFault) {
		*err = lostErr(*err)
		if p.lost == nil {
			p.lost = *err
		}
	}
}

// Claim takes a free ring for the connection with owner tag tag.
func (b *Buffer) Claim(tag uint64) (_ *Producer, err error) {
	defer func() { err = lostErr(err) }()
	defer shm.EndGuard(shm.BeginGuard(), &err)
	cons, gen := b.consumer()
	if gen == 0 || !procid.Alive(cons) {
		return nil, ErrConsumerGone
	}
	for i := range b.rings {
		rh := b.ring(i)
		if atomic.CompareAndSwapUint64(b.u64(rh+rOwner), 0, tag+1) {
			atomic.StoreUint64(b.u64(rh+rGen), gen)
			if v := atomic.LoadUint64(b.u64(rh + rVisible)); v&1 == 1 {
				atomic.CompareAndSwapUint64(b.u64(rh+rVisible), v, v+1) // nothing of this producer is in flight
			}
			p := &Producer{b: b, i: i, rh: rh, data: b.data(i), gen: gen, cons: cons, tag: tag,
				head: atomic.LoadUint64(b.u64(rh + rHead))}
			// Failures of an earlier producer's records are not this
			// one's: acknowledged (the consumer drops what that producer
			// published after its failure).
			p.uncSeen = atomic.LoadUint64(b.u64(rh + rUncertain))
			p.failSeen = atomic.LoadUint64(b.u64(rh + rFailed))
			p.acknowledge()
			return p, nil
		}
	}
	return nil, ErrNoRing
}

// Ring is the index of the producer's ring.
func (p *Producer) Ring() int { return int(p.i) }

// quickCheck fails when the ring was released or its pages are gone, or
// another consumer took over: two loads, for every piece.
func (p *Producer) quickCheck() error {
	if p.lost != nil {
		return p.lost
	}
	if p.freed {
		return ErrReleased
	}
	if atomic.LoadUint64(p.b.u64(hGen)) != p.gen {
		return ErrConsumerGone
	}
	if atomic.LoadUint64(p.b.u64(p.rh+rOwner)) != p.tag+1 {
		// Freed by the member that recovered this connection, and maybe
		// another connection's now: nothing more goes into it.
		return fmt.Errorf("%w: the ring was freed (the connection was recovered)", ErrReleased)
	}
	return nil
}

// failures fails, once per failure, when a record the producer published
// was not logged (ErrLogFailed) or its outcome is unknown
// (ErrLogUncertain). It acknowledges the failure: the consumer drops
// whatever the producer published before this call and did not take yet
// (the rest of the failed work: a commit record after a put record that
// failed must never be logged), and logs what it publishes after.
func (p *Producer) failures() error {
	f := atomic.LoadUint64(p.b.u64(p.rh + rFailed))
	if f == p.failSeen {
		return nil
	}
	u := atomic.LoadUint64(p.b.u64(p.rh + rUncertain))
	p.failSeen = f
	p.acknowledge()
	if u != p.uncSeen {
		p.uncSeen = u
		return fmt.Errorf("%w (%w): %s", ErrLogUncertain, ErrLogFailed, p.b.reason())
	}
	return fmt.Errorf("%w: %s", ErrLogFailed, p.b.reason())
}

// acknowledge tells the consumer that the producer knows of the ring's
// failures up to failSeen and that its records from head on follow that
// knowledge: the position first, then the count (the consumer loads them
// the other way round).
func (p *Producer) acknowledge() {
	atomic.StoreUint64(p.b.u64(p.rh+rResumeAt), p.head)
	atomic.StoreUint64(p.b.u64(p.rh+rFailAck), p.failSeen)
}

// check is quickCheck and whether the consumer's process lives (which
// reads /proc: only while waiting).
func (p *Producer) check() error {
	if err := p.quickCheck(); err != nil {
		return err
	}
	if !procid.Alive(p.cons) {
		return ErrConsumerGone
	}
	return nil
}

// Append publishes a record whose payload is the concatenation of parts
// and returns the position Wait needs to learn it is durable.
func (p *Producer) Append(typ uint8, parts ...[]byte) (_ uint64, err error) {
	defer p.faulted(&err)
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if typ == 0 {
		return 0, ErrType
	}
	if err := p.quickCheck(); err != nil {
		return 0, err
	}
	if err := p.failures(); err != nil {
		return 0, err
	}
	if atomic.LoadUint64(p.b.u64(hFailed)) != 0 {
		// The log refuses records now: fail at once, with its reason.
		return 0, fmt.Errorf("%w: %s", ErrLogFailed, p.b.reason())
	}
	total := 0
	for _, part := range parts {
		total += len(part)
	}
	maxPiece := int(p.b.size/2 - recHdr)
	pi, po := 0, 0 // the next byte: parts[pi][po]
	var flags uint8
	for {
		n := min(total, maxPiece)
		total -= n
		flags &^= flagMore
		if total > 0 {
			flags |= flagMore
		}
		dst, err := p.reserve(recHdr + pad8(uint64(n)))
		if err != nil {
			return 0, err
		}
		putRecHdr(dst, uint32(n), typ, flags)
		o := recHdr
		for o < recHdr+n {
			c := copy(dst[o:recHdr+n], parts[pi][po:])
			o += c
			po += c
			if po == len(parts[pi]) {
				pi, po = pi+1, 0
			}
		}
		clear(dst[recHdr+n:])
		p.publish(uint64(len(dst)))
		if total == 0 {
			return p.head, nil
		}
		flags |= flagCont
	}
}

// reserve returns the ring bytes for a record of need bytes (a multiple
// of 8), padding to the ring's end first when it would not fit there.
func (p *Producer) reserve(need uint64) ([]byte, error) {
	size := p.b.size
	if off := p.head % size; off+need > size {
		if err := p.waitSpace(size - off); err != nil {
			return nil, err
		}
		putRecHdr(p.data[off:], 0, 0, flagPad)
		p.publish(size - off)
	}
	if err := p.waitSpace(need); err != nil {
		return nil, err
	}
	// A new consumer may have started while this waited for space (it
	// frees the rings of the old one's producers): stop before writing.
	if err := p.quickCheck(); err != nil {
		return nil, err
	}
	off := p.head % size
	return p.data[off : off+need], nil
}

// publish makes the next n bytes visible to the consumer and wakes it.
func (p *Producer) publish(n uint64) {
	p.head += n
	atomic.StoreUint64(p.b.u64(p.rh+rHead), p.head)
	atomic.AddUint32(p.b.u32(hWork), 1)
	if atomic.LoadUint32(p.b.u32(hSleeping)) != 0 {
		shm.FutexWake(p.b.u32(hWork), 1)
	}
}

// waitSpace waits until n bytes after head are free.
func (p *Producer) waitSpace(n uint64) error {
	for {
		v := atomic.LoadUint32(p.b.u32(hSpaceFutex))
		if p.head+n-atomic.LoadUint64(p.b.u64(p.rh+rTail)) <= p.b.size {
			return nil
		}
		if err := p.check(); err != nil {
			return err
		}
		atomic.AddUint32(p.b.u32(hSpaceWaiters), 1)
		if p.head+n-atomic.LoadUint64(p.b.u64(p.rh+rTail)) > p.b.size {
			shm.FutexWait(p.b.u32(hSpaceFutex), v, 20*time.Millisecond)
		}
		atomic.AddUint32(p.b.u32(hSpaceWaiters), ^uint32(0))
	}
}

// Wait blocks until every record up to position pos is durable.
func (p *Producer) Wait(pos uint64) (err error) {
	defer p.faulted(&err)
	defer shm.EndGuard(shm.BeginGuard(), &err)
	durable := p.b.u64(p.rh + rDurable)
	low := p.b.u32(p.rh + rDurable) // the futex word: the durable position's low half
	waiting := p.b.u32(p.rh + rWaiting)
	lastFull := time.Now()
	for {
		// The durable position first, then the failure count: the
		// consumer counts a failure before it stores a durable position
		// past the failed record.
		d := atomic.LoadUint64(durable)
		if err := p.failures(); err != nil {
			return err
		}
		if d >= pos {
			return nil
		}
		// A few loads each time; the consumer's process, which reads
		// /proc, now and then.
		err := p.quickCheck()
		if err == nil && time.Since(lastFull) > 20*time.Millisecond {
			err, lastFull = p.check(), time.Now()
		}
		if err != nil {
			// The consumer may have stored the position and gone since.
			if atomic.LoadUint64(durable) >= pos && !errors.Is(err, ErrReleased) {
				if ferr := p.failures(); ferr != nil {
					return ferr
				}
				return nil
			}
			return err
		}
		atomic.StoreUint32(waiting, 1)
		if atomic.LoadUint64(durable) == d && atomic.LoadUint64(p.b.u64(p.rh+rFailed)) == p.failSeen {
			shm.FutexWait(low, uint32(d), 50*time.Millisecond)
		}
		atomic.StoreUint32(waiting, 0)
	}
}

// BeginVisible marks the start of an operation whose log record goes
// first and whose effect in the CF follows (a commit, a persistent put
// outside syncpoint); EndVisible its end. A fuzzy backup waits for the
// operations marked when it starts (InFlight), so that every record with
// an LRSN below its start has its effect in the CF when it scans.
// A fault of the mapping is remembered and reported by the producer's
// next Append or Wait.
//
// The mark is odd while an operation is in flight. Both steps are a CAS
// from the parity they expect, made only while the ring is still this
// producer's: a consumer that frees the ring of a producer gone (or a new
// consumer taking over) makes the mark even, and a late EndVisible of
// that producer must neither make it odd again nor end the operation of
// the ring's next producer.
func (p *Producer) BeginVisible() { p.bumpVisible(0) }

// EndVisible ends what BeginVisible began.
func (p *Producer) EndVisible() { p.bumpVisible(1) }

// bumpVisible moves the mark from parity from to the other one.
func (p *Producer) bumpVisible(from uint64) {
	var err error
	defer p.faulted(&err)
	defer shm.EndGuard(shm.BeginGuard(), &err)
	mark := p.b.u64(p.rh + rVisible)
	for {
		v := atomic.LoadUint64(mark)
		if v&1 != from || atomic.LoadUint64(p.b.u64(p.rh+rOwner)) != p.tag+1 || atomic.LoadUint64(p.b.u64(p.rh+rGen)) != p.gen {
			return
		}
		if atomic.CompareAndSwapUint64(mark, v, v+1) {
			return
		}
	}
}

// SetUOW records the key of the producer's unit of work with persistent
// work (0: none). Keys come from the LRSN counter when the unit of work
// begins, so every record of it has a greater LRSN: a fuzzy backup
// replays from the oldest key it finds (OldestUOW).
// A fault of the mapping is remembered as BeginVisible's is.
func (p *Producer) SetUOW(key uint64) {
	var err error
	defer p.faulted(&err)
	defer shm.EndGuard(shm.BeginGuard(), &err)
	atomic.StoreUint64(p.b.u64(p.rh+rUOW), key)
}

// OldestUOW is the smallest unit-of-work key of the claimed rings (0:
// none). It fails with ErrBufferLost when the buffer's pages are gone:
// the keys cannot be known.
func (b *Buffer) OldestUOW() (_ uint64, err error) {
	defer func() { err = lostErr(err) }()
	defer shm.EndGuard(shm.BeginGuard(), &err)
	oldest := uint64(0)
	for i := range b.rings {
		rh := b.ring(i)
		if atomic.LoadUint64(b.u64(rh+rOwner)) == 0 {
			continue
		}
		if k := atomic.LoadUint64(b.u64(rh + rUOW)); k != 0 && (oldest == 0 || k < oldest) {
			oldest = k
		}
	}
	return oldest, nil
}

// InFlight is an operation between BeginVisible and EndVisible.
type InFlight struct {
	Ring  int
	Owner uint64 // the producer's owner tag
	seq   uint64
}

// InFlight lists the operations in flight now. It fails with
// ErrBufferLost when the buffer's pages are gone.
func (b *Buffer) InFlight() (_ []InFlight, err error) {
	defer func() { err = lostErr(err) }()
	defer shm.EndGuard(shm.BeginGuard(), &err)
	var out []InFlight
	for i := range b.rings {
		rh := b.ring(i)
		seq := atomic.LoadUint64(b.u64(rh + rVisible))
		if seq&1 == 1 {
			if own := atomic.LoadUint64(b.u64(rh + rOwner)); own != 0 {
				out = append(out, InFlight{Ring: int(i), Owner: own - 1, seq: seq})
			}
		}
	}
	return out, nil
}

// Ended reports whether operation f has ended (its ring moved on, or was
// freed or claimed by another connection). An operation in a buffer whose
// pages are gone has ended: its producer fails at its next access.
func (b *Buffer) Ended(f InFlight) (ended bool) {
	var err error
	defer func() {
		if err != nil {
			ended = true
		}
	}()
	defer shm.EndGuard(shm.BeginGuard(), &err)
	rh := b.ring(uint64(f.Ring))
	return atomic.LoadUint64(b.u64(rh+rVisible)) != f.seq || atomic.LoadUint64(b.u64(rh+rOwner)) != f.Owner+1
}

// Release waits until the consumer has taken everything published, then
// frees the ring. The producer cannot be used afterwards.
func (p *Producer) Release() (err error) {
	if p.freed || p.lost != nil {
		p.freed = true
		return nil
	}
	defer p.faulted(&err)
	defer shm.EndGuard(shm.BeginGuard(), &err)
	for atomic.LoadUint64(p.b.u64(p.rh+rTail)) < p.head {
		if err := p.check(); err != nil {
			break // a new consumer frees the ring
		}
		v := atomic.LoadUint32(p.b.u32(hSpaceFutex))
		atomic.AddUint32(p.b.u32(hSpaceWaiters), 1)
		if atomic.LoadUint64(p.b.u64(p.rh+rTail)) < p.head {
			shm.FutexWait(p.b.u32(hSpaceFutex), v, 20*time.Millisecond)
		}
		atomic.AddUint32(p.b.u32(hSpaceWaiters), ^uint32(0))
	}
	p.freed = true
	atomic.StoreUint64(p.b.u64(p.rh+rUOW), 0)
	atomic.CompareAndSwapUint64(p.b.u64(p.rh+rOwner), p.tag+1, 0)
	return nil
}

// LogStatus is what the member's recovery log is doing, as its consumer
// last published it in the buffer.
type LogStatus struct {
	Failed      bool      // the log refuses records now
	Since       time.Time // when it failed (Failed)
	Failures    uint64    // failures since the consumer started
	LastFailure time.Time // the latest (zero: none)
	Reason      string    // why it is failed, or why it failed last
	ReserveErr  string    // why the next segment is not reserved ("" when it is)
	Consumer    procid.ID // the member's process
}

// LogStatus reads the log's status (a consistent copy: it retries while
// the consumer writes it). It fails with ErrBufferLost when the buffer's
// pages are gone.
func (b *Buffer) LogStatus() (st LogStatus, err error) {
	defer func() { err = lostErr(err) }()
	defer shm.EndGuard(shm.BeginGuard(), &err)
	for {
		seq := atomic.LoadUint64(b.u64(hStatusSeq))
		if seq&1 == 0 {
			st = b.readStatus()
			if atomic.LoadUint64(b.u64(hStatusSeq)) == seq {
				return st, nil
			}
		}
		time.Sleep(time.Microsecond)
	}
}

// readStatus reads the status words (the caller checks the sequence).
func (b *Buffer) readStatus() LogStatus {
	st := LogStatus{Failed: atomic.LoadUint64(b.u64(hFailed)) != 0, Failures: atomic.LoadUint64(b.u64(hFailures))}
	st.Consumer, _ = b.consumer()
	if ns := atomic.LoadUint64(b.u64(hSince)); ns != 0 {
		st.Since = time.Unix(0, int64(ns))
	}
	if ns := atomic.LoadUint64(b.u64(hLastFailure)); ns != 0 {
		st.LastFailure = time.Unix(0, int64(ns))
	}
	lens := atomic.LoadUint32(b.u32(hReasonLen))
	st.Reason = string(b.mem.Bytes(hReason, uint64(min(lens&0xffff, maxReason))))
	st.ReserveErr = string(b.mem.Bytes(hReserve, uint64(min(lens>>16, maxReserve))))
	return st
}

// reason is the log's failure reason for an error, or a generic one.
func (b *Buffer) reason() string {
	st, err := b.LogStatus()
	if err != nil || st.Reason == "" {
		return "see the member's log"
	}
	return st.Reason
}

// ReadStatus reads the log status member's consumer published in its log
// buffer in the group's CF directory cfDir.
func ReadStatus(cfDir, member string) (LogStatus, error) {
	b, err := Attach(cfDir, member)
	if err != nil {
		return LogStatus{}, err
	}
	defer b.Close()
	return b.LogStatus()
}

// Summary is the status in a few words: "ok", "ok (N failures, last at
// T: reason)" or "FAILED since T: reason", with a warning when the next
// segment is not reserved.
func (st LogStatus) Summary() string {
	var s string
	switch {
	case st.Failed:
		s = fmt.Sprintf("FAILED since %s: %s", st.Since.Format(time.RFC3339), st.Reason)
	case st.Failures > 0:
		s = fmt.Sprintf("ok (failed %d times, last at %s: %s)", st.Failures, st.LastFailure.Format(time.RFC3339), st.Reason)
	default:
		s = "ok"
	}
	if st.ReserveErr != "" {
		s += "; next segment not reserved: " + st.ReserveErr
	}
	return s
}

// clip shortens s to at most n bytes, keeping its start and its end (an
// error's cause is at its end).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const gap = "..."
	head := (n - len(gap)) / 2
	return s[:head] + gap + s[len(s)-(n-len(gap)-head):]
}
