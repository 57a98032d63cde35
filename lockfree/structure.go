package lockfree

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// Structure is one CF structure attached by this process: the typed view of
// its data area. It is safe for concurrent use; the per-connection state
// lives in Owner.
type Structure struct {
	mem  shm.Mem
	l    layout
	p    Params
	m    *shm.Mapping // nil for structures built over plain memory (tests)
	self procid.ID

	nameMu sync.Mutex
	names  map[string]QueueID // process-local cache of queue slots by name

	// stallLimit bounds how long a fence or a repair waits for a live
	// owner's operation in flight (ns; 0: for ever). Process-local.
	stallLimit atomic.Int64

	// offloadFree frees the data-set run of an offloaded message when its
	// entry is freed (SetOffloadFree). Process-local.
	offloadFree atomic.Pointer[func(ref []byte) error]
	// offloadFreeErrs counts runs offloadFree failed to free (left to the
	// data set's checker); lastOffloadErr is the last such error.
	offloadFreeErrs atomic.Int64
	lastOffloadErr  atomic.Pointer[error]
}

// SetOffloadFree sets the function that frees the data-set run of an
// offloaded message (its reference, Message.Offload) when the message's
// entry is freed: by a commit, a get outside syncpoint, an expiry, the
// release of a view, or the repair of a dead owner. It is called while
// the entry is still dead(owner), so a process killed during it leaves
// the entry to its repair, which calls it again: it must treat a run
// already freed as freed (success). nil: offloaded runs are not freed
// (the data set's checker reports them).
func (s *Structure) SetOffloadFree(f func(ref []byte) error) {
	if f == nil {
		s.offloadFree.Store(nil)
		return
	}
	s.offloadFree.Store(&f)
}

// OffloadFreeErrors is how many offloaded runs could not be freed, and the
// last error.
func (s *Structure) OffloadFreeErrors() (int64, error) {
	var err error
	if p := s.lastOffloadErr.Load(); p != nil {
		err = *p
	}
	return s.offloadFreeErrs.Load(), err
}

// freeOffload frees the run of the offloaded message in dead entry eo, if
// it is one.
func (s *Structure) freeOffload(eo uint64) {
	ref := s.offloadRef(eo)
	if ref == nil {
		return
	}
	f := s.offloadFree.Load()
	var err error
	if f == nil {
		err = fmt.Errorf("structure %s: no offload hook to free an offloaded message's run", s.Name())
	} else {
		err = (*f)(ref)
	}
	if err != nil {
		s.offloadFreeErrs.Add(1)
		s.lastOffloadErr.Store(&err)
	}
}

// OffloadRefs returns the references of the offloaded messages whose
// entries still need their bodies and whose reference starts with the
// 2-byte little-endian data set number ds: linked (uncommitted puts,
// available, held, views), being freed (dead: their free frees the run),
// and being filled by a live owner. The data set's repair and checker use
// them as a set, and an in-service rebuild of a space map keeps exactly
// these runs. Walked without stopping anyone: an entry that changes while
// its reference is read is read again (a message got, committed or backed
// out meanwhile is never left out while it still needs its body); a
// message put after its entry was passed is not listed (the rebuild's
// fence keeps its run: smds section 6a). A structure file truncated under the mapping
// fails it with shm.ErrFault (the caller must not take that for "no
// reference").
func (s *Structure) OffloadRefs(ds uint16) (out [][]byte, err error) {
	err = shm.Guard(func() error {
		for e := uint32(0); e < uint32(s.p.Entries); e++ {
			ref, err := s.offloadRefStable(e)
			if err != nil {
				return err
			}
			if ref == nil || uint16(ref[0])|uint16(ref[1])<<8 != ds {
				continue
			}
			out = append(out, ref)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// offloadRefsRereads bounds how many times OffloadRefs reads again an
// entry that changed while it read its reference.
const offloadRefsRereads = 1 << 16

// offloadRefStable is the offloaded reference of entry e when it still
// needs its body (see OffloadRefs), nil when it does not, read while its
// control word stays the same: an entry that changes while read (a get
// claiming it, a commit, a backout) is read again, never left out, since
// a live message left out of the set is a run given to another message
// (an in-service space-map rebuild) or freed under it (a repair).
func (s *Structure) offloadRefStable(e uint32) ([]byte, error) {
	eo := s.entryOff(e)
	for try := 0; try < offloadRefsRereads; try++ {
		w := s.load(eo + enCtl)
		switch wKind(w) {
		case stPutU, stAvail, stHeld, stView, stDead:
		case stAlloc:
			if !s.holderAlive(OwnerTag(wVal(w))) {
				return nil, nil
			}
		default:
			return nil, nil
		}
		ref := s.offloadRef(eo)
		testHookOffloadRefRead(e)
		if s.load(eo+enCtl) == w {
			return ref, nil
		}
	}
	return nil, fmt.Errorf("structure %s: entry %d changed on each of %d reads of its offloaded reference", s.Name(), e, offloadRefsRereads)
}

// testHookOffloadRefRead runs in OffloadRefs after an entry's reference
// is read and before its control word is loaded again (tests change the
// entry there).
var testHookOffloadRefRead = func(uint32) {}

// SetStallLimit bounds how long Fence, Revoke and repairs wait for a live
// owner's operation in flight to end before they fail with a
// *StalledError (0, the default: they wait as long as the process
// lives). An operation takes microseconds; one that takes seconds belongs
// to a process that is stopped or starved.
func (s *Structure) SetStallLimit(d time.Duration) { s.stallLimit.Store(int64(d)) }

// Format writes an empty structure with parameters p into mem, which must be
// zeroed (a fresh file is). Everything but the control page is valid when
// zero: all entries, elements, segments, owner and queue slots free.
func Format(mem shm.Mem, p Params) error {
	p = p.withDefaults()
	if err := p.Validate(); err != nil {
		return err
	}
	l := computeLayout(p)
	if l.total > mem.Len() {
		return fmt.Errorf("%w: layout needs %d bytes, have %d", ErrParams, l.total, mem.Len())
	}
	copy(mem.Bytes(0, paramsLen), encodeParams(p))
	return nil
}

// Open validates the control page of a formatted data area and returns the
// structure. It never panics on bad bytes: a control page that does not
// describe a layout fitting in mem is ErrCorrupt.
func Open(mem shm.Mem) (*Structure, error) {
	if mem.Len() < ctlPageSize {
		return nil, fmt.Errorf("%w: data area of %d bytes", ErrCorrupt, mem.Len())
	}
	p, err := decodeParams(mem.Bytes(0, paramsLen))
	if err != nil {
		return nil, err
	}
	l := computeLayout(p)
	if l.total > mem.Len() {
		return nil, fmt.Errorf("%w: layout needs %d bytes, the structure has %d", ErrCorrupt, l.total, mem.Len())
	}
	return &Structure{mem: mem, l: l, p: p, self: procid.Self(), names: map[string]QueueID{}}, nil
}

// CreateOptions names a structure file to create or attach.
type CreateOptions struct {
	Dir    string   // CF directory (required), e.g. shm.DefaultDir(group)
	Name   string   // structure name (required), e.g. shm.DefaultApplicationStructure
	Kind   shm.Kind // admin or application; default application
	Size   uint64   // file size; default: what Params need (Params.Size)
	Params Params   // counts; zero counts are derived from Size, or take their defaults when Size is zero
	// Recovering creates the structure out of service (see
	// Structure.InService): its creator, recorded as its recoverer
	// (Structure.Service), fills it first.
	Recovering bool
}

// withDefaults is o with the defaults documented on its fields applied
// (the Params' own defaults are applied where they are used: by Size, or
// by ParamsForSize).
func (o CreateOptions) withDefaults() CreateOptions {
	if o.Kind == 0 {
		o.Kind = shm.KindApplication
	}
	return o
}

// Validate checks the options as Create will use them (with their
// defaults applied); it changes nothing.
func (o CreateOptions) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Dir == "":
		return fmt.Errorf("%w: no CF directory", ErrParams)
	case !shm.ValidName(o.Name):
		return fmt.Errorf("%w: structure name %q (1 to 48 of A-Z a-z 0-9 . _ %%)", ErrBadName, o.Name)
	case o.Kind != shm.KindAdmin && o.Kind != shm.KindApplication:
		return fmt.Errorf("%w: kind %d", ErrParams, o.Kind)
	}
	if o.Size == 0 {
		return o.Params.Validate()
	}
	_, err := ParamsForSize(o.Size, o.Params)
	return err
}

// Create creates the structure file (or attaches it when another process
// already created it) and reports whether this call created it.
func Create(o CreateOptions) (*Structure, bool, error) {
	o = o.withDefaults()
	if err := o.Validate(); err != nil {
		return nil, false, err
	}
	p := o.Params
	if o.Size == 0 {
		p = p.withDefaults()
		o.Size = p.Size()
	} else {
		var err error
		if p, err = ParamsForSize(o.Size, p); err != nil {
			return nil, false, err
		}
	}
	m, created, err := shm.Create(shm.CreateOptions{Dir: o.Dir, Name: o.Name, Kind: o.Kind, Size: o.Size, Version: LayoutVersion,
		Init: func(mem shm.Mem) error {
			if err := Format(mem, p); err != nil {
				return err
			}
			if o.Recovering {
				self := procid.Self()
				atomic.StoreUint64(mem.U64(ctlRecStart), self.Start)
				atomic.StoreUint64(mem.U64(ctlRecPid), uint64(self.Pid))
				atomic.StoreUint64(mem.U64(ctlFailed), failRecovering)
			}
			return nil
		}})
	if err != nil {
		return nil, false, err
	}
	s, err := openMapping(m)
	return s, created, err
}

// Attach maps an existing structure.
func Attach(dir, name string) (*Structure, error) {
	m, err := shm.Attach(dir, name, LayoutVersion)
	if err != nil {
		return nil, err
	}
	return openMapping(m)
}

func openMapping(m *shm.Mapping) (*Structure, error) {
	var s *Structure
	err := shm.Guard(func() error {
		var err error
		s, err = Open(m.Mem())
		return err
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("attach %s: %w", m.Path(), err)
	}
	s.m = m
	return s, nil
}

// Close detaches the structure. Owners must be closed first.
func (s *Structure) Close() error {
	if s.m == nil {
		return nil
	}
	return s.m.Close()
}

// Mapping is the underlying file mapping (nil over plain memory).
func (s *Structure) Mapping() *shm.Mapping { return s.m }

// Params are the structure's parameters.
func (s *Structure) Params() Params { return s.p }

// Name is the structure name ("" over plain memory).
func (s *Structure) Name() string {
	if s.m == nil {
		return ""
	}
	return s.m.Header().Name
}

// Word accessors. Offsets come from the layout; a bad one panics in shm.
func (s *Structure) u64(off uint64) *uint64 { return s.mem.U64(off) }
func (s *Structure) load(off uint64) uint64 { return atomic.LoadUint64(s.mem.U64(off)) }
func (s *Structure) store(off, v uint64)    { atomic.StoreUint64(s.mem.U64(off), v) }

// storeOwned writes a word that only the caller writes (a field of an entry
// it owns, its own descriptor or cells) with a plain store. The atomic
// store it replaces costs a full barrier (XCHG on amd64) per word. An
// 8-byte aligned store is never torn.
//
// What orders it: the caller's next atomic store or read-modify-write (a
// CAS publishing the entry, the descriptor's op word) is not seen by
// another process before it, so a reader that sees that later word sees
// this one too; a repairer reads it only after the writer died, when all
// its executed stores are visible. What does not: the caller's later
// loads. A plain store may wait in the store buffer (on amd64 too) while
// loads issued after it complete, so a protocol that stores its own word
// and then loads another process's word to decide (a Dekker pattern, as
// reserveDepth's check of the depth against MaxDepth) must use an atomic
// store, never storeOwned.
func (s *Structure) storeOwned(off, v uint64) { *s.mem.U64(off) = v }

func (s *Structure) cas(off, old, new uint64) bool {
	return atomic.CompareAndSwapUint64(s.mem.U64(off), old, new)
}

func (s *Structure) entryOff(i uint32) uint64    { return s.l.entries + uint64(i)*entrySize }
func (s *Structure) elemWordOff(i uint32) uint64 { return s.l.elemWords + uint64(i)*8 }
func (s *Structure) elemNextOff(i uint32) uint64 { return s.l.elemNext + uint64(i)*4 }
func (s *Structure) elemData(i uint32) []byte {
	es := uint64(s.p.ElementSize)
	return s.mem.Bytes(s.l.elemData+uint64(i)*es, es)
}
func (s *Structure) segOff(i uint32) uint64   { return s.l.segs + uint64(i)*segSize }
func (s *Structure) ownerOff(slot int) uint64 { return s.l.owners + uint64(slot)*ownerSize }
func (s *Structure) queueOff(q uint32) uint64 { return s.l.queues + uint64(q)*s.l.queueSize }
func (s *Structure) sublogOff(q uint32, prio int) uint64 {
	return s.queueOff(q) + queueFixed + 2*s.l.bitmapSize + uint64(prio)*sublogSize
}
func (s *Structure) cellOff(slot int, q uint32) uint64 {
	return s.l.cells + (uint64(slot)*uint64(s.p.Queues)+uint64(q))*cellSize
}

// Indexes read from the mapping are checked before they make an offset:
// an owner writes only valid ones, so one out of range is corruption (a
// memory error, a stray write), and an offset made from it would fault or,
// worse, land in another region.
func (s *Structure) entryRefOK(r ref) bool { return !r.nil() && r.idx() < uint32(s.p.Entries) }
func (s *Structure) segRefOK(r ref) bool   { return !r.nil() && r.idx() < uint32(s.p.Segments) }
func (s *Structure) queueOK(q uint64) bool { return q < uint64(s.p.Queues) }

// qpOK checks a queue << 8 | priority pair.
func (s *Structure) qpOK(qp uint64) bool { return s.queueOK(qp>>8) && qp&0xff < Priorities }

func (s *Structure) elemNext(i uint32) uint32 { return atomic.LoadUint32(s.mem.U32(s.elemNextOff(i))) }
func (s *Structure) setElemNext(i, n uint32) {
	atomic.StoreUint32(s.mem.U32(s.elemNextOff(i)), n)
}

// Values of the failed word (ctlFailed).
const (
	failFailed     = 1
	failRecovering = 2
)

// Fail takes the structure out of service because its file is gone or
// damaged: every operation fails with ErrStructureFailed from now on, in
// every process that maps it. It reports whether this call did it.
func (s *Structure) Fail() bool {
	var did bool
	shm.Guard(func() error {
		did = atomic.CompareAndSwapUint64(s.mem.U64(ctlFailed), 0, failFailed)
		return nil
	})
	return did
}

// InService reports whether operations may use the structure (false when
// it failed, is being recovered, or its mapping faults).
func (s *Structure) InService() bool {
	ok := false
	shm.Guard(func() error {
		ok = atomic.LoadUint64(s.mem.U64(ctlFailed)) == 0
		return nil
	})
	return ok
}

// Current fails with ErrStructureFailed unless the structure is in service
// and its file is still in place (not removed or truncated: a recovery
// removes the failed file before it creates the new one). A failure that nobody has marked in the shared mapping yet
// (the file is gone, and every process that noticed has its own mapping
// of the new one) shows only here: an operation whose effect must reach
// a recovery of the structure (a commit of persistent work) checks it
// after it marked itself in flight. It costs an fstat (shm Linked).
func (s *Structure) Current() error {
	if !s.InService() {
		return ErrStructureFailed
	}
	if s.m == nil {
		return nil
	}
	if err := s.m.Linked(); err != nil {
		if errors.Is(err, shm.ErrNotFound) || errors.Is(err, shm.ErrTruncated) {
			s.Fail() // in every process that maps it
		} // else a failed fstat: this operation fails, the periodic check judges the structure
		return fmt.Errorf("%w: %v", ErrStructureFailed, err)
	}
	return nil
}

// ServiceState says whether a structure is in service.
type ServiceState int

// Service states.
const (
	InService  ServiceState = iota // operations may use it
	Failed                         // taken out of service: its file is gone or damaged (Fail)
	Recovering                     // being filled by its recoverer (CreateOptions.Recovering)
)

func (st ServiceState) String() string {
	switch st {
	case InService:
		return "in service"
	case Failed:
		return "failed"
	case Recovering:
		return "recovering"
	}
	return fmt.Sprintf("service state %d", int(st))
}

// Service reports the structure's service state and, while it is
// Recovering, the process recovering it. A mapping that faults is Failed.
func (s *Structure) Service() (ServiceState, procid.ID) {
	st, rec := Failed, procid.ID{}
	shm.Guard(func() error {
		switch atomic.LoadUint64(s.mem.U64(ctlFailed)) {
		case 0:
			st = InService
		case failRecovering:
			st = Recovering
			rec = procid.ID{Pid: int(atomic.LoadUint64(s.mem.U64(ctlRecPid))), Start: atomic.LoadUint64(s.mem.U64(ctlRecStart))}
		}
		return nil
	})
	return st, rec
}

// Failed reports whether someone took the structure out of service as
// failed (Fail), as opposed to its being recovered.
func (s *Structure) Failed() bool {
	failed := false
	shm.Guard(func() error {
		failed = atomic.LoadUint64(s.mem.U64(ctlFailed)) == failFailed
		return nil
	})
	return failed
}

// AddLogged counts n bytes of recovery log records written about the
// structure's messages.
func (s *Structure) AddLogged(n uint64) {
	shm.Guard(func() error { atomic.AddUint64(s.mem.U64(ctlLogged), n); return nil })
}

// Logged is the bytes of recovery log records written about the
// structure's messages since it was created.
func (s *Structure) Logged() uint64 {
	var n uint64
	shm.Guard(func() error { n = atomic.LoadUint64(s.mem.U64(ctlLogged)); return nil })
	return n
}

// PutInService ends a recovery: operations may use the structure again.
func (s *Structure) PutInService() { atomic.StoreUint64(s.mem.U64(ctlFailed), 0) }

// SetRecoverer lets o work in a structure out of service (its recoverer).
func (o *Owner) SetRecoverer(on bool) { o.recoverer = on }

// Recoverer reports whether o works in a structure out of service.
func (o *Owner) Recoverer() bool { return o.recoverer }
