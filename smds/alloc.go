package smds

import (
	"fmt"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/crashpoint"
)

var (
	cpAllocClaimed = crashpoint.New("smds.alloc.claimed") // after each block claimed
	cpAllocWritten = crashpoint.New("smds.alloc.written") // after the run is written, before it is marked used
	cpAllocMarking = crashpoint.New("smds.alloc.marking") // after each tail block marked used
	cpAllocUsed    = crashpoint.New("smds.alloc.used")    // after the head is marked used, before the caller publishes
	cpFreeMarked   = crashpoint.New("smds.free.marked")   // after the head is marked freeing
	cpFreeTail     = crashpoint.New("smds.free.tail")     // after each tail block freed
	cpAllocFence   = crashpoint.New("smds.alloc.fence")   // after the run is claimed, before the retired word is checked
)

// testHookFence runs where cpAllocFence is hit (tests hold a Put there).
var testHookFence = func() {}

// Put writes body into a new run of the data set and returns its
// reference; with sync the body is on disk (fdatasync) when Put returns.
//
// The run is used from then on, but not yet known to the CF: the caller
// publishes the reference (makes the CF entry that holds it visible) and
// then calls Published. Until then the owner's descriptor names the run,
// so that a Repair after this process died asks its Resolver whether the
// CF got the reference, and frees the run if not. A caller that cannot
// publish frees the run (Free).
//
// A Put through a map retired by a rebuild (Retired) fails with
// ErrRetired and writes nothing: the blocks it claimed may be another
// message's in the new map. Reopen the data set.
func (o *Owner) Put(body []byte, sync bool) (r Ref, err error) {
	if err := o.checkAlive(); err != nil {
		return r, err
	}
	d := o.d
	if len(body) > d.g.maxBody() {
		return r, newErr("put", d.path, -1, ErrTooLarge, "%d bytes, an extent holds at most %d", len(body), d.g.maxBody())
	}
	n := d.g.blocksFor(len(body))
	var head, gen uint32
	var seq uint64
	err = guard(func() error {
		var err error
		head, gen, err = o.claim(n)
		if err != nil {
			return err
		}
		cpAllocFence.Hit()
		testHookFence()
		// The fence (docs/design/smds.md, section 6a). The descriptor
		// says alloc, claimed since before the first block was claimed;
		// the retired word is loaded after it (both sequentially
		// consistent): either this load sees a retirer's store, or the
		// retirer's later load of the descriptor sees this allocation and
		// waits until it is written (phase used) or given up. So a map
		// replaced under this process is never written through: the new
		// map may give these blocks to another message.
		if d.Retired() {
			if err := d.resolve(o.slot, o.tag, nil); err != nil {
				return err
			}
			return newErr("put", d.mapPath, mhRetired, ErrRetired, "the space map was replaced while this process had it open")
		}
		seq = atomic.AddUint64(d.u64(mhSeq), 1)
		return nil
	})
	if err != nil {
		return r, err
	}
	r = Ref{DataSet: d.num, Head: head, Len: uint32(len(body)), Gen: gen, Seq: seq, Sum: xxhash.Sum64(body)}
	var hdr [runHdrSize]byte
	encodeRunHeader(hdr[:], runHeader{DataSet: d.g.ID, Head: head, Gen: gen, Seq: seq, Len: uint64(len(body)), Sum: r.Sum})
	off := d.g.blockOff(head)
	pad := n*d.g.BlockSize - runHdrSize - len(body)
	werr := pwriteFull(int(d.f.Fd()), [][]byte{body, zeros[:pad], hdr[:]}, off)
	if werr == nil && sync {
		werr = unix.Fdatasync(int(d.f.Fd()))
	}
	if werr != nil {
		uerr := guard(func() error { return d.resolve(o.slot, o.tag, nil) })
		if uerr != nil {
			return r, uerr
		}
		return r, wrapErr("put", d.path, off, ErrIO, werr)
	}
	cpAllocWritten.Hit()
	err = guard(func() error {
		d.setDesc(o.off, opAlloc, phUsed, head, uint32(n), gen, seq, r.Sum, r.Len)
		for i := uint32(1); i < uint32(n); i++ {
			w := d.word(head + i)
			if wKind(w) != bkAlloc || Tag(wVal(w)) != o.tag || !d.cas(d.wordOff(head+i), w, mkWord(wGen(w), bkTail, head)) {
				return fmt.Errorf("%w: block %d taken back during put", ErrOwnerRevoked, head+i)
			}
			cpAllocMarking.Hit()
		}
		if !d.cas(d.wordOff(head), mkWord(gen, bkAlloc, uint32(o.tag)), mkWord(gen, bkHead, uint32(n))) {
			return fmt.Errorf("%w: block %d taken back during put", ErrOwnerRevoked, head)
		}
		return nil
	})
	if err != nil {
		return Ref{}, err
	}
	cpAllocUsed.Hit()
	return r, nil
}

// Published tells that the reference Put returned is in the CF: the run
// is the CF's from now on, and only a Free releases it.
func (o *Owner) Published() error {
	if err := o.checkAlive(); err != nil {
		return err
	}
	return guard(func() error { o.d.clearDesc(o.off); return nil })
}

// claim finds n free blocks in one extent and claims them, tagged with
// the owner, recording them in the descriptor first; it returns the first
// block and its gen. It grows the data set when no run is free.
func (o *Owner) claim(n int) (uint32, uint32, error) {
	d := o.d
	eb := uint32(d.g.ExtentBlocks)
	for round := 0; round <= d.g.MaxExtents+1; round++ {
		ext := d.extents()
		if ext == 0 {
			return 0, 0, newErr("allocate", d.mapPath, mhExtents, ErrCorrupt, "space map says no extent is in use")
		}
		nb := uint32(ext) * eb
		b := uint32(d.load(mhHand) % uint64(nb))
		for scanned := uint32(0); scanned < nb+uint32(n); {
			if b >= nb {
				b = 0
			}
			end := (b/eb + 1) * eb
			if b+uint32(n) > end {
				scanned += end - b
				b = end
				continue
			}
			skip := uint32(0)
			for i := uint32(0); i < uint32(n); i++ {
				w := d.word(b + i)
				if wKind(w) != bkFree {
					skip = i + 1
					if wKind(w) == bkHead && wVal(w) > 1 {
						skip = i + min(wVal(w), end-(b+i))
					}
					break
				}
			}
			if skip > 0 {
				scanned += skip
				b += skip
				continue
			}
			gen := wGen(d.word(b))
			d.setDesc(o.off, opAlloc, phClaimed, b, uint32(n), gen, 0, 0, 0)
			got := uint32(0)
			for ; got < uint32(n); got++ {
				w := d.word(b + got)
				if wKind(w) != bkFree || !d.cas(d.wordOff(b+got), w, mkWord(wGen(w), bkAlloc, uint32(o.tag))) {
					break
				}
				cpAllocClaimed.Hit()
			}
			if got == uint32(n) {
				d.store(mhHand, uint64(b+got))
				return b, wGen(d.word(b)), nil
			}
			// Another allocator got there first: give back what we took.
			for i := got; i > 0; i-- {
				w := d.word(b + i - 1)
				d.cas(d.wordOff(b+i-1), w, mkWord(wGen(w), bkFree, 0))
			}
			d.clearDesc(o.off)
			scanned += got + 1
			b += got + 1
		}
		if err := d.grow(ext); err != nil {
			return 0, 0, err
		}
		d.store(mhHand, uint64(ext)*uint64(eb))
	}
	return 0, 0, newErr("allocate", d.path, -1, ErrFull, "no run of %d blocks free", n)
}

// Free releases the run r names: the message that held it was got and
// committed. Any process may free any run, whoever allocated it and
// whether or not that owner lives. A run already freed gives ErrStale; a
// run another live owner is freeing gives ErrBusy. Freeing is tagged (the
// head block says who frees it, the descriptor which run), so a Repair
// after this process died finishes it.
func (o *Owner) Free(r Ref) error {
	if err := o.checkAlive(); err != nil {
		return err
	}
	d := o.d
	n := d.g.blocksFor(int(r.Len))
	if err := d.checkRef(r, "free"); err != nil {
		return err
	}
	err := guard(func() error {
		off := d.wordOff(r.Head)
		for {
			w := d.word(r.Head)
			switch {
			case w == mkWord(r.Gen, bkHead, uint32(n)):
				d.setDesc(o.off, opFree, 0, r.Head, uint32(n), r.Gen, r.Seq, r.Sum, r.Len)
				if !d.cas(off, w, mkWord(r.Gen, bkFreeing, uint32(o.tag))) {
					continue
				}
			case wKind(w) == bkFreeing && wGen(w) == r.Gen:
				// A free left half done by a process that died: take it
				// over (its repair, if it runs too, finishes by CAS the
				// same way, each block once).
				t := Tag(wVal(w))
				if t != o.tag && d.tagAlive(t) {
					return newErr("free", d.path, d.g.blockOff(r.Head), ErrBusy, "%v is freeing %v", t, r)
				}
				d.setDesc(o.off, opFree, 0, r.Head, uint32(n), r.Gen, r.Seq, r.Sum, r.Len)
				if t != o.tag && !d.cas(off, w, mkWord(r.Gen, bkFreeing, uint32(o.tag))) {
					continue
				}
			default:
				return newErr("free", d.path, d.g.blockOff(r.Head), ErrStale, "%v: block %d is %s", r, r.Head, wordString(w))
			}
			break
		}
		cpFreeMarked.Hit()
		d.finishFree(r.Head, r.Gen, uint32(n), o.tag)
		d.clearDesc(o.off)
		return nil
	})
	if err == nil && d.cache != nil {
		d.cache.del(d.cacheKey(r))
	}
	return err
}

// finishFree frees the run at head (gen), which tag is freeing: the tail
// blocks from the last to the first, then the head. Going backwards, the
// tails still to free are always the ones right after the head, so a
// repair finds them from the head alone even when the freed ones were
// allocated again meanwhile. Every step is a CAS from the exact state it
// undoes, so two processes finishing the same free change each block
// once.
func (d *DataSet) finishFree(head, gen, maxBlocks uint32, tag Tag) {
	end := min(head+maxBlocks, (head/uint32(d.g.ExtentBlocks)+1)*uint32(d.g.ExtentBlocks))
	last := head + 1
	for last < end {
		w := d.word(last)
		if wKind(w) != bkTail || wVal(w) != head {
			break
		}
		last++
	}
	for t := last - 1; t > head; t-- {
		w := d.word(t)
		if wKind(w) == bkTail && wVal(w) == head {
			d.cas(d.wordOff(t), w, mkWord(wGen(w)+1, bkFree, 0))
			cpFreeTail.Hit()
		}
	}
	d.cas(d.wordOff(head), mkWord(gen, bkFreeing, uint32(tag)), mkWord(gen+1, bkFree, 0))
}

// checkRef checks that r's run lies inside the data set's extents.
func (d *DataSet) checkRef(r Ref, op string) error {
	n := uint32(d.g.blocksFor(int(r.Len)))
	eb := uint32(d.g.ExtentBlocks)
	nb := uint64(d.extents()) * uint64(eb)
	if r.DataSet != d.num {
		return newErr(op, d.path, -1, ErrCorrupt, "reference %v is to data set %d, this is data set %d", r, r.DataSet, d.num)
	}
	if r.Gen > genMask || uint64(r.Head)+uint64(n) > nb || r.Head%eb+n > eb {
		return newErr(op, d.path, d.g.blockOff(r.Head), ErrCorrupt, "reference %v outside the data set's %d blocks in use", r, nb)
	}
	return nil
}

// zeros pads a body to its run's header.
var zeros = make([]byte, MaxBlockSize)

// pwriteFull writes bufs at off, all of them.
func pwriteFull(fd int, bufs [][]byte, off int64) error {
	for len(bufs) > 0 {
		k, err := unix.Pwritev(fd, bufs, off)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		off += int64(k)
		for k > 0 && len(bufs) > 0 {
			if k >= len(bufs[0]) {
				k -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][k:]
				k = 0
			}
		}
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
	}
	return nil
}

// wordString describes a block state word for messages.
func wordString(w uint64) string {
	switch wKind(w) {
	case bkFree:
		return fmt.Sprintf("free (gen %d)", wGen(w))
	case bkAlloc:
		return fmt.Sprintf("being allocated by %v (gen %d)", Tag(wVal(w)), wGen(w))
	case bkHead:
		return fmt.Sprintf("the head of a run of %d blocks (gen %d)", wVal(w), wGen(w))
	case bkTail:
		return fmt.Sprintf("in the run at block %d (gen %d)", wVal(w), wGen(w))
	case bkFreeing:
		return fmt.Sprintf("being freed by %v (gen %d)", Tag(wVal(w)), wGen(w))
	}
	return fmt.Sprintf("in unknown state %#x", w)
}
