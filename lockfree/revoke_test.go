package lockfree

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"
	"time"
)

// TestRevokeLiveOwner revokes an owner while its goroutine is busy moving
// messages between queues in units of work: the owner must see
// ErrOwnerRevoked, nothing may be lost or duplicated, and the checker must
// be clean. Repeated with revocations at random moments.
func TestRevokeLiveOwner(t *testing.T) {
	s := newStructure(t, smallParams)
	admin := register(t, s)
	qa := mustQueue(t, admin, "A", QueueAttrs{})
	qb := mustQueue(t, admin, "B", QueueAttrs{})
	const total = 200
	for i := 0; i < total; i++ {
		put(t, admin, qa, fmt.Sprint(i), i%3, false)
	}
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 200; round++ {
		o := register(t, s)
		o.SetRevocable(true)
		done := make(chan error, 1)
		go func(seed int64) {
			r := rand.New(rand.NewSource(seed))
			var m Message
			for {
				from, to := qa, qb
				if r.Intn(2) == 0 {
					from, to = qb, qa
				}
				for k := 0; k < 1+r.Intn(4); k++ {
					err := o.Get(from, GetOptions{Syncpoint: true, Wait: time.Duration(r.Intn(2)) * time.Millisecond}, &m)
					if errors.Is(err, ErrNoMessage) {
						continue
					}
					if err != nil {
						done <- err
						return
					}
					if err := o.Put(to, &Message{Body: m.Body, Priority: m.Priority}, PutOptions{Syncpoint: true}); err != nil {
						done <- err
						return
					}
				}
				var err error
				if r.Intn(4) == 0 {
					err = o.Backout()
				} else {
					err = o.Commit()
				}
				if err != nil {
					done <- err
					return
				}
			}
		}(int64(round))
		time.Sleep(time.Duration(rng.Intn(300)) * time.Microsecond)
		out := OutcomeBackout
		if round%3 == 0 {
			out = OutcomeAuto
		}
		if _, err := s.Revoke(o.Tag(), out); err != nil {
			t.Fatalf("round %d: revoke: %v", round, err)
		}
		if err := <-done; !errors.Is(err, ErrOwnerRevoked) {
			t.Fatalf("round %d: the owner saw %v, want ErrOwnerRevoked", round, err)
		}
		o.Close()
		if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() {
			t.Fatalf("round %d: %v", round, r)
		}
	}
	seen := map[string]int{}
	var m Message
	for _, q := range []QueueID{qa, qb} {
		for admin.Get(q, GetOptions{}, &m) == nil {
			seen[string(m.Body)]++
		}
	}
	if len(seen) != total {
		t.Fatalf("%d distinct messages, want %d", len(seen), total)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("message %s %d times", k, n)
		}
	}
}

// TestRevokeWaitsOnlyForTheOperation: a revocable owner sleeping in a get
// with a long wait does not hold up a revoker.
func TestRevokeDoesNotWaitForASleepingGet(t *testing.T) {
	s := newStructure(t, smallParams)
	admin := register(t, s)
	q := mustQueue(t, admin, "Q", QueueAttrs{})
	o := register(t, s)
	o.SetRevocable(true)
	done := make(chan error, 1)
	go func() {
		var m Message
		done <- o.Get(q, GetOptions{Wait: time.Minute}, &m)
	}()
	for s.Waiters(q) == 0 {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	if _, err := s.Revoke(o.Tag(), OutcomeBackout); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > time.Second {
		t.Fatalf("revoke waited %v for a sleeping getter", el)
	}
	if err := <-done; !errors.Is(err, ErrOwnerRevoked) {
		t.Fatalf("getter saw %v", err)
	}
	checkOK(t, s)
}

func TestOpenCountsExpiryDecisionLabels(t *testing.T) {
	s := newStructure(t, smallParams)
	a := register(t, s)
	b, err := s.RegisterLabel(42)
	if err != nil {
		t.Fatal(err)
	}
	q := mustQueue(t, a, "Q", QueueAttrs{})
	a.CountOpen(q, 1, 0)
	b.CountOpen(q, 1, 1)
	b.CountOpen(q, 0, 1)
	if info, _ := s.QueueInfo(q); info.OpenIn != 2 || info.OpenOut != 2 {
		t.Fatalf("open counts %+v", info)
	}
	if info, ok := s.Owner(b.Tag().Slot()); !ok || info.Label != 42 || !info.Registered {
		t.Fatalf("owner info %+v", info)
	}
	// A repaired owner's handles are gone.
	if _, err := s.RepairWith(b.Tag(), OutcomeBackout, true); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.QueueInfo(q); info.OpenIn != 1 || info.OpenOut != 0 {
		t.Fatalf("after repair %+v", info)
	}
	// Expiry scan.
	past := time.Now().Add(-time.Second).UnixNano()
	for i := 0; i < 10; i++ {
		exp := int64(0)
		if i%2 == 0 {
			exp = past
		}
		a.Put(q, &Message{Body: []byte{byte(i)}, Expiry: exp}, PutOptions{})
	}
	if n, err := a.RemoveExpired(q); err != nil || n != 5 {
		t.Fatalf("removed %d %v", n, err)
	}
	if d := s.Depth(q); d != 5 {
		t.Fatalf("depth %d", d)
	}
	// A decision recorded in one structure decides elsewhere.
	c := register(t, s)
	if s.Decision(c.Tag()) != OutcomeBackout {
		t.Fatal("no decision yet")
	}
	c.DecideCommit()
	if s.Decision(c.Tag()) != OutcomeCommit {
		t.Fatal("decision not recorded")
	}
	c.EndDecision()
	if s.Decision(c.Tag()) != OutcomeBackout {
		t.Fatal("decision not cleared")
	}
	a.CountOpen(q, -1, 0)
	a.Close()
	c.Close()
	checkOK(t, s)
}

// TestFenceWaitsForTheOperationInFlight: Fence returns only once the
// owner's operation in flight has ended; from then on the owner's records
// do not change (EndDecision after the fence leaves the decision for the
// repairer) and its next operation fails.
func TestFenceWaitsForTheOperationInFlight(t *testing.T) {
	s := newStructure(t, smallParams)
	admin := register(t, s)
	q := mustQueue(t, admin, "Q", QueueAttrs{})
	o := register(t, s)
	o.SetRevocable(true)
	if err := o.Put(q, &Message{Body: []byte("a")}, PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := o.DecideCommit(); err != nil {
		t.Fatal(err)
	}
	if err := o.begin(); err != nil { // an operation in flight
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Fence(o.Tag()) }()
	select {
	case err := <-done:
		t.Fatalf("fence returned (%v) while an operation was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	o.end()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	o.EndDecision()
	if d := s.Decision(o.Tag()); d != OutcomeCommit {
		t.Fatalf("decision after a fenced EndDecision: %v", d)
	}
	if err := o.Put(q, &Message{Body: []byte("b")}, PutOptions{}); !errors.Is(err, ErrOwnerRevoked) {
		t.Fatalf("put after fence: %v", err)
	}
	if _, err := s.RepairWith(o.Tag(), s.Decision(o.Tag()), true); err != nil {
		t.Fatal(err)
	}
	if d := s.Depth(q); d != 1 {
		t.Fatalf("depth %d after the committing owner was repaired, want 1", d)
	}
	o.Close()
	checkOK(t, s)
}

// TestFenceRefusesAnUnfinishedRegistration: a live owner whose registration
// has not recorded its process yet cannot be fenced (ErrOwnerBusy); once it
// has, it can.
func TestFenceRefusesAnUnfinishedRegistration(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	o.SetRevocable(true)
	off := s.ownerOff(o.Tag().Slot())
	pid := s.load(off + ownPid)
	s.store(off+ownPid, 0) // as between the claim and the end of RegisterSlotLabel
	if err := s.Fence(o.Tag()); !errors.Is(err, ErrOwnerBusy) {
		t.Fatalf("fence of a registering owner: %v", err)
	}
	s.store(off+ownPid, pid)
	if _, err := s.Revoke(o.Tag(), OutcomeBackout); err != nil {
		t.Fatal(err)
	}
	if err := o.Check(); !errors.Is(err, ErrOwnerRevoked) {
		t.Fatalf("check after revoke: %v", err)
	}
	checkOK(t, s)
}

// TestCloseClearsOpenCounts: handles an owner leaves open stop counting
// when it closes.
func TestCloseClearsOpenCounts(t *testing.T) {
	s := newStructure(t, smallParams)
	admin := register(t, s)
	q := mustQueue(t, admin, "Q", QueueAttrs{})
	o := register(t, s)
	o.CountOpen(q, 1, 1)
	o.CountOpen(q, 1, 0)
	if info, _ := s.QueueInfo(q); info.OpenIn != 2 || info.OpenOut != 1 {
		t.Fatalf("open counts %+v", info)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.QueueInfo(q); info.OpenIn != 0 || info.OpenOut != 0 {
		t.Fatalf("open counts after close %+v", info)
	}
	checkOK(t, s)
}

// TestStatusReservationOfAStoppedHolder: a writer does not wait for ever for
// a live holder of a status slot's reservation (a stopped process): it
// gets ErrStatusBusy, and succeeds once the reservation is gone.
func TestStatusReservationOfAStoppedHolder(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	rec := make([]byte, s.StatusSize())
	ctl := s.statusOff(0)
	w := s.load(ctl)
	s.store(ctl, w|uint64(b.Tag())) // b reserved the slot and stopped
	after := append([]byte(nil), rec...)
	after[0] = 1
	if err := a.CompareAndSwapStatus(0, rec, after); !errors.Is(err, ErrStatusBusy) {
		t.Fatalf("CAS against a live reservation: %v", err)
	}
	s.store(ctl, w)
	if err := a.CompareAndSwapStatus(0, rec, after); err != nil {
		t.Fatal(err)
	}
}

// TestRepairSweepsOnlyOwnersThatTook: repairing an owner that never took
// anything (it only looked: depths, browses) does not sweep the structure;
// one that holds a message (a claim), or an uncommitted put (entries from
// the pool), is swept, and its work undone.
func TestRepairSweepsOnlyOwnersThatTook(t *testing.T) {
	s := newStructure(t, smallParams)
	a, idle, getter, putter := register(t, s), register(t, s), register(t, s), register(t, s)
	for _, o := range []*Owner{idle, getter, putter} {
		o.SetRevocable(true)
	}
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "m1", 0, false)
	put(t, a, q, "m2", 0, false)
	if d := s.Depth(q); d != 2 {
		t.Fatalf("depth %d", d)
	}
	var m Message
	if err := idle.BrowseNext(idle.NewBrowseCursor(q), GetOptions{}, &m); err != nil || string(m.Body) != "m1" {
		t.Fatalf("browse: %q %v", m.Body, err)
	}
	if got := get(t, getter, q, true); got != "m1" {
		t.Fatal(got)
	}
	put(t, putter, q, "uncommitted", 0, true)
	for _, c := range []struct {
		o      *Owner
		sweeps int64
	}{{idle, 0}, {getter, 1}, {putter, 1}} {
		n0 := repairSweeps.Load()
		if _, err := s.Revoke(c.o.Tag(), OutcomeBackout); err != nil {
			t.Fatal(err)
		}
		if n := repairSweeps.Load() - n0; n != c.sweeps {
			t.Fatalf("owner %v: %d sweeps, want %d", c.o.Tag(), n, c.sweeps)
		}
	}
	for _, want := range []string{"m1", "m2"} {
		if got := get(t, a, q, false); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expectEmpty(t, a, q)
	checkOK(t, s)
}
