package logbuf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/shm"
)

// Consumer moves records from a buffer's rings into a log. One runs per
// member, in the member's process.
type Consumer struct {
	cfg  Config // where the buffer lives and the geometry of a replacement
	log  *rlog.Log
	logf func(format string, args ...any)

	// The buffer consumed. The run goroutine replaces it (replace) when
	// its file is truncated or removed; it reads b and owned without a
	// lock, every other goroutine under bmu, which replace holds while it
	// swaps and unmaps.
	b     *Buffer
	owned bool // b was made by the consumer, which closes it

	// Per ring (run goroutine): the pieces of a record so far, its type
	// and the position of its first piece; the ticket of the last record
	// of the ring handed to the log (a record of the ring is logged only
	// after it, AppendAfter) and the failure acknowledgement after which
	// that chain started.
	partial  [][]byte
	ptype    []uint8
	pstart   []uint64
	lastTick []rlog.Ticket
	ackSeen  []uint64
	owner    []uint64 // the ring's owner word when lastTick was set

	scratch []byte
	recs    []taken

	mu    sync.Mutex
	frees map[uint64]chan error // owner tag → a Free waiting for the drain loop
	stop  chan struct{}
	done  chan struct{}

	// suspect: an access outside the run goroutine faulted; the run
	// loop checks the file at its next pass.
	suspect   atomic.Bool
	lastCheck time.Time // run goroutine only
	closed    atomic.Bool

	// Records handed to the log and not yet settled, in ticket order:
	// the log's writer settles them (settle) as they become durable or
	// fail. statMu serialises the writers of the log's status.
	bmu     sync.Mutex
	inLog   []entry
	tickets []rlog.Ticket // settle's scratch (under bmu)
	errs    []error
	statMu  sync.Mutex
}

// checkEvery is how often an idle consumer looks at its buffer's file
// (one fstat): a file truncated or removed is replaced even when no
// access faults.
const checkEvery = 100 * time.Millisecond

// taken is a complete record copied out of a ring.
type taken struct {
	ring     uint64
	typ      uint8
	from, to int    // its payload in scratch
	start    uint64 // ring position of its first piece
	end      uint64 // ring position after its last piece
	ring0    ringSeen
}

// ringSeen is what a pass loaded of a ring's producer words right after
// its head, before it freed what it took: the failure acknowledgement, the
// resume position and the owner the records it took were published under.
// Loaded later, they could be a new producer's, which claims the ring as
// soon as the old one's Release sees its records taken, and whose claim
// stores its head as the resume position: the old producer's last records
// would be dropped as failed work.
type ringSeen struct {
	ack, resume, owner uint64
}

// entry is a record handed to the log: once its ticket is durable, the
// ring's durable position moves to end.
type entry struct {
	ticket rlog.Ticket
	ring   uint64
	end    uint64
}

// Start opens the member's log buffer and starts its consumer, which logs
// whatever a previous consumer left published. A buffer file that cannot
// be used (shorter than its header says, a damaged header, another layout
// version, pages that fault) is replaced by a new one, and so is one of
// another geometry than cfg's once what it holds is logged: records in a
// damaged file cannot be trusted, and none of them was reported durable.
// logf reports what was dropped and replaced (nil: nothing). The consumer
// owns the buffer: Close unmaps it.
func Start(cfg Config, log *rlog.Log, logf func(string, ...any)) (*Consumer, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logf == nil {
		logf = func(string, ...any) {}
	}
	b, err := Attach(cfg.CFDir, cfg.Member)
	switch {
	case err == nil:
	case errors.Is(err, shm.ErrNotFound):
		b, err = Create(cfg)
	case unusable(err):
		logf("logbuf: log buffer %s cannot be used (%v); replacing it: whatever records it held are dropped (none was reported durable)",
			filepath.Join(Dir(cfg.CFDir), cfg.Member), err)
		b, err = recreate(cfg)
	}
	if err != nil {
		return nil, err
	}
	c := newConsumer(cfg, b, true, log, logf)
	if err := c.begin(); err != nil {
		c.b.Close()
		return nil, err
	}
	c.publishState(log.State())
	if c.b.rings != uint64(cfg.Rings) || c.b.size != uint64(cfg.RingSize) {
		why := fmt.Errorf("it has %d rings of %d bytes, the member is configured for %d of %d", c.b.rings, c.b.size, cfg.Rings, cfg.RingSize)
		if err := c.replace(why); err != nil {
			c.b.Close()
			return nil, err
		}
	}
	go c.run()
	return c, nil
}

// unusable reports whether err says a buffer file is damaged or of
// another layout (rather than, say, not readable by this user).
func unusable(err error) bool {
	for _, e := range []error{shm.ErrTruncated, shm.ErrCorrupt, shm.ErrBadMagic, shm.ErrVersion, shm.ErrFault, ErrBufferLost} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// recreate makes a new, empty buffer in place of the file of cfg's
// member, in one step.
func recreate(cfg Config) (*Buffer, error) {
	o, err := createOptions(cfg)
	if err != nil {
		return nil, err
	}
	m, err := shm.Recreate(o)
	if err != nil {
		return nil, fmt.Errorf("logbuf: replace %s: %w", cfg.Member, err)
	}
	return open(m)
}

// NewConsumer stamps b as consumed by this process, logs whatever a
// previous consumer left published, frees every ring, and starts moving
// records into log. logf reports damage found in a ring (nil: none). The
// caller keeps b and closes it after Close; a buffer the consumer has to
// replace (its file truncated or removed) is the consumer's own.
func NewConsumer(b *Buffer, log *rlog.Log, logf func(string, ...any)) (*Consumer, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	dir, name := filepath.Split(b.Path())
	cfg := Config{CFDir: filepath.Dir(filepath.Clean(dir)), Member: name, Rings: int(b.rings), RingSize: int(b.size)}
	c := newConsumer(cfg, b, false, log, logf)
	if err := c.begin(); err != nil {
		return nil, err
	}
	c.publishState(log.State())
	go c.run()
	return c, nil
}

func newConsumer(cfg Config, b *Buffer, owned bool, log *rlog.Log, logf func(string, ...any)) *Consumer {
	return &Consumer{cfg: cfg, b: b, owned: owned, log: log, logf: logf, lastCheck: time.Now(),
		frees: map[uint64]chan error{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// begin takes the buffer over from a previous consumer: it logs what
// that one's producers published and frees every ring. A buffer whose
// pages fault is replaced.
func (c *Consumer) begin() error {
	c.log.OnSettle(c.settle)
	c.log.OnState(c.publishState)
	err := c.takeOver()
	if err == nil {
		return nil
	}
	if !unusable(err) {
		return err
	}
	return c.replace(err)
}

// takeOver stamps the buffer, logs what is published in it and frees
// every ring.
func (c *Consumer) takeOver() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	b := c.b
	c.partial, c.ptype, c.pstart = make([][]byte, b.rings), make([]uint8, b.rings), make([]uint64, b.rings)
	c.lastTick, c.ackSeen, c.owner = make([]rlog.Ticket, b.rings), make([]uint64, b.rings), make([]uint64, b.rings)
	self := procid.Self()
	// Producers of the previous consumer fail their waits from here on.
	atomic.StoreUint64(b.u64(hPid), uint64(self.Pid))
	atomic.StoreUint64(b.u64(hStart), self.Start)
	atomic.AddUint64(b.u64(hGen), 1)
	atomic.StoreUint64(b.u64(hFailed), 0)
	// What the old consumer's producers published is logged: their units
	// of work may have been decided.
	c.drain()
	for i := range b.rings {
		rh := b.ring(i)
		atomic.StoreUint64(b.u64(rh+rOwner), 0)
		atomic.StoreUint64(b.u64(rh+rUOW), 0)
		if v := atomic.LoadUint64(b.u64(rh + rVisible)); v&1 == 1 {
			atomic.StoreUint64(b.u64(rh+rVisible), v+1)
		}
		c.partial[i] = nil
	}
	return nil
}

// replace puts a new, empty buffer of the configured geometry in place
// of the current one, whose file was truncated, removed or damaged (why),
// or has another geometry. What its producers published and the consumer
// had not taken is lost: none of it was reported durable, and those
// producers fail (ErrConsumerGone, or ErrBufferLost where their pages are
// gone). Records already handed to the log go on being made durable, but
// their producers are no longer told: their outcome is unknown to them,
// as when a consumer dies. Run goroutine only.
func (c *Consumer) replace(why error) error {
	old := c.b
	// The old buffer's producers stop at their next check (where its
	// pages are still there: a file removed, or of another geometry).
	shm.Guard(func() error {
		atomic.AddUint64(old.u64(hGen), 1)
		for i := range old.rings {
			shm.FutexWake(old.u32(old.ring(i)+rDurable), 1<<30)
		}
		shm.FutexWake(old.u32(hSpaceFutex), 1<<30)
		return nil
	})
	nb, err := recreate(c.cfg)
	if err != nil {
		return fmt.Errorf("logbuf: replace log buffer %s (%v): %w", old.Path(), why, err)
	}
	c.bmu.Lock()
	dropped := len(c.inLog)
	c.b, c.inLog = nb, nil
	if c.owned {
		old.Close()
	}
	c.owned = true
	c.bmu.Unlock()
	if err := c.takeOver(); err != nil {
		return fmt.Errorf("logbuf: replace log buffer %s: the new one: %w", old.Path(), err)
	}
	c.logf("logbuf: log buffer replaced: %s: %v; records its connections had published and the member had not taken are dropped (none was reported durable); %d records already handed to the log are no longer reported to their writers, whose outcome is unknown to them",
		old.Path(), why, dropped)
	c.publishState(c.log.State())
	return nil
}

// kick wakes the run goroutine.
func (c *Consumer) kick() {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	if c.b == nil {
		return
	}
	if err := shm.Guard(func() error {
		atomic.AddUint32(c.b.u32(hWork), 1)
		shm.FutexWake(c.b.u32(hWork), 1)
		return nil
	}); err != nil {
		c.suspect.Store(true)
	}
}

// Close stops the consumer after logging what is published and waiting
// for it to be durable. A buffer the consumer owns is unmapped. Calls
// after the first do nothing.
func (c *Consumer) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		<-c.done
		return nil
	}
	close(c.stop)
	c.kick()
	<-c.done
	// Wait for the last record to settle.
	c.bmu.Lock()
	var last rlog.Ticket
	if n := len(c.inLog); n > 0 {
		last = c.inLog[n-1].ticket
	}
	c.bmu.Unlock()
	if last > 0 {
		c.log.Wait(last)
		c.settle()
	}
	c.log.OnSettle(nil)
	c.log.OnState(nil)
	c.bmu.Lock()
	if c.owned {
		c.b.Close()
	}
	c.b = nil
	c.bmu.Unlock()
	return nil
}

// Buffer is the buffer consumed now (it changes when the consumer
// replaces a damaged one).
func (c *Consumer) Buffer() *Buffer {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	return c.b
}

// Free frees the ring claimed by the connection with owner tag tag (a
// connection that died), once everything it published has been taken. It
// returns at once when no ring is claimed by tag.
func (c *Consumer) Free(tag uint64) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	c.frees[tag] = ch
	c.mu.Unlock()
	c.kick()
	select {
	case err := <-ch:
		return err
	case <-c.done:
		return fmt.Errorf("logbuf: free ring of %#x: consumer stopped", tag)
	}
}

func (c *Consumer) run() {
	defer close(c.done)
	for {
		stop, err := c.step()
		if err != nil && !stop {
			if rerr := c.replace(err); rerr != nil {
				// Nothing can be logged through the buffer until a
				// replacement works: try again a moment later.
				c.logf("%v", rerr)
				select {
				case <-c.stop:
					return
				case <-time.After(time.Second):
				}
			}
		}
		if stop {
			return
		}
	}
}

// step is one pass of the consumer: it logs what is published, serves
// the frees waiting, and sleeps when there was nothing. It fails when
// the buffer's pages fault or its file was truncated or removed.
func (c *Consumer) step() (stop bool, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	b := c.b
	n := c.drain()
	c.serveFrees()
	select {
	case <-c.stop:
		c.drain()
		return true, nil
	default:
	}
	if n > 0 {
		return false, nil
	}
	if c.suspect.Swap(false) || time.Since(c.lastCheck) >= checkEvery {
		c.lastCheck = time.Now()
		if err := b.Check(); err != nil {
			return false, err
		}
	}
	v := atomic.LoadUint32(b.u32(hWork))
	atomic.StoreUint32(b.u32(hSleeping), 1)
	if !c.pending() {
		if err := shm.FutexWait(b.u32(hWork), v, checkEvery); err != nil {
			return false, err
		}
	}
	atomic.StoreUint32(b.u32(hSleeping), 0)
	return false, nil
}

// pending reports whether a ring holds unpublished-to-the-log records or
// a Free waits.
func (c *Consumer) pending() bool {
	for i := range c.b.rings {
		rh := c.b.ring(i)
		if atomic.LoadUint64(c.b.u64(rh+rHead)) != atomic.LoadUint64(c.b.u64(rh+rTail)) {
			return true
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frees) > 0
}

func (c *Consumer) serveFrees() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for tag, ch := range c.frees {
		found := false
		for i := range c.b.rings {
			rh := c.b.ring(i)
			if atomic.LoadUint64(c.b.u64(rh+rOwner)) != tag+1 {
				continue
			}
			found = true
			if atomic.LoadUint64(c.b.u64(rh+rHead)) != atomic.LoadUint64(c.b.u64(rh+rTail)) {
				continue // taken on a later pass
			}
			c.partial[i] = nil // a record whose last piece never came
			if v := atomic.LoadUint64(c.b.u64(rh + rVisible)); v&1 == 1 {
				atomic.StoreUint64(c.b.u64(rh+rVisible), v+1)
			}
			atomic.StoreUint64(c.b.u64(rh+rUOW), 0)
			atomic.CompareAndSwapUint64(c.b.u64(rh+rOwner), tag+1, 0)
			delete(c.frees, tag)
			ch <- nil
		}
		if !found {
			delete(c.frees, tag)
			ch <- nil
		}
	}
}

// drain takes every published record, frees their space, and hands the
// complete ones to the log. It returns how many ring bytes it took.
func (c *Consumer) drain() int {
	b := c.b
	c.scratch, c.recs = c.scratch[:0], c.recs[:0]
	took := 0
	for i := range b.rings {
		rh := b.ring(i)
		head := atomic.LoadUint64(b.u64(rh + rHead))
		tail := atomic.LoadUint64(b.u64(rh + rTail))
		if head == tail {
			continue
		}
		// After the head (a producer stores rResumeAt, then rFailAck,
		// then publishes): the acknowledgement its records follow.
		seen := ringSeen{ack: atomic.LoadUint64(b.u64(rh + rFailAck))}
		seen.resume = atomic.LoadUint64(b.u64(rh + rResumeAt))
		seen.owner = atomic.LoadUint64(b.u64(rh + rOwner))
		data := b.data(i)
		start := tail
		for tail < head {
			off := tail % b.size
			n := uint64(binary.LittleEndian.Uint32(data[off+recLen:]))
			typ, flags := data[off+recType], data[off+recFlags]
			if flags == flagPad && typ == 0 && tail+b.size-off <= head {
				tail += b.size - off
				continue
			}
			size := recHdr + pad8(n)
			if flags&flagCont != 0 && c.partial[i] == nil && typ != 0 && off+size <= b.size && tail+size <= head {
				// The rest of a record whose first pieces a previous
				// consumer took and died with. Neither it nor anything
				// its producer published after it was durable; dropping
				// them all keeps what the log holds of the ring a prefix
				// of what was published there.
				c.logf("logbuf: ring %d: the rest of a record whose first pieces the previous consumer took, at position %d; dropping %d bytes (none was durable)",
					i, tail, head-tail)
				tail = head
				break
			}
			if typ == 0 || flags&^(flagMore|flagCont) != 0 || off+size > b.size || tail+size > head {
				// A producer that writes what no producer of this package
				// writes: drop what it published, keep serving the others.
				c.logf("logbuf: ring %d: bad record header at position %d (length %d, type %d, flags %#x); dropping %d bytes",
					i, tail, n, typ, flags, head-tail)
				c.partial[i] = nil
				tail = head
				break
			}
			payload := data[off+recHdr : off+recHdr+n]
			if flags&flagCont == 0 && c.partial[i] != nil {
				// The ring's previous producer gave up on a record half
				// way (its Append failed) and released the ring; nobody
				// was told that record is durable.
				c.logf("logbuf: ring %d: a record abandoned after %d bytes; dropping it", i, len(c.partial[i]))
				c.partial[i] = nil
			}
			switch {
			case flags&flagMore != 0:
				if c.partial[i] == nil {
					c.ptype[i], c.pstart[i] = typ, tail
				}
				c.partial[i] = append(c.partial[i], payload...)
			case c.partial[i] != nil:
				from := len(c.scratch)
				c.scratch = append(c.scratch, c.partial[i]...)
				c.scratch = append(c.scratch, payload...)
				c.recs = append(c.recs, taken{ring: i, typ: c.ptype[i], from: from, to: len(c.scratch), start: c.pstart[i], end: tail + size, ring0: seen})
				c.partial[i] = nil
			default:
				from := len(c.scratch)
				c.scratch = append(c.scratch, payload...)
				c.recs = append(c.recs, taken{ring: i, typ: typ, from: from, to: len(c.scratch), start: tail, end: tail + size, ring0: seen})
			}
			tail += size
		}
		atomic.StoreUint64(b.u64(rh+rTail), tail)
		took += int(tail - start)
	}
	if took > 0 {
		atomic.AddUint32(b.u32(hSpaceFutex), 1)
		if atomic.LoadUint32(b.u32(hSpaceWaiters)) != 0 {
			shm.FutexWake(b.u32(hSpaceFutex), 1<<30)
		}
	}
	if took > 0 && afterTake != nil {
		afterTake()
	}
	if len(c.recs) > 0 {
		c.hand()
	}
	return took
}

// afterTake, when set (by tests, before the consumer starts), runs after
// a pass has freed the space it took and before it hands the records to
// the log.
var afterTake func()

// hand hands the records taken to the log, each after the ring's
// previous record (AppendAfter). A record of a ring whose producer has
// not yet acknowledged a failure, or that it published before it
// acknowledged one, is the rest of failed work: it is dropped. A record
// the log refuses (it is failed, or the record before it failed) counts
// as a failure of its ring.
func (c *Consumer) hand() {
	b := c.b
	var refused map[uint64]error
	var queued []entry
	for _, r := range c.recs {
		rh := b.ring(r.ring)
		ack, own := r.ring0.ack, r.ring0.owner
		if atomic.LoadUint64(b.u64(rh+rFailed)) != ack || r.start < r.ring0.resume || refused[r.ring] != nil {
			continue // failed work: its producer learns of the failure
		}
		if ack != c.ackSeen[r.ring] || own != c.owner[r.ring] {
			// The producer acknowledged a failure and published this
			// after, or the ring has a new producer: new work, after no
			// earlier record.
			c.ackSeen[r.ring], c.owner[r.ring], c.lastTick[r.ring] = ack, own, 0
		}
		t, err := c.log.AppendAfter(c.lastTick[r.ring], r.typ, c.scratch[r.from:r.to])
		if err != nil {
			if refused == nil {
				refused = map[uint64]error{}
			}
			refused[r.ring] = err
			continue
		}
		c.lastTick[r.ring] = t
		queued = append(queued, entry{ticket: t, ring: r.ring, end: r.end})
	}
	c.bmu.Lock()
	c.inLog = append(c.inLog, queued...)
	c.bmu.Unlock()
	if len(refused) > 0 {
		c.publishState(c.log.State()) // the reason, before the producers learn
		c.bmu.Lock()
		c.countFailures(refused)
		c.bmu.Unlock()
	}
	// The writer may have settled them before they were queued.
	c.settle()
}

// settle applies the outcome of every record handed to the log that has
// settled, oldest first: the failures of a ring are counted before its
// durable position moves past them, so a producer that sees the position
// sees the count. The log's writer calls it after records settle.
func (c *Consumer) settle() {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	var failed map[uint64]error
	durable := map[uint64]uint64{}
	c.tickets, c.errs = c.tickets[:0], c.errs[:0]
	for _, e := range c.inLog {
		c.tickets, c.errs = append(c.tickets, e.ticket), append(c.errs, nil)
	}
	settled := c.log.Outcomes(c.tickets, c.errs)
	n := 0
	for ; n < settled; n++ {
		e, err := c.inLog[n], c.errs[n]
		if err != nil {
			if failed == nil {
				failed = map[uint64]error{}
			}
			if failed[e.ring] == nil || errors.Is(err, rlog.ErrUncertain) {
				failed[e.ring] = err
			}
			continue
		}
		durable[e.ring] = max(durable[e.ring], e.end)
	}
	c.inLog = c.inLog[n:]
	if c.b == nil || n == 0 {
		return
	}
	c.countFailures(failed)
	if ferr := shm.Guard(func() error { c.store(durable); return nil }); ferr != nil {
		c.suspect.Store(true)
	}
}

// countFailures counts a failure in each ring of failed (an uncertain
// outcome in rUncertain too, first) and wakes its producer (under bmu).
func (c *Consumer) countFailures(failed map[uint64]error) {
	if len(failed) == 0 || c.b == nil {
		return
	}
	if ferr := shm.Guard(func() error {
		for ring, err := range failed {
			rh := c.b.ring(ring)
			if errors.Is(err, rlog.ErrUncertain) {
				atomic.AddUint64(c.b.u64(rh+rUncertain), 1)
			}
			atomic.AddUint64(c.b.u64(rh+rFailed), 1)
			shm.FutexWake(c.b.u32(rh+rDurable), 1<<30)
		}
		return nil
	}); ferr != nil {
		c.suspect.Store(true)
	}
}

// store stores the durable positions of the rings and wakes the
// producers that wait for them (under bmu).
func (c *Consumer) store(durable map[uint64]uint64) {
	for ring, end := range durable {
		rh := c.b.ring(ring)
		p := c.b.u64(rh + rDurable)
		if atomic.LoadUint64(p) < end {
			atomic.StoreUint64(p, end)
			// Wake the ring's producer only if it sleeps on it.
			if atomic.LoadUint32(c.b.u32(rh+rWaiting)) != 0 {
				shm.FutexWake(c.b.u32(rh+rDurable), 1<<30)
			}
		}
	}
}

// publishState publishes the log's state in the buffer (for producers,
// which fail at once while the log is failed, and for `qmgr status`) and
// says in the member's log when it fails and when it writes again. The
// log calls it when its state changes.
func (c *Consumer) publishState(st rlog.State) {
	c.statMu.Lock()
	defer c.statMu.Unlock()
	c.bmu.Lock()
	defer c.bmu.Unlock()
	b := c.b
	if b == nil {
		return
	}
	var was uint64
	if ferr := shm.Guard(func() error {
		was = atomic.LoadUint64(b.u64(hFailed))
		writeStatus(b, st)
		return nil
	}); ferr != nil {
		c.suspect.Store(true)
		return
	}
	switch {
	case st.Failed && was == 0:
		c.logf("logbuf: the recovery log failed, persistent work fails until it writes again (it retries): %s", st.Reason)
	case !st.Failed && was != 0:
		c.logf("logbuf: the recovery log writes again (failed %d times since the member started; the last: %s)", st.Failures, st.LastReason)
	}
}

// writeStatus stores st in b's status words, under the status sequence
// (odd while it writes: readers retry).
func writeStatus(b *Buffer, st rlog.State) {
	seq := b.u64(hStatusSeq)
	atomic.AddUint64(seq, 1)
	defer atomic.AddUint64(seq, 1)
	failed, since := uint64(0), uint64(0)
	reason := st.LastReason
	if st.Failed {
		failed, since, reason = 1, uint64(st.Since.UnixNano()), st.Reason
	}
	last := uint64(0)
	if !st.LastFailure.IsZero() {
		last = uint64(st.LastFailure.UnixNano())
	}
	atomic.StoreUint64(b.u64(hSince), since)
	atomic.StoreUint64(b.u64(hLastFailure), last)
	atomic.StoreUint64(b.u64(hFailures), st.Failures)
	nr := copy(b.mem.Bytes(hReason, maxReason), clip(reason, maxReason))
	nv := copy(b.mem.Bytes(hReserve, maxReserve), clip(st.ReserveErr, maxReserve))
	atomic.StoreUint32(b.u32(hReasonLen), uint32(nr)|uint32(nv)<<16)
	atomic.StoreUint64(b.u64(hFailed), failed)
}
