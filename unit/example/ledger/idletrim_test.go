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
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// TestIdlePrimaryTrims: a unit of one replica (the primary sends) whose
// destination is full while it logs every input; once the consumer
// drains it the primary sends the blocked outputs on their own (no more
// input). Every output sent and no secondary, the log must be trimmed:
// the trim is bounded by LSN_out, so an input whose outputs were sent
// after the primary's last batch stays in the log for as long as no input
// comes, and if the replica then dies it goes to the DEADQ as "unit
// state lost" although its outputs were sent.
func TestIdlePrimaryTrims(t *testing.T) {
	const n = 200
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	_, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(20)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(1) RESENDQ(1000)", bin))
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
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: "a", To: "b", Amount: 1}
	}
	if err := putTransfers(c, in, transfers, 0, n, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every input applied, CONFIRM full", nil, func() bool {
		return appliedOf(t, s, int(r0.Primary)) == n && len(browseAll(t, c, "CONFIRM")) == 20
	})
	confirm, err := c.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	for got := 0; got < n; {
		if _, err := confirm.Get(mq.GetOptions{Wait: 5 * time.Second}); err != nil {
			if errors.Is(err, mq.ErrNoMessage) {
				t.Fatalf("%d confirmations of %d", got, n)
			}
			t.Fatal(err)
		}
		got++
	}
	time.Sleep(time.Second)
	if msgs := browseAll(t, c, "SYSTEM.UNIT.LEDGER.LOG"); len(msgs) > 1 {
		t.Fatalf("every output sent, no secondary, the primary idle: the log holds %d messages", len(msgs))
	}
}
