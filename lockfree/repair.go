package lockfree

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// Outcome decides what Repair does with a dead owner's unit of work.
type Outcome int

const (
	// OutcomeAuto rolls forward a commit the owner had decided (its uow word
	// says committing) and backs out anything else.
	OutcomeAuto Outcome = iota
	// OutcomeCommit and OutcomeBackout impose the outcome: a layer that
	// commits units of work spanning several structures records its
	// decision elsewhere and passes it here.
	OutcomeCommit
	OutcomeBackout
)

// RepairReport says what Repair found and did.
type RepairReport struct {
	Owner         OwnerTag
	Committed     bool // the unit of work was rolled forward
	LoneDone      bool // the lone operation was found, decided, and rolled forward
	PutsCommitted int  // uncommitted puts made visible
	PutsRemoved   int  // uncommitted or half-done puts removed
	GetsRemoved   int  // held messages consumed (commit) or half-done gets finished
	GetsRestored  int  // held messages put back (backout)
	EntriesFreed  int  // entries returned to the pool (cached, half-put, consumed)
	ElementsFreed int
	SegmentsFreed int
	StatusCleared int
}

var cpRepairStep = crashpoint.New("lockfree.repair.step")

// Repair finishes or undoes everything owner t left half done. The owner's
// process must be gone (ErrOwnerAlive otherwise). Several processes may call
// Repair for one owner at once: one does the work and the others get
// ErrOwnerBusy; if the repairer dies, the next call takes over and finishes.
func (s *Structure) Repair(t OwnerTag) (RepairReport, error) {
	return s.repair(t, OutcomeAuto, 0, false)
}

// RepairWith is Repair with an imposed outcome. With force it does not check
// that the owner's process is gone: the caller has fenced it (killed it, or
// knows it will never touch the structure again).
func (s *Structure) RepairWith(t OwnerTag, out Outcome, force bool) (RepairReport, error) {
	return s.repair(t, out, 0, force)
}

// RepairDecided is RepairWith that also knows the owner's lone operation
// (PutLone, MarkLone) was decided under key lone (0: none was): that one
// is rolled forward, whatever out says of the unit of work. A lone
// operation under another key is undone.
func (s *Structure) RepairDecided(t OwnerTag, out Outcome, lone uint64, force bool) (RepairReport, error) {
	return s.repair(t, out, lone, force)
}

// Revoke takes owner t away from its process, which may be alive (a
// connection whose queue manager died), and undoes or finishes its work as
// Repair does. The owner's next operation fails with ErrOwnerRevoked. It is
// Fence followed by RepairWith(t, out, true).
func (s *Structure) Revoke(t OwnerTag, out Outcome) (rep RepairReport, err error) {
	if err := s.Fence(t); err != nil {
		return RepairReport{Owner: t}, err
	}
	return s.repair(t, out, 0, true)
}

// RevokeDecided is Revoke with the owner's lone operation decided under
// key lone, as RepairDecided.
func (s *Structure) RevokeDecided(t OwnerTag, out Outcome, lone uint64) (rep RepairReport, err error) {
	if err := s.Fence(t); err != nil {
		return RepairReport{Owner: t}, err
	}
	return s.repair(t, out, lone, true)
}

// Fence takes owner slot t from its process, alive or not, without
// repairing it yet: the slot becomes "repairing" by the calling process and
// the owner's next operation fails with ErrOwnerRevoked. If the owner is in
// the middle of an operation, Fence waits for that operation to end (a
// revocable owner brackets its operations; see Owner.SetRevocable): the
// wait is for a live process, never for a dead one. After Fence the slot's
// records (its unit-of-work word, Decision) no longer change; a layer that
// keeps a decision in this slot reads it now, repairs the owner's slots in
// other structures with it, and repairs this one last (RepairWith, force).
//
// A live owner whose registration has not finished is not fenced
// (ErrOwnerBusy): its process will see the fence it registers under, or,
// if it dies, the owner is repaired as dead. An owner that is not revocable
// must be killed by the caller instead.
func (s *Structure) Fence(t OwnerTag) (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if t.Slot() >= s.p.Owners {
		return fmt.Errorf("%w: %v", ErrNotOwner, t)
	}
	if err := s.claimRepair(t, true); err != nil {
		return err
	}
	return s.waitQuiet(t)
}

// waitQuiet waits, after the repair claim, until owner t is not in the
// middle of an operation: its operation counter is even or its process is
// gone. The process is the one recorded at registration (a claim of a live
// owner requires a finished registration, see claimRepair). Past the stall
// limit it gives up with a *StalledError.
func (s *Structure) waitQuiet(t OwnerTag) error {
	off := s.ownerOff(t.Slot())
	if s.load(off+ownOpSeq)&1 == 0 {
		return nil
	}
	id := procid.ID{Pid: int(s.load(off + ownPid)), Start: s.load(off + ownStart)}
	if id.Start == 0 {
		return nil // a registration that never recorded its process: never fenced alive (see claimRepair), never in an operation
	}
	t0 := time.Now()
	for i := 0; s.load(off+ownOpSeq)&1 == 1; i++ {
		if i%64 == 63 {
			if !processAlive(id) {
				return nil // it died in the operation: repaired as dead
			}
			if lim := time.Duration(s.stallLimit.Load()); lim > 0 && time.Since(t0) > lim {
				return &StalledError{Owner: t, Process: id, Waited: time.Since(t0)}
			}
		}
		if i < 16 {
			runtime.Gosched()
		} else {
			time.Sleep(10 * time.Microsecond)
		}
	}
	return nil
}

// RepairDead repairs every owner whose process is gone (and finishes
// repairs whose repairer died). It is what a survivor runs when it learns of
// a death, and what a process starting alone runs first.
func (s *Structure) RepairDead() ([]RepairReport, error) {
	var out []RepairReport
	var errs []error
	for slot := 0; slot < s.p.Owners; slot++ {
		w, id := s.slotProcess(slot)
		st := osState(w)
		if st == osFree || processAlive(id) {
			continue
		}
		if st == osRepairing && id.Pid == s.self.Pid && id.Start == s.self.Start {
			continue
		}
		rep, err := s.repair(mkTag(slot, osInc(w)), OutcomeAuto, 0, false)
		if err != nil && !errors.Is(err, ErrOwnerBusy) && !errors.Is(err, ErrNotOwner) {
			errs = append(errs, err)
			continue
		}
		if err == nil {
			out = append(out, rep)
		}
	}
	return out, errors.Join(errs...)
}

// claimRepair moves slot t to repairing by this process.
func (s *Structure) claimRepair(t OwnerTag, force bool) error {
	off := s.ownerOff(t.Slot())
	for {
		w, id := s.slotProcess(t.Slot())
		if osInc(w) != t.Incarnation() || osState(w) == osFree {
			return fmt.Errorf("%w: %v is not registered", ErrNotOwner, t)
		}
		mine := procid.ID{Pid: s.self.Pid, Start: s.self.Start}
		switch osState(w) {
		case osActive:
			if processAlive(id) {
				if !force {
					return fmt.Errorf("%w: %v is process %v", ErrOwnerAlive, t, id)
				}
				if s.load(off+ownPid) != uint64(osLow(w)) {
					return fmt.Errorf("%w: %v is still registering (process %v)", ErrOwnerBusy, t, id)
				}
			}
		case osRepairing:
			if id == mine {
				return nil
			}
			if processAlive(id) {
				return fmt.Errorf("%w: %v by process %v", ErrOwnerBusy, t, id)
			}
		}
		// Only the winner records its start time, then its pid: until both
		// are written a reader sees a stale pid there and checks the pid in
		// the state word alone (as for a registering process).
		if s.cas(off+ownState, w, mkOwnState(osInc(w), osRepairing, uint32(s.self.Pid))) {
			s.store(off+ownRepStart, s.self.Start)
			s.store(off+ownRepPid, uint64(s.self.Pid))
			return nil
		}
	}
}

// badDescs checks a dead owner's descriptors (op, a, b of the message
// descriptor as readDesc returned them; the segment descriptor read here)
// before Repair acts on them, and says what is wrong. An owner writes only
// known operations with indexes in range, so anything else is corruption.
func (s *Structure) badDescs(off, op, a, b uint64) string {
	switch op {
	case opNone:
	case opPut:
		if !s.entryRefOK(ref(a)) || !s.qpOK(b) {
			return fmt.Sprintf("put descriptor names entry %d, queue %d priority %d", ref(a).idx(), b>>8, b&0xff)
		}
	case opRemove, opBackout:
		if !s.entryRefOK(ref(a)) || !s.queueOK(b) {
			return fmt.Sprintf("descriptor of operation %d names entry %d, queue %d", op, ref(a).idx(), b)
		}
	default:
		return fmt.Sprintf("descriptor of unknown operation %d", op)
	}
	switch sop := s.load(off + sdOp); sop {
	case opNone:
	case opSegLink, opSegFree:
		if sr, qp := ref(s.load(off+sdA)), s.load(off+sdB); !s.segRefOK(sr) || !s.qpOK(qp) {
			return fmt.Sprintf("segment descriptor names segment %d, queue %d priority %d", sr.idx(), qp>>8, qp&0xff)
		}
	default:
		return fmt.Sprintf("segment descriptor of unknown operation %d", sop)
	}
	return ""
}

// failCorrupt takes the structure out of service as failed because the
// repair of t met a value no intact structure holds, and returns the error
// that says so. Going on would write where the value points; panicking
// would kill every survivor that takes the repair over, in turn. Failed,
// an application structure is rebuilt by its members (package qm recovers
// it from its backup and the logs) and the owner's work with it. The
// admin structure is not failed: nothing rebuilds it, and out of service
// it would stop the whole group (qmgr check --fail spares it too); the
// slot stays claimed by the repairer, so nobody uses it, and the error
// says what is damaged.
func (s *Structure) failCorrupt(t OwnerTag, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if s.m != nil && s.m.Header().Kind == shm.KindAdmin {
		return fmt.Errorf("%w: structure %s: repair of %v: %s: the slot stays out of use (run qmgr check)", ErrCorrupt, s.Name(), t, what)
	}
	s.Fail()
	return fmt.Errorf("%w: structure %s: repair of %v: %s: taken out of service (it is recovered from its backup and the logs)", ErrCorrupt, s.Name(), t, what)
}

// repairSweeps counts the repairs that swept the structure for what their
// owner held (for tests).
var repairSweeps atomic.Int64

func (s *Structure) repair(t OwnerTag, out Outcome, lone uint64, force bool) (rep RepairReport, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	rep = RepairReport{Owner: t}
	if t.Slot() >= s.p.Owners {
		return rep, fmt.Errorf("%w: %v", ErrNotOwner, t)
	}
	if err := s.claimRepair(t, force); err != nil {
		return rep, err
	}
	// A repair that takes over from a fence or a repairer that died, or a
	// forced one, may find the owner's live process still in an operation.
	if err := s.waitQuiet(t); err != nil {
		return rep, err
	}
	rp := repairer{s: s, t: t, rep: &rep}
	op, da, db, dc := rp.actAsOwner()
	if bad := s.badDescs(rp.x.off, op, da, db); bad != "" {
		return rep, s.failCorrupt(t, "%s", bad)
	}
	rp.dead = map[uint32]uint32{}
	rp.bumpAvail()
	rp.segmentDesc()
	cpRepairStep.Hit()
	rp.messageDesc(op, da, db, dc)
	cpRepairStep.Hit()
	if err := rp.unitOfWork(out, lone); err != nil {
		return rep, err
	}
	rp.freeHeld()
	if err := rp.release(); err != nil {
		return rep, err
	}
	return rep, rp.freeSlot()
}

// repairer is one repair of owner t, in steps: 1. the segment descriptor,
// 2. the message descriptor, 3. the unit of work and the lone operation,
// 4. freeing what the owner held, 5. its tokens, reservations, waits and
// counts, 6. its slot.
type repairer struct {
	s   *Structure
	t   OwnerTag
	rep *RepairReport
	// x is the dead owner, acted as: its slot, its tag, its descriptors.
	// Every change is recorded in its descriptors first, exactly as the
	// owner would, so a repairer that dies is itself repaired by the next
	// one.
	x    *Owner
	dead map[uint32]uint32 // entry -> gen, to free once their elements are swept
	all  sublogSet         // every sublog of every active queue
	// sweep: the owner took something (or left entries to free), so the
	// repair sweeps every entry, element and segment for what it held. An
	// owner that never took anything holds nothing: no sweep (a scan of
	// the whole structure, which makes a member's recovery grow with the
	// structures it is in).
	sweep bool
	uw    uint64 // the owner's unit-of-work word, as step 3 read it
}

// actAsOwner makes x the dead owner and returns its message descriptor.
func (rp *repairer) actAsOwner() (op, a, b, c uint64) {
	s, t := rp.s, rp.t
	rp.x = &Owner{s: s, slot: t.Slot(), tag: t, off: s.ownerOff(t.Slot())}
	op, a, b, c = s.readDesc(rp.x.off)
	rp.x.descBuf = (s.load(rp.x.off+dOp) >> 8) & 1
	return op, a, b, c
}

// bumpAvail bumps every sublog's availSeq: entries are about to become
// available again.
func (rp *repairer) bumpAvail() {
	s := rp.s
	for q := uint32(0); q < uint32(s.p.Queues); q++ {
		if s.queueActive(q) {
			for p := 0; p < Priorities; p++ {
				rp.all = append(rp.all, qpOf(q, p))
			}
		}
	}
	s.bumpAvail(rp.all)
}

// segmentDesc (step 1) resolves the segment descriptor: a segment being
// linked and not reachable goes back to the owner (freed with its other
// segments), one being freed and not reachable any more is freed.
func (rp *repairer) segmentDesc() {
	s, x := rp.s, rp.x
	switch s.load(x.off + sdOp) {
	case opSegLink:
		sr, qp := ref(s.load(x.off+sdA)), uint32(s.load(x.off+sdB))
		so := s.segOff(sr.idx())
		if sw := s.load(so + sgWord); wKind(sw) == skLink && wGen(sw) == sr.gen() && wVal(sw) == qp &&
			!s.segReachable(qp>>8, int(qp&0xff), sr) {
			s.cas(so+sgWord, sw, mkWord(sr.gen(), skOwned, uint32(rp.t))) // freed with the owner's other segments
		}
	case opSegFree:
		sr, qp := ref(s.load(x.off+sdA)), uint32(s.load(x.off+sdB))
		if _, ok := s.segRead(sr, qp); ok && !s.segReachable(qp>>8, int(qp&0xff), sr) {
			if s.freeSeg(sr, qp) {
				rp.rep.SegmentsFreed++
			}
		}
	}
	x.clearSegDesc()
}

// messageDesc (step 2) resolves the message descriptor (op, da, db, dc as
// actAsOwner read it): the one transition in flight.
func (rp *repairer) messageDesc(op, da, db, dc uint64) {
	s, x, t, rep := rp.s, rp.x, rp.t, rp.rep
	r, b, c := ref(da), db, dc
	switch op {
	case opPut:
		q, prio := uint32(b>>8), uint8(b&0xff)
		eo := s.entryOff(r.idx())
		if w := s.load(eo + enCtl); w == mkWord(r.gen(), stAlloc, uint32(t)) {
			// Not yet visible: undo, whether or not it was linked (a linked
			// slot goes stale when the entry is freed).
			x.setCellDepth(q, c)
			rp.dead[r.idx()] = r.gen()
			rep.PutsRemoved++
		} else {
			x.setCellDepth(q, c+1)
		}
		s.prioUsed(q, int(prio))
	case opRemove:
		q := uint32(b)
		if s.load(s.entryOff(r.idx())+enCtl) == mkWord(r.gen(), stDead, uint32(t)) {
			if x.cellDepth(q) == c {
				x.setCellDepth(q, c-1)
			}
			rp.dead[r.idx()] = r.gen()
			rep.GetsRemoved++
		}
	case opBackout:
		// A held message backed out, or a view given back (Requeue,
		// Close): finished here with the count the descriptor names, so
		// that a count already raised is not raised again by step 3. A
		// view that is the lone get is left to step 3, which decides it
		// (no give-back names one: the lone get ends by Release or
		// Return).
		eo := s.entryOff(r.idx())
		w := s.load(eo + enCtl)
		if w == mkWord(r.gen(), stHeld, uint32(t)) ||
			w == mkWord(r.gen(), stView, uint32(t)) && ref(s.load(x.off+ownLone)) != r {
			bw := s.load(eo + enBackout)
			s.store(eo+enBackout, bw&^0xffffffff|uint64(uint32(c)+1))
			s.cas(eo+enCtl, w, mkWord(r.gen(), stAvail, 0))
			rep.GetsRestored++
		}
	}
	x.clearDesc()
}

// heldEntry is an entry the dead owner holds in a unit of work or a view.
type heldEntry struct {
	idx, gen uint32
	q        uint32
	prio     uint8
	pos      uint64
	kind     uint8
}

// unitOfWork (step 3) decides the unit of work (out, or what the owner's
// uow word says) and the lone operation (carried out only if decided
// under its own key, lone), then finishes every entry the owner holds:
// in queue order, so no getter sees a later message of a committed unit
// of work before an earlier one.
func (rp *repairer) unitOfWork(out Outcome, lone uint64) error {
	s, x := rp.s, rp.x
	rp.uw = s.load(x.off + ownUOW)
	commit := uint8(rp.uw) == uowCommitting
	switch out {
	case OutcomeCommit:
		commit = true
	case OutcomeBackout:
		commit = false
	}
	rp.rep.Committed = commit
	loneRef := ref(s.load(x.off + ownLone))
	loneDone := lone != 0 && s.load(x.off+ownLoneKey) == lone
	rp.sweep = s.load(x.off+ownTook) != 0 || len(rp.dead) > 0
	if rp.sweep {
		repairSweeps.Add(1)
	}
	mine, err := rp.heldEntries()
	if err != nil {
		return err
	}
	slices.SortFunc(mine, func(a, b heldEntry) int {
		if a.q != b.q {
			return int(a.q) - int(b.q)
		}
		if a.prio != b.prio {
			return int(b.prio) - int(a.prio)
		}
		if a.pos < b.pos {
			return -1
		}
		return 1
	})
	for _, h := range mine {
		do := commit
		if mkRef(h.idx, h.gen) == loneRef {
			do = loneDone
			rp.rep.LoneDone = loneDone
		}
		rp.finishHeld(h, do, mkRef(h.idx, h.gen) == loneRef)
		cpRepairStep.Hit()
	}
	return nil
}

// heldEntries sweeps the entries (when rp.sweep) for the owner's: cached
// or half-filled ones become dead, dead ones are noted, and the linked
// ones it holds (uncommitted puts, held messages, views) are returned.
func (rp *repairer) heldEntries() ([]heldEntry, error) {
	s, t := rp.s, rp.t
	var mine []heldEntry
	for e := uint32(0); rp.sweep && e < uint32(s.p.Entries); e++ {
		eo := s.entryOff(e)
		w := s.load(eo + enCtl)
		if wVal(w) != uint32(t) || wKind(w) == stFree || wKind(w) == stAvail {
			continue
		}
		switch wKind(w) {
		case stAlloc, stCached:
			// Cached, or half filled and never linked (a linked one is the
			// descriptor's, handled above): back to the pool with a new gen
			// so any index slot naming it goes stale.
			if s.cas(eo+enCtl, w, mkWord(nextGen(wGen(w)), stAlloc, uint32(t))) {
				rp.dead[e] = nextGen(wGen(w))
			}
		case stDead:
			rp.dead[e] = wGen(w) // already counted (its descriptor was resolved)
		case stPutU, stHeld, stView:
			qw := s.load(eo + enQueue)
			if !s.qpOK((qw&0xffff)<<8 | qw>>16&0xff) {
				return nil, s.failCorrupt(t, "entry %d (%s) names queue %d priority %d", e, stateName(wKind(w)), qw&0xffff, qw>>16&0xff)
			}
			mine = append(mine, heldEntry{idx: e, gen: wGen(w), q: uint32(qw) & 0xffff, prio: uint8(qw >> 16), pos: s.load(eo + enPos), kind: wKind(w)})
		}
	}
	return mine, nil
}

// finishHeld makes held entry h available (a put committed, a held
// message backed out, a view given back) or removes it (a put backed
// out, a get committed, a decided lone get): do says whether its unit of
// work (or, for the lone operation, isLone, the lone operation) is
// carried out.
func (rp *repairer) finishHeld(h heldEntry, do, isLone bool) {
	s, x, t, rep := rp.s, rp.x, rp.t, rp.rep
	eo := s.entryOff(h.idx)
	cur := mkWord(h.gen, h.kind, uint32(t))
	r := mkRef(h.idx, h.gen)
	switch {
	case h.kind == stPutU && do:
		if s.cas(eo+enCtl, cur, mkWord(h.gen, stAvail, 0)) {
			rep.PutsCommitted++
		}
	case h.kind == stView && !(isLone && do) || h.kind == stHeld && !do:
		// A held message of a backed-out unit of work, or a view outside
		// any unit of work (never consumed, whatever the outcome, unless
		// it is the decided lone get).
		bw := s.load(eo + enBackout)
		x.setDesc(opBackout, uint64(r), uint64(h.q), uint64(uint32(bw)))
		s.store(eo+enBackout, bw&^0xffffffff|uint64(uint32(bw)+1))
		if s.cas(eo+enCtl, cur, mkWord(h.gen, stAvail, 0)) {
			rep.GetsRestored++
		}
		x.clearDesc()
	default: // a put backed out, a get committed or a decided lone get: remove it
		before := x.cellDepth(h.q)
		x.setDesc(opRemove, uint64(r), uint64(h.q), before)
		if s.cas(eo+enCtl, cur, mkWord(h.gen, stDead, uint32(t))) {
			x.setCellDepth(h.q, before-1)
			rp.dead[h.idx] = h.gen
			if h.kind == stPutU {
				rep.PutsRemoved++
			} else {
				rep.GetsRemoved++
			}
		}
		x.clearDesc()
	}
}

// freeHeld (step 4) frees what the owner had: dead entries with their
// data, cached elements and segments.
func (rp *repairer) freeHeld() {
	s, t, rep := rp.s, rp.t, rp.rep
	// Offloaded messages of dead entries: their runs first, while the
	// references are still in their elements (entries never linked, still
	// alloc, are left to the data set's repair: no reference to them was
	// published).
	for e, g := range rp.dead {
		eo := s.entryOff(e)
		if w := s.load(eo + enCtl); w == mkWord(g, stDead, uint32(t)) {
			s.freeOffload(eo)
		}
	}
	for e := uint32(0); rp.sweep && e < uint32(s.p.Elements); e++ {
		off := s.elemWordOff(e)
		w := s.load(off)
		switch wKind(w) {
		case ekOwned:
			if wVal(w) == uint32(t) && s.cas(off, w, mkWord(nextGen(wGen(w)), ekFree, 0)) {
				rep.ElementsFreed++
			}
		case ekMsg:
			if _, ok := rp.dead[wVal(w)]; ok && s.cas(off, w, mkWord(nextGen(wGen(w)), ekFree, 0)) {
				rep.ElementsFreed++
			}
		}
	}
	cpRepairStep.Hit()
	for e, g := range rp.dead {
		eo := s.entryOff(e)
		w := s.load(eo + enCtl)
		if wGen(w) == g && wVal(w) == uint32(t) && (wKind(w) == stDead || wKind(w) == stAlloc) {
			if s.cas(eo+enCtl, w, mkWord(nextGen(g), stFree, 0)) {
				rep.EntriesFreed++
			}
		}
	}
	for i := uint32(0); rp.sweep && i < uint32(s.p.Segments); i++ {
		off := s.segOff(i) + sgWord
		if w := s.load(off); wKind(w) == skOwned && wVal(w) == uint32(t) && s.cas(off, w, mkWord(nextGen(wGen(w)), skFree, 0)) {
			rep.SegmentsFreed++
		}
	}
	cpRepairStep.Hit()
}

// release (step 5) gives back the owner's tokens, reservations, waits
// and uncommitted counts, after finishing a queue create or delete it
// left half done.
func (rp *repairer) release() error {
	s, t := rp.s, rp.t
	if err := rp.finishQueueAdmin(); err != nil {
		return err
	}
	s.cas(ctlAdminToken, uint64(t), 0)
	for _, k := range rp.all {
		s.helpTail(k>>8, int(k&0xff))
	}
	for i := 0; i < s.p.StatusSlots; i++ {
		ctl := s.statusOff(i)
		if w := s.load(ctl); OwnerTag(w&stTagMask) == t && s.cas(ctl, w, w&^stTagMask) {
			rp.rep.StatusCleared++
		}
	}
	bit := uint64(1) << (t.Slot() % 64)
	for q := uint32(0); q < uint32(s.p.Queues); q++ {
		qo := s.queueOff(q)
		atomic.AndUint64(s.u64(qo+qBitmaps+uint64(t.Slot()/64)*8), ^bit)
		for p := 0; p < Priorities; p++ {
			s.cas(s.sublogOff(q, p)+slJanitor, uint64(t), 0)
		}
		co := s.cellOff(t.Slot(), q)
		s.store(co+clUncom, 0)
		s.store(co+clOpenIn, 0)
		s.store(co+clOpenOut, 0)
	}
	// Scanners' caches may have skipped positions that are available now.
	s.announce(rp.all, 1<<30)
	return nil
}

// finishQueueAdmin finishes a queue create or delete the owner left half
// done, under the admin token, taken as the dead owner (whose token it
// may already be).
func (rp *repairer) finishQueueAdmin() error {
	s, x, t := rp.s, rp.x, rp.t
	halfDone := false
	for q := uint32(0); q < uint32(s.p.Queues); q++ {
		w := s.load(s.queueOff(q) + qState)
		halfDone = halfDone || OwnerTag(osLow(w)) == t && (osState(w) == qsCreating || osState(w) == qsDeleting)
	}
	if !halfDone {
		return nil
	}
	x.adminLock()
	for q := uint32(0); q < uint32(s.p.Queues); q++ {
		w := s.load(s.queueOff(q) + qState)
		if OwnerTag(osLow(w)) != t {
			continue
		}
		switch osState(w) {
		case qsCreating:
			s.cas(s.queueOff(q)+qState, w, mkOwnState(osInc(w), qsFree, 0))
		case qsDeleting:
			if err := x.finishDelete(q, w); err != nil {
				return s.failCorrupt(t, "finishing its delete of queue %d: %v", q, err)
			}
		}
	}
	return nil
}

// freeSlot (step 6) frees the slot, keeping its incarnation: the next
// owner gets a new one.
func (rp *repairer) freeSlot() error {
	s, t := rp.s, rp.t
	off := s.ownerOff(t.Slot())
	s.store(off+ownUOW, (rp.uw>>32+1)<<32|uint64(uowIdle))
	s.store(off+ownOpSeq, s.load(off+ownOpSeq)&^1) // an owner killed in an operation left it odd
	atomic.AddUint64(s.u64(off+ownEpoch), 1)       // before the free: the revoked owner, if it lives, never takes the slot for its own again
	s.store(off+ownPid, 0)                         // a later registrant's record counts only once it stores its own
	w := s.load(off + ownState)
	if !s.cas(off+ownState, w, mkOwnState(t.Incarnation(), osFree, 0)) {
		return fmt.Errorf("%w: slot of %v changed during repair", ErrCorrupt, t)
	}
	return nil
}
