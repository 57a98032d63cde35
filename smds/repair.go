package smds

import "fmt"

// Resolver tells a repair whether the CF holds a reference: whether some
// CF entry that still needs its body (put, available, held, browsed; not
// one being removed) holds a reference with r's Head, Gen and Seq. The
// queue manager answers from the structure (after the structure's own
// repair of the same owner, so that entries the dead process was still
// filling are gone); tests answer from their stand-in for the CF.
type Resolver func(r Ref) bool

// Repair finishes or undoes what owner t left half done when its process
// died, and frees its slot:
//
//   - a run being claimed, or claimed and written but not yet wholly
//     marked used: its blocks are freed (the CF cannot hold a reference to
//     a run before Put returned it);
//   - a run used and not yet Published: kept if resolve says the CF holds
//     its reference, freed otherwise;
//   - a run being freed: the free is finished; a free the owner recorded
//     but had not started is carried out unless resolve says the CF still
//     needs the run (then whoever removes that entry frees it).
//
// Repair fails with ErrOwnerAlive while t's process (or a repairer acting
// for it) lives. A repairer that dies is itself repaired by the next
// Repair of t. resolve may be nil: nothing is in the CF.
func (d *DataSet) Repair(t Tag, resolve Resolver) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if t.Slot() >= d.p.Owners {
		return fmt.Errorf("%w: %v: the space map has %d owner slots", ErrParams, t, d.p.Owners)
	}
	return guard(func() error {
		slot := t.Slot()
		off := d.ownerOff(slot)
		for {
			w, id := d.slotProcess(slot)
			if osInc(w) != t.Incarnation() || osState(w) == osFree {
				return nil // repaired already, or closed
			}
			if processAlive(id) {
				return newErr("repair", d.mapPath, -1, ErrOwnerAlive, "%v: process %v", t, id)
			}
			d.store(off+owRepStart, 0)
			if d.cas(off+owState, w, mkOwnState(osInc(w), osRepairing, uint32(d.self.Pid))) {
				d.store(off+owRepStart, d.self.Start)
				break
			}
		}
		cpRepairClaimed.Hit()
		if err := d.resolve(slot, t, resolve); err != nil {
			return err
		}
		w := d.load(off + owState)
		d.store(off+owStart, 0)
		d.store(off+owRepStart, 0)
		d.cas(off+owState, w, mkOwnState(osInc(w), osFree, 0))
		return nil
	})
}

// RepairDead repairs every owner whose process is gone and reports how
// many it repaired.
func (d *DataSet) RepairDead(resolve Resolver) (int, error) {
	n := 0
	var first error
	for slot := 0; slot < d.p.Owners; slot++ {
		var w uint64
		var dead bool
		if err := guard(func() error {
			var id = d.self
			w, id = d.slotProcess(slot)
			dead = osState(w) != osFree && !processAlive(id)
			return nil
		}); err != nil {
			return n, err
		}
		if !dead {
			continue
		}
		if err := d.Repair(mkTag(slot, osInc(w)), resolve); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		n++
	}
	return n, first
}

// resolve finishes or undoes the operation the descriptor of slot (owner
// t) names, then clears the descriptor; run by the owner itself (Close,
// a failed Put) or by its repairer.
func (d *DataSet) resolve(slot int, t Tag, resolve Resolver) error {
	off := d.ownerOff(slot)
	dd := d.readDesc(off)
	eb := uint32(d.g.ExtentBlocks)
	nb := uint32(d.extents()) * eb
	if dd.op != opNone && (dd.head >= nb || dd.blocks == 0 || dd.head%eb+dd.blocks > eb) {
		return newErr("repair", d.mapPath, -1, ErrCorrupt, "%v: descriptor names blocks %d..%d, outside the %d in use", t, dd.head, dd.head+dd.blocks, nb)
	}
	r := dd.ref(d.num)
	switch dd.op {
	case opAlloc:
		hw := d.word(dd.head)
		if dd.phase == phUsed && hw == mkWord(dd.gen, bkHead, dd.blocks) {
			if resolve != nil && resolve(r) {
				break // the CF has it
			}
			if d.cas(d.wordOff(dd.head), hw, mkWord(dd.gen, bkFreeing, uint32(t))) {
				d.finishFree(dd.head, dd.gen, dd.blocks, t)
			}
			break
		}
		// Claimed, or written and not wholly marked used: the head is not
		// used, so nothing in the CF refers to the run.
		for b := dd.head; b < dd.head+dd.blocks; b++ {
			w := d.word(b)
			switch {
			case wKind(w) == bkAlloc && Tag(wVal(w)) == t:
				d.cas(d.wordOff(b), w, mkWord(wGen(w), bkFree, 0))
			case dd.phase == phUsed && b > dd.head && wKind(w) == bkTail && wVal(w) == dd.head && wKind(hw) == bkAlloc && Tag(wVal(hw)) == t:
				d.cas(d.wordOff(b), w, mkWord(wGen(w)+1, bkFree, 0))
			}
		}
	case opFree:
		hw := d.word(dd.head)
		switch {
		case hw == mkWord(dd.gen, bkFreeing, uint32(t)):
			d.finishFree(dd.head, dd.gen, dd.blocks, t)
		case hw == mkWord(dd.gen, bkHead, dd.blocks):
			if resolve != nil && resolve(r) {
				break // still needed: the CF entry's remover frees it
			}
			if d.cas(d.wordOff(dd.head), hw, mkWord(dd.gen, bkFreeing, uint32(t))) {
				d.finishFree(dd.head, dd.gen, dd.blocks, t)
			}
		}
	}
	d.clearDesc(off)
	return nil
}
