package smds

import (
	"fmt"
	"sort"
)

// CheckOptions tune the checker.
type CheckOptions struct {
	// Quiescent asserts that no operation is in flight: no block may then
	// be being allocated or freed, no descriptor set, and every used run
	// must be referenced. Without it, what a live owner holds in flight
	// is legal.
	Quiescent bool
	// MaxProblems stops after this many problems (default 100).
	MaxProblems int
}

// CheckReport is what the checker found.
type CheckReport struct {
	Problems               []string
	Extents                int
	Blocks, Free, Used     int // blocks in use by the extents; free; in used runs
	Runs                   int // used runs
	InFlight               int // blocks being allocated or freed by live owners
	Referenced, Unresolved int // references given; references whose run is not there
}

// OK reports whether no invariant is broken.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

func (r *CheckReport) String() string {
	s := fmt.Sprintf("%d extents, %d blocks: %d free, %d in %d used runs, %d in flight; %d references",
		r.Extents, r.Blocks, r.Free, r.Used, r.Runs, r.InFlight, r.Referenced)
	if r.OK() {
		return s + ": ok"
	}
	s += fmt.Sprintf(": %d problems", len(r.Problems))
	for _, p := range r.Problems {
		s += "\n  " + p
	}
	return s
}

// Check walks the space map and proves its invariants against refs, every
// reference the CF holds to this data set:
//
//   - every reference names a used run with its gen and length, and no
//     two references name overlapping space (doubly used);
//   - every used run is referenced, or named by a live owner's
//     descriptor as being put (leaked otherwise);
//   - every run lies in one extent and is a head followed by its tails;
//     no tail is outside a run;
//   - nothing is being allocated or freed by an owner that is dead or not
//     registered (it needs Repair), and with Quiescent nothing at all;
//   - the data set file holds every extent the map says is in use.
//
// A fault on the mapping is reported as a problem.
func (d *DataSet) Check(refs []Ref, o CheckOptions) *CheckReport {
	r := &CheckReport{Referenced: len(refs)}
	if o.MaxProblems == 0 {
		o.MaxProblems = 100
	}
	problem := func(format string, args ...any) {
		if len(r.Problems) < o.MaxProblems {
			r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
		}
	}
	if err := d.checkSize("check"); err != nil {
		problem("%v", err)
	}
	if err := guard(func() error { d.check(refs, o, r, problem); return nil }); err != nil {
		problem("%v", err)
	}
	if o.Quiescent || r.OK() {
		return r
	}
	// While others allocate and free, one walk mixes words read at
	// different times and may see a problem that is not there; a broken
	// invariant stays broken. Keep what every one of three more walks
	// finds too.
	for pass := 0; pass < 3 && !r.OK(); pass++ {
		again := &CheckReport{}
		if err := guard(func() error {
			d.check(refs, o, again, func(f string, a ...any) { again.Problems = append(again.Problems, fmt.Sprintf(f, a...)) })
			return nil
		}); err != nil {
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

func (d *DataSet) check(refs []Ref, o CheckOptions, r *CheckReport, problem func(string, ...any)) {
	eb := uint32(d.g.ExtentBlocks)
	raw := d.load(mhExtents)
	if raw == 0 || raw > uint64(d.g.MaxExtents) {
		problem("space map says %d extents are in use (1..%d)", raw, d.g.MaxExtents)
	}
	ext := d.extents()
	nb := uint32(ext) * eb
	r.Extents, r.Blocks = ext, int(nb)

	// Live owners' descriptors: runs being put and not yet published.
	pending := map[uint32]bool{}
	for slot := 0; slot < d.p.Owners; slot++ {
		off := d.ownerOff(slot)
		w, id := d.slotProcess(slot)
		dd := d.readDesc(off)
		if osState(w) == osFree {
			if dd.op != opNone {
				problem("owner slot %d is free with a descriptor (op %d)", slot, dd.op)
			}
			continue
		}
		t := mkTag(slot, osInc(w))
		if !processAlive(id) {
			problem("%v: process %v is dead and the owner is not repaired", t, id)
			continue
		}
		if dd.op != opNone {
			if o.Quiescent {
				problem("%v: operation %d in flight on blocks %d..%d", t, dd.op, dd.head, dd.head+dd.blocks)
			}
			if dd.op == opAlloc && dd.phase == phUsed {
				pending[dd.head] = true
			}
		}
	}

	// Walk the runs.
	heads := map[uint32]uint64{} // used head -> its word
	for b := uint32(0); b < nb; {
		w := d.word(b)
		switch wKind(w) {
		case bkFree:
			if wVal(w) != 0 {
				problem("block %d: free with value %#x", b, wVal(w))
			}
			r.Free++
			b++
		case bkAlloc, bkFreeing:
			t := Tag(wVal(w))
			if !d.tagAlive(t) {
				problem("block %d is %s, and that owner is dead or gone: repair it", b, wordString(w))
			} else if o.Quiescent {
				problem("block %d is %s", b, wordString(w))
			}
			r.InFlight++ // the tails of a run being freed follow (case bkTail)
			b++
		case bkHead:
			n := wVal(w)
			if n == 0 || b%eb+n > eb {
				problem("block %d: run of %d blocks crosses the end of its extent", b, n)
				b++
				continue
			}
			ok := true
			for i := uint32(1); i < n; i++ {
				if t := d.word(b + i); wKind(t) != bkTail || wVal(t) != b {
					problem("block %d: run of %d blocks, but block %d is %s", b, n, b+i, wordString(t))
					ok = false
					break
				}
			}
			if !ok {
				b++
				continue
			}
			heads[b] = w
			r.Runs++
			r.Used += int(n)
			b += n
		case bkTail:
			h := wVal(w)
			if h < b {
				if hw := d.word(h); wKind(hw) == bkFreeing || wKind(hw) == bkAlloc {
					r.InFlight++ // a run being freed, or tails marked before their head
					if !d.tagAlive(Tag(wVal(hw))) {
						problem("block %d is %s, whose head is %s: repair it", b, wordString(w), wordString(hw))
					}
					b++
					continue
				}
			}
			problem("block %d is %s, outside any run", b, wordString(w))
			b++
		default:
			problem("block %d: %s", b, wordString(w))
			b++
		}
	}
	// The next extent's words must still be free (no allocator writes
	// past the extents in use; a rebuild leaves the head of a lost run
	// there free at a later gen, writeMap); the rest are not read, so
	// that a check does not make the sparse map file's pages real.
	for b := uint64(nb); b < min(d.g.totalBlocks(), uint64(nb)+uint64(eb)); b++ {
		if w := d.word(uint32(b)); wKind(w) != bkFree || wVal(w) != 0 {
			problem("block %d past the %d extents in use is %s", b, ext, wordString(w))
			break
		}
	}

	// The references.
	sorted := append([]Ref(nil), refs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Head < sorted[j].Head })
	seen := map[uint32]bool{}
	end := uint32(0)
	for i, ref := range sorted {
		n := uint32(d.g.blocksFor(int(ref.Len)))
		if i > 0 && ref.Head < end {
			problem("doubly used: %v overlaps %v", ref, sorted[i-1])
		}
		end = max(end, ref.Head+n)
		if seen[ref.Head] {
			continue
		}
		seen[ref.Head] = true
		w, ok := heads[ref.Head]
		if !ok && ref.Head < nb {
			w = d.word(ref.Head)
			if wKind(w) == bkFreeing && wGen(w) == ref.Gen && !o.Quiescent {
				continue // being freed by a live owner (dead ones are reported above)
			}
		}
		if !ok || w != mkWord(ref.Gen, bkHead, n) {
			r.Unresolved++
			problem("dangling reference %v: block %d is %s", ref, ref.Head, wordString(w))
		}
	}
	for h, w := range heads {
		if !seen[h] && !pending[h] {
			problem("leaked: run of %d blocks at block %d (gen %d) is used and no reference holds it", wVal(w), h, wGen(w))
		}
	}
	sort.Strings(r.Problems)
}

// Stats is what DISPLAY CFSTATUS shows of a data set.
type Stats struct {
	Path            string
	Member          string
	FileBytes       int64
	BlockSize       int
	Extents         int
	Blocks          int // in the extents in use
	UsedBlocks      int // in used runs and in flight
	FreeBlocks      int
	Runs            int
	Owners, Repairs int // owner slots active; being repaired
}

// Stats walks the space map (a scan: not for the data path).
func (d *DataSet) Stats() (s Stats, err error) {
	s = Stats{Path: d.path, Member: d.g.Member, BlockSize: d.g.BlockSize}
	if st, serr := d.f.Stat(); serr == nil {
		s.FileBytes = st.Size()
	}
	err = guard(func() error {
		s.Extents = d.extents()
		s.Blocks = s.Extents * d.g.ExtentBlocks
		for b := 0; b < s.Blocks; b++ {
			w := d.word(uint32(b))
			switch wKind(w) {
			case bkFree:
				s.FreeBlocks++
			case bkHead:
				s.Runs++
				s.UsedBlocks++
			default:
				s.UsedBlocks++
			}
		}
		for slot := 0; slot < d.p.Owners; slot++ {
			switch osState(d.load(d.ownerOff(slot) + owState)) {
			case osActive:
				s.Owners++
			case osRepairing:
				s.Repairs++
			}
		}
		return nil
	})
	return s, err
}
