package smds

import (
	"fmt"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/procid"
)

// Owner allocates and frees space in a data set on behalf of one process
// (in the queue manager, one per connection that puts or gets offloaded
// messages). Every step it takes is tagged with its Tag, so that Repair
// finishes or undoes what a process killed at any instruction left half
// done. An Owner is not safe for concurrent use.
type Owner struct {
	d      *DataSet
	slot   int
	tag    Tag
	off    uint64
	closed bool
}

var cpRepairClaimed = crashpoint.New("smds.repair.claimed")

// Register claims a free owner slot of the space map for this process.
func (d *DataSet) Register() (o *Owner, err error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	err = guard(func() error {
		n := d.p.Owners
		start := int(uint32(d.self.Pid)*2654435761) % n
		for i := 0; i < n; i++ {
			slot := (start + i) % n
			off := d.ownerOff(slot)
			w := d.load(off + owState)
			if osState(w) != osFree {
				continue
			}
			inc := osInc(w) + 1
			if inc == 0 {
				inc = 1
			}
			// owStart is 0 here (whoever freed the slot cleared it), so
			// between this CAS and the store below the pid alone decides
			// whether the claimer lives.
			if !d.cas(off+owState, w, mkOwnState(inc, osActive, uint32(d.self.Pid))) {
				continue
			}
			d.store(off+owStart, d.self.Start)
			d.store(off+owOp, opNone)
			o = &Owner{d: d, slot: slot, tag: mkTag(slot, inc), off: off}
			return nil
		}
		return newErr("register", d.mapPath, -1, ErrNoOwnerSlot, "all %d owner slots in use (repair dead owners: RepairDead)", n)
	})
	return o, err
}

// Tag is the owner's tag.
func (o *Owner) Tag() Tag { return o.tag }

// Close frees the owner's slot. An operation left half done by a caller
// that gave up (a Put never Published) is undone first, as Repair would
// with the given resolver (nil: the run is not referenced).
func (o *Owner) Close() error {
	if o.closed {
		return nil
	}
	if o.d.closed.Load() {
		o.closed = true
		return ErrClosed
	}
	alive := o.checkAlive()
	o.closed = true
	return guard(func() error {
		if alive != nil {
			return nil // revoked: the repairer owns the slot
		}
		d := o.d
		if err := d.resolve(o.slot, o.tag, nil); err != nil {
			return err
		}
		w := d.load(o.off + owState)
		d.store(o.off+owStart, 0)
		d.cas(o.off+owState, w, mkOwnState(osInc(w), osFree, 0))
		return nil
	})
}

// checkAlive fails with ErrOwnerRevoked once the slot no longer belongs
// to this owner (a repairer took it, believing its process dead).
func (o *Owner) checkAlive() error {
	if o.closed || o.d.closed.Load() {
		return ErrClosed
	}
	var w uint64
	if err := guard(func() error { w = o.d.load(o.off + owState); return nil }); err != nil {
		return err
	}
	if osInc(w) != o.tag.Incarnation() || osState(w) != osActive || osPid(w) != uint32(o.d.self.Pid) {
		return fmt.Errorf("%w: %v", ErrOwnerRevoked, o.tag)
	}
	return nil
}

// desc is a decoded descriptor.
type desc struct {
	op, phase         uint8
	head, blocks, gen uint32
	seq, sum          uint64
	length            uint32
}

// ref is the reference of the run a descriptor names.
func (dd desc) ref(num uint16) Ref {
	return Ref{DataSet: num, Head: dd.head, Len: dd.length, Gen: dd.gen, Seq: dd.seq, Sum: dd.sum}
}

func (d *DataSet) readDesc(off uint64) desc {
	w := d.load(off + owOp)
	return desc{op: uint8(w), phase: uint8(w >> 8), head: uint32(d.load(off + owHead)), blocks: uint32(d.load(off + owBlocks)),
		gen: uint32(d.load(off + owGen)), seq: d.load(off + owSeq), sum: d.load(off + owSum), length: uint32(d.load(off + owLen))}
}

// setDesc publishes a descriptor: fields first, op word last.
func (d *DataSet) setDesc(off uint64, op, phase uint8, head, blocks, gen uint32, seq, sum uint64, length uint32) {
	d.store(off+owHead, uint64(head))
	d.store(off+owBlocks, uint64(blocks))
	d.store(off+owGen, uint64(gen))
	d.store(off+owSeq, seq)
	d.store(off+owLen, uint64(length))
	d.store(off+owSum, sum)
	d.store(off+owOp, uint64(op)|uint64(phase)<<8)
}

func (d *DataSet) clearDesc(off uint64) { d.store(off+owOp, opNone) }

// slotProcess reads the process recorded in a slot: the owner's while it
// is active, the repairer's while it is repairing.
func (d *DataSet) slotProcess(slot int) (w uint64, id procid.ID) {
	off := d.ownerOff(slot)
	w = d.load(off + owState)
	id.Pid = int(osPid(w))
	switch osState(w) {
	case osActive:
		id.Start = d.load(off + owStart)
	case osRepairing:
		id.Start = d.load(off + owRepStart)
	}
	return w, id
}

// processAlive checks a recorded process; a start time of 0 (not written
// yet) leaves the pid alone to decide.
func processAlive(id procid.ID) bool {
	if id.Pid <= 0 {
		return false
	}
	if id.Start == 0 {
		_, err := procid.Of(id.Pid)
		return err == nil
	}
	return procid.Alive(id)
}

// tagAlive reports whether t names a slot still held (by its owner or a
// repairer acting for it) by a live process.
func (d *DataSet) tagAlive(t Tag) bool {
	if t.Slot() >= d.p.Owners || t.Incarnation() == 0 {
		return false
	}
	w, id := d.slotProcess(t.Slot())
	if osInc(w) != t.Incarnation() || osState(w) == osFree {
		return false
	}
	return processAlive(id)
}

// OwnerInfo describes an owner slot in use.
type OwnerInfo struct {
	Tag     Tag
	State   string // active, repairing
	Process procid.ID
	Alive   bool
}

// Owners lists the owner slots in use.
func (d *DataSet) Owners() (out []OwnerInfo, err error) {
	err = guard(func() error {
		for slot := 0; slot < d.p.Owners; slot++ {
			w, id := d.slotProcess(slot)
			if osState(w) == osFree {
				continue
			}
			st := "active"
			if osState(w) == osRepairing {
				st = "repairing"
			}
			out = append(out, OwnerInfo{Tag: mkTag(slot, osInc(w)), State: st, Process: id, Alive: processAlive(id)})
		}
		return nil
	})
	return out, err
}
