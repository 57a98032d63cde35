package lockfree

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/qmgr/qmgr/shm"
)

// TestFaultOnDataPath: operations on a structure whose file was truncated
// under the mapping fail with shm.ErrFault instead of killing the process.
func TestFaultOnDataPath(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	put(t, o, q, "x", 0, false)
	if err := truncate(s); err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := o.Put(q, &Message{Body: []byte("y")}, PutOptions{}); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("put: %v", err)
	}
	if err := o.Get(q, GetOptions{}, &m); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("get: %v", err)
	}
	if _, err := s.QueueInfo(q); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("queue info: %v", err)
	}
	if _, err := s.ReadStatus(0, make([]byte, s.StatusSize())); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("read status: %v", err)
	}
}

// fuzzBase is a small formatted structure with a queue, messages in several
// states and a status record, in ordinary memory.
func fuzzBase(t testing.TB) []byte {
	p := Params{Owners: 4, Queues: 2, Entries: 64, Elements: 32, ElementSize: 64, Segments: 8, IndexSlots: 64, StatusSlots: 2, StatusSize: 16}
	b := make([]byte, p.Size()) // large enough to be page aligned
	mem := shm.MemOf(b)
	if err := Format(mem, p); err != nil {
		t.Fatal(err)
	}
	s, err := Open(mem)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Register()
	if err != nil {
		t.Fatal(err)
	}
	q, _ := o.CreateQueue("Q", QueueAttrs{IndexMsgID: true})
	for i := 0; i < 10; i++ {
		o.Put(q, &Message{Body: make([]byte, i*20), Priority: i % 3}, PutOptions{Syncpoint: i%2 == 0})
	}
	var m Message
	o.Get(q, GetOptions{Syncpoint: true}, &m)
	o.CompareAndSwapStatus(0, make([]byte, 16), []byte("0123456789abcdef"))
	return b
}

// FuzzCheck corrupts a structure's bytes and then opens and checks it: a
// corrupt structure must be reported, never crash the checker (what `qmgr
// check` runs on structures it finds on disk).
func FuzzCheck(f *testing.F) {
	base := fuzzBase(f)
	l := computeLayout(Params{Owners: 4, Queues: 2, Entries: 64, Elements: 32, ElementSize: 64, Segments: 8, IndexSlots: 64, StatusSlots: 2, StatusSize: 16}.withDefaults())
	for _, off := range []uint64{0, 8, 40, l.owners, l.queues + qState, l.queues + qNameLen, l.queues + qBitmaps + 8,
		l.queues + queueFixed + 2*l.bitmapSize + slHeadSeg, l.queues + queueFixed + 2*l.bitmapSize + slTailPos,
		l.entries, l.entries + enDataRef, l.entries + enQueue, l.elemWords, l.elemNext, l.segs, l.segs + sgNext, l.segs + sgSlots, l.index, l.stats} {
		f.Add(off, uint64(0xffffffffffffffff))
		f.Add(off, uint64(0x0000000100000001))
		f.Add(off, uint64(7))
	}
	f.Fuzz(func(t *testing.T, off, val uint64) {
		b := append([]byte(nil), base...)
		if len(b) < 8 {
			return
		}
		off = off % uint64(len(b)-7)
		binary.LittleEndian.PutUint64(b[off:], val)
		s, err := Open(shm.MemOf(b))
		if err != nil {
			return
		}
		s.Check(CheckOptions{Quiescent: true})
		s.Check(CheckOptions{})
		s.Owners()
		s.Queues()
	})
}

// TestFaultOnCommitDecision: the commit decision's writes to the owner's
// slot (DecideCommit, MarkCommitLogged, DecideLogged, and the ends that
// clear them) on a structure whose file was truncated under the mapping
// fail with shm.ErrFault, or do nothing, instead of killing the process.
func TestFaultOnCommitDecision(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	if err := os.Truncate(s.Mapping().Path(), 0); err != nil {
		t.Fatal(err)
	}
	if err := o.DecideCommit(); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("decide commit: %v", err)
	}
	o.EndDecision()
	if err := o.MarkCommitLogged(1); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("mark commit logged: %v", err)
	}
	if err := o.DecideLogged(); !errors.Is(err, shm.ErrFault) {
		t.Fatalf("decide logged: %v", err)
	}
	o.EndLogged()
}

// TestFaultOnOffloadRefs: listing a structure's offloaded references (a
// data set's repair and rebuild) on a structure file truncated under the
// mapping fails with shm.ErrFault instead of killing the process.
func TestFaultOnOffloadRefs(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	if err := o.Put(q, &Message{Offload: offloadRefFor(7, 1), OffloadLen: 1 << 20}, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(s.Mapping().Path(), 0); err != nil {
		t.Fatal(err)
	}
	refs, err := s.OffloadRefs(7)
	if !errors.Is(err, shm.ErrFault) {
		t.Fatalf("OffloadRefs on a truncated structure: %x, %v", refs, err)
	}
}
