package qm

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestUnitDeathOnce: two members see one replica's death at once (the
// primary's connection gone) and both compute its death transition from
// the same role record before either swaps it in: exactly one wins. The
// secondary is promoted once (the epoch grows by one, the dead position
// counts one restart), and the loser, reading the record again, finds the
// entry vacant and does nothing more.
func TestUnitDeathOnce(t *testing.T) {
	cfg := testConfig(t, "QM1")
	cfg.UnitsByHand = true // no claims: only the deaths are made
	cfg2 := cfg
	cfg2.Name = "QM2"
	log1, log2 := logTo(t, &cfg), logTo(t, &cfg2)
	m1 := startMember(t, cfg)
	m2 := startMember(t, cfg2)
	mustExec(t, m1, "DEFINE QLOCAL(IN)")
	mustExec(t, m1, "DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(2)")

	// Both members' death transitions wait for each other before their
	// compare-and-swap; every later transition goes straight on.
	var mu sync.Mutex
	arrived, deaths := 0, 0
	both := make(chan struct{})
	testHookUnitBeforeCAS = func(svc string, ev role.Event) {
		if ev.Kind != role.EvDeath {
			return
		}
		mu.Lock()
		deaths++
		arrived++
		if arrived == 2 {
			close(both)
		}
		first := arrived <= 2
		mu.Unlock()
		if first {
			select {
			case <-both:
			case <-time.After(5 * time.Second):
			}
		}
	}
	t.Cleanup(func() { testHookUnitBeforeCAS = func(string, role.Event) {} })

	// The role record of a unit whose primary (position 0) is a connection
	// that has gone and whose secondary (position 1) lives.
	live := connect(t, cfg, "QM1")
	defer live.Disconnect()
	gone := connect(t, cfg, "QM1")
	goneTag := uint32(gone.Tag())
	gone.Disconnect()
	o, s, err := mqconn.Of(live).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	before := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(0, before); err != nil {
		t.Fatal(err)
	}
	r, err := role.Decode(before)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	for _, ev := range []role.Event{
		{Kind: role.EvClaim, Pos: 0, Claim: 1},
		{Kind: role.EvRegister, Pos: 0, Claim: 1, Tag: goneTag, Pid: 1},
		{Kind: role.EvClaim, Pos: 1, Claim: 2},
		{Kind: role.EvRegister, Pos: 1, Claim: 2, Tag: uint32(live.Tag()), Pid: 2},
		{Kind: role.EvRestored, Pos: 1, Tag: uint32(live.Tag())},
	} {
		ev.Now = now
		if r, _, err = role.Next(r, ev); err != nil {
			t.Fatalf("%v: %v", ev.Kind, err)
		}
	}
	after, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.CompareAndSwapStatus(0, before, after); err != nil {
		t.Fatal(err)
	}
	m1.kickUnits()
	m2.kickUnits()

	var got *role.Role
	eventually(t, "the death transition", func() bool {
		if _, err := s.ReadStatus(0, before); err != nil {
			t.Fatal(err)
		}
		got, err = role.Decode(before)
		return err == nil && got.Pos[0].State == role.Vacant
	})
	select {
	case <-both:
	case <-time.After(10 * time.Second):
		t.Fatal("the two members did not both compute the death")
	}
	time.Sleep(100 * time.Millisecond) // the loser's second read
	if _, err := s.ReadStatus(0, before); err != nil {
		t.Fatal(err)
	}
	if got, err = role.Decode(before); err != nil {
		t.Fatal(err)
	}
	if got.Primary != 1 || got.Sender != 1 || got.Epoch != r.Epoch+1 || got.Pos[0].Restarts != 1 || got.Pos[1].State != role.Active {
		t.Fatalf("after the death: primary %d sender %d epoch %d (was %d) restarts %d, position 1 %v",
			got.Primary, got.Sender, got.Epoch, r.Epoch, got.Pos[0].Restarts, got.Pos[1].State)
	}
	mu.Lock()
	defer mu.Unlock()
	if deaths != 2 {
		t.Fatalf("%d death transitions computed, want 2 (one per member, one of them lost)", deaths)
	}
	// One member made it: one death event in the two logs.
	if n := strings.Count(log1(), "event=unit_replica_exited") + strings.Count(log2(), "event=unit_replica_exited"); n != 1 {
		t.Fatalf("%d members made the death transition, want 1:\nQM1:\n%s\nQM2:\n%s", n, log1(), log2())
	}
	if err := got.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestUnitSweepsOrphanChunks: the supervisor removes from a unit's SNAP
// queue the chunks of transfers no joining entry names (a donor and its
// joiner both dead leave them), and leaves those of a live transfer, the
// resting snapshot's and messages that are not chunks.
func TestUnitSweepsOrphanChunks(t *testing.T) {
	cfg := testConfig(t, "QM1")
	cfg.UnitsByHand = true
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(IN)")
	mustExec(t, m, "DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(3)")

	// Position 0 the primary, position 1 a joiner (both connections live,
	// so no death is made).
	p0, p1 := connect(t, cfg, "QM1"), connect(t, cfg, "QM1")
	defer p0.Disconnect()
	defer p1.Disconnect()
	o, s, err := mqconn.Of(p0).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	before := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(0, before); err != nil {
		t.Fatal(err)
	}
	r, err := role.Decode(before)
	if err != nil {
		t.Fatal(err)
	}
	tag0, tag1 := uint32(p0.Tag()), uint32(p1.Tag())
	for _, ev := range []role.Event{
		{Kind: role.EvClaim, Pos: 0, Claim: 1},
		{Kind: role.EvRegister, Pos: 0, Claim: 1, Tag: tag0, Pid: 1},
		{Kind: role.EvClaim, Pos: 1, Claim: 2},
		{Kind: role.EvRegister, Pos: 1, Claim: 2, Tag: tag1, Pid: 2},
	} {
		ev.Now = time.Now().UnixNano()
		if r, _, err = role.Next(r, ev); err != nil {
			t.Fatalf("%v: %v", ev.Kind, err)
		}
	}
	after, err := r.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.CompareAndSwapStatus(0, before, after); err != nil {
		t.Fatal(err)
	}

	snap, err := p0.Open("SYSTEM.UNIT.LEDGER.SNAP", mq.OpenOptions{Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	live := logrec.Transfer{Gen: 1, Epoch: 1, Joiner: 1, JoinerTag: tag1}.CorrelID()
	resting := logrec.Transfer{Gen: 1, Epoch: 1, Joiner: logrec.RestingJoiner}.CorrelID()
	other := [24]byte{'X'}
	stale := [][24]byte{
		logrec.Transfer{Gen: 1, Epoch: 1, Joiner: 1, JoinerTag: tag1 + 1}.CorrelID(), // an earlier joiner of position 1
		logrec.Transfer{Gen: 1, Epoch: 1, Joiner: 2, JoinerTag: 7}.CorrelID(),        // position 2 is vacant
		logrec.Transfer{Gen: 1, Epoch: 1, Joiner: 0, JoinerTag: tag0}.CorrelID(),     // position 0 is active
	}
	for _, cid := range append([][24]byte{live, resting, other}, stale...) {
		for i := 0; i < 3; i++ {
			if err := snap.Put(&mq.Message{CorrelID: cid, Body: []byte("chunk")}, mq.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	count := func() map[[24]byte]int {
		cur, err := snap.Browse()
		if err != nil {
			t.Fatal(err)
		}
		n := map[[24]byte]int{}
		for {
			m, err := cur.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				return n
			}
			if err != nil {
				t.Fatal(err)
			}
			n[m.CorrelID]++
		}
	}
	m.kickUnits()
	var left map[[24]byte]int
	eventually(t, "the stale chunks swept", func() bool { left = count(); return len(left) == 3 })
	if left[live] != 3 || left[resting] != 3 || left[other] != 3 {
		t.Fatalf("after the sweep: %d chunks of the live transfer, %d of the resting snapshot, %d others; want 3 each", left[live], left[resting], left[other])
	}
}
