package lockfree

import (
	"fmt"
	"unsafe"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/shm"
)

// View is a message held by its owner whose body is read in place, without
// copying: the slices point into the mapping. A view is valid until it is
// released, or, for a view got under syncpoint, until the unit of work ends.
// The channel sender writes views straight to its socket.
type View struct {
	o         *Owner
	c         claimed
	syncpoint bool
	done      bool
	// Msg is the descriptor fields, reply-to names and properties
	// (copied: valid after the view ends, until v is filled again, which
	// reuses the properties' storage); Body is empty.
	Msg  Message
	Body [][]byte // the body, in pieces, aliasing the mapping
}

// Len is the body length.
func (v *View) Len() int {
	n := 0
	for _, b := range v.Body {
		n += len(b)
	}
	return n
}

// GetView claims the next message like Get and returns a zero-copy view of
// it. Without Syncpoint the message is removed when the view is released;
// with Syncpoint it belongs to the unit of work like any syncpoint get.
func (o *Owner) GetView(q QueueID, opt GetOptions) (*View, error) {
	v := new(View)
	if err := o.GetViewInto(q, opt, v); err != nil {
		return nil, err
	}
	return v, nil
}

// GetViewInto is GetView into v, whose storage it reuses (its Body's
// pieces too): a sender that takes batch after batch allocates nothing per
// message. v must not be a view still in use.
func (o *Owner) GetViewInto(q QueueID, opt GetOptions, v *View) (err error) {
	_, err = o.GetViewsInto(q, opt, unsafe.Slice(v, 1))
	return err
}

// GetViewsInto claims up to len(vs) messages in one scan of q, like
// GetViewInto for each (only the first may wait), and returns how many it
// claimed: vs[:n] are views of them, in delivery order. It returns
// ErrNoMessage only when it claimed none. The views must not be in use.
func (o *Owner) GetViewsInto(q QueueID, opt GetOptions, vs []View) (n int, err error) {
	return o.GetViewsAt(q, opt, len(vs), func(i int) *View { return &vs[i] })
}

// GetViewsAt is GetViewsInto for views that are not in one slice: view i
// is at(i), for i below max.
func (o *Owner) GetViewsAt(q QueueID, opt GetOptions, max int, at func(int) *View) (n int, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return 0, err
	}
	defer o.end()
	s := o.s
	if !s.queueActive(uint32(q)) {
		return 0, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	if max <= 0 {
		return 0, nil
	}
	o.touch(uint32(q))
	mode := claimView
	if opt.Syncpoint {
		mode = claimHeld
	}
	var bad error
	_, err = o.claimWait(uint32(q), opt, mode, func(c claimed) bool {
		v := at(n)
		n++
		if opt.Syncpoint {
			o.holdInUOW(c)
		} else {
			o.views = append(o.views, c)
		}
		if err := o.fillView(v, c, opt.Syncpoint); err != nil {
			bad = err
			return false
		}
		return n < max
	})
	if bad != nil {
		// The bad one stays held (a backout or the owner's end returns
		// it) but is no view.
		return n - 1, bad
	}
	return n, err
}

// fillView makes v a view of the message of claimed entry c. It reuses
// v's storage (its Body's pieces and its properties' bytes), so a view
// reused for message after message allocates nothing for a message
// without reply-to names (their strings are the only allocations).
func (o *Owner) fillView(v *View, c claimed, syncpoint bool) error {
	s := o.s
	clear(v.Body)
	*v = View{o: o, c: c, syncpoint: syncpoint, Body: v.Body[:0], Msg: Message{Properties: v.Msg.Properties[:0]}}
	eo := s.entryOff(c.idx)
	varLen, bodyLen, propsLen, rq, rqm, off := s.entryMeta(eo, &v.Msg)
	lead, inCF := 0, bodyLen
	if off {
		lead, inCF = OffloadRefSize, 0
	}
	skip := lead + rq + rqm + propsLen
	if varLen != skip+inCF || uint64(varLen) > s.maxVar() {
		v.Msg.Properties = v.Msg.Properties[:0]
		return errCorrupt(s, "entry %d of queue %d has inconsistent lengths", c.idx, c.q)
	}
	// head is the reply-to names and the properties: aliasing the
	// mapping when the first chunk holds them, else copied together.
	var head []byte
	copied := false
	s.chunks(eo, func(b []byte) bool {
		if skip > 0 {
			k := min(skip, len(b))
			switch {
			case head == nil && k == skip:
				head = b[:k]
			default:
				if !copied {
					head, copied = append([]byte(nil), head...), true
				}
				head = append(head, b[:k]...)
			}
			b, skip = b[k:], skip-k
		}
		if len(b) > 0 {
			v.Body = appendPiece(v.Body, b)
		}
		return true
	})
	if body := v.Len(); len(head) != lead+rq+rqm+propsLen || body != inCF {
		clear(v.Body)
		v.Body = v.Body[:0]
		v.Msg.Properties = v.Msg.Properties[:0]
		return errCorrupt(s, "entry %d of queue %d: its data elements hold %d of its %d bytes", c.idx, c.q, len(head)+body, varLen)
	}
	if off {
		v.Msg.Offload = append(make([]byte, 0, OffloadRefSize), head[:lead]...)
		v.Msg.OffloadLen = bodyLen
		head = head[lead:]
	}
	if rq > 0 {
		v.Msg.ReplyToQ = string(head[:rq])
	}
	if rqm > 0 {
		v.Msg.ReplyToQMgr = string(head[rq : rq+rqm])
	}
	v.Msg.Properties = append(v.Msg.Properties, head[rq+rqm:]...) // empty (storage kept) without properties
	return nil
}

// appendPiece appends b to pieces, extending the last piece instead when b
// follows it in the mapping (consecutive elements), so a message stored in
// adjacent elements is one piece.
func appendPiece(pieces [][]byte, b []byte) [][]byte {
	if n := len(pieces); n > 0 {
		last := pieces[n-1]
		if unsafe.Add(unsafe.Pointer(unsafe.SliceData(last)), len(last)) == unsafe.Pointer(unsafe.SliceData(b)) {
			pieces[n-1] = unsafe.Slice(unsafe.SliceData(last), len(last)+len(b))
			return pieces
		}
	}
	return append(pieces, b)
}

// Release ends a view. A view got without syncpoint removes its message
// now; a syncpoint view's message is removed by Commit (or kept by Backout).
func (v *View) Release() error {
	return v.finish(func(o *Owner) error { return o.removeHeld(v.c, stView) })
}

// Return ends a view got without syncpoint without removing its message:
// the message goes back where it was, unchanged (a get that did not
// happen: its log record could not be made durable; its backout count is
// not raised, unlike a view given back by Close or a repair, whose
// application may have seen the message). A syncpoint view is left to its
// unit of work.
func (v *View) Return() error {
	return v.finish(func(o *Owner) error { return o.makeAvail(v.c, stView, "viewed message") })
}

// Requeue ends a view got without syncpoint by giving its message back
// where it was (its position in its queue, so it is got before anything
// put after it), with its backout count raised by one, as a backout does:
// the next getter sees it redelivered (an AMQP nack or reject with
// requeue, basic.recover, a channel closed with unacknowledged
// deliveries). Like a backout it is one store of the count and one CAS,
// behind a descriptor, so a repair after a kill at any step gives the
// message back with its count raised exactly once. A view got under
// syncpoint belongs to its unit of work: Requeue refuses it
// (ErrViewInUOW) and leaves it there; Backout gives it back.
func (v *View) Requeue() error {
	if v.syncpoint && !v.done {
		return ErrViewInUOW
	}
	return v.finish(func(o *Owner) error {
		ss := sublogSet{qpOf(v.c.q, v.c.prio)}
		o.s.bumpAvail(ss) // before it is available: getters do not trust their scan caches
		err := o.backoutHeldFrom(uowItem{idx: v.c.idx, gen: v.c.gen, q: v.c.q, prio: uint8(v.c.prio)}, stView)
		o.s.announce(ss, 1)
		return err
	})
}

// Adopt turns view v, got without syncpoint and not yet ended, into a get
// under syncpoint of its owner's unit of work: Commit removes its message
// and Backout gives it back with its backout count raised, like any
// message got under syncpoint, and v is from then on a syncpoint view
// (valid until the unit of work ends; Release ends it without removing
// anything, Requeue refuses it). Other views the owner holds are left
// alone. A caller that logs gets (package mq) logs this one as the unit of
// work's, so that a batch of views is removed with one commit.
//
// It is one CAS of the entry, view(owner) -> held(owner), then the
// owner's uncommitted count of the queue and its unit-of-work word, as a
// get under syncpoint does after its claim. A repair after a kill at any
// step gives the message back with its count raised exactly once (a view
// and a held message of a unit of work not committing end the same way),
// and once the unit of work is committing, removes it. The owner's lone
// operation (MarkLone) cannot be adopted (ErrViewLone); a view already
// ended gives ErrViewReleased, a syncpoint view ErrViewInUOW.
// ErrOwnerRevoked: a recoverer took the message back (v is ended).
func (v *View) Adopt() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if v.done {
		return ErrViewReleased
	}
	if v.syncpoint {
		return ErrViewInUOW
	}
	o := v.o
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	s, c := o.s, v.c
	if ref(s.load(o.off+ownLone)) == mkRef(c.idx, c.gen) {
		return ErrViewLone
	}
	eo := s.entryOff(c.idx)
	if !s.cas(eo+enCtl, mkWord(c.gen, stView, uint32(o.tag)), mkWord(c.gen, stHeld, uint32(o.tag))) {
		o.dropView(c)
		v.end()
		return fmt.Errorf("%w: viewed message %d taken back", ErrOwnerRevoked, c.idx)
	}
	cpAdoptHeld.Hit()
	o.dropView(c)
	o.holdInUOW(c)
	cpAdoptCounted.Hit()
	v.syncpoint = true
	return nil
}

// Ended reports whether view v has ended (Release, Return, Requeue, or a
// failed Adopt); a syncpoint view ends with Release or when its unit of
// work ends.
func (v *View) Ended() bool { return v.done }

// InUOW reports whether view v belongs to its owner's unit of work (got
// under syncpoint, or adopted).
func (v *View) InUOW() bool { return v.syncpoint }

// end marks v ended: nothing aliases the mapping any more (the storage
// stays for the next fill).
func (v *View) end() {
	v.done = true
	clear(v.Body)
	v.Body = v.Body[:0]
}

var (
	// Adopt: the entry held in the unit of work (view -> held), then
	// counted as uncommitted and the unit of work marked active.
	cpAdoptHeld    = crashpoint.New("lockfree.adopt.held")
	cpAdoptCounted = crashpoint.New("lockfree.adopt.counted")
)

// finish ends view v for Release, Return and Requeue: it is done with, and for a
// view got without syncpoint, f runs in an operation of its owner once
// the owner no longer lists it.
func (v *View) finish(f func(o *Owner) error) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if v.done {
		return ErrViewReleased
	}
	v.end()
	if v.syncpoint {
		return nil
	}
	o := v.o
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.dropView(v.c)
	return f(o)
}

// makeAvail makes message c, which this owner holds in state from (a
// view, or a lone put), available where it is, with one CAS and no
// descriptor (nothing else changes): scan caches are told before and
// after, and waiters woken. what names it in the error when a recoverer
// took it back.
func (o *Owner) makeAvail(c claimed, from uint8, what string) error {
	ss := sublogSet{qpOf(c.q, c.prio)}
	o.s.bumpAvail(ss)
	if !o.s.cas(o.s.entryOff(c.idx)+enCtl, mkWord(c.gen, from, uint32(o.tag)), mkWord(c.gen, stAvail, 0)) {
		return fmt.Errorf("%w: %s %d taken back", ErrOwnerRevoked, what, c.idx)
	}
	o.s.announce(ss, 1)
	return nil
}

func (o *Owner) dropView(c claimed) {
	for i, x := range o.views {
		if x == c {
			o.views = append(o.views[:i], o.views[i+1:]...)
			return
		}
	}
}
