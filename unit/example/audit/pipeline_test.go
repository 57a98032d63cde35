package audit_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/audit"
	"github.com/qmgr/qmgr/unit/role"
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
func TestTwoUnits(t *testing.T) { twoUnits(t, false) }

// TestTwoUnitsDisorderlyRoute is TestTwoUnits with a route between the
// units that reorders and duplicates: while the transfers flow, the test
// takes a confirmation off CONFIRM now and then and puts it back twice a
// little later, so that those behind it arrive early (and wait on EARLY)
// and its second copy is a duplicate. AUDIT still applies each
// confirmation once and in sequence, through both kills.
func TestTwoUnitsDisorderlyRoute(t *testing.T) { twoUnits(t, true) }

func twoUnits(t *testing.T, disorder bool) {
	const n = 2000
	e := start(t, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)")
	e.service("LEDGER", "ledger-replica", "IN")
	e.service("AUDIT", "audit-replica", "CONFIRM")
	lb, ab := e.base("LEDGER"), e.base("AUDIT")
	lr := e.running(lb)
	e.running(ab)

	wait := produce(t, e.opts, n)
	var stopRoute func() routeStats
	if disorder {
		stopRoute = disorderly(t, e)
	}
	waitFor(t, "the ledger's sender to send some", func() bool { return e.progress(lb, int(lr.Sender)).LSNOut >= n/4 })
	e.kill(lb, int(lr.Sender))
	waitFor(t, "AUDIT's primary to apply some", func() bool { return e.primaryApplied(ab) >= n/2 })
	e.kill(ab, int(e.role(ab).Primary))
	e.running(ab)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if disorder {
		// Once the ledger has sent every confirmation, the route puts
		// back what it holds and stops.
		waitFor(t, "the ledger to send every confirmation", func() bool {
			r := e.role(lb)
			return r.Sender != role.None && e.progress(lb, int(r.Sender)).LSNOut >= n
		})
		s := stopRoute()
		if s.taken == 0 || s.earlySeen == 0 {
			t.Fatalf("the route took %d confirmations aside and saw EARLY in use %d times: it did nothing", s.taken, s.earlySeen)
		}
		t.Logf("the route took %d confirmations aside and put each back twice; EARLY seen in use %d times", s.taken, s.earlySeen)
	}
	waitFor(t, fmt.Sprintf("AUDIT's primary to apply %d", n), func() bool { return e.primaryApplied(ab) >= n && depth(t, e, "CONFIRM") == 0 })
	if a := e.primaryApplied(ab); a != n {
		t.Fatalf("AUDIT's primary applied %d inputs, %d confirmations were sent", a, n)
	}
	if got := e.early("AUDIT"); len(got) != 0 {
		t.Fatalf("AUDIT's EARLY holds %v", got)
	}

	// The structure and both role records pass their checks.
	if r := e.s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %s", r)
	}
	for _, b := range []int{lb, ab} {
		if err := e.role(b).Check(); err != nil {
			t.Fatalf("role record at slot %d: %v", b, err)
		}
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

// routeStats says what disorderly did.
type routeStats struct{ taken, earlySeen int }

// disorderly is a route that reorders and duplicates: until stopped it
// takes a confirmation off CONFIRM every few milliseconds, holds it while
// others pass, and puts it back twice (its MsgID kept); it also looks at
// AUDIT's EARLY queue. stop puts back what it holds and returns what it
// did.
func disorderly(t *testing.T, e *env) (stop func() routeStats) {
	t.Helper()
	c, err := mq.Connect(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	q, err := c.Open("CONFIRM", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	early, err := c.Open(defs.UnitQueue("AUDIT", defs.UnitEarly), mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	var st routeStats
	var rerr error
	done := make(chan struct{})
	var wg sync.WaitGroup
	putBack := func(m *mq.Message) {
		for range 2 {
			cp := *m
			if err := q.Put(&cp, mq.PutOptions{}); err != nil && rerr == nil {
				rerr = fmt.Errorf("route: put back: %w", err)
			}
		}
	}
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			m, err := q.Get(mq.GetOptions{Wait: 5 * time.Millisecond})
			if errors.Is(err, mq.ErrNoMessage) {
				continue
			}
			if err != nil {
				rerr = fmt.Errorf("route: get: %w", err)
				return
			}
			st.taken++
			time.Sleep(3 * time.Millisecond) // others pass it
			if cur, err := early.Browse(); err == nil {
				if _, err := cur.Next(mq.GetOptions{}); err == nil {
					st.earlySeen++
				}
			}
			putBack(m)
			time.Sleep(2 * time.Millisecond)
		}
	})
	return func() routeStats {
		close(done)
		wg.Wait()
		if rerr != nil {
			t.Fatal(rerr)
		}
		return st
	}
}
