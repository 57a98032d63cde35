package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// produce puts n transfers with known ids, 20 per commit, at a steady
// rate, in a goroutine; wait waits for it to end.
func produce(t *testing.T, opts mq.ConnectOptions, n int) (transfers []ledger.Transfer, wait func() error) {
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
	transfers = make([]ledger.Transfer, n)
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: accounts[i%5], To: accounts[(i/5+1+i)%5], Amount: int64(1 + i*7%400)}
	}
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() {
		for i, tr := range transfers {
			body := fmt.Appendf(nil, "%d %s %s %d", tr.ID, tr.From, tr.To, tr.Amount)
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
	return transfers, func() error { wg.Wait(); return perr }
}

// confirmations gets n confirmations from CONFIRM and checks that there
// are no more, that each transfer is confirmed once, and that their
// output ids run 1..n in order (generation 1).
func confirmations(t *testing.T, c *mq.Conn, n int) []ledger.Confirmation {
	t.Helper()
	confirm, err := c.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	source := xxhash.Sum64String("LEDGER")
	var got []ledger.Confirmation
	seen := map[uint64]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) <= n && time.Now().Before(deadline) {
		wait := time.Until(deadline)
		if len(got) == n {
			wait = 300 * time.Millisecond // nothing more may come
		}
		m, err := confirm.Get(mq.GetOptions{Wait: wait})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id, err := logrec.ParseOutputID(m.MsgID)
		if err != nil {
			t.Fatalf("confirmation %d: MsgID: %v", len(got), err)
		}
		if id.Source != source || id.Gen != 1 || id.Seq != uint64(len(got)+1) {
			t.Fatalf("confirmation %d: output id %+v, want source %x generation 1 sequence %d", len(got), id, source, len(got)+1)
		}
		cf, err := ledger.ParseConfirmation(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if seen[cf.ID] {
			t.Fatalf("transfer %d confirmed twice", cf.ID)
		}
		seen[cf.ID] = true
		got = append(got, cf)
	}
	if len(got) != n {
		t.Fatalf("%d confirmations of %d transfers", len(got), n)
	}
	return got
}

// reference is the state of a ledger applying the confirmed transfers in
// LSN order with the time and random id their confirmations carry; it
// checks that the LSNs run 1..n and that each accepted flag agrees.
func reference(t *testing.T, got []ledger.Confirmation, transfers []ledger.Transfer) string {
	t.Helper()
	got = append([]ledger.Confirmation(nil), got...)
	sort.Slice(got, func(i, j int) bool { return got[i].LSN < got[j].LSN })
	ref := ledger.New()
	for i, cf := range got {
		if cf.LSN != uint64(i+1) {
			t.Fatalf("LSNs not 1..%d: %d at %d", len(got), cf.LSN, i)
		}
		if ok := ref.Apply(transfers[cf.ID], cf.Now, cf.RID); ok != cf.OK {
			t.Fatalf("transfer %d: confirmed ok=%v, the reference says %v", cf.ID, cf.OK, ok)
		}
	}
	return ref.Digest()
}

// TestSupervised: the member starts both replicas of a defined, started
// service (STARTCMD: this test binary as a ledger replica) and supervises
// them. Under a steady load the primary's process is SIGKILLed: the
// member notices through its pidfd watcher, recovers the connection,
// promotes the secondary (already the sender) at a new epoch, and starts a
// replacement in the lost position, which joins (by a snapshot once the
// log is trimmed) and takes the sender role from the primary by
// hand-over. Every transfer is confirmed exactly once and in order, the
// survivor's state is the reference's, and the checker is clean.
func TestSupervised(t *testing.T) { supervised(t, syscall.SIGKILL) }

// TestSupervisedHung is TestSupervised with the primary stopped (SIGSTOP)
// instead of killed: alive, holding its connection and its role, it is
// noticed by nothing but its heartbeat. Its member kills it once its
// progress record has not moved for UnitHeartbeatTimeout, and the rest
// goes as for a death.
func TestSupervisedHung(t *testing.T) { supervised(t, syscall.SIGSTOP) }

func supervised(t *testing.T, sig syscall.Signal) { supervisedWith(t, sig, "") }

// supervisedWith is supervised with attrs added to the DEFINE SERVICE.
func supervisedWith(t *testing.T, sig syscall.Signal, attrs string) {
	const n = 2000
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	states := t.TempDir()
	t.Setenv("LEDGER_STATE_DIR", states)
	m, g := startMemberWith(t, func(c *qm.Config) { c.UnitHeartbeatTimeout = 2 * time.Second },
		"DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2) %s", bin, attrs))
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
	waitFor(t, "the member to start a primary and a sender", nil, func() bool {
		r0 = roleOf(t, s)
		return r0.Primary != role.None && r0.Sender != role.None && r0.Sender != r0.Primary &&
			r0.Pos[r0.Primary].State == role.Active && r0.Pos[r0.Sender].State == role.Active
	})
	primary, sender := r0.Primary, r0.Sender
	killed := r0.Pos[primary].Pid

	transfers, wait := produce(t, opts, n)
	waitFor(t, "the primary to process some input", nil, func() bool { return appliedOf(t, s, int(primary)) >= n/4 })
	if err := syscall.Kill(int(killed), sig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the member to promote the secondary", nil, func() bool {
		r := roleOf(t, s)
		return r.Primary == sender && r.Sender == sender && r.Pos[primary].Pid != killed
	})
	if r := roleOf(t, s); r.Epoch <= r0.Epoch || r.Pos[primary].Restarts < 1 {
		t.Fatalf("after the death: epoch %d (was %d), restarts of position %d %d", r.Epoch, r0.Epoch, primary, r.Pos[primary].Restarts)
	}
	// A replacement is started in the lost position and joins.
	waitFor(t, "the member to start a replacement", nil, func() bool {
		p := roleOf(t, s).Pos[primary]
		return p.State != role.Vacant && p.Pid != killed && p.Pid != 0
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}

	got := confirmations(t, c, n)
	ref := reference(t, got, transfers)

	// DISPLAY SVSTATUS: the survivor is primary on QM1 and has logged and
	// processed every transfer; the replacement, restored, has taken the
	// sender role by hand-over (the primary was acting as sender),
	// processed every transfer and sent them all.
	survivor := roleOf(t, s).Pos[sender].Pid
	want := map[float64]map[string]any{
		float64(sender): {"SERVICE": "LEDGER", "ROLE": "PRIMARY", "SENDER": "NO", "QMNAME": "QM1",
			"PID": float64(survivor), "LOGGED": float64(n), "PROCESSED": float64(n), "STATUS": "RUNNING", "UNITSTATE": "RUNNING"},
		float64(primary): {"SERVICE": "LEDGER", "ROLE": "SENDER", "SENDER": "YES", "QMNAME": "QM1",
			"PROCESSED": float64(n), "SENT": float64(n), "RESENDQ": float64(0), "STATUS": "RUNNING", "UNITSTATE": "RUNNING"},
	}
	var objs []map[string]any
	waitFor(t, "SVSTATUS to show the survivor and the replacement done", nil, func() bool {
		resp := m.Exec("DISPLAY SVSTATUS(LEDGER)")
		if !resp.OK {
			t.Fatalf("DISPLAY SVSTATUS: %s", resp.Error)
		}
		objs = nil
		ok := 0
		for _, raw := range resp.Objects {
			var o map[string]any
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatal(err)
			}
			objs = append(objs, o)
			w, found := want[o["POSITION"].(float64)]
			if !found {
				continue
			}
			match := true
			for k, v := range w {
				match = match && o[k] == v
			}
			if match {
				ok++
			}
		}
		return ok == len(want)
	})
	t.Logf("SVSTATUS: %v", objs)
	if err := roleOf(t, s).Check(); err != nil {
		t.Fatalf("role record: %v", err)
	}

	// The survivor's state: SIGTERM makes it write it and stop.
	if err := syscall.Kill(int(survivor), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(states, fmt.Sprintf("state-%d-%d", sender, survivor))
	var state []byte
	waitFor(t, "the survivor's state", nil, func() bool { state, err = os.ReadFile(file); return err == nil })
	if string(state) != ref {
		t.Fatalf("the survivor's state differs from the reference:\nsurvivor  %s\nreference %s", state, ref)
	}
	if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %s", r)
	}
}

// TestSupervisedSpread: with two members, the replicas of a service are
// spread over them (role.Place: the member hosting fewest positions of
// the unit claims first), and DISPLAY SVSTATUS names each replica's
// member.
func TestSupervisedSpread(t *testing.T) {
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	m1, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)")
	cfg2 := qm.Config{Group: g, Name: "QM2", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m2, err := qm.Start(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m2.Run(ctx)
	t.Cleanup(func() { cancel(); m2.Stop() })
	if r := m1.Exec(fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2)", bin)); !r.OK {
		t.Fatal(r.Error)
	}
	c, err := mq.Connect(mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	var r *role.Role
	waitFor(t, "both replicas active", nil, func() bool {
		r = roleOf(t, s)
		return r.Pos[0].State == role.Active && r.Pos[1].State == role.Active
	})
	if r.Pos[0].Peer == r.Pos[1].Peer {
		t.Fatalf("both replicas on peer slot %d", r.Pos[0].Peer)
	}
	resp := m2.Exec("DISPLAY SVSTATUS(LEDGER) QMNAME")
	if !resp.OK {
		t.Fatal(resp.Error)
	}
	names := map[string]bool{}
	for _, raw := range resp.Objects {
		var o map[string]any
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		names[fmt.Sprint(o["QMNAME"])] = true
	}
	if !names["QM1"] || !names["QM2"] {
		t.Fatalf("SVSTATUS names members %v, want QM1 and QM2", names)
	}
}
