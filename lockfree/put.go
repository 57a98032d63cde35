package lockfree

import (
	"fmt"
	"runtime"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/shm"
)

// PutOptions control a put.
type PutOptions struct {
	// Syncpoint puts the message in the owner's unit of work: it is on the
	// queue (and counts in its depth) but invisible until Commit; Backout
	// removes it.
	Syncpoint bool
	// lone, with Syncpoint: the put is the owner's lone operation
	// (PutLone), linked and counted as a put under syncpoint but outside
	// its unit of work (o.lonePut, not o.uowPuts).
	lone bool
}

var (
	cpPutFilled   = crashpoint.New("lockfree.put.filled")
	cpPutReserved = crashpoint.New("lockfree.put.reserved")
	cpPutLinked   = crashpoint.New("lockfree.put.linked")
	cpPutVisible  = crashpoint.New("lockfree.put.visible")
)

// Put puts m on q. A zero MsgID is replaced by a generated one (written back
// to m.MsgID); a zero PutTime by the current time.
func (o *Owner) Put(q QueueID, m *Message, opt PutOptions) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	pq, err := o.putQueue(q)
	if err != nil {
		return err
	}
	var run linkRun
	err = o.putOne(pq, m, opt, &run)
	o.endRun(&run)
	if err == nil && !opt.Syncpoint {
		o.s.wake(pq.q, 1)
	}
	return err
}

// PutBatch puts msgs in order and returns how many it put. The checks are
// made once, consecutive positions are filled without moving the queue's
// tail for each message, and waiters are woken once: consumers see the
// batch appear at once. Each message is still its own put (without
// syncpoint, a failure part way leaves the ones before it on the queue).
func (o *Owner) PutBatch(q QueueID, msgs []Message, opt PutOptions) (n int, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return 0, err
	}
	defer o.end()
	pq, err := o.putQueue(q)
	if err != nil {
		return 0, err
	}
	var run linkRun
	for n = range msgs {
		if err = o.putOne(pq, &msgs[n], opt, &run); err != nil {
			break
		}
	}
	if err == nil {
		n = len(msgs)
	}
	o.endRun(&run)
	if n > 0 && !opt.Syncpoint {
		o.s.wake(pq.q, n)
	}
	return n, err
}

// putTarget is what a put needs to know about its queue, read once per call.
type putTarget struct {
	q        uint32
	maxMsgL  int
	flags    uint64
	putTime  int64
	syncSeen bool
}

func (o *Owner) putQueue(q QueueID) (putTarget, error) {
	s := o.s
	qi := uint32(q)
	if !s.queueActive(qi) {
		return putTarget{}, fmt.Errorf("%w: slot %d", ErrUnknownQueue, q)
	}
	o.touch(qi)
	qo := s.queueOff(qi)
	return putTarget{q: qi, maxMsgL: int(s.load(qo + qMaxMsgL)), flags: s.load(qo + qFlags), putTime: coarseNow()}, nil
}

// putOne puts one message; consecutive puts of one call share run.
func (o *Owner) putOne(pq putTarget, m *Message, opt PutOptions, run *linkRun) error {
	s := o.s
	qi := pq.q
	if m.Priority < 0 || m.Priority >= Priorities {
		return fmt.Errorf("%w: %d", ErrBadPriority, m.Priority)
	}
	if err := m.checkOffload(); err != nil {
		return err
	}
	if n := m.bodyLen() + len(m.Properties); n > pq.maxMsgL {
		return fmt.Errorf("%w: %d bytes, queue %s takes at most %d", ErrMsgTooLong, n, s.queueName(qi), pq.maxMsgL)
	}
	if uint64(m.varLen()) > s.maxVar() {
		return fmt.Errorf("%w: %d bytes, structure %s holds at most %d", ErrMsgTooLong, m.varLen(), s.Name(), s.maxVar())
	}
	e, g, err := o.allocEntry()
	if err != nil {
		return err
	}
	putTime := m.PutTime
	if putTime == 0 {
		putTime = pq.putTime
	}
	if err := o.fillEntry(e, qi, m, putTime, opt.Syncpoint); err != nil {
		o.recacheEntry(e, g)
		return err
	}
	cpPutFilled.Hit()
	if pq.flags&(flagIndexMsgID|flagIndexCorrelID) != 0 {
		s.indexPut(qi, pq.flags, e, g)
	}
	r := mkRef(e, g)
	before, err := o.reserveDepth(qi, r, m.Priority)
	if err != nil {
		o.unput(e, g)
		return err
	}
	cpPutReserved.Hit()
	s.prioUsed(qi, m.Priority)
	if err := o.linkInRun(qi, m.Priority, e, g, run); err != nil {
		o.setCellDepth(qi, before)
		o.unput(e, g)
		return err
	}
	cpPutLinked.Hit()
	eo := s.entryOff(e)
	alloc := mkWord(g, stAlloc, uint32(o.tag))
	if opt.Syncpoint {
		if !s.cas(eo+enCtl, alloc, mkWord(g, stPutU, uint32(o.tag))) {
			return fmt.Errorf("%w: entry %d taken back during put", ErrOwnerRevoked, e)
		}
		cpPutVisible.Hit()
		it := uowItem{idx: e, gen: g, q: qi, prio: uint8(m.Priority)}
		if opt.lone {
			lone := it // only this one on the heap
			o.lonePut = &lone
			o.addUncom(qi, 1)
			return nil
		}
		o.uowPuts = append(o.uowPuts, it)
		o.addUncom(qi, 1)
		o.markUOW()
		return nil
	}
	if !s.cas(eo+enCtl, alloc, mkWord(g, stAvail, 0)) {
		return fmt.Errorf("%w: entry %d taken back during put", ErrOwnerRevoked, e)
	}
	cpPutVisible.Hit()
	o.countMsg(qi, clPuts, uint64(len(m.Body)))
	return nil
}

// unput undoes a put of entry e (gen g) that failed before its entry was
// linked, once its depth cell is back as it was: the descriptor, which
// names the put, is cleared first (Repair would count a put whose entry it
// no longer finds allocated as done), then the entry and its elements go
// back to the caches.
func (o *Owner) unput(e, g uint32) {
	o.clearDesc()
	o.untagElems(e)
	o.recacheEntry(e, g)
}

// reserveDepth counts the new message in this owner's depth cell, then
// checks the queue's depth including every concurrent reservation. Several
// producers racing for the last places may all back off (a put may see
// ErrQueueFull a little early), but the depth never passes MaxDepth. The
// descriptor records the cell before the put so Repair can restore it.
//
// The check is a store to this owner's cell followed by loads of the
// others' (a Dekker pattern): of two producers racing for the last place,
// the one whose increment comes second in the order of atomic operations
// must see the other's. That needs the increment to be an atomic
// (sequentially consistent) store: a plain one may still sit in the
// store buffer while the loads run, and then both producers read the
// other's cell from before its increment and both take the place.
func (o *Owner) reserveDepth(q uint32, r ref, prio int) (uint64, error) {
	s := o.s
	maxD := int64(s.load(s.queueOff(q) + qMaxDepth))
	for try := 0; ; try++ {
		before := o.cellDepth(q)
		o.setDesc(opPut, uint64(r), uint64(qpOf(q, prio)), before)
		if maxD >= int64(s.p.Entries) {
			o.setCellDepth(q, before+1) // no limit to check: nothing to order it with
			return before, nil
		}
		s.store(s.cellOff(o.slot, q)+clDepth, before+1) // a full barrier before the loads below
		d, _ := s.counts(q)
		if d <= maxD {
			return before, nil
		}
		o.setCellDepth(q, before)
		if d-1 >= maxD || try >= 3 {
			return 0, fmt.Errorf("%w: %s holds %d (MAXDEPTH %d)", ErrQueueFull, s.queueName(q), d-1, maxD)
		}
		if try == 0 {
			runtime.Gosched()
		} else {
			time.Sleep(time.Duration(try) * time.Microsecond)
		}
	}
}
