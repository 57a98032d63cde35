package lockfree

import (
	"errors"
	"fmt"
	mbits "math/bits"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

var cpRegisterClaimed = crashpoint.New("lockfree.register.claimed")

// Owner slot states (bits 40..47 of the slot's state word).
const (
	osFree      uint8 = 0 // low word 0
	osActive    uint8 = 1 // low word: pid of the registered process
	osRepairing uint8 = 2 // low word: pid of the repairing process
)

func mkOwnState(inc uint16, st uint8, low uint32) uint64 {
	return uint64(inc)<<48 | uint64(st)<<40 | uint64(low)
}
func osInc(w uint64) uint16  { return uint16(w >> 48) }
func osState(w uint64) uint8 { return uint8(w >> 40) }
func osLow(w uint64) uint32  { return uint32(w) }

// Unit-of-work states (low byte of the slot's uow word; the high half is the
// uow sequence number).
const (
	uowIdle       uint8 = 0
	uowActive     uint8 = 1 // has uncommitted puts or gets
	uowCommitting uint8 = 2 // commit decided: repair rolls forward
)

// Descriptor operations: the one multi-word transition an owner is in the
// middle of. The descriptor has an op word and two buffers of fields a, b, c:
// the owner writes the fields of a new descriptor into the buffer the op word
// does not name, then publishes op and buffer with one atomic store. A
// process killed while writing fields leaves the previous, complete
// descriptor in force, and resolving a descriptor whose operation completed
// changes nothing (see Repair), so descriptors are never cleared on the data
// path.
const (
	opNone    = 0
	opPut     = 1 // a: entry ref, b: queue<<8|prio, c: depth cell before the put
	opRemove  = 2 // a: entry ref, b: queue, c: depth cell before the removal (consume or backed-out put)
	opBackout = 3 // a: entry ref, b: queue, c: backout count before the backout
	opSegLink = 4 // a: segment ref, b: queue<<8|prio
	opSegFree = 5 // a: segment ref, b: queue<<8|prio
)

// dOp is the op word: kind | buffer << 8.
const dOp = ownDesc

// descBufOff is the offset in the owner slot of descriptor buffer buf (0 or 1).
func descBufOff(buf uint64) uint64 { return ownDescBuf0 + buf*(ownDescBuf1-ownDescBuf0) }

// readDesc returns an owner slot's descriptor.
func (s *Structure) readDesc(off uint64) (op, a, b, c uint64) {
	w := s.load(off + dOp)
	f := off + descBufOff((w>>8)&1)
	return w & 0xff, s.load(f + dbA), s.load(f + dbB), s.load(f + dbC)
}

// Cache sizes for the per-owner caches of entries, elements and segments.
const (
	entryBatch = 64
	elemBatch  = 64
	segBatch   = 2
)

// Owner is one registered owner of work in the structure: a connection (or
// a test process). It tags every operation it performs so that Repair can
// finish or undo them if its process dies. An Owner is not safe for
// concurrent use: like an MQ connection handle, use it from one goroutine at
// a time.
type Owner struct {
	took bool // ownTook is set: this owner has taken something
	s    *Structure
	slot int
	tag  OwnerTag
	off  uint64

	closed  bool
	epoch   uint64   // the slot's epoch (ownEpoch) when this owner registered
	entries []uint32 // cached entries, ctl = cached(tag) unless another owner took them (see pool.go)
	elems   []uint32 // cached data elements, word = owned(tag) unless taken
	segs    []uint32 // cached segments, word = owned(tag) unless taken

	uowSeq  uint32
	uowOpen bool // the slot's uow word says active
	uowPuts []uowItem
	uowGets []uowItem

	touched    []uint64  // queues whose touched bit this owner has set
	msgSeq     uint64    // for generated message ids
	putSeq     uint32    // for putter stamps of puts outside syncpoint
	descBuf    uint64    // descriptor buffer the op word names
	revocable  bool      // operations bracketed by opSeq (see begin)
	recoverer  bool      // works while the structure is out of service (SetRecoverer)
	opSeq      uint64    // this owner's copy of the slot's operation counter
	revoked    bool      // the slot was taken from this owner
	expired    int       // expired messages this owner removed
	views      []claimed // open views got outside syncpoint (state view)
	lonePut    *uowItem  // the lone put linked by PutLone and not yet committed or backed out
	scratch    []byte    // copy buffer for reads
	idxScratch []uint32  // element indexes for a put
	scans      map[uint32]*scanCache
}

type uowItem struct {
	idx, gen uint32
	q        uint32
	prio     uint8
}

// claimed is the item as a claim (for removeHeld).
func (it uowItem) claimed() claimed {
	return claimed{idx: it.idx, gen: it.gen, q: it.q, prio: int(it.prio)}
}

// Tag is the owner's tag.
func (o *Owner) Tag() OwnerTag { return o.tag }

// Structure is the structure the owner is registered in.
func (o *Owner) Structure() *Structure { return o.s }

// Register claims a free owner slot for the calling process.
func (s *Structure) Register() (*Owner, error) {
	start := int(uint32(s.self.Pid)*2654435761) % s.p.Owners
	for i := 0; i < s.p.Owners; i++ {
		slot := (start + i) % s.p.Owners
		if o, err := s.RegisterSlot(slot); err == nil {
			return o, nil
		}
	}
	return nil, fmt.Errorf("%w: all %d slots in use (run `qmgr check` to find dead owners)", ErrNoOwnerSlot, s.p.Owners)
}

// RegisterSlot claims a given owner slot (the queue manager layer uses the
// connection slot number of the admin structure, so that an owner has the
// same tag in every structure). It fails with ErrNoOwnerSlot when the slot
// is in use.
func (s *Structure) RegisterSlot(slot int) (*Owner, error) { return s.RegisterSlotLabel(slot, 0) }

// RegisterLabel is Register with a label: an opaque word others can read
// in OwnerInfo (the queue manager layer labels a connection with the member
// it belongs to).
func (s *Structure) RegisterLabel(label uint64) (*Owner, error) {
	start := int(uint32(s.self.Pid)*2654435761) % s.p.Owners
	for i := 0; i < s.p.Owners; i++ {
		if o, err := s.RegisterSlotLabel((start+i)%s.p.Owners, label); err == nil {
			return o, nil
		}
	}
	return nil, fmt.Errorf("%w: all %d slots in use (run `qmgr check` to find dead owners)", ErrNoOwnerSlot, s.p.Owners)
}

// RegisterSlotLabel is RegisterSlot with a label.
func (s *Structure) RegisterSlotLabel(slot int, label uint64) (own *Owner, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if slot < 0 || slot >= s.p.Owners {
		return nil, fmt.Errorf("%w: slot %d not in 0..%d", ErrNotOwner, slot, s.p.Owners-1)
	}
	off := s.ownerOff(slot)
	w := s.load(off + ownState)
	if osState(w) != osFree {
		return nil, fmt.Errorf("%w: slot %d is %s", ErrNoOwnerSlot, slot, ownerStateName(osState(w)))
	}
	inc := osInc(w) + 1
	if inc == 0 {
		inc = 1
	}
	// Claim with our pid in the state word: from here on a liveness check can
	// tell whether the claimer still runs, even before the start time below
	// is written.
	if !s.cas(off+ownState, w, mkOwnState(inc, osActive, uint32(s.self.Pid))) {
		return nil, fmt.Errorf("%w: slot %d taken concurrently", ErrNoOwnerSlot, slot)
	}
	cpRegisterClaimed.Hit()
	// Start time and label before the pid: a reader trusts them only when
	// the pid matches the one in the state word.
	s.store(off+ownStart, s.self.Start)
	s.store(off+ownPidNS, procid.SelfNS())
	s.store(off+ownLabel, label)
	// Even before the pid: from the pid on a revoker may fence this owner
	// and waits while the counter is odd (a repair makes it even too, but
	// a slot may have been freed by an older version or by Close).
	s.store(off+ownOpSeq, s.load(off+ownOpSeq)&^1)
	s.store(off+ownTook, 0)   // before the pid: nothing taken yet
	s.store(off+ownCommit, 0) // no commit record logged
	s.store(off+ownLone, 0)   // no lone operation
	s.store(off+ownLoneKey, 0)
	s.store(off+ownPid, uint64(s.self.Pid))
	s.store(off+ownReg, uint64(time.Now().UnixNano()))
	o := &Owner{s: s, slot: slot, tag: mkTag(slot, inc), off: off, epoch: s.load(off + ownEpoch),
		touched: make([]uint64, (s.p.Queues+63)/64)}
	o.opSeq = s.load(off+ownOpSeq) &^ 1
	o.uowSeq = uint32(s.load(off+ownUOW) >> 32)
	s.store(off+ownUOW, uint64(o.uowSeq)<<32|uint64(uowIdle))
	o.descBuf = (s.load(off+dOp) >> 8) & 1
	s.store(off+dOp, opNone|o.descBuf<<8)
	s.store(off+sdOp, opNone)
	return o, nil
}

func ownerStateName(st uint8) string {
	switch st {
	case osFree:
		return "free"
	case osActive:
		return "active"
	case osRepairing:
		return "repairing"
	}
	return fmt.Sprintf("state(%d)", st)
}

// Close ends the owner in order: an open unit of work is backed out, the
// caches go back to the shared pools and the slot is freed.
func (o *Owner) Close() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if o.closed {
		return nil
	}
	if o.checkAlive() != nil {
		o.closed = true // revoked: its repairer undid its work and owns its slot
		return nil
	}
	if len(o.uowPuts)+len(o.uowGets) > 0 {
		err = o.Backout()
	}
	if err := o.begin(); err != nil {
		// Out of service. An owner that holds nothing (registered in a
		// structure being recovered, where all its operations failed)
		// frees its slot: the structure may come back into service
		// while this process lives, and a slot left active under a live
		// process refuses every later owner of its number. One that
		// holds work leaves it (and its slot) to the failed structure,
		// which is never put back into service, only made again.
		if errors.Is(err, ErrStructureFailed) && o.holdsNothing() {
			o.freeSlot()
		}
		o.closed = true
		return nil
	}
	// Views never released: their messages go back where they were.
	for _, c := range o.views {
		it := uowItem{idx: c.idx, gen: c.gen, q: c.q, prio: uint8(c.prio)}
		o.s.bumpAvail(sublogSet{qpOf(c.q, c.prio)}) // before it is available, as Backout
		if berr := o.backoutHeldFrom(it, stView); berr != nil && err == nil {
			err = berr
		}
		o.s.announce(sublogSet{qpOf(c.q, c.prio)}, 1)
	}
	o.views = nil
	// A lone put never committed (its decision was not made: the caller
	// gave up on it) goes, or it would stay invisible with this tag.
	if it := o.lonePut; it != nil {
		if rerr := o.removeHeld(it.claimed(), stPutU); rerr == nil {
			o.addUncom(it.q, -1)
		} else if err == nil {
			err = rerr
		}
		o.lonePut = nil
		o.clearLone()
	}
	o.releaseCaches()
	o.clearDesc()
	// Handles the application left open no longer count (IPPROCS, OPPROCS).
	for wi, bits := range o.touched {
		for ; bits != 0; bits &= bits - 1 {
			q := uint32(wi*64 + mbits.TrailingZeros64(bits))
			co := o.s.cellOff(o.slot, q)
			o.s.storeOwned(co+clOpenIn, 0)
			o.s.storeOwned(co+clOpenOut, 0)
		}
	}
	o.end() // before the slot is freed: a new owner may take it at once
	o.freeSlot()
	o.closed = true
	return err
}

// holdsNothing reports whether the owner holds no work: no unit of work,
// no view, no lone put.
func (o *Owner) holdsNothing() bool {
	return len(o.uowPuts)+len(o.uowGets)+len(o.views) == 0 && o.lonePut == nil
}

// freeSlot frees the owner's slot, unless a repairer took it meanwhile.
func (o *Owner) freeSlot() {
	w := o.s.load(o.off + ownState)
	if osInc(w) == o.tag.Incarnation() && osState(w) == osActive {
		// A CAS: a repairer that took the slot meanwhile (and a registrant
		// after it) bumped it already, and must not see it move again.
		o.s.cas(o.off+ownEpoch, o.epoch, o.epoch+1)
		o.s.store(o.off+ownPid, 0) // see repair: the record is trusted again once a registrant stores its pid
		o.s.cas(o.off+ownState, w, mkOwnState(osInc(w), osFree, 0))
	}
}

// releaseCaches returns every cached entry, element and segment.
func (o *Owner) releaseCaches() {
	for _, i := range o.entries {
		o.s.release(poolEntries, i, o.tag)
	}
	for _, i := range o.elems {
		o.s.release(poolElems, i, o.tag)
	}
	for _, i := range o.segs {
		o.s.release(poolSegs, i, o.tag)
	}
	o.entries, o.elems, o.segs = o.entries[:0], o.elems[:0], o.segs[:0]
}

// setDesc publishes a descriptor (see the op constants).
func (o *Owner) setDesc(op, a, b, c uint64) {
	s := o.s
	nb := o.descBuf ^ 1
	f := o.off + descBufOff(nb)
	s.storeOwned(f+dbA, a)
	s.storeOwned(f+dbB, b)
	s.storeOwned(f+dbC, c)
	s.store(o.off+dOp, op|nb<<8)
	o.descBuf = nb
}

func (o *Owner) clearDesc() { o.s.store(o.off+dOp, opNone|o.descBuf<<8) }

// The segment descriptor is separate: a put's descriptor must survive the
// segment allocation that linking it may need.
const (
	sdOp = ownSegDesc
	sdA  = ownSegDescA
	sdB  = ownSegDescB
)

func (o *Owner) setSegDesc(op, a, b uint64) {
	s := o.s
	s.store(o.off+sdOp, opNone)
	s.store(o.off+sdA, a)
	s.store(o.off+sdB, b)
	s.store(o.off+sdOp, op)
}

func (o *Owner) clearSegDesc() { o.s.store(o.off+sdOp, opNone) }

// cell returns this owner's (depth, uncommitted) contribution words for q.
func (o *Owner) cellDepth(q uint32) uint64 { return o.s.load(o.s.cellOff(o.slot, q) + clDepth) }
func (o *Owner) setCellDepth(q uint32, v uint64) {
	o.s.storeOwned(o.s.cellOff(o.slot, q)+clDepth, v)
}
func (o *Owner) addUncom(q uint32, d int64) {
	off := o.s.cellOff(o.slot, q) + clUncom
	o.s.storeOwned(off, uint64(int64(o.s.load(off))+d))
}

// countMsg adds one message of n body bytes on q to this owner's counter
// pair at field (clPuts or clGets: the count, then the bytes).
func (o *Owner) countMsg(q uint32, field, n uint64) {
	off := o.s.cellOff(o.slot, q) + field
	o.s.storeOwned(off, o.s.load(off)+1)
	o.s.storeOwned(off+8, o.s.load(off+8)+n)
}

// countShared adds one message of n body bytes to q's shared counter pair
// at field (qBackouts or qExpired: the count, then the bytes).
func (s *Structure) countShared(q uint32, field, n uint64) {
	off := s.queueOff(q) + field
	atomic.AddUint64(s.u64(off), 1)
	atomic.AddUint64(s.u64(off+8), n)
}

// bodyLen is the body length of the message in the entry at eo, which
// the caller holds (read it before the CAS that lets the entry go).
func (s *Structure) bodyLen(eo uint64) uint64 { return s.load(eo+enQueue) >> 32 }

// touch sets this owner's bit in q's touched bitmap the first time it
// changes q's counts, so depth sums only visit owners that ever did.
func (o *Owner) touch(q uint32) {
	if o.touched[q/64]&(1<<(q%64)) != 0 {
		return
	}
	off := o.s.queueOff(q) + qBitmaps + o.s.l.bitmapSize + uint64(o.slot/64)*8
	bit := uint64(1) << (o.slot % 64)
	if o.s.load(off)&bit == 0 {
		atomic.OrUint64(o.s.u64(off), bit)
	}
	o.touched[q/64] |= 1 << (q % 64)
}

// checkAlive fails with ErrOwnerRevoked when the slot no longer belongs to
// this owner (it was repaired as dead, or revoked). The epoch decides when
// the incarnation has come round: whoever freed the slot bumped it before
// the free that a later registrant's claim follows.
func (o *Owner) checkAlive() error {
	if o.closed {
		return ErrClosed
	}
	if o.revoked {
		return fmt.Errorf("%w: %v", ErrOwnerRevoked, o.tag)
	}
	w := o.s.load(o.off + ownState)
	if osInc(w) != o.tag.Incarnation() || osState(w) != osActive || o.s.load(o.off+ownEpoch) != o.epoch {
		o.revoked = true
		return fmt.Errorf("%w: %v", ErrOwnerRevoked, o.tag)
	}
	return nil
}

// begin starts an operation and end ends it. For a revocable owner the
// operation is bracketed by the slot's operation counter (odd while one is
// in flight), stored before the slot state is checked: a revoker claims the
// slot and then waits for the counter to be even, so either it waits for
// this operation or this operation sees the claim and touches nothing.
func (o *Owner) begin() error {
	if o.closed {
		return ErrClosed
	}
	if o.revocable {
		o.opSeq++
		o.s.store(o.off+ownOpSeq, o.opSeq) // odd; a full barrier before the state load
	}
	if err := o.checkAlive(); err != nil {
		o.end()
		return err
	}
	if !o.recoverer && o.s.load(ctlFailed) != 0 {
		o.end()
		return ErrStructureFailed
	}
	return nil
}

func (o *Owner) end() {
	if o.revocable && o.opSeq&1 == 1 {
		o.opSeq++
		o.s.store(o.off+ownOpSeq, o.opSeq) // even: everything the operation stored is visible first
	}
}

// pause ends the bracket around a sleep (a get waiting on the futex) and
// resume starts it again: a revoker does not wait for a sleeping getter.
func (o *Owner) pause() { o.end() }

func (o *Owner) resume() error {
	if o.revocable {
		o.opSeq++
		o.s.store(o.off+ownOpSeq, o.opSeq)
	}
	return o.checkAlive()
}

// SetRevocable makes the owner revocable while its process lives (see
// Structure.Revoke): every operation is then bracketed in the owner's slot,
// which costs two atomic stores per operation. Connections of applications
// are revocable; a member's own owners need not be.
func (o *Owner) SetRevocable(on bool) { o.revocable = on }

// Label is the label the owner registered with (see RegisterSlotLabel).
func (o *Owner) Label() uint64 { return o.s.load(o.off + ownLabel) }

// OwnerInfo describes an owner slot.
type OwnerInfo struct {
	Tag        OwnerTag
	State      string // free, active, repairing
	Process    procid.ID
	Alive      bool
	UOWActive  bool
	UOWSince   time.Time // when the unit of work became active (UOWActive only; coarse, within 10 ms)
	Label      uint64    // as registered; valid once Registered
	Registered bool      // the registration finished (pid, start time and label recorded)
	Since      time.Time
	PidNS      uint64 // pid namespace of Process (0: unknown, or an older registrant); valid once Registered
}

// slotProcess reads the process recorded in a slot.
func (s *Structure) slotProcess(slot int) (w uint64, id procid.ID) {
	off := s.ownerOff(slot)
	w = s.load(off + ownState)
	switch osState(w) {
	case osActive:
		id.Pid = int(osLow(w))
		if uint64(id.Pid) == s.load(off+ownPid) {
			id.Start = s.load(off + ownStart)
		}
	case osRepairing:
		id.Pid = int(osLow(w))
		if uint64(id.Pid) == s.load(off+ownRepPid) {
			id.Start = s.load(off + ownRepStart)
		}
	}
	return w, id
}

// processAlive checks a recorded process. A start time of zero means the
// claimer died (or is) between claiming and recording it: the pid alone
// decides.
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

// holderAlive is OwnerAlive for the holder of a token or a reservation: an
// owner being repaired by a live repairer counts as alive, because its
// repairer acts for it (and may be using what it holds).
func (s *Structure) holderAlive(t OwnerTag) bool {
	if t.Slot() >= s.p.Owners {
		return false
	}
	w, id := s.slotProcess(t.Slot())
	if osInc(w) != t.Incarnation() || osState(w) == osFree {
		return false
	}
	return processAlive(id)
}

func (s *Structure) ownerInfo(slot int, w uint64, id procid.ID) OwnerInfo {
	off := s.ownerOff(slot)
	registered := osState(w) == osActive && uint64(osLow(w)) == s.load(off+ownPid)
	info := OwnerInfo{
		Tag: mkTag(slot, osInc(w)), State: ownerStateName(osState(w)), Process: id,
		Alive:      processAlive(id),
		UOWActive:  uint8(s.load(off+ownUOW)) != uowIdle,
		Registered: registered,
		Since:      time.Unix(0, int64(s.load(off+ownReg))),
	}
	if registered || osState(w) == osRepairing {
		info.Label = s.load(off + ownLabel)
	}
	if info.UOWActive {
		info.UOWSince = time.Unix(0, int64(s.load(off+ownUOWSince)))
	}
	if registered {
		info.PidNS = s.load(off + ownPidNS)
	}
	return info
}

// SlotTag is the tag of the owner in slot (its incarnation), without
// Owner's look at the process: ok is false when the slot is free. A
// channel initiator asks it of every locked status entry every 10 ms.
func (s *Structure) SlotTag(slot int) (t OwnerTag, ok bool) {
	if slot < 0 || slot >= s.p.Owners {
		return 0, false
	}
	w := s.load(s.ownerOff(slot) + ownState)
	if osState(w) == osFree {
		return 0, false
	}
	return mkTag(slot, osInc(w)), true
}

// Owner describes owner slot slot; ok is false when it is free.
func (s *Structure) Owner(slot int) (info OwnerInfo, ok bool) {
	if slot < 0 || slot >= s.p.Owners {
		return info, false
	}
	w, id := s.slotProcess(slot)
	if osState(w) == osFree {
		return info, false
	}
	return s.ownerInfo(slot, w, id), true
}

// DecideCommit records in this owner's slot that its unit of work, which
// may span structures, is committing: Decision then says OutcomeCommit, and
// whoever recovers the owner imposes it on every structure (RepairWith).
// Call it before committing in each structure, and EndDecision after.
func (o *Owner) DecideCommit() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.s.store(o.off+ownUOW, uint64(o.uowSeq)<<32|uint64(uowCommitting))
	return nil
}

// EndDecision clears what DecideCommit recorded. A revoked owner changes
// nothing: its slot belongs to the repairer, which has read the decision.
func (o *Owner) EndDecision() {
	var err error // a mapping truncated: nothing to clear
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if o.begin() != nil {
		return
	}
	defer o.end()
	o.uowSeq++
	o.s.store(o.off+ownCommit, 0)
	o.s.store(o.off+ownUOW, uint64(o.uowSeq)<<32|uint64(uowIdle))
}

// MarkCommitLogged records in this owner's slot that the commit record of
// its unit of work, whose persistence key is key, is about to be handed to
// the recovery log, and may be durable from then on. It is fenced like
// DecideCommit: once a recoverer has fenced the owner it fails, so a
// recoverer that read no mark knows no commit record will be logged. A
// recoverer that reads the mark (CommitLogged) and no decision backs the
// unit of work out, and must first record it as aborted where a rebuild
// from the log will see it. EndDecision clears the mark.
func (o *Owner) MarkCommitLogged(key uint64) (err error) {
	if key == 0 {
		panic("lockfree: MarkCommitLogged with key 0")
	}
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.s.store(o.off+ownCommit, key)
	return nil
}

// UndecidedCommits lists the keys MarkCommitLogged recorded for owners
// that did not decide their commit and no longer can: their process is
// gone or their slot was taken by a recoverer. Each such unit of work will
// be backed out, so a rebuild from the log must treat it as aborted even
// before its recoverer has recorded the abort.
func (s *Structure) UndecidedCommits() []uint64 {
	var keys []uint64
	for slot := 0; slot < s.p.Owners; slot++ {
		off := s.ownerOff(slot)
		key := s.load(off + ownCommit)
		if key == 0 || key&loggedDecided != 0 || uint8(s.load(off+ownUOW)) == uowCommitting {
			continue
		}
		w, id := s.slotProcess(slot)
		if osState(w) == osFree || osState(w) == osActive && processAlive(id) {
			continue
		}
		if s.load(off+ownCommit) == key { // still the same unit of work
			keys = append(keys, key)
		}
	}
	return keys
}

// OpenUOW is an owner's open unit of work, as OpenUOWs sees it.
type OpenUOW struct {
	Tag   OwnerTag
	Label uint64 // the owner's label (see RegisterSlotLabel)
	Seq   uint32 // the unit of work's sequence number in its owner
	Pid   int
}

// OpenUOWs lists the registered owners with an open unit of work, without
// looking at their processes (cheap enough for a periodic scan).
func (s *Structure) OpenUOWs() []OpenUOW {
	var out []OpenUOW
	for slot := 0; slot < s.p.Owners; slot++ {
		off := s.ownerOff(slot)
		w := s.load(off + ownState)
		if osState(w) != osActive || uint64(osLow(w)) != s.load(off+ownPid) {
			continue
		}
		u := s.load(off + ownUOW)
		if uint8(u) == uowIdle {
			continue
		}
		out = append(out, OpenUOW{Tag: mkTag(slot, osInc(w)), Label: s.load(off + ownLabel), Seq: uint32(u >> 32), Pid: int(osLow(w))})
	}
	return out
}

// loggedDecided is the bit DecideLogged sets in the commit key word: the
// operation outside any unit of work whose record was marked logged is
// decided. Keys are LRSNs, far below it.
const loggedDecided = 1 << 63

// DecideLogged records that the operation outside any unit of work (a put
// or get outside syncpoint) whose record MarkCommitLogged marked is
// decided: its record is durable. Fenced like DecideCommit; a unit of
// work's commit is decided by DecideCommit instead, which a recoverer
// imposes on every structure. EndLogged clears both marks.
func (o *Owner) DecideLogged() (err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if err := o.begin(); err != nil {
		return err
	}
	defer o.end()
	o.s.store(o.off+ownCommit, o.s.load(o.off+ownCommit)|loggedDecided)
	return nil
}

// EndLogged clears what MarkCommitLogged and DecideLogged recorded.
func (o *Owner) EndLogged() {
	var err error // a mapping truncated: nothing to clear
	defer shm.EndGuard(shm.BeginGuard(), &err)
	if o.begin() != nil {
		return
	}
	defer o.end()
	o.s.store(o.off+ownCommit, 0)
}

// CommitLogged is the key MarkCommitLogged recorded for owner t, unless
// the operation was decided by DecideLogged, or 0. Read it after fencing t
// and before repairing it.
func (s *Structure) CommitLogged(t OwnerTag) uint64 {
	if k := s.commitWord(t); k&loggedDecided == 0 {
		return k
	}
	return 0
}

// commitWord is owner t's commit key word (ownCommit) while t still holds
// its slot, or 0.
func (s *Structure) commitWord(t OwnerTag) uint64 {
	if t.Slot() >= s.p.Owners {
		return 0
	}
	off := s.ownerOff(t.Slot())
	if osInc(s.load(off+ownState)) != t.Incarnation() {
		return 0
	}
	return s.load(off + ownCommit)
}

// LoneDecided is the key of the operation outside any unit of work that
// owner t decided by DecideLogged (its record is durable), or 0. Read it
// after fencing t; the operation's owners in the structures it touched
// are repaired with it (RepairDecided).
func (s *Structure) LoneDecided(t OwnerTag) uint64 {
	if k := s.commitWord(t); k&loggedDecided != 0 {
		return k &^ loggedDecided
	}
	return 0
}

// Check reports whether the owner is still usable: ErrClosed after Close,
// ErrOwnerRevoked once its slot was taken (repaired or revoked).
func (o *Owner) Check() error { return o.checkAlive() }

// Decision is the outcome recorded for owner t by DecideCommit: commit if
// it decided to, backout otherwise. Read it before repairing the structure
// that holds it (repair resets the record).
func (s *Structure) Decision(t OwnerTag) Outcome {
	if t.Slot() >= s.p.Owners {
		return OutcomeBackout
	}
	off := s.ownerOff(t.Slot())
	if osInc(s.load(off+ownState)) == t.Incarnation() && uint8(s.load(off+ownUOW)) == uowCommitting {
		return OutcomeCommit
	}
	return OutcomeBackout
}

// OwnerAlive reports whether t still names a registered owner whose process
// runs.
func (s *Structure) OwnerAlive(t OwnerTag) bool {
	if t.Slot() >= s.p.Owners {
		return false
	}
	w, id := s.slotProcess(t.Slot())
	if osInc(w) != t.Incarnation() || osState(w) != osActive {
		return false
	}
	return processAlive(id)
}

// UOWCounts sums the units of work every owner of the structure ever
// committed and backed out (Commit and Backout with a unit of work open;
// the ones repairers ended are not counted). Statistics: a sum read while
// owners count may be one behind.
func (s *Structure) UOWCounts() (committed, backedOut int64, err error) {
	defer shm.EndGuard(shm.BeginGuard(), &err)
	for slot := 0; slot < s.p.Owners; slot++ {
		off := s.ownerOff(slot)
		committed += int64(s.load(off + ownCommits))
		backedOut += int64(s.load(off + ownBackouts))
	}
	return committed, backedOut, nil
}

// Owners lists the owner slots that are not free.
func (s *Structure) Owners() []OwnerInfo {
	var out []OwnerInfo
	for slot := 0; slot < s.p.Owners; slot++ {
		w, id := s.slotProcess(slot)
		if osState(w) == osFree {
			continue
		}
		out = append(out, s.ownerInfo(slot, w, id))
	}
	return out
}
