package ledger_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// TestStopFullDestination: STOP SERVICE while the primary (REPLICAS(1),
// so also the sender) cannot put its outputs: CONFIRM is full, its
// consumer late for longer than the member's UnitHeartbeatTimeout. The
// stopping primary retries its blocked outputs, busy but healthy, and must
// go on publishing its progress: the member's heartbeat kill must not take
// it for hung. Once the consumer drains CONFIRM the stop completes with a
// resting snapshot (killed, the stop would end with no survivor and no
// resting snapshot: the state lost).
func TestStopFullDestination(t *testing.T) {
	const n = 100
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	m, g := startMemberWith(t, func(c *qm.Config) { c.UnitHeartbeatTimeout = time.Second },
		"DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(20)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(1)", bin))
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
	waitFor(t, "the member to start the primary", nil, func() bool {
		r0 = roleOf(t, s)
		return r0.State == role.Running && r0.Primary != role.None && r0.Pos[r0.Primary].State == role.Active
	})
	in, err := c.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	transfers := make([]ledger.Transfer, n)
	accounts := []string{"a", "b", "c", "d", "e"}
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: accounts[i%5], To: accounts[(i/5+1+i)%5], Amount: int64(1 + i*7%400)}
	}
	if err := putTransfers(c, in, transfers, 0, n, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "CONFIRM full and inputs applied beyond it", nil, func() bool {
		return len(browseAll(t, c, "CONFIRM")) == 20 && appliedOf(t, s, int(r0.Primary)) > 20
	})
	if resp := m.Exec("STOP SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("STOP SERVICE: %s", resp.Error)
	}
	// The consumer is late: three heartbeat timeouts.
	time.Sleep(3 * time.Second)
	if r := roleOf(t, s); r.Pos[r0.Primary].State == role.Vacant {
		t.Fatalf("the stopping primary, retrying its outputs to a full CONFIRM, is gone (unit %v): killed as hung", r.State)
	}
	confirm, err := c.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		_, err := confirm.Get(mq.GetOptions{Wait: 100 * time.Millisecond})
		if err == nil {
			got++
			continue
		}
		if !errors.Is(err, mq.ErrNoMessage) {
			t.Fatal(err)
		}
		if st := roleOf(t, s).State; st == role.Resting || st == role.Stopped {
			break
		}
	}
	if st := roleOf(t, s).State; st != role.Resting {
		t.Fatalf("after the stop: unit state %v, want resting (%d confirmations drained)", st, got)
	}
}
