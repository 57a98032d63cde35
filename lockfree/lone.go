package lockfree

import (
	"errors"

	"github.com/qmgr/qmgr/shm"
)

// Lone operations. A put or get outside any unit of work that must not
// happen before something outside the structure decides it (package mq:
// its recovery log record is durable) is done in two steps, like a unit of
// work of one message that leaves the owner's unit of work alone:
//
//   - PutLone links the message invisibly (counted in the depth, as a put
//     under syncpoint); MarkLone names a view the owner holds. Either
//     records the entry and the decision's key in the owner slot (ownLone,
//     ownLoneKey).
//   - The caller records its decision elsewhere, then CommitLone (the put
//     becomes visible) or View.Release (the message is removed) carries it
//     out, or BackoutLone or View.Return undoes it; EndLone forgets it.
//
// A recoverer that finds the owner dead reads the decision where it was
// recorded and passes its key to RepairDecided: the lone operation is
// rolled forward when the key matches, undone otherwise, whatever happens
// to the owner's unit of work.

// LonePut is a put linked by PutLone, not yet visible.
type LonePut struct {
	it   uowItem
	done bool
}

// PutLone puts m on q invisibly, outside the owner's unit of work, as the
// owner's lone operation decided by key (not 0): CommitLone makes it
// visible, BackoutLone removes it, and a repair of the dead owner does
// either as the key was decided. The owner has at most one lone operation.
func (o *Owner) PutLone(q QueueID, m *Message, key uint64) (p LonePut, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if key == 0 {
		panic("lockfree: PutLone without a key")
	}
	if err := o.begin(); err != nil {
		return p, err
	}
	defer o.end()
	pq, err := o.putQueue(q)
	if err != nil {
		return p, err
	}
	var run linkRun
	err = o.putOne(pq, m, PutOptions{Syncpoint: true, lone: true}, &run)
	o.endRun(&run)
	if err != nil {
		return p, err
	}
	it := *o.lonePut
	o.s.store(o.off+ownLoneKey, key)
	o.s.store(o.off+ownLone, uint64(mkRef(it.idx, it.gen)))
	return LonePut{it: it}, nil
}

// CommitLone makes lone put p visible. A lone put neither committed nor
// backed out when the owner closes is removed by Close. ErrOwnerRevoked: a
// recoverer took the owner over and carried out the decision it found.
func (o *Owner) CommitLone(p *LonePut) error {
	return o.endLone(p, func() error {
		n := o.s.bodyLen(o.s.entryOff(p.it.idx))
		if err := o.makeAvail(p.it.claimed(), stPutU, "lone put"); err != nil {
			return err
		}
		o.countMsg(p.it.q, clPuts, n)
		return nil
	})
}

// BackoutLone removes lone put p.
func (o *Owner) BackoutLone(p *LonePut) error {
	return o.endLone(p, func() error { return o.removeHeld(p.it.claimed(), stPutU) })
}

// endLone ends lone put p with f, in an operation of the owner, and then
// forgets it: it no longer counts as uncommitted, nor as the owner's lone
// operation.
func (o *Owner) endLone(p *LonePut, f func() error) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if p.done {
		return errLoneDone
	}
	p.done = true
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	if err := f(); err != nil {
		return err
	}
	o.addUncom(p.it.q, -1)
	o.clearLone()
	o.lonePut = nil
	return nil
}

// MarkLone makes view v (outside syncpoint, not yet released) the owner's
// lone operation decided by key (not 0): a repair of the dead owner removes
// the message when the key was decided and gives it back otherwise.
// View.Release or View.Return carries it out; EndLone forgets it.
func (o *Owner) MarkLone(v *View, key uint64) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if key == 0 || v.o != o || v.syncpoint {
		panic("lockfree: MarkLone of a view that cannot be one")
	}
	if v.done {
		return ErrViewReleased
	}
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.s.store(o.off+ownLoneKey, key)
	o.s.store(o.off+ownLone, uint64(mkRef(v.c.idx, v.c.gen)))
	return nil
}

// EndLone forgets the owner's lone operation (a no-op once the owner was
// revoked: its slot is no longer its own).
func (o *Owner) EndLone() {
	if o.begin() != nil {
		return
	}
	defer o.end()
	o.clearLone()
}

func (o *Owner) clearLone() {
	o.s.store(o.off+ownLone, 0)
	o.s.store(o.off+ownLoneKey, 0)
}

var errLoneDone = errors.New("lockfree: lone put already committed or backed out")
