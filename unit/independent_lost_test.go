package unit_test

// stateLost with inputs logged by reference (found by the review of
// e47dd05, each seen failing with its fix undone).

import (
	"errors"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// TestIndependentStateLostSharedMsgID: A (MsgID M, prio 0) logged by ref at
// LSN 1, B (M, prio 9, other body) at LSN 2, in two log messages; both
// replicas die with nothing trimmed; the new generation's stateLost must
// move both inputs to the DEADQ (B is met first by takeRef(LSN 1) and set
// aside; takeRef(LSN 2) must find it among the set-aside ones).
func TestIndependentStateLostSharedMsgID(t *testing.T) {
	release := make(chan struct{})
	u := startReuse(t, secondaryHeldAt1(release))
	id := [24]byte{'S', 'A', 'M', 'E'}
	u.put(&mq.Message{MsgID: id, Priority: 0, Body: []byte("A first, priority 0")})
	waitFor(t, "the primary to take LSN 1", func() bool { return progressOf(t, u.watch, 0) >= 1 })
	u.put(&mq.Message{MsgID: id, Priority: 9, Body: []byte("B second, priority 9")})
	waitFor(t, "the primary to take LSN 2", func() bool { return progressOf(t, u.watch, 0) >= 2 })
	time.Sleep(100 * time.Millisecond)
	gen := roleOf(t, u.watch).Gen
	u.stop[1]()
	u.stop[0]()
	<-u.stopped[0]
	close(release)
	<-u.stopped[1]
	dead(t, u.watch, 0)
	dead(t, u.watch, 1)
	t.Logf("errs %v; role %+v", u.errs, roleOf(t, u.watch))
	h := &hdrRec{}
	u.run(0, h)
	waitFor(t, "a new generation's primary", func() bool { r := roleOf(t, u.watch); return r.Gen > gen && r.Primary == 0 })
	time.Sleep(500 * time.Millisecond)
	select {
	case <-u.stopped[0]:
		t.Fatalf("the new primary stopped: %v", u.errs[0])
	default:
	}
	c, err := mq.Connect(u.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	count := func(name string) (n int, bodies []string) {
		q, err := c.Open(name, mq.OpenOptions{Browse: true})
		if err != nil {
			t.Fatal(err)
		}
		cur, err := q.Browse()
		if err != nil {
			t.Fatal(err)
		}
		for {
			m, err := cur.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			if d, b, err := mq.ParseDLH(m.Body); err == nil {
				bodies = append(bodies, d.DestQ+": "+string(b[:min(len(b), 24)]))
			} else {
				bodies = append(bodies, string(m.Body))
			}
		}
	}
	nIn, in := count("IN")
	nDLQ, dlq := count("DLQ")
	t.Logf("gen-2 handler saw %q; IN %d %q; DLQ %d %q", h.Seen, nIn, in, nDLQ, dlq)
	if len(h.Seen) != 0 || nIn != 0 {
		t.Fatalf("a logged input processed again in the new generation or left on IN")
	}
}

// TestIndependentStateLostAfterAlterToLate: inputs logged by reference under
// INDEPENDENT, both replicas die, the unit is stopped, altered to
// LOGGING(LATE) and started: the new generation's stateLost must move the
// referenced inputs (fix 3 of e47dd05), not leave them to be processed again.
func TestIndependentStateLostAfterAlterToLate(t *testing.T) {
	release := make(chan struct{})
	u := startReuse(t, secondaryHeldAt1(release))
	for i := 0; i < 3; i++ {
		u.put(&mq.Message{Body: []byte{'x', byte('0' + i)}})
	}
	waitFor(t, "the primary to take 3", func() bool { return progressOf(t, u.watch, 0) >= 3 })
	time.Sleep(100 * time.Millisecond)
	u.stop[1]()
	u.stop[0]()
	<-u.stopped[0]
	close(release)
	<-u.stopped[1]
	dead(t, u.watch, 0)
	dead(t, u.watch, 1)
	u.exec("STOP SERVICE(LEDGER)")
	u.exec("ALTER SERVICE(LEDGER) LOGGING(LATE)")
	u.exec("START SERVICE(LEDGER)")
	gen := roleOf(t, u.watch).Gen
	h := &hdrRec{}
	u.run(0, h)
	waitFor(t, "a new generation's primary", func() bool { r := roleOf(t, u.watch); return r.Gen > gen && r.Primary == 0 })
	time.Sleep(500 * time.Millisecond)
	t.Logf("role %+v; gen-2 handler saw %q", roleOf(t, u.watch).Logging, h.Seen)
	if len(h.Seen) != 0 {
		t.Fatalf("logged inputs processed again after LOGGING(LATE): %q", h.Seen)
	}
}
