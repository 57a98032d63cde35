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
	// Progress, when set, is called after each phase of the first walk
	// with the phases done and CheckPhases (a progress display).
	Progress func(done, total int)
}

// CheckPhases is the number of phases of a walk (CheckOptions.Progress).
const CheckPhases = 10

// CheckReport is what the checker found.
type CheckReport struct {
	Problems []string
	Entries  map[string]int // by state
	Elements struct{ Free, Owned, Msg int }
	Segments struct{ Free, Owned, Linked int }
	Owners   struct{ Active, Repairing int }
	Queues   int
	Messages int // linked entries (putu, avail, held)
	// Offloaded are the linked entries whose bodies are in shared message
	// data sets, with their references (Message.Offload): what the data
	// sets' checkers (smds.DataSet.Check) compare their used runs with.
	Offloaded [][]byte
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
	o.Progress = nil // the first walk's progress was shown
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

// checker is one walk of the structure by check: one method per phase,
// each reading what the phases before it gathered.
type checker struct {
	s *Structure
	o CheckOptions
	r *CheckReport

	live          map[OwnerTag]bool   // owners registered and running (owners)
	inFlightSeg   map[ref]bool        // segments a live owner is linking or unlinking (segmentsInFlight)
	ents          map[uint32]*entInfo // linked or dead entries (entries)
	perQueue      map[uint32][2]int64 // depth, uncommitted by entry states (entries)
	perOwnerUncom map[[2]uint32]int64 // uncommitted by entry states, per owner slot and queue (entries)
	segSeen       map[uint32]bool     // segments reached along a chain (queues)
	queueInFlight map[uint32]bool     // queues being created or deleted by a live owner (queues)
	inChain       map[uint32]uint32   // element -> the entry whose chain holds it (elementChains)
}

// entInfo is what the checker keeps of an entry that is linked, or dead.
type entInfo struct {
	kind uint8
	gen  uint32
	q    uint32
	prio int
	pos  uint64
	seen int // times found in its sublog
}

func (s *Structure) check(o CheckOptions, r *CheckReport) {
	c := &checker{s: s, o: o, r: r}
	phases := [CheckPhases]func(){c.owners, c.segmentsInFlight, c.entries, c.queues, c.linkCounts,
		c.uncommittedCells, c.elementChains, c.elements, c.segments, c.tokens}
	for i, phase := range phases {
		phase()
		if o.Progress != nil {
			o.Progress(i+1, CheckPhases)
		}
	}
	sort.Strings(r.Problems)
}

// bad reports a problem, up to MaxProblems.
func (c *checker) bad(format string, args ...any) {
	if len(c.r.Problems) < c.o.MaxProblems {
		c.r.Problems = append(c.r.Problems, fmt.Sprintf(format, args...))
	}
}

// ownerOK reports what, owned by tag v, unless v is a live owner.
func (c *checker) ownerOK(what string, v uint32) {
	if !c.live[OwnerTag(v)] {
		c.bad("%s is owned by %v, which is not a live owner", what, OwnerTag(v))
	}
}

// owners: which tags are live (registered and running).
func (c *checker) owners() {
	s, o, r := c.s, c.o, c.r
	c.live = map[OwnerTag]bool{}
	for slot := 0; slot < s.p.Owners; slot++ {
		w, id := s.slotProcess(slot)
		t := mkTag(slot, osInc(w))
		switch osState(w) {
		case osFree:
			if d, _, _, _ := s.readDesc(s.ownerOff(slot)); d != opNone {
				c.bad("owner slot %d is free but has descriptor op %d", slot, d)
			}
		case osActive:
			r.Owners.Active++
			if processAlive(id) {
				c.live[t] = true
			} else {
				c.bad("%v: process %v is dead and the owner was not repaired", t, id)
			}
		case osRepairing:
			r.Owners.Repairing++
			if !processAlive(id) {
				c.bad("%v: repair by process %v died unfinished", t, id)
			} else if o.Quiescent {
				c.bad("%v: being repaired by %v", t, id)
			}
		default:
			c.bad("owner slot %d: illegal state %d", slot, osState(w))
		}
	}
}

// segmentsInFlight: segments a live owner is linking or unlinking right
// now: linked but (not yet, or no longer) in their chain.
func (c *checker) segmentsInFlight() {
	s := c.s
	c.inFlightSeg = map[ref]bool{}
	for t := range c.live {
		off := s.ownerOff(t.Slot())
		if op := s.load(off + sdOp); op == opSegLink || op == opSegFree {
			c.inFlightSeg[ref(s.load(off+sdA))] = true
		}
	}
}

// entries: every entry's state, and what linked entries say the counts
// are.
func (c *checker) entries() {
	s, o, r := c.s, c.o, c.r
	c.ents = make(map[uint32]*entInfo)
	c.perQueue = map[uint32][2]int64{}
	c.perOwnerUncom = map[[2]uint32]int64{}
	for e := uint32(0); e < uint32(s.p.Entries); e++ {
		eo := s.entryOff(e)
		w := s.load(eo + enCtl)
		k := wKind(w)
		r.Entries[stateName(k)]++
		if k > stLast {
			c.bad("entry %d: illegal state %d", e, k)
			continue
		}
		switch k {
		case stFree:
			if wVal(w) != 0 {
				c.bad("entry %d: free with owner %v", e, OwnerTag(wVal(w)))
			}
			continue
		case stAvail:
			if wVal(w) != 0 {
				c.bad("entry %d: available with owner %v", e, OwnerTag(wVal(w)))
			}
		default:
			c.ownerOK(fmt.Sprintf("entry %d (%s)", e, stateName(k)), wVal(w))
		}
		if k == stDead && o.Quiescent {
			c.bad("entry %d: dead but not freed", e)
		}
		if k == stAlloc || k == stCached {
			continue
		}
		qw := s.load(eo + enQueue)
		q, prio := uint32(qw)&0xffff, int(qw>>16)&0xff
		if q >= uint32(s.p.Queues) || prio >= Priorities {
			c.bad("entry %d: queue %d priority %d out of range", e, q, prio)
			continue
		}
		if k != stDead {
			c.countMessage(k, w, q)
		}
		c.ents[e] = &entInfo{kind: k, gen: wGen(w), q: q, prio: prio, pos: s.load(eo + enPos)}
	}
}

// countMessage counts a linked message (state k, ctl word w) of queue q.
func (c *checker) countMessage(k uint8, w uint64, q uint32) {
	c.r.Messages++
	pq := c.perQueue[q]
	pq[0]++
	if k == stPutU || k == stHeld { // views are outside any unit of work
		pq[1]++
		c.perOwnerUncom[[2]uint32{wVal(w) >> 16, q}]++
	}
	c.perQueue[q] = pq
}

// queues: every queue's state, sublogs and counts.
func (c *checker) queues() {
	s, o, r := c.s, c.o, c.r
	c.segSeen = map[uint32]bool{}
	c.queueInFlight = map[uint32]bool{}
	for q := uint32(0); q < uint32(s.p.Queues); q++ {
		qo := s.queueOff(q)
		qs := osState(s.load(qo + qState))
		if qs == qsFree {
			continue
		}
		if qs != qsActive {
			if o.Quiescent {
				c.bad("queue %d: state %d (create or delete unfinished)", q, qs)
			} else if holder := OwnerTag(osLow(s.load(qo + qState))); !s.holderAlive(holder) {
				c.bad("queue %d: create or delete by %v, which is not a live owner", q, holder)
			} else {
				c.queueInFlight[q] = true
			}
			continue
		}
		r.Queues++
		name := s.queueName(q)
		mask := s.load(qo + qPrioMask)
		for p := 0; p < Priorities; p++ {
			c.sublog(q, p, name, mask)
		}
		if o.Quiescent {
			c.queueCounts(q, name)
		}
	}
}

// sublogWalk is the sublog the checker walks.
type sublogWalk struct {
	q          uint32
	p          int
	name       string
	head, tail uint64
}

// sublog: sublog q/p of queue name (priorities used: mask): its janitor
// token, its ends, and its chain of segments.
func (c *checker) sublog(q uint32, p int, name string, mask uint64) {
	s, o := c.s, c.o
	sl := s.sublogOff(q, p)
	if j := s.load(sl + slJanitor); j != 0 {
		c.ownerOK(fmt.Sprintf("janitor token of %s priority %d", name, p), uint32(j))
	}
	hs := ref(s.load(sl + slHeadSeg))
	if hs.nil() {
		if s.load(sl+slTailPos) != 0 || s.load(sl+slHeadPos) != 0 {
			c.bad("%s priority %d: positions without segments", name, p)
		}
		return
	}
	if mask&(1<<p) == 0 {
		c.bad("%s priority %d: has segments but its priority bit is clear", name, p)
	}
	sv := sublogWalk{q: q, p: p, name: name}
	sv.head, sv.tail = s.load(sl+slHeadPos), s.load(sl+slTailPos)
	if sv.head > sv.tail {
		c.bad("%s priority %d: head %d past tail %d", name, p, sv.head, sv.tail)
	}
	ts := ref(s.load(sl + slTailSeg))
	tsFound, lastBase := c.chain(&sv, hs, ts)
	// A nil tail segment with a head segment is an owner between
	// installing a queue's first segment and its tail (link and
	// helpTail finish it, for a dead one too): in flight while
	// others run.
	if !tsFound && !(ts.nil() && !o.Quiescent) {
		c.bad("%s priority %d: tail segment %d not in the chain", name, p, ts.idx())
	}
	if lastBase+segSlots < sv.tail {
		c.bad("%s priority %d: tail %d beyond the last segment (base %d)", name, p, sv.tail, lastBase)
	}
}

// chain walks the segments of sv from its head segment hs and says
// whether it met the tail segment ts, and the last segment's base.
func (c *checker) chain(sv *sublogWalk, hs, ts ref) (tsFound bool, lastBase uint64) {
	s := c.s
	name, p := sv.name, sv.p
	qp := qpOf(sv.q, p)
	cur := hs
	first := true
	for n := 0; !cur.nil(); n++ {
		if n > s.p.Segments {
			c.bad("%s priority %d: segment chain loops", name, p)
			break
		}
		if cur.idx() >= uint32(s.p.Segments) {
			c.bad("%s priority %d: segment index %d out of range", name, p, cur.idx())
			break
		}
		base, ok := s.segRead(cur, qp)
		if !ok {
			c.bad("%s priority %d: chain reaches segment %d that is not linked to it", name, p, cur.idx())
			break
		}
		if c.segSeen[cur.idx()] {
			c.bad("segment %d reachable twice", cur.idx())
			break
		}
		c.segSeen[cur.idx()] = true
		if base%segSlots != 0 || (!first && base <= lastBase) {
			c.bad("%s priority %d: segment %d base %d out of order", name, p, cur.idx(), base)
		}
		if first && sv.head < base {
			c.bad("%s priority %d: head %d before head segment base %d", name, p, sv.head, base)
		}
		first = false
		lastBase = base
		if cur == ts {
			tsFound = true
		}
		c.slots(sv, cur, base)
		cur = ref(s.load(s.segOff(cur.idx()) + sgNext))
	}
	return tsFound, lastBase
}

// slots: the slots of segment cur (at base) of sv, each empty as its
// position says or naming an entry that says it is linked there.
func (c *checker) slots(sv *sublogWalk, cur ref, base uint64) {
	s, o := c.s, c.o
	q, p, name, head, tail := sv.q, sv.p, sv.name, sv.head, sv.tail
	for k := uint64(0); k < segSlots; k++ {
		pos := base + k
		sw := s.load(s.slotOff(cur.idx(), k))
		if ref(sw).nil() {
			if pos >= head && pos < tail {
				c.bad("%s priority %d: empty slot at %d below tail %d", name, p, pos, tail)
			}
			if sw != emptyMark(cur.gen()) && (sw != 0 || pos >= head) {
				c.bad("%s priority %d: slot %d holds %#x, not the empty mark of segment %d", name, p, pos, sw, cur.idx())
			}
			continue
		}
		if pos >= tail && o.Quiescent && !s.slotDead(sw, q, p, pos) {
			c.bad("%s priority %d: live slot at %d at or past tail %d", name, p, pos, tail)
		}
		rf := ref(sw)
		ei := c.ents[rf.idx()]
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
			c.bad("entry %d (%s) of %s is behind the head (%d < %d): lost", rf.idx(), stateName(ei.kind), name, pos, head)
		}
		ei.seen++
	}
}

// queueCounts: when quiescent, queue q's counts match its entries, and
// nobody waits.
func (c *checker) queueCounts(q uint32, name string) {
	s := c.s
	d, u := s.counts(q)
	want := c.perQueue[q]
	if d != want[0] || u != want[1] {
		c.bad("%s: counts say depth %d uncommitted %d, entries say %d and %d", name, d, u, want[0], want[1])
	}
	if n := s.Waiters(QueueID(q)); n > 0 {
		c.bad("%s: %d waiter bits set with nobody waiting", name, n)
	}
}

// linkCounts: every linked entry was found exactly once in its sublog.
func (c *checker) linkCounts() {
	for e, ei := range c.ents {
		if ei.kind == stDead {
			continue
		}
		if ei.seen != 1 {
			c.bad("entry %d (%s, queue %d, position %d) is linked %d times", e, stateName(ei.kind), ei.q, ei.pos, ei.seen)
		}
	}
}

// uncommittedCells: when quiescent, every owner's uncommitted count of
// every queue matches its entries.
func (c *checker) uncommittedCells() {
	s := c.s
	if !c.o.Quiescent {
		return
	}
	for slot := 0; slot < s.p.Owners; slot++ {
		for q := uint32(0); q < uint32(s.p.Queues); q++ {
			u := int64(s.load(s.cellOff(slot, q) + clUncom))
			if want := c.perOwnerUncom[[2]uint32{uint32(slot), q}]; u != want {
				c.bad("owner slot %d queue %d: uncommitted count %d, entries say %d", slot, q, u, want)
			}
		}
	}
}

// elementChains: every linked (or, quiescent, dead) entry's data chain
// has the elements its length needs, each tagged for it and in no other
// chain.
func (c *checker) elementChains() {
	s, o := c.s, c.o
	c.inChain = make(map[uint32]uint32)
	for e, ei := range c.ents {
		if ei.kind == stDead && !o.Quiescent {
			continue // being freed by a live owner, possibly descheduled mid-way
		}
		eo := s.entryOff(e)
		dr := s.load(eo + enDataRef)
		varLen := int(dr >> 32)
		if want, off := entryVarLen(s, eo); varLen != want {
			c.bad("entry %d (%s): variable part of %d bytes, its names, properties and body (offloaded %v) take %d", e, stateName(ei.kind), varLen, off, want)
		} else if off && ei.kind != stDead {
			if ref := s.offloadRef(eo); ref != nil {
				c.r.Offloaded = append(c.r.Offloaded, ref)
			}
		}
		if uint32(dr) == 0 {
			if varLen > InlineMax {
				c.bad("entry %d: inline data of %d bytes", e, varLen)
			}
			continue
		}
		want := (varLen + s.p.ElementSize - 1) / s.p.ElementSize
		if n := c.elementChain(e, ei, uint32(dr)-1, want); n != want {
			c.bad("entry %d: chain of %d elements, %d bytes need %d", e, n, varLen, want)
		}
	}
}

// entryVarLen is the length the variable part of entry eo must have: its
// reply-to names and properties, then its body or, offloaded (off), the
// reference to its body.
func entryVarLen(s *Structure, eo uint64) (n int, off bool) {
	qw := s.load(eo + enQueue)
	rl := s.mem.Bytes(eo+enReplyLen, 2)
	n = int(rl[0]) + int(rl[1]) + int(s.load(eo+enBackout)>>32)
	if off = (qw>>24)&efOffloaded != 0; off {
		return n + OffloadRefSize, true
	}
	return n + int(qw>>32), false
}

// elementChain walks entry e's chain from element el, up to one element
// past want, and returns its length.
func (c *checker) elementChain(e uint32, ei *entInfo, el uint32, want int) int {
	s := c.s
	n := 0
	for el < uint32(s.p.Elements) {
		if prev, dup := c.inChain[el]; dup {
			c.bad("element %d is in the chains of entries %d and %d", el, prev, e)
			break
		}
		c.inChain[el] = e
		n++
		w := s.load(s.elemWordOff(el))
		if wKind(w) != ekMsg || wVal(w) != e {
			c.bad("element %d in the chain of entry %d (%s) is tagged kind %d value %d", el, e, stateName(ei.kind), wKind(w), wVal(w))
		}
		nx := s.elemNext(el)
		if nx == 0 || n > want {
			break
		}
		el = nx - 1
	}
	return n
}

// elements: every element is free, cached by a live owner, or in exactly
// one live message's chain.
func (c *checker) elements() {
	s, r := c.s, c.r
	for el := uint32(0); el < uint32(s.p.Elements); el++ {
		w := s.load(s.elemWordOff(el))
		switch wKind(w) {
		case ekFree:
			r.Elements.Free++
		case ekOwned:
			r.Elements.Owned++
			c.ownerOK(fmt.Sprintf("element %d", el), wVal(w))
		case ekMsg:
			r.Elements.Msg++
			c.messageElement(el, wVal(w))
		default:
			c.bad("element %d: illegal kind %d", el, wKind(w))
		}
	}
}

// messageElement: element el, tagged for entry e, is in e's chain, or e
// is being filled by a live owner.
func (c *checker) messageElement(el, e uint32) {
	s, o := c.s, c.o
	ei := c.ents[e]
	if ei == nil {
		// The entry is allocated (being filled) or free: only a live
		// owner filling it may hold such an element.
		if e >= uint32(s.p.Entries) {
			c.bad("element %d tagged for entry %d out of range", el, e)
			return
		}
		cw := s.load(s.entryOff(e) + enCtl)
		if wKind(cw) != stAlloc || o.Quiescent {
			c.bad("element %d is leaked: tagged for entry %d which is %s", el, e, stateName(wKind(cw)))
		}
		return
	}
	if _, ok := c.inChain[el]; !ok && (ei.kind != stDead || o.Quiescent) {
		c.bad("element %d is leaked: tagged for entry %d but not in its chain", el, e)
	}
}

// segments: every segment is free, cached by a live owner, or in the
// chain of the sublog it is linked to (or being linked or unlinked).
func (c *checker) segments() {
	s, o, r := c.s, c.o, c.r
	for i := uint32(0); i < uint32(s.p.Segments); i++ {
		w := s.load(s.segOff(i) + sgWord)
		switch wKind(w) {
		case skFree:
			r.Segments.Free++
		case skOwned:
			r.Segments.Owned++
			c.ownerOK(fmt.Sprintf("segment %d", i), wVal(w))
		case skLink:
			r.Segments.Linked++
			if !c.segSeen[i] && (o.Quiescent || !c.inFlightSeg[mkRef(i, wGen(w))] && !c.queueInFlight[wVal(w)>>8]) {
				c.bad("segment %d is leaked: linked to queue %d priority %d but not in its chain", i, wVal(w)>>8, wVal(w)&0xff)
			}
		default:
			c.bad("segment %d: illegal kind %d", i, wKind(w))
		}
	}
}

// tokens: the admin token and status slot reservations are held by live
// owners.
func (c *checker) tokens() {
	s := c.s
	if t := s.load(ctlAdminToken); t != 0 {
		c.ownerOK("the admin token", uint32(t))
	}
	for i := 0; i < s.p.StatusSlots; i++ {
		if t := s.load(s.statusOff(i)) & stTagMask; t != 0 {
			c.ownerOK(fmt.Sprintf("status slot %d reservation", i), uint32(t))
		}
	}
}
