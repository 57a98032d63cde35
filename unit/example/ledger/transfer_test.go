package ledger_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// progressOf reads position k's progress record (nil: never written).
func progressOf(t *testing.T, s *lockfree.Structure, k int) *role.Progress {
	t.Helper()
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(1+k, buf); err != nil {
		t.Fatal(err)
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return nil
	}
	return p
}

// holdOf is position k's hold LSN as its current replica publishes it.
func holdOf(t *testing.T, s *lockfree.Structure, k int) uint64 {
	t.Helper()
	if p := progressOf(t, s, k); p != nil && p.Tag == roleOf(t, s).Pos[k].Tag {
		return p.Hold
	}
	return 0
}

// logHead is the first LSN the unit's log still holds (0: empty).
func logHead(t *testing.T, c *mq.Conn) uint64 {
	t.Helper()
	q, err := c.Open("SYSTEM.UNIT.LEDGER.LOG", mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		t.Fatal(err)
	}
	m, err := cur.Next(mq.GetOptions{})
	if errors.Is(err, mq.ErrNoMessage) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	lm, err := logrec.DecodeLog(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	return lm.FirstLSN
}

// snapChunks counts the messages on the unit's snapshot queue.
func snapChunks(t *testing.T, c *mq.Conn) int {
	t.Helper()
	q, err := c.Open("SYSTEM.UNIT.LEDGER.SNAP", mq.OpenOptions{Browse: true})
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
		_, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
}

// TestSnapshotJoin: a supervised ledger unit of two replicas under a
// steady load. Once the primary has trimmed its log, the secondary (the
// sender) is SIGKILLed: the primary becomes the sender, and the
// replacement the member starts cannot replay the log from LSN 1, so it
// joins by a snapshot from the primary (its donor: the sender), in many
// small chunks (LEDGER_CHUNK_SIZE), is restored at the snapshot's LSN,
// follows the log and takes the sender role by hand-over; the donor's
// hold is cleared. Then the other original replica, the primary, is
// SIGKILLed: the restored replica is promoted and carries on. Every
// transfer is confirmed exactly once and in order, the survivor's state is
// the reference's, no snapshot chunk is left and the checker is clean.
func TestSnapshotJoin(t *testing.T) { transferScenario(t, 2, "", "") }

// TestSnapshotJoinerKilled: the same, with the joiner SIGKILLed after it
// got its third chunk (crash point unit.transfer.got): the donor sees it
// gone, removes the transfer's chunks and clears its hold; the member
// starts another joiner, which joins by a new snapshot.
func TestSnapshotJoinerKilled(t *testing.T) {
	transferScenario(t, 2, "unit.transfer.got:3", "")
}

// TestSnapshotJoinerHung: the joiner stops (SIGSTOP) after its third
// chunk (unit.transfer.got:3:stop) while alive: its donor, the primary,
// gives the transfer up once it has restored nothing for
// LEDGER_TRANSFER_STALL (its chunks removed, its hold cleared) and goes on
// taking input instead of waiting for ever. The test then kills the hung
// joiner, as the member's heartbeat kill will; another joins.
func TestSnapshotJoinerHung(t *testing.T) {
	t.Setenv("LEDGER_TRANSFER_STALL", "500ms")
	transferScenario(t, 2, "unit.transfer.got:3:stop", "")
}

// TestSnapshotDonorKilled: three replicas; the secondary that is not the
// sender is SIGKILLed once the log is trimmed, and its replacement's donor
// (the sender: no other secondary is left) is SIGKILLed after its fifth
// chunk (crash point unit.transfer.chunk). The primary becomes the sender,
// the joiner, its donor gone, removes the chunks and fails stop; the
// member starts both positions again and they join by snapshots from the
// primary. Then the primary is SIGKILLed and a restored replica carries on:
// every confirmation once and in order, the state the reference's, no
// hold, no chunk, the checker clean.
func TestSnapshotDonorKilled(t *testing.T) {
	transferScenario(t, 3, "unit.transfer.chunk:5", "")
}

// TestSnapshotJoinChain: TestSnapshotJoin with three replicas in a CHAIN:
// the replica restored from a snapshot is appended to the chain and, the
// chain's last, takes the sender role by hand-over (design 6.3: CHAIN
// always); when the primary is then SIGKILLed, the chain's first is
// promoted and the restored replica stays the sender.
func TestSnapshotJoinChain(t *testing.T) { transferScenario(t, 3, "", "TOPOLOGY(CHAIN)") }

// transferScenario runs the unit with replicas supervised by the member
// (REPLICAS(replicas) and attrs), the crash point cp armed (with a once-file) in
// every replica, SIGKILLs the secondary that is not the sender (the sender
// when there is none) once the log is trimmed, waits for its replacement
// to join by snapshot, SIGKILLs the primary, and checks the result.
func transferScenario(t *testing.T, replicas int, cp string, attrs string) {
	const n = 3000
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	states := t.TempDir()
	t.Setenv("LEDGER_STATE_DIR", states)
	t.Setenv("LEDGER_CHUNK_SIZE", "6") // a transfer of more chunks than the donor may put ahead
	once := filepath.Join(t.TempDir(), "crashpoint-once")
	if cp != "" {
		t.Setenv(crashpoint.EnvVar, cp)
		t.Setenv(crashpoint.OnceVar, once)
	}
	m, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(%d) %s", bin, replicas, attrs))
	_ = m
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
	var r0 *role.Role
	waitFor(t, "every replica active, a secondary the sender", nil, func() bool {
		r0 = roleOf(t, s)
		for k := 0; k < replicas; k++ {
			if r0.Pos[k].State != role.Active {
				return false
			}
		}
		return r0.Sender != r0.Primary
	})
	primary, victim := r0.Primary, r0.Sender
	for _, k := range r0.Chain {
		if k != r0.Sender {
			victim = k
		}
	}
	killed := r0.Pos[victim].Pid

	transfers, wait := produce(t, opts, n)
	waitFor(t, "the primary to trim its log", nil, func() bool { return logHead(t, c) > 1 && appliedOf(t, s, int(primary)) >= n/5 })
	if err := syscall.Kill(int(killed), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	hung := uint32(0)
	if strings.HasSuffix(cp, ":stop") {
		waitFor(t, "the joiner to stop", nil, func() bool { _, err := os.Stat(once); return err == nil })
		hung = roleOf(t, s).Pos[victim].Pid
		if roleOf(t, s).Pos[victim].State != role.Joining || hung == killed {
			t.Fatalf("the stopped process %d is not position %d's joiner: %+v", hung, victim, roleOf(t, s).Pos[victim])
		}
		applied := appliedOf(t, s, int(primary))
		waitFor(t, "the donor to give the stalled transfer up", nil, func() bool { return holdOf(t, s, int(primary)) == 0 && snapChunks(t, c) == 0 })
		if p := roleOf(t, s).Pos[victim]; p.Pid != hung || p.State != role.Joining {
			t.Fatalf("position %d changed while its joiner was stopped: %+v", victim, p)
		}
		waitFor(t, "the primary to take input again", nil, func() bool { return appliedOf(t, s, int(primary)) > applied || applied == n })
		// The member's heartbeat kill is not built: the test stands in.
		if err := syscall.Kill(int(hung), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	var r1 *role.Role
	waitFor(t, "the replacement to join by snapshot and to be restored", nil, func() bool {
		r1 = roleOf(t, s)
		p := r1.Pos[victim]
		return p.State == role.Active && p.Pid != killed && p.Pid != hung && p.SnapLSN > 0
	})
	joiner := r1.Pos[victim].Pid
	chunks := uint32(0)
	if p := progressOf(t, s, int(victim)); p != nil {
		chunks = p.Chunks
	}
	t.Logf("position %d joined by a snapshot at LSN %d in %d chunks (log head %d)", victim, r1.Pos[victim].SnapLSN, chunks, logHead(t, c))
	if cp != "" {
		if _, err := os.Stat(once); err != nil {
			t.Fatalf("crash point %s not reached: %v", cp, err)
		}
	}
	waitFor(t, "every donor's hold cleared", nil, func() bool {
		for k := 0; k < replicas; k++ {
			if holdOf(t, s, k) != 0 {
				return false
			}
		}
		return true
	})
	if replicas == 2 || r1.Chain[len(r1.Chain)-1] == victim && !r1.Fanout {
		waitFor(t, "the restored replica to take the sender role", nil, func() bool { return roleOf(t, s).Sender == victim })
	}

	// The other original replica: the primary.
	if err := syscall.Kill(int(roleOf(t, s).Pos[primary].Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var survivor uint8
	waitFor(t, "a new primary", nil, func() bool {
		r := roleOf(t, s)
		survivor = r.Primary
		return r.Primary != primary && r.Primary != role.None && r.Sender != role.None
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	ref := reference(t, got, transfers)

	// Settled: every position active again, no hold, no chunk left.
	waitFor(t, "every position active, no hold, no chunk", nil, func() bool {
		r := roleOf(t, s)
		for k := 0; k < replicas; k++ {
			if r.Pos[k].State != role.Active || holdOf(t, s, k) != 0 {
				return false
			}
		}
		return snapChunks(t, c) == 0
	})
	waitFor(t, "the survivor to apply everything and the sender to send it", nil, func() bool {
		r := roleOf(t, s)
		p, ps := progressOf(t, s, int(survivor)), progressOf(t, s, int(r.Sender))
		return p != nil && p.Applied == n && ps != nil && ps.Tag == r.Pos[r.Sender].Tag && ps.LSNOut == n
	})
	if err := roleOf(t, s).Check(); err != nil {
		t.Fatalf("role record: %v", err)
	}
	pid := roleOf(t, s).Pos[survivor].Pid
	if survivor == victim && pid != joiner {
		t.Fatalf("the survivor in position %d is pid %d, the restored joiner was %d", survivor, pid, joiner)
	}
	if err := syscall.Kill(int(pid), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(states, fmt.Sprintf("state-%d-%d", survivor, pid))
	var state []byte
	waitFor(t, "the survivor's state", nil, func() bool { state, err = os.ReadFile(file); return err == nil })
	if string(state) != ref {
		t.Fatalf("the survivor's state differs from the reference:\nsurvivor  %s\nreference %s", state, ref)
	}
	if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %s", r)
	}
}

// TestSnapshotJoinerSlowRestore: the joiner gets and checks the whole
// stream, then takes longer than LEDGER_TRANSFER_STALL to become active
// (unit.transfer.received:1:sleep:3s stands in for a handler whose
// Restore is slow, or a paused process). Its donor, the primary, sees no
// chunk count change after the last chunk; it must not clear its hold
// while that joiner may still become active at the snapshot's LSN s, or
// the primary trims the log above s and the joiner, restored at s, can
// never catch up (it fails stop at a gap, or sits at s with an empty log
// and, promoted, would take input at LSN s+1 again). The joiner must
// become active and apply everything, in the same process.
func TestSnapshotJoinerSlowRestore(t *testing.T) {
	const n = 3000
	t.Setenv("LEDGER_TRANSFER_STALL", "300ms")
	once := filepath.Join(t.TempDir(), "crashpoint-once")
	u := startTrimmed(t, n, "unit.transfer.received:1:sleep:3s", once)
	c, s, primary, victim, killed, transfers, wait := u.c, u.s, u.primary, u.victim, u.killed, u.transfers, u.wait
	if err := syscall.Kill(int(killed), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the joiner to get the whole stream", nil, func() bool { _, err := os.Stat(once); return err == nil })
	slow := roleOf(t, s).Pos[victim]
	if slow.State != role.Joining || slow.Pid == killed {
		t.Fatalf("position %d is not joining after the crash point: %+v", victim, slow)
	}
	var snap uint64
	for t0 := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		p := roleOf(t, s).Pos[victim]
		if p.Pid != slow.Pid || p.Tag != slow.Tag {
			t.Fatalf("the joiner (pid %d) that got the whole stream was not kept: position %d is now %+v (the donor's hold was cleared at log head %d, primary applied %d)",
				slow.Pid, victim, p, logHead(t, c), appliedOf(t, s, int(primary)))
		}
		if p.State == role.Active {
			snap = p.SnapLSN
			if pr := progressOf(t, s, int(victim)); pr != nil && pr.Tag == slow.Tag && pr.Applied == n {
				break
			}
		}
		if time.Since(t0) > 25*time.Second {
			t.Fatalf("the joiner (pid %d) restored at LSN %d did not catch up: applied %d, primary applied %d, log head %d",
				slow.Pid, snap, appliedOf(t, s, int(victim)), appliedOf(t, s, int(primary)), logHead(t, c))
		}
	}
	t.Logf("position %d restored at LSN %d after a slow restore, caught up to %d", victim, snap, n)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	reference(t, got, transfers)
	waitFor(t, "every hold cleared, no chunk left", nil, func() bool {
		return holdOf(t, s, 0) == 0 && holdOf(t, s, 1) == 0 && snapChunks(t, c) == 0
	})
}

// TestSnapshotJoinerPausedBeforeChunks: the joiner stops (SIGSTOP) right
// after it announced itself (unit.transfer.registered:1:stop), before it
// found its transfer's chunks. Its donor, the primary, streams what it may
// put ahead, gives the transfer up after LEDGER_TRANSFER_STALL (chunks
// removed, hold cleared) and will not serve that joiner again. The joiner
// is then resumed (SIGCONT): it finds no chunk and none will ever come, so
// it must fail stop (ErrDonorGone) rather than wait for ever in its
// position, and the member's next joiner joins by a new snapshot.
func TestSnapshotJoinerPausedBeforeChunks(t *testing.T) {
	const n = 3000
	t.Setenv("LEDGER_TRANSFER_STALL", "300ms")
	once := filepath.Join(t.TempDir(), "crashpoint-once")
	u := startTrimmed(t, n, "unit.transfer.registered:1:stop", once)
	c, s, primary, victim, killed, transfers, wait := u.c, u.s, u.primary, u.victim, u.killed, u.transfers, u.wait
	if err := syscall.Kill(int(killed), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the joiner to announce itself and stop", nil, func() bool { _, err := os.Stat(once); return err == nil })
	paused := roleOf(t, s).Pos[victim]
	if paused.State != role.Joining || paused.Pid == killed {
		t.Fatalf("position %d is not joining after the crash point: %+v", victim, paused)
	}
	waitFor(t, "the donor to begin the transfer", nil, func() bool { return holdOf(t, s, int(primary)) != 0 })
	waitFor(t, "the donor to give the stalled transfer up", nil, func() bool { return holdOf(t, s, int(primary)) == 0 && snapChunks(t, c) == 0 })
	if err := syscall.Kill(int(paused.Pid), syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(int(paused.Pid), syscall.SIGKILL)
	var r1 *role.Role
	for t0 := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		r1 = roleOf(t, s)
		if p := r1.Pos[victim]; p.State == role.Active && p.Pid != paused.Pid && p.SnapLSN > 0 {
			break
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("the resumed joiner (pid %d), given up by its donor, was not replaced: position %d is %+v, its progress %+v",
				paused.Pid, victim, r1.Pos[victim], progressOf(t, s, int(victim)))
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	reference(t, got, transfers)
	waitFor(t, "every hold cleared, no chunk left", nil, func() bool {
		return holdOf(t, s, 0) == 0 && holdOf(t, s, 1) == 0 && snapChunks(t, c) == 0
	})
}

// TestSnapshotDonorSlowSnapshot: the donor takes longer than
// LEDGER_TRANSFER_STALL to build its stream (unit.transfer.stream:1:sleep:1s
// stands in for a handler Snapshot of a large state). The stall counts
// from when the donor waits for its joiner, not from before the
// snapshot: the first joiner must be served and restored, not given up
// (and then fail stop, and its replacement too, for as long as the
// Snapshot is slower than the stall).
func TestSnapshotDonorSlowSnapshot(t *testing.T) {
	const n = 3000
	t.Setenv("LEDGER_TRANSFER_STALL", "300ms")
	once := filepath.Join(t.TempDir(), "crashpoint-once")
	u := startTrimmed(t, n, "unit.transfer.stream:1:sleep:1s", once)
	c, s, _, victim, killed, transfers, wait := u.c, u.s, u.primary, u.victim, u.killed, u.transfers, u.wait
	if err := syscall.Kill(int(killed), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the donor to build its stream", nil, func() bool { _, err := os.Stat(once); return err == nil })
	first := roleOf(t, s).Pos[victim]
	if first.State != role.Joining || first.Pid == killed {
		t.Fatalf("position %d is not joining while its donor builds the stream: %+v", victim, first)
	}
	for t0 := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		p := roleOf(t, s).Pos[victim]
		if p.Pid != first.Pid || p.Tag != first.Tag {
			t.Fatalf("the joiner (pid %d) whose donor took 1 s to build its stream was given up: position %d is now %+v", first.Pid, victim, p)
		}
		if p.State == role.Active && p.SnapLSN > 0 {
			break
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("the joiner (pid %d) was not restored: %+v", first.Pid, p)
		}
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	reference(t, got, transfers)
	waitFor(t, "every hold cleared, no chunk left", nil, func() bool {
		return holdOf(t, s, 0) == 0 && holdOf(t, s, 1) == 0 && snapChunks(t, c) == 0
	})
}

// TestSnapshotJoinerKilledAfterHandOver: the restored joiner is SIGKILLed
// right after it took the sender role by hand-over (crash point
// unit.transfer.handover), before it sent anything or published its
// progress as sender: the death gives the sender role back to the primary,
// whose resend queue holds every output above LSN_out; the member starts
// another joiner, which joins by a new snapshot. Every transfer is
// confirmed exactly once and in order, no hold or chunk is left.
func TestSnapshotJoinerKilledAfterHandOver(t *testing.T) {
	const n = 3000
	once := filepath.Join(t.TempDir(), "crashpoint-once")
	u := startTrimmed(t, n, "", once)
	c, s, _, victim, killed, transfers, wait := u.c, u.s, u.primary, u.victim, u.killed, u.transfers, u.wait
	// The original secondary took the sender role at the start by the
	// same hand-over: the crash point is armed only for the replicas the
	// member starts from now on (they inherit this environment).
	t.Setenv(crashpoint.EnvVar, "unit.transfer.handover:1")
	t.Setenv(crashpoint.OnceVar, once)
	if err := syscall.Kill(int(killed), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restored joiner to take the sender role and die", nil, func() bool { _, err := os.Stat(once); return err == nil })
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := confirmations(t, c, n)
	reference(t, got, transfers)
	waitFor(t, "both positions active, a restored replica the sender, no hold, no chunk", nil, func() bool {
		r := roleOf(t, s)
		return r.Pos[0].State == role.Active && r.Pos[1].State == role.Active && r.Pos[victim].SnapLSN > 0 && r.Sender == victim &&
			holdOf(t, s, 0) == 0 && holdOf(t, s, 1) == 0 && snapChunks(t, c) == 0
	})
}

// trimmedUnit is where the snapshot tests start from: a member-supervised
// ledger unit of two replicas (chunks of 6 bytes), fed n transfers, whose
// primary has trimmed its log, so that a replacement of the victim (the
// secondary, the sender) must join by a snapshot.
type trimmedUnit struct {
	c               *mq.Conn
	s               *lockfree.Structure
	primary, victim uint8
	killed          uint32 // the victim's pid, for the test to kill
	transfers       []ledger.Transfer
	wait            func() error
}

// startTrimmed starts a trimmedUnit, with crash point cp ("": none) armed
// in every replica and its once file at once.
func startTrimmed(t *testing.T, n int, cp, once string) *trimmedUnit {
	t.Helper()
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	t.Setenv("LEDGER_CHUNK_SIZE", "6")
	if cp != "" {
		t.Setenv(crashpoint.EnvVar, cp)
		t.Setenv(crashpoint.OnceVar, once)
	}
	_, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2)", bin))
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
	var r0 *role.Role
	waitFor(t, "both replicas active, the secondary the sender", nil, func() bool {
		r0 = roleOf(t, s)
		return r0.Pos[0].State == role.Active && r0.Pos[1].State == role.Active && r0.Sender != r0.Primary
	})
	primary, victim := r0.Primary, r0.Sender
	killed := r0.Pos[victim].Pid
	transfers, wait := produce(t, opts, n)
	waitFor(t, "the primary to trim its log", nil, func() bool { return logHead(t, c) > 1 && appliedOf(t, s, int(primary)) >= uint64(n/5) })
	return &trimmedUnit{c: c, s: s, primary: primary, victim: victim, killed: killed, transfers: transfers, wait: wait}
}
