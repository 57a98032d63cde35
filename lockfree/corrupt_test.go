package lockfree

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// corruptions are what a dead owner's slot, or a message it holds, may say
// after a memory error or a stray write: each names a part of the mapping
// Repair follows without it being valid. They are applied by the owner's
// own process (child role corrupter) before it is killed.
var corruptions = map[string]func(o *Owner, held uint32){
	"put descriptor, entry out of range": func(o *Owner, held uint32) {
		o.setDesc(opPut, uint64(mkRef(0xfffffff0, 1)), uint64(qpOf(0, 0)), 0)
	},
	"put descriptor, queue out of range": func(o *Owner, held uint32) {
		o.setDesc(opPut, uint64(mkRef(held, wGen(o.s.load(o.s.entryOff(held))))), uint64(qpOf(0xfff0, 0)), 0)
	},
	"put descriptor, priority out of range": func(o *Owner, held uint32) {
		o.setDesc(opPut, uint64(mkRef(held, wGen(o.s.load(o.s.entryOff(held))))), uint64(qpOf(0, 200)), 0)
	},
	"remove descriptor, queue out of range": func(o *Owner, held uint32) {
		e := o.s.entryOff(held)
		o.s.store(e+enCtl, mkWord(wGen(o.s.load(e)), stDead, uint32(o.tag)))
		o.setDesc(opRemove, uint64(mkRef(held, wGen(o.s.load(e)))), 1<<40, 0)
	},
	"backout descriptor, entry out of range": func(o *Owner, held uint32) {
		o.setDesc(opBackout, uint64(mkRef(0x7fffffff, 0)), 0, 0)
	},
	"descriptor, unknown operation": func(o *Owner, held uint32) {
		o.setDesc(77, 1, 2, 3)
	},
	"segment descriptor, segment out of range": func(o *Owner, held uint32) {
		o.setSegDesc(opSegFree, uint64(mkRef(0xffffff00, 0)), uint64(qpOf(0, 0)))
	},
	"segment descriptor, sublog out of range": func(o *Owner, held uint32) {
		o.setSegDesc(opSegLink, uint64(mkRef(1, 0)), uint64(qpOf(0xffff, 0xff)))
	},
	"held message, queue out of range": func(o *Owner, held uint32) {
		e := o.s.entryOff(held)
		o.s.store(e+enQueue, o.s.load(e+enQueue)|0xfff0)
	},
	"held message, priority out of range": func(o *Owner, held uint32) {
		e := o.s.entryOff(held)
		o.s.store(e+enQueue, o.s.load(e+enQueue)|0xff<<16)
	},
}

// corrupterChild (child role corrupter) registers, holds a message of Q in
// a unit of work, applies corruption LF_CORRUPT to its own slot or that
// message, says "ready" and waits to be killed.
func corrupterChild(s *Structure) error {
	o, err := s.Register()
	if err != nil {
		return err
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	var m Message
	if err := o.Get(q, GetOptions{Syncpoint: true}, &m); err != nil {
		return err
	}
	c := corruptions[os.Getenv("LF_CORRUPT")]
	if c == nil {
		return fmt.Errorf("unknown corruption %q", os.Getenv("LF_CORRUPT"))
	}
	c(o, o.uowGets[0].idx)
	fmt.Println("ready")
	select {}
}

// survivorChild (child role survivor) is a survivor that learns of a death:
// it repairs every dead owner, and says what came of it.
func survivorChild(s *Structure) error {
	_, err := s.RepairDead()
	switch {
	case err == nil:
		fmt.Println("repaired")
	case errors.Is(err, ErrCorrupt) && s.Failed():
		fmt.Println("failed:", err)
	default:
		return err
	}
	return nil
}

// TestRepairOfCorruptOwner: an owner corrupts its own descriptor (or a
// message it holds) and is SIGKILLed. The survivor that repairs it must
// not crash: it finds the corruption, takes the structure out of service
// as failed (its members rebuild it) and says so. The checker runs on it
// afterwards without crashing either.
func TestRepairOfCorruptOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for name := range corruptions {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			s := newStructureIn(t, dir, Params{Owners: 8, Queues: 2, Entries: 256, Elements: 256, ElementSize: 64, Segments: 16})
			a := register(t, s)
			q := mustQueue(t, a, "Q", QueueAttrs{})
			for i := 0; i < 3; i++ {
				put(t, a, q, "m", 0, false)
			}
			a.Close()
			cmd := spawn(t, dir, "corrupter", "LF_CORRUPT="+name)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
				t.Fatalf("corrupter: %q %v", line, err)
			}
			cmd.Process.Kill()
			cmd.Wait()
			var so, se bytes.Buffer
			sv := spawn(t, dir, "survivor")
			sv.Stdout, sv.Stderr = &so, &se
			if err := sv.Run(); err != nil {
				t.Fatalf("the survivor's repair: %v\n%s%s", err, so.String(), lastLines(se.String(), 12))
			}
			if !strings.HasPrefix(so.String(), "failed: ") || !s.Failed() {
				t.Fatalf("the survivor's repair did not take the structure out of service: %q (failed %v)", so.String(), s.Failed())
			}
			t.Log(strings.TrimSpace(so.String()))
			s.Check(CheckOptions{Quiescent: true})
			s.Check(CheckOptions{})
		})
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// The repair fuzz target corrupts what a dead owner left: words of its
// slot, of the entries, elements and segments it references, and of the
// sublogs of the queues it worked on, then repairs it, checks the
// structure and, when the repair left it in service, works on it. Nothing
// may panic or hang; a repair that reports corruption must have taken the
// structure out of service.

var repairFuzzParams = Params{Owners: 4, Queues: 2, Entries: 64, Elements: 64, ElementSize: 64, Segments: 8, IndexSlots: 64, StatusSlots: 2, StatusSize: 16}

const (
	fuzzVictim  = 1
	fuzzDeadPid = 1 << 30 // above any pid_max: never a live process
)

// repairFuzzBase is the structure before corruption, and what its dead
// owner references.
type repairFuzzBase struct {
	mem                  []byte
	entries, elems, segs []uint32
	sublogs              []uint64
}

func newRepairFuzzBase(t testing.TB) *repairFuzzBase {
	p := repairFuzzParams
	b := make([]byte, p.Size())
	if err := Format(shm.MemOf(b), p); err != nil {
		t.Fatal(err)
	}
	s, err := Open(shm.MemOf(b))
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.RegisterSlot(0)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := a.CreateQueue("Q", QueueAttrs{IndexMsgID: true})
	q2, _ := a.CreateQueue("Q2", QueueAttrs{MaxDepth: 20})
	for i := 0; i < 12; i++ {
		a.Put(q, &Message{Body: make([]byte, i*25), Priority: i % 3, CorrelID: [idBytes]byte{byte(i)}}, PutOptions{})
	}
	a.Close()
	v, err := s.RegisterSlot(fuzzVictim)
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	v.Get(q, GetOptions{}, &m) // fills its caches
	v.Put(q2, &Message{Body: make([]byte, 150)}, PutOptions{})
	v.Get(q2, GetOptions{}, &m)
	v.Get(q, GetOptions{Syncpoint: true}, &m)
	v.Get(q, GetOptions{Syncpoint: true}, &m)
	v.Put(q2, &Message{Body: make([]byte, 100), Priority: 4}, PutOptions{Syncpoint: true})
	v.Put(q2, &Message{Body: make([]byte, 10)}, PutOptions{Syncpoint: true})
	if _, err := v.GetView(q, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// It dies: its slot names a process that is gone.
	off := s.ownerOff(fuzzVictim)
	w := s.load(off + ownState)
	s.store(off+ownState, mkOwnState(osInc(w), osActive, fuzzDeadPid))
	s.store(off+ownPid, fuzzDeadPid)
	s.store(off+ownStart, 1)

	fb := &repairFuzzBase{mem: b}
	for _, it := range append(append([]uowItem{}, v.uowGets...), v.uowPuts...) {
		fb.entries = append(fb.entries, it.idx)
	}
	for _, c := range v.views {
		fb.entries = append(fb.entries, c.idx)
	}
	fb.entries = append(fb.entries, v.entries...)
	for _, e := range fb.entries {
		if dr := s.load(s.entryOff(e) + enDataRef); uint32(dr) != 0 {
			for el, n := uint32(dr)-1, 0; el < uint32(p.Elements) && n < 8; n++ {
				fb.elems = append(fb.elems, el)
				nx := s.elemNext(el)
				if nx == 0 {
					break
				}
				el = nx - 1
			}
		}
	}
	fb.elems = append(fb.elems, v.elems...)
	for _, qq := range []QueueID{q, q2} {
		for prio := 0; prio < Priorities; prio++ {
			sl := s.sublogOff(uint32(qq), prio)
			if hs := ref(s.load(sl + slHeadSeg)); !hs.nil() {
				fb.segs = append(fb.segs, hs.idx())
				fb.sublogs = append(fb.sublogs, sl)
			}
		}
	}
	fb.segs = append(fb.segs, v.segs...)
	return fb
}

// A corruption record: target, index, value (11 bytes).
func fuzzRecord(target byte, index uint16, value uint64) []byte {
	r := []byte{target, byte(index), byte(index >> 8)}
	return binary.LittleEndian.AppendUint64(r, value)
}

// apply writes the corruption records of data into s.
func (fb *repairFuzzBase) apply(s *Structure, data []byte) {
	for ; len(data) >= 11; data = data[11:] {
		index, v := binary.LittleEndian.Uint16(data[1:]), binary.LittleEndian.Uint64(data[3:])
		switch data[0] % 5 {
		case 0: // the dead owner's slot
			s.store(s.ownerOff(fuzzVictim)+uint64(index%(ownerSize/8))*8, v)
		case 1: // an entry it references
			e := fb.entries[int(index>>5)%len(fb.entries)]
			s.store(s.entryOff(e)+uint64(index&31)*8, v)
		case 2: // a segment
			sg := fb.segs[int(index>>7)%len(fb.segs)]
			s.store(s.segOff(sg)+uint64(index&0x7f)%(segSize/8)*8, v)
		case 3: // an element: its word or its link
			el := fb.elems[int(index>>1)%len(fb.elems)]
			if index&1 == 0 {
				s.store(s.elemWordOff(el), v)
			} else {
				s.setElemNext(el, uint32(v))
			}
		case 4: // a sublog of a queue it worked on
			sl := fb.sublogs[int(index>>5)%len(fb.sublogs)]
			s.store(sl+uint64(index&31)%(sublogSize/8)*8, v)
		}
	}
}

func repairFuzzSeeds(fb *repairFuzzBase) [][]byte {
	rec := fuzzRecord
	cat := func(rs ...[]byte) []byte { return bytes.Join(rs, nil) }
	const desc, buf0, segDesc = ownDesc / 8, ownDesc/8 + 1, ownSegDesc / 8
	return [][]byte{
		nil, // an intact dead owner
		cat(rec(0, desc, opPut), rec(0, buf0, uint64(mkRef(0xfffffff0, 1))), rec(0, buf0+1, 0)),
		cat(rec(0, desc, opPut), rec(0, buf0, uint64(mkRef(fb.entries[0], 0))), rec(0, buf0+1, uint64(qpOf(0xfff0, 0)))),
		cat(rec(0, desc, opPut), rec(0, buf0, uint64(mkRef(fb.entries[0], 0))), rec(0, buf0+1, uint64(qpOf(1, 200)))),
		cat(rec(0, desc, opRemove), rec(0, buf0, uint64(mkRef(3, 0))), rec(0, buf0+1, 1<<40)),
		cat(rec(0, desc, opBackout), rec(0, buf0, uint64(mkRef(0x7fffffff, 0)))),
		rec(0, desc, 77),
		cat(rec(0, segDesc, opSegFree), rec(0, segDesc+1, uint64(mkRef(0xffffff00, 0)))),
		cat(rec(0, segDesc, opSegLink), rec(0, segDesc+1, uint64(mkRef(1, 0))), rec(0, segDesc+2, uint64(qpOf(0xffff, 0xff)))),
		rec(1, 0<<5|enQueue/8, 0xfff0),     // a held message's queue
		rec(1, 0<<5|enQueue/8, 0xff<<16),   // its priority
		rec(1, 2<<5|enQueue/8, 0x0001fff0), // an uncommitted put's
		rec(1, 0<<5|enDataRef/8, 0xffffffff00000001),
		rec(1, 2<<5|enCtl/8, mkWord(0, stPutU, uint32(mkTag(fuzzVictim, 1)))|0xff<<32),
		rec(3, 0<<1|1, uint64(fb.elems[0]+1)), // an element chain that loops
		rec(3, 1<<1|1, 0xfffffff0),
		rec(2, 0<<7|sgNext/8, uint64(mkRef(fb.segs[0], 0))), // a segment chain that loops
		rec(2, 0<<7|sgSlots/8, 0xffffffff00000001),
		rec(2, 0<<7|sgBase/8, 1<<62),
		rec(4, 0<<5|slHeadSeg/8, uint64(mkRef(0xfffff, 3))),
		rec(4, 0<<5|slTailPos/8, 1<<40),
		rec(0, ownState/8, 0x0000ff0000000001),
		rec(0, ownOpSeq/8, 1),
		rec(0, ownTook/8, 0),
		rec(0, ownUOW/8, uint64(uowCommitting)),
		cat(rec(0, ownPid/8, 1), rec(0, ownStart/8, 0), rec(0, ownOpSeq/8, 1)),
	}
}

func FuzzRepairCorruptOwner(f *testing.F) {
	fb := newRepairFuzzBase(f)
	for _, seed := range repairFuzzSeeds(fb) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := append([]byte(nil), fb.mem...)
		s, err := Open(shm.MemOf(b))
		if err != nil {
			t.Fatal(err)
		}
		fb.apply(s, data)
		off := s.ownerOff(fuzzVictim)
		if id := (procid.ID{Pid: int(s.load(off + ownPid)), Start: s.load(off + ownStart)}); id.Pid > 0 && id.Start != 0 && procid.Alive(id) {
			return // a live process: a repair waits for its operation to end (by design)
		}
		_, rerr := s.Repair(mkTag(fuzzVictim, osInc(s.load(off+ownState))))
		_, derr := s.RepairDead()
		for _, err := range []error{rerr, derr} {
			if errors.Is(err, ErrCorrupt) && !s.Failed() {
				t.Fatalf("repair found corruption and left the structure in service: %v", err)
			}
		}
		s.Check(CheckOptions{Quiescent: true})
		s.Check(CheckOptions{})
		if s.InService() {
			fuzzDataPath(s)
		}
	})
}

// fuzzDataPath browses, gets, puts, commits and backs out on every queue.
func fuzzDataPath(s *Structure) {
	o, err := s.Register()
	if err != nil {
		return
	}
	defer o.Close()
	var m Message
	for q := QueueID(0); q < QueueID(s.p.Queues); q++ {
		if !s.queueActive(uint32(q)) {
			continue
		}
		cur := o.NewBrowseCursor(q)
		for n := 0; n < 100 && o.BrowseNext(cur, GetOptions{IncludeHeld: true, IncludeUncommitted: true}, &m) == nil; n++ {
		}
		id := [idBytes]byte{}
		o.Get(q, GetOptions{MsgID: &id}, &m)
		o.Get(q, GetOptions{Syncpoint: true}, &m)
		if v, err := o.GetView(q, GetOptions{}); err == nil {
			v.Release()
		}
		o.GetBatch(q, GetOptions{}, make([]Message, 3))
		o.Put(q, &Message{Body: make([]byte, 130)}, PutOptions{Syncpoint: true})
		o.Backout()
		o.Put(q, &Message{Body: []byte("x")}, PutOptions{})
		o.RemoveExpired(q)
		s.QueueInfo(q)
	}
}

// TestLoopingSegmentChains: a sublog whose segment chain loops back (every
// segment on it still linked to the sublog, so no check of a single
// segment sees anything wrong) must not make a browse, a get or a delete
// walk round it for ever, nor read slots past the end of a segment: they
// fail with ErrCorrupt.
func TestLoopingSegmentChains(t *testing.T) {
	s := newStructure(t, Params{Owners: 4, Queues: 4, Entries: 512, Elements: 64, ElementSize: 64, Segments: 32})
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	for i := 0; i < 200; i++ { // segments at bases 0, 64, 128, 192
		put(t, o, q, fmt.Sprint(i), 0, false)
	}
	sl := s.sublogOff(uint32(q), 0)
	seg := []ref{ref(s.load(sl + slHeadSeg))}
	for len(seg) < 4 {
		seg = append(seg, ref(s.load(s.segOff(seg[len(seg)-1].idx())+sgNext)))
	}
	s.store(s.segOff(seg[2].idx())+sgNext, uint64(seg[0])) // 128 -> 0
	var m Message
	cur := o.NewBrowseCursor(q)
	n := 0
	var err error
	for ; n < 300; n++ {
		if err = o.BrowseNext(cur, GetOptions{}, &m); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrCorrupt) || n != 192 {
		t.Fatalf("browse: %d messages, then %v", n, err)
	}
	id := [idBytes]byte{9} // matches nothing: the get scans the whole sublog
	if err := o.Get(q, GetOptions{MsgID: &id}, &m); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("get by id: %q %v", m.Body, err)
	}

	// An empty queue whose only segment names itself as next.
	e := mustQueue(t, o, "E", QueueAttrs{})
	put(t, o, e, "x", 0, false)
	get(t, o, e, false)
	es := ref(s.load(s.sublogOff(uint32(e), 0) + slHeadSeg))
	s.store(s.segOff(es.idx())+sgNext, uint64(es))
	if err := o.DeleteQueue(e); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("delete: %v", err)
	}
}

// TestRepairOfCorruptOwnerInAdminStructure: the admin structure, which
// nothing rebuilds, is not taken out of service by a repair that meets
// corruption: the repair fails with ErrCorrupt and leaves the slot claimed
// (out of use), and everything else goes on working.
func TestRepairOfCorruptOwnerInAdminStructure(t *testing.T) {
	s, _, err := Create(CreateOptions{Dir: t.TempDir(), Name: "ADMIN", Kind: shm.KindAdmin, Params: Params{Owners: 4, Queues: 2, Entries: 64, Elements: 64, StatusSlots: 2, StatusSize: 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, v := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, v, q, "m", 0, false)
	v.setDesc(opPut, uint64(mkRef(0xfffffff0, 1)), uint64(qpOf(0, 0)), 0)
	off := s.ownerOff(v.slot) // its process dies
	s.store(off+ownState, mkOwnState(v.tag.Incarnation(), osActive, fuzzDeadPid))
	s.store(off+ownPid, fuzzDeadPid)
	if _, err := s.RepairDead(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("repair: %v", err)
	}
	if !s.InService() {
		t.Fatal("the admin structure was taken out of service")
	}
	if info, ok := s.Owner(v.slot); !ok || info.State != "repairing" {
		t.Fatalf("the corrupt slot: %+v %v", info, ok)
	}
	if got := get(t, a, q, false); got != "m" {
		t.Fatalf("got %q", got)
	}
}
