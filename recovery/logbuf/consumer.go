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

	partial [][]byte // per ring: the pieces of a record so far
	ptype   []uint8

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

	// Batches handed to the log and not yet durable, oldest first: the
	// log's writer publishes their positions (published) as it makes
	// them durable, or reports its failure.
	bmu     sync.Mutex
	batches []batch
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
	end      uint64 // ring position after its last piece
}

// batch is what the notifier makes known once ticket is durable.
type batch struct {
	ticket rlog.Ticket
	ends   map[uint64]uint64
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
	c.log.OnDurable(c.published)
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
	c.partial, c.ptype = make([][]byte, b.rings), make([]uint8, b.rings)
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
	dropped := len(c.batches)
	c.b, c.batches = nb, nil
	if c.owned {
		old.Close()
	}
	c.owned = true
	c.bmu.Unlock()
	if err := c.takeOver(); err != nil {
		return fmt.Errorf("logbuf: replace log buffer %s: the new one: %w", old.Path(), err)
	}
	c.logf("logbuf: log buffer replaced: %s: %v; records its connections had published and the member had not taken are dropped (none was reported durable); %d batches already handed to the log are no longer reported to their writers, whose outcome is unknown to them",
		old.Path(), why, dropped)
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
// for it to be durable. A buffer the consumer owns is unmapped.
func (c *Consumer) Close() error {
	close(c.stop)
	c.kick()
	<-c.done
	// Wait for the last batch to become durable (or the log to fail).
	c.bmu.Lock()
	var last rlog.Ticket
	if n := len(c.batches); n > 0 {
		last = c.batches[n-1].ticket
	}
	c.bmu.Unlock()
	if last > 0 {
		if err := c.log.Wait(last); err != nil {
			c.failed(err)
		} else {
			c.published(last, nil)
		}
	}
	c.log.OnDurable(nil)
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
		data := b.data(i)
		start := tail
		for tail < head {
			off := tail % b.size
			n := uint64(binary.LittleEndian.Uint32(data[off:]))
			typ, flags := data[off+4], data[off+5]
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
					c.ptype[i] = typ
				}
				c.partial[i] = append(c.partial[i], payload...)
			case c.partial[i] != nil:
				from := len(c.scratch)
				c.scratch = append(c.scratch, c.partial[i]...)
				c.scratch = append(c.scratch, payload...)
				c.recs = append(c.recs, taken{ring: i, typ: c.ptype[i], from: from, to: len(c.scratch), end: tail + size})
				c.partial[i] = nil
			default:
				from := len(c.scratch)
				c.scratch = append(c.scratch, payload...)
				c.recs = append(c.recs, taken{ring: i, typ: typ, from: from, to: len(c.scratch), end: tail + size})
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
	if len(c.recs) == 0 {
		return took
	}
	bt := batch{ends: map[uint64]uint64{}}
	for _, r := range c.recs {
		t, err := c.log.Append(r.typ, c.scratch[r.from:r.to])
		if err != nil {
			c.failed(err)
			return took
		}
		bt.ticket = t
		bt.ends[r.ring] = r.end
	}
	c.bmu.Lock()
	c.batches = append(c.batches, bt)
	c.bmu.Unlock()
	// The writer may have made it durable before it was queued.
	if t, _ := c.log.Durable(); t >= bt.ticket {
		c.published(t, nil)
	}
	if err := c.log.Err(); err != nil {
		c.failed(err)
	}
	return took
}

// failed marks the buffer's log as failed, so producers stop waiting.
func (c *Consumer) failed(err error) {
	c.bmu.Lock()
	defer c.bmu.Unlock()
	b := c.b
	if b == nil {
		return
	}
	if ferr := shm.Guard(func() error {
		if atomic.SwapUint64(b.u64(hFailed), 1) == 0 {
			c.logf("logbuf: the recovery log failed: %v", err)
		}
		for i := range b.rings {
			rh := b.ring(i)
			if atomic.LoadUint32(b.u32(rh+rWaiting)) != 0 {
				shm.FutexWake(b.u32(rh+rDurable), 1<<30)
			}
		}
		return nil
	}); ferr != nil {
		c.suspect.Store(true)
	}
}

// published stores the durable positions of every batch up to ticket t
// and wakes the producers waiting (the log's writer calls it).
func (c *Consumer) published(t rlog.Ticket, err error) {
	if err != nil {
		c.failed(err)
		return
	}
	c.bmu.Lock()
	defer c.bmu.Unlock()
	n := 0
	for n < len(c.batches) && c.batches[n].ticket <= t {
		n++
	}
	done := c.batches[:n]
	c.batches = c.batches[n:]
	if c.b == nil {
		return
	}
	if ferr := shm.Guard(func() error { c.store(done); return nil }); ferr != nil {
		c.suspect.Store(true)
	}
}

// store stores the durable positions of batches and wakes the producers
// that wait for them (under bmu).
func (c *Consumer) store(batches []batch) {
	for _, bt := range batches {
		for ring, end := range bt.ends {
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
}
