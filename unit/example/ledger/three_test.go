package ledger_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// Three replicas (design 5.2, 6.1, 8, 13 step 9): a CHAIN's interior
// secondary killed, two of three killed one after another in both
// topologies, and a FANOUT primary killed with its secondaries at
// different LSNs. Each run is a member-supervised ledger unit of real
// processes fed transfers at a steady rate, SIGKILLs under load, and the
// same end: every transfer confirmed exactly once, the confirmations'
// output ids 1..n in order, every replica's state (three processes, the
// replacements included) the reference's, the role record and the
// structure's checker clean. UNIT_TORTURE=<duration> repeats them with
// random victims and moments (TestThreeReplicasTorture).

// unitRun is a member-supervised ledger unit started by startUnit.
type unitRun struct {
	m        *qm.Member
	c        *mq.Conn
	s        *lockfree.Structure
	opts     mq.ConnectOptions
	states   string // LEDGER_STATE_DIR: state-<pos>-<pid> per replica that stops cleanly
	replicas int
}

// startUnit starts a member supervising SERVICE(LEDGER) of replicas
// replicas with the extra attributes attrs (STARTCMD: this test binary
// as a ledger replica), and waits until every position is active and
// the roles are settled (settledRoles).
func startUnit(t *testing.T, replicas int, attrs string) *unitRun {
	t.Helper()
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	u := &unitRun{states: t.TempDir(), replicas: replicas}
	t.Setenv("LEDGER_STATE_DIR", u.states)
	var g group.Config
	u.m, g = startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(%d) %s", bin, replicas, attrs))
	u.opts = mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	if u.c, err = mq.Connect(u.opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.c.Disconnect() })
	if _, u.s, err = mqconn.Of(u.c).OwnerIn("APPL1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every replica active, the roles settled", nil, func() bool { return u.settledRoles(roleOf(t, u.s)) })
	return u
}

// settledRoles: every position active, a secondary the sender, and in a
// CHAIN the sender the chain's last (design 5.2) behind every other
// secondary.
func (u *unitRun) settledRoles(r *role.Role) bool {
	for k := 0; k < u.replicas; k++ {
		if r.Pos[k].State != role.Active {
			return false
		}
	}
	if r.Primary == role.None || r.Sender == role.None || r.Sender == r.Primary || len(r.Chain) != u.replicas-1 {
		return false
	}
	return r.Fanout || r.Chain[len(r.Chain)-1] == r.Sender
}

// kill SIGKILLs position k's replica and returns its pid.
func (u *unitRun) kill(t *testing.T, k uint8) uint32 {
	t.Helper()
	pid := roleOf(t, u.s).Pos[k].Pid
	if pid == 0 {
		t.Fatalf("position %d has no replica to kill", k)
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	return pid
}

// finish waits for the producer, checks the confirmations (each transfer
// once, output ids 1..n in order) against the reference, waits until the
// unit has settled again (every position active, no hold, every replica
// at LSN n with its resend queue trimmed to nothing, the sender's LSN_out
// n, the log trimmed to nothing), stops the unit (STOP SERVICE:
// every replica writes its state and exits) and compares each replica's
// state with the reference, then checks the role record and the
// structure. It returns the role record as settled before the stop.
func (u *unitRun) finish(t *testing.T, transfers []ledger.Transfer, wait func() error) *role.Role {
	t.Helper()
	n := len(transfers)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, u.c, n)
	ref := reference(t, got, transfers)
	var r *role.Role
	var seen string // what the last look found, for the failure
	settled := func() bool {
		r = roleOf(t, u.s)
		seen = fmt.Sprintf("primary %d sender %d chain %v", r.Primary, r.Sender, r.Chain)
		ok := u.settledRoles(r)
		for k := 0; k < u.replicas; k++ {
			p := progressOf(t, u.s, k)
			if p == nil || p.Tag != r.Pos[k].Tag {
				seen += fmt.Sprintf("; position %d %v, no progress of its own", k, r.Pos[k].State)
				ok = false
				continue
			}
			seen += fmt.Sprintf("; position %d %v applied %d LSN_out %d resend %d inputs %d bytes hold %d",
				k, r.Pos[k].State, p.Applied, p.LSNOut, p.ResendInputs, p.ResendBytes, p.Hold)
			ok = ok && p.Applied == uint64(n) && p.Hold == 0 && p.ResendInputs == 0 && p.ResendBytes == 0 &&
				(uint8(k) != r.Sender || p.LSNOut == uint64(n))
		}
		if h := logHead(t, u.c); h != 0 {
			seen += fmt.Sprintf("; the log holds LSN %d on", h)
			ok = false
		}
		return ok
	}
	for t0 := time.Now(); !settled(); time.Sleep(5 * time.Millisecond) {
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("timed out waiting for every position active and at LSN n with an empty resend queue, the sender's LSN_out n, no hold, an empty log: %s", seen)
		}
	}
	if err := r.Check(); err != nil {
		t.Fatalf("role record: %v", err)
	}
	// Every replica's state: STOP SERVICE makes each write it and exit
	// once the resting snapshot stands at its LSN; nothing restarts them.
	if resp := u.m.Exec("STOP SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("STOP SERVICE: %s", resp.Error)
	}
	waitFor(t, "the unit to rest", nil, func() bool { return roleOf(t, u.s).State == role.Resting })
	for k := 0; k < u.replicas; k++ {
		if state := stateFile(t, u.states, k, r.Pos[k].Pid); state != ref {
			t.Fatalf("position %d's state (pid %d) differs from the reference:\nreplica   %s\nreference %s", k, r.Pos[k].Pid, state, ref)
		}
	}
	if c := u.s.Check(lockfree.CheckOptions{}); !c.OK() {
		t.Fatalf("checker: %s", c)
	}
	return r
}

// gateWatch samples, while a CHAIN unit runs, every pair of neighbours
// in the chain and records a successor that has applied more than its
// predecessor (design 5.2: chain[i+1] applies only what chain[i] has).
type gateWatch struct {
	stop, done chan struct{}
	pairs      int    // pairs compared
	bad        string // the first violation
}

// watchGate starts a gateWatch. A pair is compared only when the role
// record read before and after both progress records is the same (chain
// and every position's tag), both records are their replica's, and the
// successor has applied something since it became active (a replica
// restored from a snapshot starts at its donor's LSN); the successor is
// read first, so a predecessor that moves meanwhile cannot fake a
// violation.
func (u *unitRun) watchGate() *gateWatch {
	g := &gateWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		for {
			select {
			case <-g.stop:
				return
			default:
			}
			g.sample(u.s)
			time.Sleep(200 * time.Microsecond)
		}
	}()
	return g
}

func (g *gateWatch) sample(s *lockfree.Structure) {
	r1, err := readRole(s)
	if err != nil || r1.Fanout {
		return
	}
	for i := 1; i < len(r1.Chain); i++ {
		succ, pred := r1.Chain[i], r1.Chain[i-1]
		ps, pp := readProgress(s, succ), readProgress(s, pred)
		r2, err := readRole(s)
		if err != nil || !sameChain(r1, r2) || ps == nil || pp == nil ||
			ps.Tag != r1.Pos[succ].Tag || pp.Tag != r1.Pos[pred].Tag || ps.Applied == r1.Pos[succ].SnapLSN {
			continue
		}
		g.pairs++
		if ps.Applied > pp.Applied && g.bad == "" {
			g.bad = fmt.Sprintf("chain %v: position %d applied %d, ahead of its predecessor %d at %d", r1.Chain, succ, ps.Applied, pred, pp.Applied)
		}
	}
}

// check stops the watch and fails on a violation, or when no pair could
// be compared (the test proved nothing).
func (g *gateWatch) check(t *testing.T) {
	t.Helper()
	close(g.stop)
	<-g.done
	if g.bad != "" {
		t.Fatalf("CHAIN gate: %s", g.bad)
	}
	if g.pairs == 0 {
		t.Fatal("CHAIN gate: no pair of neighbours compared")
	}
	t.Logf("CHAIN gate: %d pairs compared", g.pairs)
}

func sameChain(a, b *role.Role) bool {
	if !slices.Equal(a.Chain, b.Chain) {
		return false
	}
	for k := range a.Pos {
		if a.Pos[k].Tag != b.Pos[k].Tag || a.Pos[k].State != b.Pos[k].State {
			return false
		}
	}
	return true
}

// readRole and readProgress are roleOf and progressOf for goroutines
// other than the test's.
func readRole(s *lockfree.Structure) (*role.Role, error) {
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(0, buf); err != nil {
		return nil, err
	}
	return role.Decode(buf)
}

func readProgress(s *lockfree.Structure, k uint8) *role.Progress {
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(1+int(k), buf); err != nil {
		return nil
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return nil
	}
	return p
}

// TestChainInteriorKilled: three replicas in a CHAIN (primary, chain
// [a, b], b the sender) under load; the interior secondary a is
// SIGKILLed. Its death changes no role (same primary, same sender, same
// epoch): the chain is relinked to [b], b reads on in the shared log
// (nothing it needs was trimmed: the trim bound counted a). The member
// starts a replacement in a's position, which joins, is appended behind
// b and, the chain's last, takes the sender role by hand-over. All along,
// no secondary applies an LSN before its predecessor in the chain.
func TestChainInteriorKilled(t *testing.T) {
	chainInteriorKilled(t, 3000, 1, 4)
}

func chainInteriorKilled(t *testing.T, n int, num, den int) {
	u := startUnit(t, 3, "TOPOLOGY(CHAIN)")
	gate := u.watchGate()
	r0 := roleOf(t, u.s)
	interior, last := r0.Chain[0], r0.Chain[1]
	transfers, wait := produce(t, u.opts, n)
	waitFor(t, "the interior secondary to process some input", nil, func() bool { return appliedOf(t, u.s, int(interior)) >= uint64(n*num/den) })
	killed := u.kill(t, interior)
	waitFor(t, "the chain relinked without the interior", nil, func() bool {
		p := roleOf(t, u.s).Pos[interior]
		return p.State == role.Vacant || p.Pid != killed
	})
	if r := roleOf(t, u.s); r.Primary != r0.Primary || r.Sender == last && r.Epoch != r0.Epoch ||
		r.Sender != last && r.Sender != interior {
		t.Fatalf("after the interior's death: primary %d (was %d), sender %d (was %d), epoch %d (was %d)",
			r.Primary, r0.Primary, r.Sender, last, r.Epoch, r0.Epoch)
	}
	waitFor(t, "a replacement appended behind the old last, the sender", nil, func() bool {
		r := roleOf(t, u.s)
		p := r.Pos[interior]
		return p.State == role.Active && p.Pid != killed && slices.Equal(r.Chain, []uint8{last, interior}) && r.Sender == interior
	})
	u.finish(t, transfers, wait)
	gate.check(t)
}

// TestChainTwoOfThree: three replicas in a CHAIN; the primary is
// SIGKILLed under load (chain[0] promoted, the sender, the chain's last,
// kept), then, as soon as the member has started a replacement in its
// position, the new primary is SIGKILLed too: the remaining original
// replica is promoted and is the sender (or hands the role to the
// restored replica behind it); the replacements join. Every
// confirmation once and in order, every replica's state the
// reference's.
func TestChainTwoOfThree(t *testing.T) { twoOfThree(t, "TOPOLOGY(CHAIN)", 3000, nil) }

// TestFanoutTwoOfThree: the same in a FANOUT: each death promotes the
// most advanced secondary.
func TestFanoutTwoOfThree(t *testing.T) { twoOfThree(t, "TOPOLOGY(FANOUT)", 3000, nil) }

// twoOfThree kills the primary at a quarter of the load, then the new
// primary as soon as the first's replacement started. With rng
// (torture), the first victim is any position, killed at a random LSN,
// and the second any other position.
func twoOfThree(t *testing.T, attrs string, n int, rng *rand.Rand) {
	u := startUnit(t, 3, attrs)
	var gate *gateWatch
	r0 := roleOf(t, u.s)
	if !r0.Fanout {
		gate = u.watchGate()
	}
	first := r0.Primary
	at := uint64(n / 4)
	if rng != nil {
		first, at = uint8(rng.IntN(3)), uint64(rng.IntN(n*3/4)+1)
	}
	transfers, wait := produce(t, u.opts, n)
	waitFor(t, "the first victim to process some input", nil, func() bool { return appliedOf(t, u.s, int(first)) >= at })
	killed := u.kill(t, first)
	var r1 *role.Role
	waitFor(t, "the death made and a replacement started", nil, func() bool {
		r1 = roleOf(t, u.s)
		p := r1.Pos[first]
		return r1.Primary != first && r1.Primary != role.None && p.State != role.Vacant && p.Pid != killed && p.Pid != 0
	})
	if first == r0.Primary && !r0.Fanout && r1.Primary != r0.Chain[0] {
		t.Fatalf("CHAIN: position %d promoted, the chain's first was %d (chain %v)", r1.Primary, r0.Chain[0], r0.Chain)
	}
	if first == r0.Primary && !r0.Fanout && r1.Sender != r0.Chain[1] && r1.Sender != first {
		t.Fatalf("CHAIN: the sender after the primary's death is %d, want the chain's last %d (or the restored replacement %d)", r1.Sender, r0.Chain[1], first)
	}
	second := r1.Primary
	if rng != nil {
		second = (first + 1 + uint8(rng.IntN(2))) % 3
	}
	before := roleOf(t, u.s)
	at2 := appliedOf(t, u.s, int(before.Primary))
	killed2 := u.kill(t, second)
	waitFor(t, "the second death made", nil, func() bool {
		r := roleOf(t, u.s)
		return r.Pos[second].Pid != killed2 && r.Primary != role.None && r.Sender != role.None
	})
	if r := roleOf(t, u.s); second == before.Primary && !before.Fanout && len(before.Chain) > 0 && r.Primary != before.Chain[0] {
		t.Fatalf("CHAIN: after the second primary's death position %d is primary, the chain's first was %d (chain %v)", r.Primary, before.Chain[0], before.Chain)
	}
	t.Logf("killed position %d at applied %d, then position %d at the primary's %d of %d (primary %d, sender %d, chain %v, replacement %v)",
		first, at, second, at2, n, before.Primary, before.Sender, before.Chain, before.Pos[first].State)
	u.finish(t, transfers, wait)
	if gate != nil {
		gate.check(t)
	}
}

// TestFanoutPromotesMostAdvanced: three replicas in a FANOUT; the lowest
// secondary is stopped (SIGSTOP) under load, so the other secondary is
// well ahead of it, and the primary is SIGKILLed: the most advanced
// secondary must be promoted (design 6.1; the lowest position, or the
// chain's first, would be the stopped one). The stopped replica is then
// resumed (SIGCONT): still the same process, it rolls forward by reading
// on in the shared log (the trim kept everything above its applied LSN)
// and ends with the reference's state like the others.
func TestFanoutPromotesMostAdvanced(t *testing.T) { fanoutMostAdvanced(t, 3000, 1, 4) }

// fanoutMostAdvanced stops the lowest secondary once the primary has
// applied num/den of the n transfers.
func fanoutMostAdvanced(t *testing.T, n, num, den int) {
	u := startUnit(t, 3, "TOPOLOGY(FANOUT)")
	r0 := roleOf(t, u.s)
	secs := r0.ActiveSecondaries()
	lag, lead := secs[0], secs[1]
	lagPid := r0.Pos[lag].Pid
	transfers, wait := produce(t, u.opts, n)
	waitFor(t, "the primary to process some input", nil, func() bool { return appliedOf(t, u.s, int(r0.Primary)) >= uint64(n*num/den) })
	if err := syscall.Kill(int(lagPid), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			syscall.Kill(int(lagPid), syscall.SIGCONT)
		}
	}()
	lagAt := appliedOf(t, u.s, int(lag))
	waitFor(t, "the other secondary to get well ahead", nil, func() bool { return appliedOf(t, u.s, int(lead)) >= lagAt+200 })
	leadAt := appliedOf(t, u.s, int(lead))
	u.kill(t, r0.Primary)
	var r1 *role.Role
	waitFor(t, "a new primary", nil, func() bool {
		r1 = roleOf(t, u.s)
		return r1.Primary != r0.Primary && r1.Primary != role.None
	})
	if r1.Primary != lead {
		t.Fatalf("position %d promoted; the most advanced secondary was %d (applied >= %d), the stopped %d at %d", r1.Primary, lead, leadAt, lag, lagAt)
	}
	if r1.Sender == r1.Primary || r1.Sender == role.None || r1.Epoch <= r0.Epoch {
		t.Fatalf("after the promotion: sender %d, primary %d, epoch %d (was %d)", r1.Sender, r1.Primary, r1.Epoch, r0.Epoch)
	}
	if err := syscall.Kill(int(lagPid), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if pid := u.finish(t, transfers, wait).Pos[lag].Pid; pid != lagPid {
		t.Fatalf("the resumed secondary was replaced (pid %d, was %d): it should have rolled forward", pid, lagPid)
	}
	t.Logf("stopped position %d at %d, promoted %d from >= %d", lag, lagAt, lead, leadAt)
}

// TestThreeReplicasTorture repeats the scenarios above with random
// topologies, victims and moments for UNIT_TORTURE (a duration, e.g.
// 10m); 8 s without it (CI's short run), skipped under -short.
// UNIT_TORTURE_SEED repeats a run's choices (its log names the seed).
func TestThreeReplicasTorture(t *testing.T) {
	d := 8 * time.Second // the short run of CI
	if v := os.Getenv("UNIT_TORTURE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("UNIT_TORTURE: %v", err)
		}
	} else if testing.Short() {
		t.Skip("-short: UNIT_TORTURE=<duration> runs it")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("UNIT_TORTURE_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("UNIT_TORTURE_SEED: %v", err)
		}
	}
	t.Logf("seed %d (UNIT_TORTURE_SEED=%d repeats the same choices)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	for i, t0 := 0, time.Now(); time.Since(t0) < d; i++ {
		topo := []string{"TOPOLOGY(CHAIN)", "TOPOLOGY(FANOUT)"}[rng.IntN(2)] + " " +
			[]string{"LOGGING(LATE)", "LOGGING(EARLY)", indep}[rng.IntN(3)]
		switch rng.IntN(4) {
		case 0:
			t.Run(fmt.Sprintf("%d-interior", i), func(t *testing.T) { chainInteriorKilled(t, 3000, rng.IntN(8)+1, 10) })
		case 1:
			t.Run(fmt.Sprintf("%d-mostadvanced", i), func(t *testing.T) { fanoutMostAdvanced(t, 3000, rng.IntN(6)+1, 10) })
		default:
			t.Run(fmt.Sprintf("%d-twoofthree-%s", i, topo), func(t *testing.T) { twoOfThree(t, topo, 3000, rng) })
		}
		if t.Failed() {
			return
		}
	}
}
