package lockfree

import (
	"fmt"
	"sync/atomic"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/shm"
)

// Units of work. An owner's puts under syncpoint are linked in place but
// invisible (putu), its gets under syncpoint hold the message in place
// (held). The owner slot's uow word decides what a crash means: Commit first
// stores "committing" and only then changes the entries, so Repair rolls a
// commit forward once it was decided and backs everything else out.

var (
	cpCommitDecided = crashpoint.New("lockfree.commit.decided")
	cpCommitPut     = crashpoint.New("lockfree.commit.put")
	cpCommitGet     = crashpoint.New("lockfree.commit.get")
	cpCommitDone    = crashpoint.New("lockfree.commit.done")
	cpBackoutGet    = crashpoint.New("lockfree.backout.get")
	cpBackoutPut    = crashpoint.New("lockfree.backout.put")
	cpBackoutDone   = crashpoint.New("lockfree.backout.done")
	// A held message or a view given back (backoutHeldFrom: a backout,
	// View.Requeue, Close): its descriptor written, its backout count
	// raised, it available (its descriptor not yet cleared).
	cpGiveBackDescribed = crashpoint.New("lockfree.giveback.described")
	cpGiveBackCounted   = crashpoint.New("lockfree.giveback.counted")
	cpGiveBackAvail     = crashpoint.New("lockfree.giveback.avail")
)

func (o *Owner) markUOW() {
	if !o.uowOpen {
		o.s.store(o.off+ownUOWSince, uint64(coarseNow()))
		o.s.store(o.off+ownUOW, uint64(o.uowSeq)<<32|uint64(uowActive))
		o.uowOpen = true
	}
}

func (o *Owner) endUOW() {
	o.uowSeq++
	o.s.store(o.off+ownUOW, uint64(o.uowSeq)<<32|uint64(uowIdle))
	o.uowOpen = false
	o.uowPuts, o.uowGets = o.uowPuts[:0], o.uowGets[:0]
}

// InUOW reports whether the owner has uncommitted puts or gets.
func (o *Owner) InUOW() bool { return len(o.uowPuts)+len(o.uowGets) > 0 }

// sublogSet collects the sublogs whose entries became available again.
type sublogSet []uint32

func (ss *sublogSet) add(q uint32, prio uint8) {
	k := qpOf(q, int(prio))
	for _, x := range *ss {
		if x == k {
			return
		}
	}
	*ss = append(*ss, k)
}

// bumpAvail bumps availSeq of each sublog: getters' scan caches are stale.
// It is called before entries become available again (so a getter that
// sees such an entry also sees the bump and does not trust its cache) and
// again after (so a scan that ran in between is not cached as current).
func (s *Structure) bumpAvail(ss sublogSet) {
	for _, k := range ss {
		atomic.AddUint64(s.u64(s.sublogOff(k>>8, int(k&0xff))+slAvailSeq), 1)
	}
}

// announce bumps availSeq after entries became available and wakes waiters.
func (s *Structure) announce(ss sublogSet, n int) {
	s.bumpAvail(ss)
	for i, k := range ss {
		dup := false
		for _, j := range ss[:i] {
			dup = dup || j>>8 == k>>8
		}
		if !dup {
			s.wake(k>>8, n)
		}
	}
}

// Commit makes the unit of work's puts visible and removes its gets.
func (o *Owner) Commit() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	if !o.InUOW() {
		return nil
	}
	s := o.s
	var ss sublogSet
	for _, it := range o.uowPuts {
		ss.add(it.q, it.prio)
	}
	s.store(o.off+ownUOW, uint64(o.uowSeq)<<32|uint64(uowCommitting))
	cpCommitDecided.Hit()
	s.bumpAvail(ss)
	var firstErr error
	for _, it := range o.uowPuts {
		eo := s.entryOff(it.idx)
		n := s.bodyLen(eo)
		if !s.cas(eo+enCtl, mkWord(it.gen, stPutU, uint32(o.tag)), mkWord(it.gen, stAvail, 0)) {
			firstErr = fmt.Errorf("%w: uncommitted put %d taken back", ErrOwnerRevoked, it.idx)
			continue
		}
		cpCommitPut.Hit()
		o.countMsg(it.q, clPuts, n)
		o.addUncom(it.q, -1)
	}
	for _, it := range o.uowGets {
		if err := o.removeHeld(claimed{idx: it.idx, gen: it.gen, q: it.q}, stHeld); err != nil && firstErr == nil {
			firstErr = err
			continue
		}
		cpCommitGet.Hit()
		o.addUncom(it.q, -1)
	}
	n := len(o.uowPuts)
	o.endUOW()
	o.s.storeOwned(o.off+ownCommits, o.s.load(o.off+ownCommits)+1)
	cpCommitDone.Hit()
	s.announce(ss, n)
	return firstErr
}

// Backout removes the unit of work's puts and puts its gets back where they
// were, each with its backout count increased.
func (o *Owner) Backout() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	if !o.InUOW() {
		return nil
	}
	s := o.s
	var firstErr error
	var ss sublogSet
	for _, it := range o.uowGets {
		ss.add(it.q, it.prio)
	}
	s.bumpAvail(ss)
	for _, it := range o.uowGets {
		if err := o.backoutHeld(it); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		cpBackoutGet.Hit()
		o.addUncom(it.q, -1)
	}
	for _, it := range o.uowPuts {
		if err := o.removeHeld(it.claimed(), stPutU); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		cpBackoutPut.Hit()
		o.addUncom(it.q, -1)
	}
	n := len(o.uowGets)
	o.endUOW()
	o.s.storeOwned(o.off+ownBackouts, o.s.load(o.off+ownBackouts)+1)
	cpBackoutDone.Hit()
	s.announce(ss, n)
	return firstErr
}

// backoutHeld releases a held message in place with its backout count + 1.
func (o *Owner) backoutHeld(it uowItem) error { return o.backoutHeldFrom(it, stHeld) }

// backoutHeldFrom is backoutHeld for a message in state from (held or view).
func (o *Owner) backoutHeldFrom(it uowItem, from uint8) error {
	s := o.s
	eo := s.entryOff(it.idx)
	held := mkWord(it.gen, from, uint32(o.tag))
	if s.load(eo+enCtl) != held {
		return fmt.Errorf("%w: held message %d taken back", ErrOwnerRevoked, it.idx)
	}
	bw := s.load(eo + enBackout)
	o.setDesc(opBackout, uint64(mkRef(it.idx, it.gen)), uint64(it.q), uint64(uint32(bw)))
	cpGiveBackDescribed.Hit()
	s.storeOwned(eo+enBackout, bw&^0xffffffff|uint64(uint32(bw)+1))
	cpGiveBackCounted.Hit()
	n := s.bodyLen(eo)
	if !s.cas(eo+enCtl, held, mkWord(it.gen, stAvail, 0)) {
		return fmt.Errorf("%w: held message %d taken back", ErrOwnerRevoked, it.idx)
	}
	cpGiveBackAvail.Hit()
	s.countShared(it.q, qBackouts, n)
	// Unlike the other descriptors, a completed backout's can match again:
	// this owner may hold the same message again. Clear it.
	o.clearDesc()
	return nil
}
