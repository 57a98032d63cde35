package audit_test

import (
	"fmt"
	"reflect"
	"syscall"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/audit"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestEarlyAndDuplicates feeds an AUDIT unit (two supervised replica
// processes) inputs crafted as the outputs of a unit UP (their MsgIDs its
// output identities), out of order and repeated, and checks what the
// primary does with each (design 5.4): a sequence number below the next
// expected is dropped, unlogged; one above waits on SYSTEM.UNIT.AUDIT.EARLY
// (a second copy of it is dropped); the missing one releases those behind
// it, in order. Generations of UP are sources of their own; an input with
// a plain MsgID is processed as it comes. The primary is SIGKILLed while
// EARLY holds inputs, and the promoted one (its source table replayed
// from the log) releases them; it is killed too once the replacement has
// joined, and that one (its table from a snapshot or the log) drops the
// duplicates that follow. Each input from UP reaches the handler once and
// in sequence: the audit's state says so.
func TestEarlyAndDuplicates(t *testing.T) { earlyAndDuplicates(t, "") }

// earlyAndDuplicates is TestEarlyAndDuplicates with attrs added to the
// DEFINE SERVICE.
func earlyAndDuplicates(t *testing.T, attrs string) {
	e := start(t, "DEFINE QLOCAL(CONFIRM) MAXDEPTH(1000)")
	e.attrs = attrs
	e.service("AUDIT", "audit-replica", "CONFIRM")
	base := e.base("AUDIT")
	e.running(base)

	f := newFeeder(t, e, base)
	put, settle, up := f.put, f.settle, f.up
	g1, g2 := audit.SourceKey(up, 1), audit.SourceKey(up, 2)

	put(1, 1, 2, 2, 1, 5, 4, 5, 7) // 1, 2 processed; 2 and 1 again dropped; 5, 4, 7 wait, 5's copy dropped
	settle(2, map[string][]uint64{g1: {4, 5, 7}})
	put(2, 1)  // another generation: another source, from 1
	put(0, 99) // plain
	settle(4, map[string][]uint64{g1: {4, 5, 7}})

	e.kill(base, int(e.role(base).Primary))
	e.running(base)
	put(1, 3) // releases 4 and 5
	settle(7, map[string][]uint64{g1: {7}})
	put(1, 6) // releases 7
	settle(9, map[string][]uint64{})

	// The replacement joins and catches up; the primary is killed again.
	waitFor(t, "both replicas at LSN 9", func() bool {
		r := e.role(base)
		return r.Pos[0].Pid != 0 && r.Pos[1].Pid != 0 && e.progress(base, 0).Applied == 9 && e.progress(base, 1).Applied == 9
	})
	e.kill(base, int(e.role(base).Primary))
	e.running(base)
	put(1, 4, 7, 1) // duplicates, after the failover
	put(2, 1, 3, 2) // a duplicate; 3 waits for 2
	settle(11, map[string][]uint64{})

	a := e.stopPrimary(base)
	want := audit.New()
	want.Count, want.Accepted, want.Plain = 11, 11, 1
	want.Last = map[string]uint64{g1: 7, g2: 3}
	for _, id := range []int{1001, 1002, 1003, 1004, 1005, 1006, 1007, 2001, 2002, 2003, 99} {
		want.Seen[fmt.Sprint(id)] = 1
	}
	if a.Digest() != want.Digest() {
		t.Fatalf("the audit's state:\n got  %s\n want %s", a.Digest(), want.Digest())
	}
}

// depth is the number of messages on queue name, by browsing it, held
// ones included (LOGGING(INDEPENDENT): an input stays on its queue, held
// by the primary, until every replica applied it; a duplicate or early
// input goes with its batch's commit).
func depth(t *testing.T, e *env, name string) int {
	t.Helper()
	q, err := e.c.Open(name, mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := cur.NextWith(mq.GetOptions{}, mq.BrowseOptions{IncludeHeld: true}); err != nil {
			return n
		}
		n++
	}
}

// feeder puts inputs crafted as the outputs of a unit UP on CONFIRM, the
// input of the unit whose role record is at base.
type feeder struct {
	t    *testing.T
	e    *env
	base int
	up   uint64 // UP's source id
	q    *mq.Queue
}

func newFeeder(t *testing.T, e *env, base int) *feeder {
	t.Helper()
	q, err := e.c.Open("CONFIRM", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	return &feeder{t: t, e: e, base: base, up: xxhash.Sum64String("UP"), q: q}
}

// put puts UP's outputs seqs of generation gen (confirmations of
// transfers gen*1000+seq) in one unit of work, so that the primary takes
// them in one batch; gen 0: plain messages, no unit's identity.
func (f *feeder) put(gen uint32, seqs ...uint64) {
	f.t.Helper()
	for _, seq := range seqs {
		m := &mq.Message{Body: fmt.Appendf(nil, "%d %d 1 0 0 true", uint64(gen)*1000+seq, seq)}
		if gen != 0 {
			m.MsgID = logrec.OutputID{Source: f.up, Gen: gen, Seq: seq}.MsgID()
		}
		if err := f.q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := f.e.c.Commit(); err != nil {
		f.t.Fatal(err)
	}
}

// settle waits until the primary has applied lsn and CONFIRM is empty
// (what came after the last applied input was dropped or moved), then
// checks that it applied no more and that EARLY holds early.
func (f *feeder) settle(lsn uint64, early map[string][]uint64) {
	f.t.Helper()
	waitFor(f.t, fmt.Sprintf("the primary to apply LSN %d and CONFIRM to empty", lsn), func() bool {
		return f.e.primaryApplied(f.base) >= lsn && depth(f.t, f.e, "CONFIRM") == 0
	})
	if a := f.e.primaryApplied(f.base); a != lsn {
		f.t.Fatalf("the primary applied LSN %d, want %d: a duplicate or early input was processed", a, lsn)
	}
	if got := f.e.early("AUDIT"); !reflect.DeepEqual(got, early) {
		f.t.Fatalf("EARLY holds %v, want %v", got, early)
	}
}

// TestDownstreamStateLost: every replica of AUDIT SIGKILLed at once while
// its EARLY queue holds an input of UP: its state is lost, source table
// included, and generation 2 starts empty while UP goes on numbering
// where it was (its generation has not changed). A unit whose state was
// lost cannot know where each source stands, so generation 2 takes an
// unknown source's first input as its start (no input of UP could be
// dropped as a duplicate or held on EARLY for ever); from then on the
// source is tracked as before, and the input held on EARLY since
// generation 1 is released in its turn.
func TestDownstreamStateLost(t *testing.T) {
	e := start(t, "DEFINE QLOCAL(CONFIRM) MAXDEPTH(1000)", "DEFINE QLOCAL(DLQ) MAXDEPTH(1000)", "ALTER QMGR DEADQ(DLQ)")
	e.service("AUDIT", "audit-replica", "CONFIRM")
	base := e.base("AUDIT")
	e.running(base)
	f := newFeeder(t, e, base)
	g1 := audit.SourceKey(f.up, 1)
	f.put(1, 1, 2, 3, 9)
	f.settle(3, map[string][]uint64{g1: {9}})
	waitFor(t, "both replicas at LSN 3", func() bool { return e.progress(base, 0).Applied == 3 && e.progress(base, 1).Applied == 3 })

	r := e.role(base)
	for k := range 2 {
		if err := syscall.Kill(int(r.Pos[k].Pid), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "generation 2 running", func() bool { return e.role(base).Gen == 2 && e.role(base).Primary != role.None })
	e.running(base)
	f.put(1, 4, 5, 6, 7, 8) // 4 starts UP in generation 2; 8 releases 9
	f.settle(6, map[string][]uint64{})
	f.put(1, 5, 10) // a duplicate, and the next
	f.settle(7, map[string][]uint64{})

	a := e.stopPrimary(base)
	want := audit.New()
	want.Count, want.Accepted, want.OutOfOrder = 7, 7, 1 // the audit's state was lost too: UP's first input in it is 4
	want.Last = map[string]uint64{g1: 10}
	for seq := 4; seq <= 10; seq++ {
		want.Seen[fmt.Sprint(1000+seq)] = 1
	}
	if a.Digest() != want.Digest() {
		t.Fatalf("the audit's state:\n got  %s\n want %s", a.Digest(), want.Digest())
	}
}

// TestEarlyStopStart: STOP SERVICE while EARLY holds inputs of UP, then
// START SERVICE: the source table travels in the resting snapshot, so the
// restored primary expects UP's next where the stopped one did, releases
// what waits on EARLY in its turn and drops a duplicate.
func TestEarlyStopStart(t *testing.T) {
	e := start(t, "DEFINE QLOCAL(CONFIRM) MAXDEPTH(1000)")
	e.service("AUDIT", "audit-replica", "CONFIRM")
	base := e.base("AUDIT")
	e.running(base)
	f := newFeeder(t, e, base)
	g1 := audit.SourceKey(f.up, 1)
	f.put(1, 1, 2, 5, 4)
	f.settle(2, map[string][]uint64{g1: {4, 5}})

	e.exec("STOP SERVICE(AUDIT)")
	waitFor(t, "the unit to rest", func() bool { return e.role(base).State == role.Resting })
	f.put(1, 2, 3) // wait on CONFIRM while the unit rests
	e.exec("START SERVICE(AUDIT)")
	e.running(base)
	if g := e.role(base).Gen; g != 1 {
		t.Fatalf("generation %d after START, want 1 (the resting snapshot restored)", g)
	}
	f.settle(5, map[string][]uint64{}) // 2 dropped, 3 releases 4 and 5

	a := e.stopPrimary(base)
	want := audit.New()
	want.Count, want.Accepted = 5, 5
	want.Last = map[string]uint64{g1: 5}
	for seq := 1; seq <= 5; seq++ {
		want.Seen[fmt.Sprint(1000+seq)] = 1
	}
	if a.Digest() != want.Digest() {
		t.Fatalf("the audit's state:\n got  %s\n want %s", a.Digest(), want.Digest())
	}
}

// TestEarlyBehindLowerPriority: the only reordering inside a group is by
// priority, a source's output of lower priority passed by its later ones
// of higher priority. UP's seq 1 is put at priority 1, then 2..200 at
// priority 5 (one unit of work), and AUDIT's EARLY holds at most 20: the
// primary gets 2 first, and looks for 1 on the input queue by MsgID
// rather than move 2..200 to EARLY (more than a batch: it would overflow
// EARLY). Every input is applied once, in sequence, and EARLY is never
// needed.
func TestEarlyBehindLowerPriority(t *testing.T) {
	e := start(t, "DEFINE QLOCAL(CONFIRM) MAXDEPTH(1000)")
	e.service("AUDIT", "audit-replica", "CONFIRM")
	e.exec("ALTER QLOCAL(SYSTEM.UNIT.AUDIT.EARLY) MAXDEPTH(20)")
	base := e.base("AUDIT")
	e.running(base)
	f := newFeeder(t, e, base)
	g1 := audit.SourceKey(f.up, 1)
	m := &mq.Message{Priority: 1, MsgID: logrec.OutputID{Source: f.up, Gen: 1, Seq: 1}.MsgID(), Body: []byte("1001 1 1 0 0 true")}
	if err := f.q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= 200; seq++ {
		m := &mq.Message{Priority: 5, MsgID: logrec.OutputID{Source: f.up, Gen: 1, Seq: seq}.MsgID(), Body: fmt.Appendf(nil, "%d %d 1 0 0 true", 1000+seq, seq)}
		if err := f.q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.c.Commit(); err != nil {
		t.Fatal(err)
	}
	f.settle(200, map[string][]uint64{})

	a := e.stopPrimary(base)
	if a.Count != 200 || a.OutOfOrder != 0 || a.Last[g1] != 200 || len(a.Seen) != 200 {
		t.Fatalf("the audit counted %d inputs, %d out of order, last %v, %d transfers; want 200 in sequence", a.Count, a.OutOfOrder, a.Last, len(a.Seen))
	}
}
