package role

import (
	"errors"
	"reflect"
	"testing"
)

// step applies ev and fails the test on an error.
func step(t *testing.T, r *Role, ev Event) (*Role, Effect) {
	t.Helper()
	n, eff, err := Next(r, ev)
	if err != nil {
		t.Fatalf("%v of %d: %v", ev.Kind, ev.Pos, err)
	}
	b, err := n.Encode()
	if err != nil {
		t.Fatalf("%v of %d: encode: %v", ev.Kind, ev.Pos, err)
	}
	d, err := Decode(b)
	if err != nil || !reflect.DeepEqual(d, n) {
		t.Fatalf("%v of %d: round trip: %v\n got %+v\nwant %+v", ev.Kind, ev.Pos, err, d, n)
	}
	return n, eff
}

// join claims, registers and (if a primary exists) restores position k.
func join(t *testing.T, r *Role, k uint8) *Role {
	t.Helper()
	claim, tag := 100+uint64(k)+r.Epoch*10, 1000+uint32(k)+uint32(r.Epoch)*10
	r, _ = step(t, r, Event{Kind: EvClaim, Pos: k, Peer: k, Incarnation: 1, Claim: claim})
	r, _ = step(t, r, Event{Kind: EvRegister, Pos: k, Claim: claim, Tag: tag, Pid: 50 + uint32(k), StartTime: 9})
	if r.Pos[k].State == Joining {
		r, _ = step(t, r, Event{Kind: EvRestored, Pos: k, Tag: tag, SnapLSN: 7})
	}
	return r
}

func newUnit(t *testing.T, replicas int, fanout bool) *Role {
	t.Helper()
	r, err := New("LEDGER", replicas, fanout, Late, true)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTwoReplicas(t *testing.T) {
	r := newUnit(t, 2, false)
	r, _ = step(t, r, Event{Kind: EvClaim, Pos: 0, Peer: 3, Incarnation: 1, Claim: 11})
	if _, _, err := Next(r, Event{Kind: EvRegister, Pos: 0, Claim: 12, Tag: 5, Pid: 9}); !errors.Is(err, ErrStale) {
		t.Fatalf("register with another claim: %v", err)
	}
	r, eff := step(t, r, Event{Kind: EvRegister, Pos: 0, Claim: 11, Tag: 5, Pid: 9})
	if r.Primary != 0 || r.Sender != 0 || r.Gen != 1 || eff&EffFirstStart == 0 {
		t.Fatalf("first register: primary %d sender %d gen %d eff %b", r.Primary, r.Sender, r.Gen, eff)
	}
	r, _ = step(t, r, Event{Kind: EvClaim, Pos: 1, Peer: 4, Incarnation: 1, Claim: 21})
	r, _ = step(t, r, Event{Kind: EvRegister, Pos: 1, Claim: 21, Tag: 6, Pid: 10})
	if r.Pos[1].State != Joining || r.Pos[1].Donor != 0 {
		t.Fatalf("joiner: %+v", r.Pos[1])
	}
	r, _ = step(t, r, Event{Kind: EvRestored, Pos: 1, Tag: 6, SnapLSN: 40})
	if r.Sender != 0 || !reflect.DeepEqual(r.Chain, []uint8{1}) {
		t.Fatalf("restored: sender %d chain %v", r.Sender, r.Chain)
	}
	// Not caught up: LSN_out above its applied LSN.
	if _, _, err := Next(r, Event{Kind: EvHandOver, Pos: 1, Tag: 6, LSNOut: 45, Applied: [4]uint64{50, 44}}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("early hand-over: %v", err)
	}
	epoch := r.Epoch
	r, _ = step(t, r, Event{Kind: EvHandOver, Pos: 1, Tag: 6, LSNOut: 45, Applied: [4]uint64{50, 45}})
	if r.Sender != 1 || r.Epoch != epoch+1 {
		t.Fatalf("hand-over: sender %d epoch %d", r.Sender, r.Epoch)
	}
	// The primary dies: the secondary is promoted and stays sender.
	death := Event{Kind: EvDeath, Pos: 0, Tag: 5, Reason: ExitDied}
	r2, eff := step(t, r, death)
	if r2.Primary != 1 || r2.Sender != 1 || len(r2.Chain) != 0 || eff&EffPromoted == 0 || r2.Pos[0].Restarts != 1 {
		t.Fatalf("promotion: %+v eff %b", r2, eff)
	}
	// A second recoverer of the same death computes from the new record:
	// nothing to do.
	if _, _, err := Next(r2, death); !errors.Is(err, ErrStale) {
		t.Fatalf("second promotion: %v", err)
	}
	// Both gone: no primary; the next register starts generation 2.
	r3, _ := step(t, r2, Event{Kind: EvDeath, Pos: 1, Tag: 6, Reason: ExitDied})
	if r3.Primary != None || r3.Sender != None {
		t.Fatalf("all dead: %+v", r3)
	}
	r3, _ = step(t, r3, Event{Kind: EvClaim, Pos: 1, Peer: 4, Incarnation: 2, Claim: 31})
	r3, eff = step(t, r3, Event{Kind: EvRegister, Pos: 1, Claim: 31, Tag: 8, Pid: 11})
	if r3.Gen != 2 || eff&EffStateLost == 0 {
		t.Fatalf("state lost: gen %d eff %b", r3.Gen, eff)
	}
}

func TestSenderDeathChain(t *testing.T) {
	r := newUnit(t, 3, false)
	for k := uint8(0); k < 3; k++ {
		r = join(t, r, k)
	}
	// chain [1 2], sender 0 until 2 (the last) takes over.
	r, _ = step(t, r, Event{Kind: EvHandOver, Pos: 2, Tag: r.Pos[2].Tag, Applied: [4]uint64{9, 9, 9}, LSNOut: 9})
	if _, _, err := Next(r, Event{Kind: EvHandOver, Pos: 1, Tag: r.Pos[1].Tag}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("hand-over to an interior: %v", err)
	}
	// The interior dies: relinked, roles unchanged, epoch unchanged.
	epoch := r.Epoch
	ri, _ := step(t, r, Event{Kind: EvDeath, Pos: 1, Tag: r.Pos[1].Tag, Reason: ExitDied})
	if !reflect.DeepEqual(ri.Chain, []uint8{2}) || ri.Sender != 2 || ri.Epoch != epoch {
		t.Fatalf("interior death: chain %v sender %d epoch %d", ri.Chain, ri.Sender, ri.Epoch)
	}
	// The sender dies: its predecessor in the chain sends.
	rs, eff := step(t, r, Event{Kind: EvDeath, Pos: 2, Tag: r.Pos[2].Tag, Reason: ExitDied})
	if rs.Sender != 1 || rs.Primary != 0 || eff&EffSenderChanged == 0 || rs.Epoch != epoch+1 {
		t.Fatalf("sender death: sender %d primary %d eff %b", rs.Sender, rs.Primary, eff)
	}
	// The primary dies: chain[0] is promoted.
	rp, _ := step(t, r, Event{Kind: EvDeath, Pos: 0, Tag: r.Pos[0].Tag, Reason: ExitDied})
	if rp.Primary != 1 || rp.Sender != 2 || !reflect.DeepEqual(rp.Chain, []uint8{2}) {
		t.Fatalf("primary death: %+v", rp)
	}
}

func TestFanoutPromotesMostAdvanced(t *testing.T) {
	r := newUnit(t, 3, true)
	for k := uint8(0); k < 3; k++ {
		r = join(t, r, k)
	}
	r, _ = step(t, r, Event{Kind: EvHandOver, Pos: 1, Tag: r.Pos[1].Tag, Applied: [4]uint64{9, 9, 9}, LSNOut: 9})
	n, _ := step(t, r, Event{Kind: EvDeath, Pos: 0, Tag: r.Pos[0].Tag, Reason: ExitDied, Applied: [4]uint64{0, 70, 90}})
	if n.Primary != 2 || n.Sender != 1 {
		t.Fatalf("promoted %d sender %d, want 2 and 1", n.Primary, n.Sender)
	}
	// Ties go to the lowest position; the promoted sender is replaced by
	// the lowest remaining secondary.
	n, _ = step(t, r, Event{Kind: EvDeath, Pos: 0, Tag: r.Pos[0].Tag, Reason: ExitDied, Applied: [4]uint64{0, 80, 80}})
	if n.Primary != 1 || n.Sender != 2 {
		t.Fatalf("tie: promoted %d sender %d, want 1 and 2", n.Primary, n.Sender)
	}
}

func TestJoinerLosesDonor(t *testing.T) {
	r := newUnit(t, 3, true)
	r = join(t, r, 0)
	r = join(t, r, 1)
	r, _ = step(t, r, Event{Kind: EvClaim, Pos: 2, Claim: 5})
	r, _ = step(t, r, Event{Kind: EvRegister, Pos: 2, Claim: 5, Tag: 77, Pid: 3, Applied: [4]uint64{10, 8}})
	if r.Pos[2].Donor != 1 {
		t.Fatalf("donor %d, want the non-sender secondary 1", r.Pos[2].Donor)
	}
	r, _ = step(t, r, Event{Kind: EvDeath, Pos: 1, Tag: r.Pos[1].Tag, Reason: ExitDied})
	if r.Pos[2].Donor != None {
		t.Fatalf("donor %d after its death", r.Pos[2].Donor)
	}
	if _, _, err := Next(r, Event{Kind: EvRestored, Pos: 2, Tag: 77}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("restore without a donor: %v", err)
	}
	// A starting entry whose member died is vacated by its claim.
	r, _ = step(t, r, Event{Kind: EvClaim, Pos: 1, Claim: 6})
	if _, _, err := Next(r, Event{Kind: EvDeath, Pos: 1, Claim: 7, Reason: ExitMemberDied}); !errors.Is(err, ErrStale) {
		t.Fatalf("vacate another claim: %v", err)
	}
	r, _ = step(t, r, Event{Kind: EvDeath, Pos: 1, Claim: 6, Reason: ExitMemberDied})
	if r.Pos[1].State != Vacant || r.Pos[1].Reason != ExitMemberDied {
		t.Fatalf("vacated: %+v", r.Pos[1])
	}
}

func TestStopStart(t *testing.T) {
	r := newUnit(t, 2, false)
	r = join(t, r, 0)
	r, _ = step(t, r, Event{Kind: EvStop})
	if _, _, err := Next(r, Event{Kind: EvStopped}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("stopped with a replica: %v", err)
	}
	r, _ = step(t, r, Event{Kind: EvDeath, Pos: 0, Tag: r.Pos[0].Tag, Reason: ExitFailStop})
	r, _ = step(t, r, Event{Kind: EvStopped, HaveResting: true})
	if r.State != Resting {
		t.Fatalf("state %d", r.State)
	}
	if _, _, err := Next(r, Event{Kind: EvClaim, Pos: 0, Claim: 1}); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("claim while resting: %v", err)
	}
	r, _ = step(t, r, Event{Kind: EvStart})
	gen := r.Gen
	r, _ = step(t, r, Event{Kind: EvClaim, Pos: 0, Claim: 9})
	r, eff := step(t, r, Event{Kind: EvRegister, Pos: 0, Claim: 9, Tag: 3, Pid: 4, HaveResting: true})
	if r.Gen != gen || eff&EffRestoreResting == 0 {
		t.Fatalf("restart from rest: gen %d (was %d) eff %b", r.Gen, gen, eff)
	}
}

func TestPlace(t *testing.T) {
	r := newUnit(t, 3, true)
	r = join(t, r, 0) // hosted by peer 0
	p, ok := Place(r, 1, []uint8{0, 5, 6})
	if !ok || p == 0 {
		t.Fatalf("placed on %d %v: peer 0 hosts a position already", p, ok)
	}
	q, _ := Place(r, 1, []uint8{6, 5, 0})
	if p != q {
		t.Fatalf("the choice depends on the order of members: %d vs %d", p, q)
	}
	if _, ok := Place(r, 1, nil); ok {
		t.Fatal("placed with no member")
	}
}

func TestDecodeRefusesBrokenRecords(t *testing.T) {
	r := newUnit(t, 2, false)
	r = join(t, r, 0)
	b, _ := r.Encode()
	cases := map[string]func(b []byte){
		"magic":          func(b []byte) { b[0] = 0 },
		"primary vacant": func(b []byte) { b[rlPrimary] = 1 },
		"sender none":    func(b []byte) { b[rlSender] = None },
		"chain":          func(b []byte) { b[rlChain] = 0 },
		"beyond R":       func(b []byte) { b[rlPositions+3*posSize+peState] = byte(Starting) },
		// Byte 30 was reserved until it became rlDiverge (divergence
		// policy): its bits 2-6 are still reserved.
		"reserved":        func(b []byte) { b[rlDiverge] = 0x04 },
		"reserved bit 6":  func(b []byte) { b[rlDiverge] = 0x40 },
		"name":            func(b []byte) { b[rlName] = 0 },
		"vacant with pid": func(b []byte) { b[rlPositions+posSize+pePid] = 1 },
	}
	for name, mut := range cases {
		d := append([]byte(nil), b...)
		mut(d)
		if _, err := Decode(d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Decode(b[:100]); !errors.Is(err, ErrTruncated) {
		t.Errorf("short: %v", err)
	}
}

func TestProgressRoundTrip(t *testing.T) {
	p := &Progress{Flags: FlagHalted, Position: 2, Role: SeenSender, Tag: 5, Epoch: 3, Received: 90, Applied: 80, Hold: 70,
		LSNOut: 60, ResendInputs: 20, ResendBytes: 2000, OutHash: 1, CheckLSN: 50, CheckHash: 2, Heartbeat: 99,
		Inputs: 80, Outputs: 60, LastMsgID: [24]byte{1}, XferJoiner: 1, XferTag: 9}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeProgress(b)
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := DecodeProgress(make([]byte, RecordSize)); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("never written: %v", err)
	}
	p.Applied = 100
	if _, err := p.Encode(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("applied past received: %v", err)
	}
}
