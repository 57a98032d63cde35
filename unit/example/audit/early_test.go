package audit_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/audit"
	"github.com/qmgr/qmgr/unit/logrec"
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
func TestEarlyAndDuplicates(t *testing.T) {
	e := start(t, "DEFINE QLOCAL(CONFIRM) MAXDEPTH(1000)")
	e.service("AUDIT", "audit-replica", "CONFIRM")
	base := e.base("AUDIT")
	e.running(base)

	up := xxhash.Sum64String("UP")
	q, err := e.c.Open("CONFIRM", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	// put puts UP's outputs seqs of generation gen (confirmations of
	// transfers gen*1000+seq) in one unit of work, so that the primary
	// takes them in one batch; gen 0: plain messages, no unit's identity.
	put := func(gen uint32, seqs ...uint64) {
		t.Helper()
		for _, seq := range seqs {
			m := &mq.Message{Body: fmt.Appendf(nil, "%d %d 1 0 0 true", uint64(gen)*1000+seq, seq)}
			if gen != 0 {
				m.MsgID = logrec.OutputID{Source: up, Gen: gen, Seq: seq}.MsgID()
			}
			if err := q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.c.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// settle waits until the primary has applied lsn and CONFIRM is
	// empty (what came after the last applied input was dropped or moved),
	// then checks EARLY.
	settle := func(lsn uint64, early map[string][]uint64) {
		t.Helper()
		waitFor(t, fmt.Sprintf("the primary to apply LSN %d and CONFIRM to empty", lsn), func() bool {
			return e.primaryApplied(base) >= lsn && depth(t, e, "CONFIRM") == 0
		})
		if a := e.primaryApplied(base); a != lsn {
			t.Fatalf("the primary applied LSN %d, want %d: a duplicate or early input was processed", a, lsn)
		}
		if got := e.early("AUDIT"); !reflect.DeepEqual(got, early) {
			t.Fatalf("EARLY holds %v, want %v", got, early)
		}
	}
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

// depth is the number of messages on queue name, by browsing it.
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
		if _, err := cur.Next(mq.GetOptions{}); err != nil {
			return n
		}
		n++
	}
}
