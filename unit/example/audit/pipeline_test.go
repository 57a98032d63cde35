package audit_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/audit"
)

// TestTwoUnits: the ledger's confirmations are the input of a second
// unit, AUDIT (INPUT(CONFIRM)), both of two replica processes supervised
// by the member. Under a steady load of transfers the ledger's sender is
// SIGKILLed (the primary sends what it had not committed, a replacement
// joins and takes the role back), then AUDIT's primary (its secondary is
// promoted and replays the source table from the log). AUDIT's state
// counts every transfer's confirmation exactly once, in the ledger's
// sequence 1..n of generation 1, in both its replicas, and nothing is
// left on its EARLY queue or on CONFIRM.
func TestTwoUnits(t *testing.T) {
	const n = 2000
	e := start(t, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)")
	e.service("LEDGER", "ledger-replica", "IN")
	e.service("AUDIT", "audit-replica", "CONFIRM")
	lb, ab := e.base("LEDGER"), e.base("AUDIT")
	lr := e.running(lb)
	e.running(ab)

	wait := produce(t, e.opts, n)
	waitFor(t, "the ledger's sender to send some", func() bool { return e.progress(lb, int(lr.Sender)).LSNOut >= n/4 })
	e.kill(lb, int(lr.Sender))
	waitFor(t, "AUDIT's primary to apply some", func() bool { return e.primaryApplied(ab) >= n/2 })
	e.kill(ab, int(e.role(ab).Primary))
	e.running(ab)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("AUDIT's primary to apply %d", n), func() bool { return e.primaryApplied(ab) >= n && depth(t, e, "CONFIRM") == 0 })
	if a := e.primaryApplied(ab); a != n {
		t.Fatalf("AUDIT's primary applied %d inputs, %d confirmations were sent", a, n)
	}
	if got := e.early("AUDIT"); len(got) != 0 {
		t.Fatalf("AUDIT's EARLY holds %v", got)
	}

	// The secondary's state, then the primary's: the same.
	r := e.role(ab)
	sec := 1 - int(r.Primary)
	waitFor(t, "AUDIT's secondary to apply every input", func() bool { return e.progress(ab, sec).Applied == n })
	b := e.stop(ab, sec)
	a := e.stop(ab, int(r.Primary))
	if a.Digest() != b.Digest() {
		t.Fatalf("AUDIT's replicas disagree:\nprimary   %s\nsecondary %s", a.Digest(), b.Digest())
	}
	src := audit.SourceKey(xxhash.Sum64String("LEDGER"), 1)
	if a.Count != n || a.OutOfOrder != 0 || a.Plain != 0 || a.Bad != 0 || a.Last[src] != n || len(a.Last) != 1 || len(a.Seen) != n {
		t.Fatalf("AUDIT counted %d inputs (%d out of order, %d plain, %d bad), sources %v, %d transfers; want %d from %s, each once",
			a.Count, a.OutOfOrder, a.Plain, a.Bad, a.Last, len(a.Seen), n, src)
	}
	for i := range n {
		if c := a.Seen[fmt.Sprint(i)]; c != 1 {
			t.Fatalf("transfer %d confirmed %d times", i, c)
		}
	}
	t.Logf("AUDIT: %d confirmations, %d accepted", a.Count, a.Accepted)
}

// produce puts n transfers with ids 0..n-1, 20 per commit, at a steady
// rate, in a goroutine; wait waits for it to end.
func produce(t *testing.T, opts mq.ConnectOptions, n int) (wait func() error) {
	t.Helper()
	prod, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Disconnect() })
	in, err := prod.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	accounts := []string{"a", "b", "c", "d", "e"}
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() {
		for i := range n {
			body := fmt.Appendf(nil, "%d %s %s %d", i, accounts[i%5], accounts[(i/5+1+i)%5], 1+i*7%400)
			if perr = in.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); perr != nil {
				perr = fmt.Errorf("put transfer %d: %w", i, perr)
				return
			}
			if i%20 == 19 || i == n-1 {
				if perr = prod.Commit(); perr != nil {
					perr = fmt.Errorf("commit transfer %d: %w", i, perr)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
	})
	return func() error { wg.Wait(); return perr }
}
