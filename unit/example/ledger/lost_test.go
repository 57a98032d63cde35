package ledger_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestAllReplicasKilled: every replica SIGKILLed at once with no resting
// snapshot (design 6.3, "All replicas dead at once"). CONFIRM is small, so
// the sender is blocked and the primary has logged inputs whose
// confirmations were never sent. The next primary starts generation 2
// and moves generation 1's log messages to the DEADQ behind a dead-letter
// header with reason 6103 (unit state lost). Every transfer is then
// either confirmed in generation 1, or in a dead-lettered log message, or
// confirmed in generation 2 (never silently dropped); each generation's
// confirmations run 1..k in order, once each; generation 2 confirms no
// transfer generation 1 took; the checker is clean.
func TestAllReplicasKilled(t *testing.T) { allReplicasKilled(t, "") }

// allReplicasKilled is TestAllReplicasKilled with attrs added to the
// DEFINE SERVICE. With LOGGING(INDEPENDENT) the dead-lettered log
// messages name their inputs by reference, and the inputs themselves go
// to the DEADQ too, from IN (behind a header with DestQ IN): a transfer a
// reference names (by the hash of its body) counts as dead-lettered only
// if its input is on the DEADQ, and generation 2 must not have confirmed
// it (its input taken as new: processed twice, its outputs maybe twice).
func allReplicasKilled(t *testing.T, attrs string) {
	const n = 600
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("LEDGER_STATE_DIR", t.TempDir())
	m, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100)",
		"DEFINE QLOCAL(DLQ) MAXDEPTH(100000)", "ALTER QMGR DEADQ(DLQ)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2) %s", bin, attrs))
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
	waitFor(t, "the member to start a primary and a sender", nil, func() bool {
		r0 = roleOf(t, s)
		return r0.Primary != role.None && r0.Sender != role.None && r0.Sender != r0.Primary &&
			r0.Pos[r0.Primary].State == role.Active && r0.Pos[r0.Sender].State == role.Active
	})
	transfers, wait := produce(t, opts, n)
	waitFor(t, "the primary to log inputs beyond what CONFIRM takes", nil, func() bool {
		return appliedOf(t, s, int(r0.Primary)) >= 300 && appliedOf(t, s, int(r0.Sender)) >= 300
	})
	for _, k := range []uint8{r0.Primary, r0.Sender} {
		if err := syscall.Kill(int(r0.Pos[k].Pid), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "generation 2 running", nil, func() bool {
		r := roleOf(t, s)
		return r.Gen == 2 && r.Primary != role.None && r.Pos[r.Primary].State == role.Active
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}

	// Drain CONFIRM until IN is empty and nothing more comes.
	confirm, err := c.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	source := xxhash.Sum64String("LEDGER")
	seq := map[uint32]uint64{}
	where := map[uint64]string{}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		msg, err := confirm.Get(mq.GetOptions{Wait: time.Second})
		if errors.Is(err, mq.ErrNoMessage) {
			if heldToo(t, c, "IN") == 0 {
				break
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		id, err := logrec.ParseOutputID(msg.MsgID)
		if err != nil || id.Source != source || id.Seq != seq[id.Gen]+1 {
			t.Fatalf("confirmation: output id %+v (%v), want generation 1 or 2 sequence %d", id, err, seq[id.Gen]+1)
		}
		seq[id.Gen] = id.Seq
		cf, err := ledger.ParseConfirmation(msg.Body)
		if err != nil {
			t.Fatal(err)
		}
		if w, dup := where[cf.ID]; dup {
			t.Fatalf("transfer %d confirmed in generation %d, and already %s", cf.ID, id.Gen, w)
		}
		where[cf.ID] = fmt.Sprintf("confirmed in generation %d", id.Gen)
	}
	if seq[1] == 0 || seq[2] == 0 {
		t.Fatalf("confirmations: %v per generation, want some of both", seq)
	}
	// The DEADQ: generation 1's log messages behind a "unit state lost"
	// header; their inputs were got from IN by generation 1.
	unsent := 0
	byHash := map[uint64]int64{} // a transfer by its body's hash
	for _, tr := range transfers {
		byHash[xxhash.Sum64(fmt.Appendf(nil, "%d %s %s %d", tr.ID, tr.From, tr.To, tr.Amount))] = tr.ID
	}
	refs, inputs := map[int64]bool{}, map[int64]bool{}
	byMsgID := map[[24]byte]int64{} // INDEPENDENT: a dead-lettered input by its MsgID
	dlq := browseAll(t, c, "DLQ")
	for i, msg := range dlq {
		d, body, err := mq.ParseDLH(msg.Body)
		if err == nil && d.Reason == mq.RCUnitStateLost && d.DestQ == "IN" {
			id, ok := byHash[xxhash.Sum64(body)]
			if !ok || inputs[id] {
				t.Fatalf("DLQ message %d: input %q unknown or twice", i, body)
			}
			inputs[id], byMsgID[msg.MsgID] = true, id
		}
	}
	for i, msg := range dlq {
		d, body, err := mq.ParseDLH(msg.Body)
		if err == nil && d.Reason == mq.RCUnitStateLost && d.DestQ == "IN" {
			continue
		}
		if err != nil || d.Reason != mq.RCUnitStateLost || d.DestQ != "SYSTEM.UNIT.LEDGER.LOG" || d.OrigFormat != "MQRULOG" {
			t.Fatalf("DLQ message %d: header %+v (%v)", i, d, err)
		}
		lm, err := logrec.DecodeLog(body)
		if err != nil || lm.Gen != 1 {
			t.Fatalf("DLQ message %d: log message of generation %d (%v)", i, lm.Gen, err)
		}
		for _, rec := range lm.Records {
			var tr ledger.Transfer
			switch rec.Kind {
			case logrec.KindInput, logrec.KindInputEarly:
				if _, err := fmt.Sscanf(string(rec.Input.Body), "%d %s %s %d", &tr.ID, &tr.From, &tr.To, &tr.Amount); err != nil {
					t.Fatalf("DLQ message %d: input %q: %v", i, rec.Input.Body, err)
				}
			case logrec.KindInputRef:
				id, ok := byMsgID[rec.Ref.MsgID]
				if !ok {
					t.Fatalf("DLQ message %d: a reference to no dead-lettered input: %+v", i, rec.Ref)
				}
				tr.ID, refs[id] = id, true
			default:
				continue
			}
			switch w := where[uint64(tr.ID)]; w {
			case "confirmed in generation 1":
			case "":
				where[uint64(tr.ID)] = "dead-lettered"
				unsent++
			default:
				t.Fatalf("transfer %d dead-lettered from generation 1's log and %s", tr.ID, w)
			}
		}
	}
	for id := range refs {
		if !inputs[id] {
			t.Fatalf("transfer %d: its log message dead-lettered, its input not", id)
		}
	}
	for id := range inputs {
		if !refs[id] {
			t.Fatalf("transfer %d: its input dead-lettered, no dead-lettered log message names it", id)
		}
	}
	for i := range transfers {
		if where[uint64(i)] == "" {
			t.Fatalf("transfer %d neither confirmed nor dead-lettered: dropped", i)
		}
	}
	if unsent == 0 {
		t.Fatalf("no logged, unsent transfer dead-lettered (%v confirmations per generation)", seq)
	}
	t.Logf("confirmations per generation %v, %d logged and unsent transfers on the DEADQ", seq, unsent)
	if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %s", r)
	}
}
