package unit

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestDonorSweepKeepsLiveTransfer: a donor about to stream sweeps SNAP of
// the chunks of transfers no joining entry names. Its role record is the
// one it read at its last step; another donor may since have begun a
// transfer to a joiner that registered after that read. Those chunks are
// live: the sweep must judge them by a role record read after it browsed
// them (a chunk is put only after its donor saw its joiner joining), as
// the member's sweep does, or it takes a live transfer's chunks and that
// joiner fails stop.
func TestDonorSweepKeepsLiveTransfer(t *testing.T) {
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, UnitsByHand: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	for _, c := range []string{"DEFINE QLOCAL(IN)", "DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(3)"} {
		if res := m.Exec(c); !res.OK {
			t.Fatalf("%s: %s", c, res.Error)
		}
	}
	g := cfg.Group
	r := &replica{cfg: ReplicaConfig{Service: "LEDGER", Position: 0,
		Connect: mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}},
		dests: map[string]*mq.Queue{}, dseq: map[string]uint64{}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if r.c, err = mq.Connect(r.cfg.Connect); err != nil {
		t.Fatal(err)
	}
	defer r.c.Disconnect()
	if err := r.open(); err != nil {
		t.Fatal(err)
	}
	// The donor's view: read before anyone registered.
	if err := r.readRole(); err != nil {
		t.Fatal(err)
	}
	stale := r.rec

	// Since then: position 0 the primary, position 1 a joiner (tag 77).
	before := make([]byte, r.s.StatusSize())
	if _, err := r.s.ReadStatus(r.svc.StatusBase, before); err != nil {
		t.Fatal(err)
	}
	rec := stale.Clone()
	for _, ev := range []role.Event{
		{Kind: role.EvClaim, Pos: 0, Claim: 1},
		{Kind: role.EvRegister, Pos: 0, Claim: 1, Tag: r.tag, Pid: 1},
		{Kind: role.EvClaim, Pos: 1, Claim: 2},
		{Kind: role.EvRegister, Pos: 1, Claim: 2, Tag: 77, Pid: 2},
	} {
		ev.Now = time.Now().UnixNano()
		if rec, _, err = role.Next(rec, ev); err != nil {
			t.Fatalf("%v: %v", ev.Kind, err)
		}
	}
	after, err := rec.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.o.CompareAndSwapStatus(r.svc.StatusBase, before, after); err != nil {
		t.Fatal(err)
	}
	// Another donor's live transfer to position 1.
	q, err := r.snapQueue()
	if err != nil {
		t.Fatal(err)
	}
	live := logrec.Transfer{Gen: uint32(rec.Gen), Epoch: rec.Epoch, Joiner: 1, JoinerTag: 77}.CorrelID()
	// And the chunks of an over transfer: position 2 is vacant.
	over := logrec.Transfer{Gen: uint32(rec.Gen), Epoch: rec.Epoch, Joiner: 2, JoinerTag: 5}.CorrelID()
	for _, cid := range [][24]byte{live, over} {
		for i := 0; i < 3; i++ {
			if err := q.Put(&mq.Message{CorrelID: cid, Body: []byte("chunk")}, mq.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	r.rec = stale
	if err := r.sweepChunks(); err != nil {
		t.Fatal(err)
	}
	count := func(cid [24]byte) int {
		cur, err := q.Browse()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for {
			_, err := cur.Next(mq.GetOptions{CorrelID: &cid})
			if errors.Is(err, mq.ErrNoMessage) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if n := count(live); n != 3 {
		t.Fatalf("the donor's sweep, by a role record read before position 1 registered, left %d of the 3 chunks of a live transfer to it", n)
	}
	if n := count(over); n != 0 {
		t.Fatalf("the donor's sweep left %d chunks of a transfer to vacant position 2", n)
	}
}
