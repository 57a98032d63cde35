package ledger_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestStartPrimaryKilledBeforeFirstBatch: START SERVICE restores the
// resting snapshot in the first replica; the second joins it by snapshot;
// the restored primary is SIGKILLed before any input (so before the first
// batch that removes the resting snapshot). The secondary is promoted and
// takes input: its first batch must remove the resting snapshot too, which
// is no longer the state. Left on SNAP, it is restored again when every
// replica dies at once: the unit goes back to its LSN at the same
// generation, silently forgetting every input since (and numbering the
// next input with an LSN the log already holds), instead of starting
// generation 2 with the old log on the DEADQ.
func TestStartPrimaryKilledBeforeFirstBatch(t *testing.T) {
	const n = 300
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	m, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		"DEFINE QLOCAL(DLQ) MAXDEPTH(100000)", "ALTER QMGR DEADQ(DLQ)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2)", bin))
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
	running := func(what string) *role.Role {
		var r *role.Role
		waitFor(t, what, nil, func() bool {
			r = roleOf(t, s)
			return r.State == role.Running && r.Primary != role.None && r.Sender != role.None && r.Sender != r.Primary &&
				r.Pos[r.Primary].State == role.Active && r.Pos[r.Sender].State == role.Active
		})
		return r
	}
	running("the member to start a primary and a sender")
	prod, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Disconnect()
	in, err := prod.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	accounts := []string{"a", "b", "c", "d", "e"}
	transfers := make([]ledger.Transfer, n)
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: accounts[i%5], To: accounts[(i/5+1+i)%5], Amount: int64(1 + i*7%400)}
	}
	confirmed := func(k int) {
		waitFor(t, fmt.Sprintf("%d confirmations", k), nil, func() bool { return len(browseAll(t, c, "CONFIRM")) >= k })
	}
	if err := putTransfers(prod, in, transfers, 0, n/3, 0); err != nil {
		t.Fatal(err)
	}
	confirmed(n / 3)
	if resp := m.Exec("STOP SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("STOP SERVICE: %s", resp.Error)
	}
	waitFor(t, "the unit to rest", nil, func() bool { return roleOf(t, s).State == role.Resting })
	if resp := m.Exec("START SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("START SERVICE: %s", resp.Error)
	}
	r1 := running("the restored primary and a joined secondary")
	if r1.Gen != 1 {
		t.Fatalf("restarted at generation %d", r1.Gen)
	}
	// No input yet: the restored primary has not batched, the resting
	// snapshot is still on SNAP. Kill it.
	if err := syscall.Kill(int(r1.Pos[r1.Primary].Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the secondary's promotion and a new secondary", nil, func() bool {
		r := roleOf(t, s)
		return r.Primary == r1.Sender && r.Pos[r1.Primary].State == role.Active && r.Pos[r1.Primary].Tag != r1.Pos[r1.Primary].Tag
	})
	if err := putTransfers(prod, in, transfers, n/3, 2*n/3, 0); err != nil {
		t.Fatal(err)
	}
	confirmed(2 * n / 3)
	// The promoted primary has logged inputs past the resting snapshot's
	// LSN: the snapshot is no longer the state and must be gone.
	waitFor(t, "the stale resting snapshot's removal", nil, func() bool {
		for _, msg := range browseAll(t, c, "SYSTEM.UNIT.LEDGER.SNAP") {
			if tr, err := logrec.ParseTransfer(msg.CorrelID); err == nil && tr.Joiner == logrec.RestingJoiner {
				return false
			}
		}
		return true
	})
	// Every replica dies at once: generation 2, not the stale snapshot.
	r2 := roleOf(t, s)
	for k := range r2.Pos {
		if r2.Pos[k].State != role.Vacant {
			if err := syscall.Kill(int(r2.Pos[k].Pid), syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitFor(t, "generation 2 running", nil, func() bool {
		r := roleOf(t, s)
		return r.Gen == 2 && r.Primary != role.None && r.Pos[r.Primary].State == role.Active
	})
}
