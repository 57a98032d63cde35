package ledger_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// TestDonorBusyNotHung: a snapshot transfer that takes longer than the
// member's UnitHeartbeatTimeout (a large state in small chunks, the
// joiner restoring steadily and publishing each chunk). The donor, the
// primary, is busy, not hung: it must publish its progress while it
// streams, or the member's heartbeat kill takes it for hung, the joiner
// loses its donor, and with both gone the unit's state is lost.
func TestDonorBusyNotHung(t *testing.T) {
	const n = 2000
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	t.Setenv("LEDGER_CHUNK_SIZE", "8")
	_, g := startMemberWith(t, func(c *qm.Config) { c.UnitHeartbeatTimeout = time.Second },
		"DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
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
	var r0 *role.Role
	waitFor(t, "the member to start a primary and a secondary", nil, func() bool {
		r0 = roleOf(t, s)
		return r0.State == role.Running && r0.Primary != role.None && r0.Sender != role.None && r0.Sender != r0.Primary &&
			r0.Pos[r0.Primary].State == role.Active && r0.Pos[r0.Sender].State == role.Active
	})
	in, err := c.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	// Every transfer between two new accounts with long names: a state
	// of some 800 KB, tens of thousands of 8-byte chunks.
	pad := strings.Repeat("x", 200)
	transfers := make([]ledger.Transfer, n)
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: fmt.Sprintf("f%d%s", i, pad), To: fmt.Sprintf("t%d%s", i, pad), Amount: 1}
	}
	if err := putTransfers(c, in, transfers, 0, n, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every transfer confirmed", nil, func() bool { return len(browseAll(t, c, "CONFIRM")) == n })
	// The secondary dies; its replacement joins by snapshot (the log is
	// trimmed).
	sec := r0.Sender
	if err := syscall.Kill(int(r0.Pos[sec].Pid), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "the replacement to join", nil, func() bool {
		r := roleOf(t, s)
		if r.Primary != r0.Primary || r.Pos[r0.Primary].Tag != r0.Pos[r0.Primary].Tag || r.Gen != 1 {
			t.Fatalf("the donor (primary, position %d tag %d) is gone during the transfer: primary %d, position %d's tag %d, generation %d",
				r0.Primary, r0.Pos[r0.Primary].Tag, r.Primary, r0.Primary, r.Pos[r0.Primary].Tag, r.Gen)
		}
		return r.Pos[sec].State == role.Active && r.Pos[sec].Tag != r0.Pos[sec].Tag
	})
	t.Logf("replacement joined after %v", time.Since(start).Round(time.Millisecond))
}
