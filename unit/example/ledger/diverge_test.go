package ledger_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/role"
)

// Divergence (docs/design/recovery-units.md 5.6): the ledger made
// nondeterministic on purpose (LEDGER_NONDET) is caught, reported and
// not silently accepted; a deterministic ledger checked every few inputs
// is never taken for a diverged one.

// memberLog is a member's log as JSON lines, safe for the member's
// goroutines and the test.
type memberLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *memberLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

// events returns the log's records whose event is ev.
func (l *memberLog) events(t *testing.T, ev string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	data := append([]byte(nil), l.buf.Bytes()...)
	l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("member log line %q: %v", sc.Bytes(), err)
		}
		if rec["event"] == ev {
			out = append(out, rec)
		}
	}
	return out
}

// startDivergeMember starts a member whose log the test reads, with the
// ledger service defined with attrs, supervised by the member, and waits
// for its two replicas to be active.
func startDivergeMember(t *testing.T, attrs string) (*qm.Member, *memberLog, mq.ConnectOptions, *mq.Conn, *lockfree.Structure) {
	t.Helper()
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	logs := &memberLog{}
	m, g := startMemberWith(t, func(c *qm.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) },
		"DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2) %s", bin, attrs))
	opts := mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both replicas active", nil, func() bool {
		r := roleOf(t, s)
		return r.Primary != role.None && len(r.ActiveSecondaries()) == 1
	})
	return m, logs, opts, c, s
}

// steady puts transfers "i a b 1", one a commit, every `every`, until
// stopped; stop returns how many it put.
func steady(t *testing.T, opts mq.ConnectOptions, every time.Duration) (stop func() int) {
	t.Helper()
	prod, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	in, err := prod.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	quit, done := make(chan struct{}), make(chan error, 1)
	go func() {
		defer prod.Disconnect()
		for i := 0; ; i++ {
			select {
			case <-quit:
				done <- nil
				return
			case <-time.After(every):
			}
			if err := in.Put(&mq.Message{Body: fmt.Appendf(nil, "%d a b 1", i)}, mq.PutOptions{}); err != nil {
				done <- fmt.Errorf("put transfer %d: %w", i, err)
				return
			}
			n.Add(1)
		}
	}()
	stopped := false
	stop = func() int {
		if !stopped {
			stopped = true
			close(quit)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		return int(n.Load())
	}
	t.Cleanup(func() { stop() })
	return stop
}

// waitLong is waitFor with a longer limit (the divergence policy needs
// three replicas started, joined and diverged, with the restart backoff).
func waitLong(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Since(t0) > limit {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// unitStates is the UNITSTATE DISPLAY SVSTATUS shows on each position.
func unitStates(t *testing.T, m *qm.Member) map[string]bool {
	t.Helper()
	states := map[string]bool{}
	for _, o := range svstatus(t, m) {
		states[fmt.Sprint(o["UNITSTATE"])] = true
	}
	return states
}

// TestDivergenceOutput: the ledger's confirmations carry time.Now()
// instead of ctx.Now() (LEDGER_NONDET=output), two replicas. The
// secondary's output hash differs from the one in the primary's log
// message at the first confirmation it makes: it sets its diverged flag,
// fails stop, and its member records the exit as diverged and logs
// unit_diverged; it is replaced, and the replacement diverges again.
// The third divergence within ten minutes marks the unit DIVERGED
// (SVSTATUS UNITSTATE(DIVERGED), unit_service_diverged): no secondary is
// started any more and the primary runs alone, every transfer confirmed
// once and in order. STOP and START SERVICE clear the mark: with the
// ledger deterministic again, both replicas run and nothing diverges.
func TestDivergenceOutput(t *testing.T) {
	t.Setenv("LEDGER_NONDET", "output")
	m, logs, opts, c, s := startDivergeMember(t, "")
	r0 := roleOf(t, s)
	primary, secondary := r0.Primary, r0.ActiveSecondaries()[0]
	stop := steady(t, opts, 3*time.Millisecond)

	waitLong(t, "the unit marked DIVERGED", 60*time.Second, func() bool { return roleOf(t, s).Diverged })
	r := roleOf(t, s)
	if r.Primary != primary || r.Divergences != role.DivergeLimit || r.Pos[secondary].Reason != role.ExitDiverged ||
		r.Pos[secondary].Restarts < role.DivergeLimit || r.Pos[primary].Restarts != 0 {
		t.Fatalf("role record after the divergences: primary %d (was %d), divergences %d, position %d reason %d restarts %d, primary restarts %d",
			r.Primary, primary, r.Divergences, secondary, r.Pos[secondary].Reason, r.Pos[secondary].Restarts, r.Pos[primary].Restarts)
	}
	evs := logs.events(t, "unit_diverged")
	if len(evs) != role.DivergeLimit {
		t.Fatalf("%d unit_diverged events, want %d: %v", len(evs), role.DivergeLimit, evs)
	}
	for _, ev := range evs {
		if ev["level"] != "ERROR" || ev["unit"] != "LEDGER" || ev["pos"] != float64(secondary) || ev["lsn"].(float64) < 1 {
			t.Fatalf("unit_diverged event %v", ev)
		}
	}
	if n := len(logs.events(t, "unit_service_diverged")); n != 1 {
		t.Fatalf("%d unit_service_diverged events", n)
	}
	if st := unitStates(t, m); !st["DIVERGED"] || len(st) != 1 {
		t.Fatalf("SVSTATUS UNITSTATE %v, want DIVERGED", st)
	}
	// Unreplicated from now on: the secondary's position stays vacant
	// (a vacant position is claimed within a second or two otherwise).
	for t0 := time.Now(); time.Since(t0) < 2500*time.Millisecond; time.Sleep(50 * time.Millisecond) {
		if r := roleOf(t, s); r.Pos[secondary].State != role.Vacant || r.Primary != primary {
			t.Fatalf("a replica started in the diverged unit: %+v", r.Pos[secondary])
		}
	}
	n := stop()
	confirmations(t, c, n) // every transfer once, in order, by the primary alone

	// STOP and START SERVICE: the operator acted; the mark is cleared.
	if resp := m.Exec("STOP SERVICE(LEDGER)"); !resp.OK {
		t.Fatal(resp.Error)
	}
	waitLong(t, "the unit stopped", 20*time.Second, func() bool { st := roleOf(t, s).State; return st == role.Resting || st == role.Stopped })
	t.Setenv("LEDGER_NONDET", "")
	if resp := m.Exec("START SERVICE(LEDGER)"); !resp.OK {
		t.Fatal(resp.Error)
	}
	if r := roleOf(t, s); r.Diverged || r.Divergences != 0 {
		t.Fatalf("after START: diverged %v, %d divergences", r.Diverged, r.Divergences)
	}
	waitLong(t, "both replicas active again", 20*time.Second, func() bool {
		r := roleOf(t, s)
		return r.Primary != role.None && len(r.ActiveSecondaries()) == 1
	})
	stop = steady(t, opts, time.Millisecond)
	waitLong(t, "200 more transfers applied by both", 20*time.Second, func() bool {
		r := roleOf(t, s)
		sec := r.ActiveSecondaries()
		return len(sec) == 1 && appliedOf(t, s, int(r.Primary)) >= uint64(n+200) && appliedOf(t, s, int(sec[0])) >= uint64(n+200)
	})
	stop()
	if st := unitStates(t, m); !st["RUNNING"] || len(st) != 1 {
		t.Fatalf("SVSTATUS UNITSTATE %v after START, want RUNNING", st)
	}
	if evs := logs.events(t, "unit_diverged"); len(evs) != role.DivergeLimit {
		t.Fatalf("%d unit_diverged events after START, want still %d", len(evs), role.DivergeLimit)
	}
}

// TestDivergenceState: the ledger keeps time.Now() in its state but its
// confirmations stay deterministic (LEDGER_NONDET=state), CHKINT(20). The
// output hashes agree; the primary's CHECK record at LSN 20 (or the first
// multiple of 20 the secondary reaches) does not: the secondary fails
// stop there with its diverged flag set, SVSTATUS or the member's
// unit_diverged event show it, and its exit is recorded as diverged.
func TestDivergenceState(t *testing.T) {
	const chkint = 20
	t.Setenv("LEDGER_NONDET", "state")
	_, logs, opts, _, s := startDivergeMember(t, fmt.Sprintf("CHKINT(%d)", chkint))
	r0 := roleOf(t, s)
	secondary := r0.ActiveSecondaries()[0]
	stop := steady(t, opts, 3*time.Millisecond)
	defer stop()

	waitLong(t, "a unit_diverged event", 20*time.Second, func() bool { return len(logs.events(t, "unit_diverged")) > 0 })
	ev := logs.events(t, "unit_diverged")[0]
	lsn := ev["lsn"].(float64)
	if ev["pos"] != float64(secondary) || lsn < chkint || int(lsn)%chkint != 0 || ev["check_lsn"] != lsn {
		t.Fatalf("unit_diverged event %v: want position %d at a CHECK (a multiple of %d)", ev, secondary, chkint)
	}
	if r := roleOf(t, s); r.Pos[secondary].Reason != role.ExitDiverged || r.Pos[secondary].Restarts < 1 || r.Divergences < 1 {
		t.Fatalf("role record: position %d reason %d restarts %d, divergences %d", secondary, r.Pos[secondary].Reason,
			r.Pos[secondary].Restarts, r.Divergences)
	}
}

// TestNoDivergenceDeterministic: the deterministic ledger with
// CHKINT(10): 1000 transfers, a CHECK every 10 inputs and an output hash
// in every log message, and no check fires falsely: both replicas stay
// (no restart, no diverged flag, no unit_diverged event), every transfer
// is confirmed once, and both progress records show the same state hash
// at LSN 1000 and the same output hash, so the checks did run.
func TestNoDivergenceDeterministic(t *testing.T) {
	const n = 1000
	m, logs, opts, c, s := startDivergeMember(t, "CHKINT(10)")
	r0 := roleOf(t, s)
	transfers, wait := produce(t, opts, n)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	reference(t, got, transfers)
	waitFor(t, "both replicas at LSN 1000", nil, func() bool {
		return appliedOf(t, s, int(r0.Primary)) == n && appliedOf(t, s, int(r0.ActiveSecondaries()[0])) == n
	})
	r := roleOf(t, s)
	p, q := progressOf(t, s, int(r.Primary)), progressOf(t, s, int(r.ActiveSecondaries()[0]))
	if p.CheckLSN != n || q.CheckLSN != n || p.CheckHash != q.CheckHash || p.CheckHash == 0 {
		t.Fatalf("state hashes: primary %x at %d, secondary %x at %d", p.CheckHash, p.CheckLSN, q.CheckHash, q.CheckLSN)
	}
	if p.OutHash != q.OutHash || p.OutHash == 0 {
		t.Fatalf("output hashes: primary %x, secondary %x", p.OutHash, q.OutHash)
	}
	for k, pr := range []*role.Progress{p, q} {
		if pr.Flags&role.FlagDiverged != 0 || pr.DivergedLSN != 0 {
			t.Fatalf("progress record %d: flags %#x diverged at %d", k, pr.Flags, pr.DivergedLSN)
		}
	}
	if r.Divergences != 0 || r.Diverged || r.Pos[r0.Primary].Restarts != 0 || r.Pos[r0.ActiveSecondaries()[0]].Restarts != 0 {
		t.Fatalf("role record: %d divergences, diverged %v, restarts %d and %d", r.Divergences, r.Diverged,
			r.Pos[r0.Primary].Restarts, r.Pos[r0.ActiveSecondaries()[0]].Restarts)
	}
	if evs := logs.events(t, "unit_diverged"); len(evs) != 0 {
		t.Fatalf("unit_diverged events: %v", evs)
	}
	for _, o := range svstatus(t, m) {
		if o["STATUS"] != "RUNNING" || o["UNITSTATE"] != "RUNNING" {
			t.Fatalf("SVSTATUS %v", o)
		}
	}
}
