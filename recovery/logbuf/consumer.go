package logbuf

import (
	"encoding/binary"
	"fmt"
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
	b       *Buffer
	log     *rlog.Log
	logf    func(format string, args ...any)
	partial [][]byte // per ring: the pieces of a record so far
	ptype   []uint8

	scratch []byte
	recs    []taken

	mu    sync.Mutex
	frees map[uint64]chan error // owner tag → a Free waiting for the drain loop
	stop  chan struct{}
	done  chan struct{}

	// Batches handed to the log and not yet durable, oldest first: the
	// log's writer publishes their positions (published) as it makes
	// them durable, or reports its failure.
	bmu     sync.Mutex
	batches []batch
}

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

// NewConsumer stamps b as consumed by this process, logs whatever a
// previous consumer left published, frees every ring, and starts moving
// records into log. logf reports damage found in a ring (nil: none).
func NewConsumer(b *Buffer, log *rlog.Log, logf func(string, ...any)) (*Consumer, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	c := &Consumer{b: b, log: log, logf: logf, partial: make([][]byte, b.rings), ptype: make([]uint8, b.rings),
		frees: map[uint64]chan error{}, stop: make(chan struct{}), done: make(chan struct{})}
	self := procid.Self()
	// Producers of the previous consumer fail their waits from here on.
	atomic.StoreUint64(b.u64(hPid), uint64(self.Pid))
	atomic.StoreUint64(b.u64(hStart), self.Start)
	atomic.AddUint64(b.u64(hGen), 1)
	atomic.StoreUint64(b.u64(hFailed), 0)
	log.OnDurable(c.published)
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
	go c.run()
	return c, nil
}

// Close stops the consumer after logging what is published and waiting
// for it to be durable.
func (c *Consumer) Close() error {
	close(c.stop)
	atomic.AddUint32(c.b.u32(hWork), 1)
	shm.FutexWake(c.b.u32(hWork), 1)
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
	return nil
}

// Free frees the ring claimed by the connection with owner tag tag (a
// connection that died), once everything it published has been taken. It
// returns at once when no ring is claimed by tag.
func (c *Consumer) Free(tag uint64) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	c.frees[tag] = ch
	c.mu.Unlock()
	atomic.AddUint32(c.b.u32(hWork), 1)
	shm.FutexWake(c.b.u32(hWork), 1)
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
		n := c.drain()
		c.serveFrees()
		select {
		case <-c.stop:
			c.drain()
			return
		default:
		}
		if n > 0 {
			continue
		}
		v := atomic.LoadUint32(c.b.u32(hWork))
		atomic.StoreUint32(c.b.u32(hSleeping), 1)
		if !c.pending() {
			shm.FutexWait(c.b.u32(hWork), v, 100*time.Millisecond)
		}
		atomic.StoreUint32(c.b.u32(hSleeping), 0)
	}
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
	if atomic.SwapUint64(c.b.u64(hFailed), 1) == 0 {
		c.logf("logbuf: the recovery log failed: %v", err)
	}
	for i := range c.b.rings {
		rh := c.b.ring(i)
		if atomic.LoadUint32(c.b.u32(rh+rWaiting)) != 0 {
			shm.FutexWake(c.b.u32(rh+rDurable), 1<<30)
		}
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
	n := 0
	for n < len(c.batches) && c.batches[n].ticket <= t {
		for ring, end := range c.batches[n].ends {
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
		n++
	}
	c.batches = c.batches[n:]
	c.bmu.Unlock()
}
