package lockfree

import (
	"fmt"
	"sort"

	"github.com/qmgr/qmgr/shm"
)

// CheckOptions tune the checker.
type CheckOptions struct {
	// Quiescent asserts that no operation is in flight (every owner is idle
	// or dead): counts must then match exactly, and nothing may be half
	// done. Without it the checker reports only what is wrong under any
	// interleaving (illegal states, things owned by dead owners, leaks of
	// pooled things that no live owner can be holding).
	Quiescent bool
	// MaxProblems stops after this many problems (default 100).
	MaxProblems int
}

// CheckReport is what the checker found.
type CheckReport struct {
	Problems []string
	Entries  map[string]int // by state
	Elements struct{ Free, Owned, Msg int }
	Segments struct{ Free, Owned, Linked int }
	Owners   struct{ Active, Repairing int }
	Queues   int
	Messages int // linked entries (putu, avail, held)
}

// OK reports whether no invariant is broken.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) String() string {
	s := fmt.Sprintf("queues %d, messages %d, entries %v, elements free %d owned %d in messages %d, segments free %d owned %d linked %d, owners active %d repairing %d",
		r.Queues, r.Messages, r.Entries, r.Elements.Free, r.Elements.Owned, r.Elements.Msg,
		r.Segments.Free, r.Segments.Owned, r.Segments.Linked, r.Owners.Active, r.Owners.Repairing)
	if len(r.Problems) == 0 {
		return s + ": ok"
	}
	s += fmt.Sprintf(": %d problems", len(r.Problems))
	for _, p := range r.Problems {
		s += "\n  " + p
	}
	return s
}

// Check walks the whole structure and reports every broken invariant: an
// illegal state, an entry, element or segment leaked or reachable twice, a
// count that does not match, anything owned by an owner that is dead or not
// registered. A memory fault (a truncated file) is reported as a problem.
func (s *Structure) Check(o CheckOptions) *CheckReport {
	r := &CheckReport{Entries: map[string]int{}}
	if o.MaxProblems == 0 {
		o.MaxProblems = 100
	}
	if err := shm.Guard(func() error { s.check(o, r); return nil }); err != nil {
		r.Problems = append(r.Problems, err.Error())
	}
	if o.Quiescent || len(r.Problems) == 0 {
		return r
	}
	// While other processes work, a walk mixes states read at different
	// times and can see a problem that is not there (a message consumed
	// between reading its entry and its slot). A real broken invariant stays
	// broken: report only what every one of several passes finds.
	for pass := 0; pass < 3 && len(r.Problems) > 0; pass++ {
		again := &CheckReport{Entries: map[string]int{}}
		if err := shm.Guard(func() error { s.check(o, again); return nil }); err != nil {
			again.Problems = append(again.Problems, err.Error())
		}
		keep := map[string]bool{}
		for _, p := range again.Problems {
			keep[p] = true
		}
		var still []string
		for _, p := range r.Problems {
			if keep[p] {
				still = append(still, p)
			}
		}
		r.Problems = still
	}
	return r
}

func (s *Structure) check(o CheckOptions, r *CheckReport) {
	bad := func(format string, args ...any) {
		if len(r.Problems) < o.MaxProblems {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	// Owners: which tags are live (registered and running).
	live := map[OwnerTag]bool{}
	for slot := 0; slot < s.p.Owners; slot++ {
		w, id := s.slotProcess(slot)
		t := mkTag(slot, osInc(w))
		switch osState(w) {
		case osFree:
			if d, _, _, _ := s.readDesc(s.ownerOff(slot)); d != opNone {
				bad("owner slot %d is free but has descriptor op %d", slot, d)
			}
		case osActive:
			r.Owners.Active++
			if processAlive(id) {
				live[t] = true
			} else {
				bad("%v: process %v is dead and the owner was not repaired", t, id)
			}
		case osRepairing:
			r.Owners.Repairing++
			if !processAlive(id) {
				bad("%v: repair by process %v died unfinished", t, id)
			} else if o.Quiescent {
				bad("%v: being repaired by %v", t, id)
			}
		default:
			bad("owner slot %d: illegal state %d", slot, osState(w))
		}
	}
	// Segments a live owner is linking or unlinking right now: linked but
	// (not yet, or no longer) in their chain.
	inFlightSeg := map[ref]bool{}
	for t := range live {
		off := s.ownerOff(t.Slot())
		if op := s.load(off + sdOp); op == opSegLink || op == opSegFree {
			inFlightSeg[ref(s.load(off+sdA))] = true
		}
	}
	ownerOK := func(what string, v uint32) {
		if !live[OwnerTag(v)] {
			bad("%s is owned by %v, which is not a live owner", what, OwnerTag(v))
		}
	}

	// Entries.
	type entInfo struct {
		kind uint8
		gen  uint32
		q    uint32
		prio int
		pos  uint64
		seen int
	}
	ents := make(map[uint32]*entInfo)
	perQueue := map[uint32][2]int64{} // depth, uncommitted by entry states
	perOwnerUncom := map[[2]uint32]int64{}
	for e := uint32(0); e < uint32(s.p.Entries); e++ {
		eo := s.entryOff(e)
		w := s.load(eo + enCtl)
		k := wKind(w)
		r.Entries[stateName(k)]++
		if k > stLast {
			bad("entry %d: illegal state %d", e, k)
			continue
		}
		switch k {
		case stFree:
			if wVal(w) != 0 {
				bad("entry %d: free with owner %v", e, OwnerTag(wVal(w)))
			}
			continue
		case stAvail:
			if wVal(w) != 0 {
				bad("entry %d: available with owner %v", e, OwnerTag(wVal(w)))
			}
		default:
			ownerOK(fmt.Sprintf("entry %d (%s)", e, stateName(k)), wVal(w))
		}
		if k == stDead && o.Quiescent {
			bad("entry %d: dead but not freed", e)
		}
		if k == stAlloc || k == stCached {
			continue
		}
		qw := s.load(eo + enQueue)
		q, prio := uint32(qw)&0xffff, int(qw>>16)&0xff
		if q >= uint32(s.p.Queues) || prio >= Priorities {
			bad("entry %d: queue %d priority %d out of range", e, q, prio)
			continue
		}
		if k != stDead {
			r.Messages++
			pq := perQueue[q]
			pq[0]++
			if k == stPutU || k == stHeld { // views are outside any unit of work
				pq[1]++
				perOwnerUncom[[2]uint32{wVal(w) >> 16, q}]++
			}
			perQueue[q] = pq
		}
		ents[e] = &entInfo{kind: k, gen: wGen(w), q: q, prio: prio, pos: s.load(eo + enPos)}
	}

	// Queues and their sublogs.
	segSeen := map[uint32]bool{}
	queueInFlight := map[uint32]bool{} // being created or deleted by a live owner
	for q := uint32(0); q < uint32(s.p.Queues); q++ {
		qo := s.queueOff(q)
		qs := osState(s.load(qo + qState))
		if qs == qsFree {
			continue
		}
		if qs != qsActive {
			if o.Quiescent {
				bad("queue %d: state %d (create or delete unfinished)", q, qs)
			} else if holder := OwnerTag(osLow(s.load(qo + qState))); !s.holderAlive(holder) {
				bad("queue %d: create or delete by %v, which is not a live owner", q, holder)
			} else {
				queueInFlight[q] = true
			}
			continue
		}
		r.Queues++
		name := s.queueName(q)
		mask := s.load(qo + qPrioMask)
		for p := 0; p < Priorities; p++ {
			sl := s.sublogOff(q, p)
			if j := s.load(sl + slJanitor); j != 0 {
				ownerOK(fmt.Sprintf("janitor token of %s priority %d", name, p), uint32(j))
			}
			hs := ref(s.load(sl + slHeadSeg))
			if hs.nil() {
				if s.load(sl+slTailPos) != 0 || s.load(sl+slHeadPos) != 0 {
					bad("%s priority %d: positions without segments", name, p)
				}
				continue
			}
			if mask&(1<<p) == 0 {
				bad("%s priority %d: has segments but its priority bit is clear", name, p)
			}
			qp := qpOf(q, p)
			head, tail := s.load(sl+slHeadPos), s.load(sl+slTailPos)
			if head > tail {
				bad("%s priority %d: head %d past tail %d", name, p, head, tail)
			}
			ts := ref(s.load(sl + slTailSeg))
			tsFound := false
			var lastBase uint64
			cur := hs
			first := true
			for n := 0; !cur.nil(); n++ {
				if n > s.p.Segments {
					bad("%s priority %d: segment chain loops", name, p)
					break
				}
				if cur.idx() >= uint32(s.p.Segments) {
					bad("%s priority %d: segment index %d out of range", name, p, cur.idx())
					break
				}
				base, ok := s.segRead(cur, qp)
				if !ok {
					bad("%s priority %d: chain reaches segment %d that is not linked to it", name, p, cur.idx())
					break
				}
				if segSeen[cur.idx()] {
					bad("segment %d reachable twice", cur.idx())
					break
				}
				segSeen[cur.idx()] = true
				if base%segSlots != 0 || (!first && base <= lastBase) {
					bad("%s priority %d: segment %d base %d out of order", name, p, cur.idx(), base)
				}
				if first && head < base {
					bad("%s priority %d: head %d before head segment base %d", name, p, head, base)
				}
				first = false
				lastBase = base
				if cur == ts {
					tsFound = true
				}
				for k := uint64(0); k < segSlots; k++ {
					pos := base + k
					sw := s.load(s.slotOff(cur.idx(), k))
					if ref(sw).nil() {
						if pos >= head && pos < tail {
							bad("%s priority %d: empty slot at %d below tail %d", name, p, pos, tail)
						}
						if sw != emptyMark(cur.gen()) && (sw != 0 || pos >= head) {
							bad("%s priority %d: slot %d holds %#x, not the empty mark of segment %d", name, p, pos, sw, cur.idx())
						}
						continue
					}
					if pos >= tail && o.Quiescent && !s.slotDead(sw, q, p, pos) {
						bad("%s priority %d: live slot at %d at or past tail %d", name, p, pos, tail)
					}
					rf := ref(sw)
					ei := ents[rf.idx()]
					if ei == nil || ei.gen != rf.gen() {
						continue // stale: a dead message
					}
					if ei.kind == stDead {
						continue
					}
					if ei.q != q || ei.prio != p || ei.pos != pos {
						// A stale reference whose gen wrapped: the entry lives
						// elsewhere now (and must be found there).
						continue
					}
					if pos < head {
						bad("entry %d (%s) of %s is behind the head (%d < %d): lost", rf.idx(), stateName(ei.kind), name, pos, head)
					}
					ei.seen++
				}
				cur = ref(s.load(s.segOff(cur.idx()) + sgNext))
			}
			// A nil tail segment with a head segment is an owner between
			// installing a queue's first segment and its tail (link and
			// helpTail finish it, for a dead one too): in flight while
			// others run.
			if !tsFound && !(ts.nil() && !o.Quiescent) {
				bad("%s priority %d: tail segment %d not in the chain", name, p, ts.idx())
			}
			if lastBase+segSlots < tail {
				bad("%s priority %d: tail %d beyond the last segment (base %d)", name, p, tail, lastBase)
			}
		}
		if o.Quiescent {
			d, u := s.counts(q)
			want := perQueue[q]
			if d != want[0] || u != want[1] {
				bad("%s: counts say depth %d uncommitted %d, entries say %d and %d", name, d, u, want[0], want[1])
			}
			if n := s.Waiters(QueueID(q)); n > 0 {
				bad("%s: %d waiter bits set with nobody waiting", name, n)
			}
		}
	}
	for e, ei := range ents {
		if ei.kind == stDead {
			continue
		}
		if ei.seen != 1 {
			bad("entry %d (%s, queue %d, position %d) is linked %d times", e, stateName(ei.kind), ei.q, ei.pos, ei.seen)
		}
	}
	if o.Quiescent {
		for slot := 0; slot < s.p.Owners; slot++ {
			for q := uint32(0); q < uint32(s.p.Queues); q++ {
				u := int64(s.load(s.cellOff(slot, q) + clUncom))
				if want := perOwnerUncom[[2]uint32{uint32(slot), q}]; u != want {
					bad("owner slot %d queue %d: uncommitted count %d, entries say %d", slot, q, u, want)
				}
			}
		}
	}

	// Data elements: every element is free, cached by a live owner, or in
	// exactly one live message's chain.
	inChain := make(map[uint32]uint32)
	for e, ei := range ents {
		if ei.kind == stDead && !o.Quiescent {
			continue // being freed by a live owner, possibly descheduled mid-way
		}
		eo := s.entryOff(e)
		dr := s.load(eo + enDataRef)
		varLen := int(dr >> 32)
		if uint32(dr) == 0 {
			if varLen > InlineMax {
				bad("entry %d: inline data of %d bytes", e, varLen)
			}
			continue
		}
		want := (varLen + s.p.ElementSize - 1) / s.p.ElementSize
		el, n := uint32(dr)-1, 0
		for el < uint32(s.p.Elements) {
			if prev, dup := inChain[el]; dup {
				bad("element %d is in the chains of entries %d and %d", el, prev, e)
				break
			}
			inChain[el] = e
			n++
			w := s.load(s.elemWordOff(el))
			if wKind(w) != ekMsg || wVal(w) != e {
				bad("element %d in the chain of entry %d (%s) is tagged kind %d value %d", el, e, stateName(ei.kind), wKind(w), wVal(w))
			}
			nx := s.elemNext(el)
			if nx == 0 || n > want {
				break
			}
			el = nx - 1
		}
		if n != want {
			bad("entry %d: chain of %d elements, %d bytes need %d", e, n, varLen, want)
		}
	}
	for el := uint32(0); el < uint32(s.p.Elements); el++ {
		w := s.load(s.elemWordOff(el))
		switch wKind(w) {
		case ekFree:
			r.Elements.Free++
		case ekOwned:
			r.Elements.Owned++
			ownerOK(fmt.Sprintf("element %d", el), wVal(w))
		case ekMsg:
			r.Elements.Msg++
			e := wVal(w)
			ei := ents[e]
			if ei == nil {
				// The entry is allocated (being filled) or free: only a live
				// owner filling it may hold such an element.
				if e >= uint32(s.p.Entries) {
					bad("element %d tagged for entry %d out of range", el, e)
					break
				}
				cw := s.load(s.entryOff(e) + enCtl)
				if wKind(cw) != stAlloc || o.Quiescent {
					bad("element %d is leaked: tagged for entry %d which is %s", el, e, stateName(wKind(cw)))
				}
				continue
			}
			if _, ok := inChain[el]; !ok && (ei.kind != stDead || o.Quiescent) {
				bad("element %d is leaked: tagged for entry %d but not in its chain", el, e)
			}
		default:
			bad("element %d: illegal kind %d", el, wKind(w))
		}
	}

	// Segments.
	for i := uint32(0); i < uint32(s.p.Segments); i++ {
		w := s.load(s.segOff(i) + sgWord)
		switch wKind(w) {
		case skFree:
			r.Segments.Free++
		case skOwned:
			r.Segments.Owned++
			ownerOK(fmt.Sprintf("segment %d", i), wVal(w))
		case skLink:
			r.Segments.Linked++
			if !segSeen[i] && (o.Quiescent || !inFlightSeg[mkRef(i, wGen(w))] && !queueInFlight[wVal(w)>>8]) {
				bad("segment %d is leaked: linked to queue %d priority %d but not in its chain", i, wVal(w)>>8, wVal(w)&0xff)
			}
		default:
			bad("segment %d: illegal kind %d", i, wKind(w))
		}
	}

	// Tokens and reservations.
	if t := s.load(ctlAdminToken); t != 0 {
		ownerOK("the admin token", uint32(t))
	}
	for i := 0; i < s.p.StatusSlots; i++ {
		if t := s.load(s.statusOff(i)) & stTagMask; t != 0 {
			ownerOK(fmt.Sprintf("status slot %d reservation", i), uint32(t))
		}
	}
	sort.Strings(r.Problems)
}
