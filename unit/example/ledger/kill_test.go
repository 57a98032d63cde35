package ledger_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// TestMain runs a ledger replica instead of the tests when the test
// binary is started as one (a member's STARTCMD, or a test's child).
func TestMain(m *testing.M) {
	if os.Getenv("LEDGER_REPLICA") == "1" || len(os.Args) > 1 && os.Args[1] == "ledger-replica" {
		if d := os.Getenv("LEDGER_STATE_DIR"); d != "" && os.Getenv("LEDGER_STATE_FILE") == "" {
			os.Setenv("LEDGER_STATE_FILE", filepath.Join(d, fmt.Sprintf("state-%s-%d", os.Getenv("QMGR_UNIT_POS"), os.Getpid())))
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := ledger.RunFromEnv(ctx)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "ledger replica:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startMember starts a member in this process; byHand: it starts no
// replicas (the test does).
func startMember(t *testing.T, byHand bool, mqsc ...string) (*qm.Member, group.Config) {
	t.Helper()
	return startMemberWith(t, func(c *qm.Config) { c.UnitsByHand = byHand }, mqsc...)
}

// startMemberWith is startMember with the member's configuration changed
// by tweak first.
func startMemberWith(t *testing.T, tweak func(*qm.Config), mqsc ...string) (*qm.Member, group.Config) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts replica processes")
	}
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tweak(&cfg)
	if os.Getenv("LEDGER_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	for _, c := range indexedInput(mqsc) {
		if r := m.Exec(c); !r.OK {
			t.Fatalf("%s: %s", c, r.Error)
		}
	}
	return m, cfg.Group
}

// indexedInput adds INDXTYPE(MSGID) to the definition of the input queue
// IN when a SERVICE of mqsc has LOGGING(INDEPENDENT), which requires it:
// the scenarios parametrised by the service's attributes run unchanged.
func indexedInput(mqsc []string) []string {
	if !slices.ContainsFunc(mqsc, func(c string) bool { return strings.Contains(c, "LOGGING(INDEPENDENT)") }) {
		return mqsc
	}
	out := slices.Clone(mqsc)
	for i, c := range out {
		if strings.HasPrefix(c, "DEFINE QLOCAL(IN)") && !strings.Contains(c, "INDXTYPE") {
			out[i] = c + " INDXTYPE(MSGID)"
		}
	}
	return out
}

// replica is a ledger replica process started by the test, as a member
// would start it.
type replica struct {
	cmd   *exec.Cmd
	state string
	done  chan error
}

func startReplica(t *testing.T, g group.Config, pos int) *replica {
	t.Helper()
	r := &replica{state: filepath.Join(t.TempDir(), "state"), done: make(chan error, 1)}
	r.cmd = exec.Command(os.Args[0], "-test.run=^$")
	r.cmd.Env = append(os.Environ(), "LEDGER_REPLICA=1", "QMGR_GROUP="+g.Name, "QMGR_DATA="+g.DataDir, "QMGR_CF_DIR="+g.CFDir,
		"QMGR_QMGR=QM1", "QMGR_UNIT=LEDGER", fmt.Sprintf("QMGR_UNIT_POS=%d", pos), "LEDGER_STATE_FILE="+r.state)
	r.cmd.Stderr = os.Stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done; r.done <- nil })
	return r
}

func roleOf(t *testing.T, s *lockfree.Structure) *role.Role {
	t.Helper()
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(0, buf); err != nil {
		t.Fatal(err)
	}
	r, err := role.Decode(buf)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func appliedOf(t *testing.T, s *lockfree.Structure, k int) uint64 {
	t.Helper()
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(1+k, buf); err != nil {
		t.Fatal(err)
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return 0
	}
	return p.Applied
}

func waitFor(t *testing.T, what string, exited <-chan error, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if exited != nil {
			select {
			case err := <-exited:
				t.Fatalf("waiting for %s: a replica exited: %v", what, err)
			default:
			}
		}
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestPrimaryKilled: a ledger unit of two replica processes fed transfers
// at a steady rate; the primary is SIGKILLed under load. The member's
// pidfd watcher sees it die, recovers its connection (its unit of work
// backed out) and makes the death transition: the secondary, already the
// sender, is promoted at a new epoch, applies the rest of the log and
// takes input. Every transfer is confirmed exactly once, the
// confirmations' sequence numbers run 1..n in order, the survivor's state
// is the reference's (the transfers applied in LSN order with the logged
// time and random id the confirmations carry), and the checker is clean.
func TestPrimaryKilled(t *testing.T) { killOne(t, 0) }

// TestSenderKilled: the same with the sender (the secondary) SIGKILLed:
// the primary becomes the sender at a new epoch and sends, from its resend
// queue, what the dead sender had not committed; every transfer is still
// confirmed once and in order.
func TestSenderKilled(t *testing.T) { killOne(t, 1) }

// killOne runs the unit with replicas started by the test and SIGKILLs
// position victim (0: the primary, 1: the secondary and sender) once
// under load.
func killOne(t *testing.T, victim uint8) { killOneWith(t, victim, "", "") }

// killOneWith is killOne with attrs added to the DEFINE SERVICE; with a
// crash point cp the victim is not signalled by the test but dies there.
func killOneWith(t *testing.T, victim uint8, attrs, cp string) {
	const n = 2000
	if cp != "" {
		t.Setenv(crashpoint.EnvVar, cp)
		t.Setenv(crashpoint.OnceVar, filepath.Join(t.TempDir(), "crashpoint-once"))
	}
	_, g := startMember(t, true, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		"DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(2) "+attrs)
	opts := mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}

	// exited reports a failure of the replica that must not stop: the
	// survivor (the victim's SIGKILL is expected).
	exited := make(chan error, 1)
	survivor := 1 - victim
	reps := []*replica{startReplica(t, g, 0)}
	waitFor(t, "the primary", reps[0].done, func() bool { r := roleOf(t, s); return r.Primary == 0 && r.Pos[0].State == role.Active })
	reps = append(reps, startReplica(t, g, 1))
	go func(r *replica) {
		err := <-r.done
		r.done <- err
		if err != nil {
			exited <- err
		}
	}(reps[survivor])
	waitFor(t, "the secondary to take the sender role", exited, func() bool { return roleOf(t, s).Sender == 1 })
	epoch := roleOf(t, s).Epoch

	transfers, wait := produce(t, opts, n)
	// SIGKILL the victim once it is busy.
	if cp == "" {
		waitFor(t, "the victim to process some input", exited, func() bool { return appliedOf(t, s, int(victim)) >= n/4 })
		if err := reps[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	} else {
		select {
		case err := <-reps[victim].done:
			reps[victim].done <- err
		case err := <-exited:
			t.Fatalf("the survivor failed: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatalf("position %d did not reach the crash point %s", victim, cp)
		}
	}
	killedAt := appliedOf(t, s, int(victim))
	waitFor(t, "the member to make the death transition", exited, func() bool {
		r := roleOf(t, s)
		return r.Primary == survivor && r.Sender == survivor && r.Pos[victim].State == role.Vacant
	})
	if r := roleOf(t, s); r.Epoch <= epoch || r.Pos[victim].Restarts != 1 {
		t.Fatalf("after the death: epoch %d (was %d), restarts of position %d %d", r.Epoch, epoch, victim, r.Pos[victim].Restarts)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	t.Logf("position %d killed at applied %d; epochs seen in confirmations from %d to %d", victim, killedAt, got[0].Epoch, got[n-1].Epoch)
	ref := reference(t, got, transfers)
	// Every input leaves IN once applied (INDEPENDENT: by the idle
	// primary's trim, the survivor alone being T).
	waitFor(t, "IN to empty, held inputs included", exited, func() bool { return heldToo(t, c, "IN") == 0 })

	// The survivor's state: stop it, read what it wrote.
	time.Sleep(100 * time.Millisecond) // let it see the last LSN_out
	r := reps[survivor]
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Fatalf("the survivor failed: %v", err)
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Fatalf("the survivor failed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the survivor did not stop")
	}
	state, err := os.ReadFile(r.state)
	if err != nil {
		t.Fatal(err)
	}
	if string(state) != ref {
		t.Fatalf("the survivor's state differs from the reference:\nsurvivor  %s\nreference %s", state, ref)
	}

	// The checker: the structure and the role record.
	if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %s", r)
	}
	if err := roleOf(t, s).Check(); err != nil {
		t.Fatalf("role record: %v", err)
	}
}
