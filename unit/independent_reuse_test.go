package unit_test

// LOGGING(INDEPENDENT) with a MsgID used by two inputs (found by the
// adversarial review of the merge 0477acd).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit"
)

// hdrRec records, per input, the headers the handler saw.
type hdrRec struct {
	Seen []string
	hold func(lsn uint64)
}

func (h *hdrRec) Handle(ctx *unit.Ctx, in *unit.Input) error {
	if h.hold != nil {
		h.hold(in.LSN)
	}
	h.Seen = append(h.Seen, fmt.Sprintf("lsn %d body %q correl %q prio %d put %d", in.LSN, in.Body, in.CorrelID[:4], in.Priority, in.PutTime.UnixNano()))
	ctx.Send("CONFIRM", &mq.Message{Body: fmt.Appendf(nil, "%d %s correl %s", in.LSN, in.Body, in.CorrelID[:2])})
	return nil
}
func (h *hdrRec) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(h) }
func (h *hdrRec) Restore(r io.Reader) error  { return json.NewDecoder(r).Decode(h) }

type reuseUnit struct {
	t       *testing.T
	m       *qm.Member
	opts    mq.ConnectOptions
	watch   *mq.Conn
	prod    *mq.Conn
	in      *mq.Queue
	hs      []*hdrRec
	errs    []error
	stop    []context.CancelFunc
	stopped []chan struct{}
	wg      sync.WaitGroup
}

func startReuse(t *testing.T, hs []*hdrRec) *reuseUnit { return startReuseWith(t, hs, "") }

func startReuseWith(t *testing.T, hs []*hdrRec, attrs string) *reuseUnit {
	m, g := startMemberM(t, "DEFINE QLOCAL(IN) MAXDEPTH(100000) INDXTYPE(MSGID)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		"DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(2) LOGGING(INDEPENDENT)"+attrs,
		"DEFINE QLOCAL(DLQ) MAXDEPTH(100000)", "ALTER QMGR DEADQ(DLQ)")
	u := &reuseUnit{t: t, m: m, hs: hs, errs: make([]error, 2), stop: make([]context.CancelFunc, 2), stopped: make([]chan struct{}, 2)}
	u.opts = mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	var err error
	if u.watch, err = mq.Connect(u.opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.watch.Disconnect() })
	t.Cleanup(func() {
		for _, s := range u.stop {
			if s != nil {
				s()
			}
		}
		u.wg.Wait()
	})
	u.run(0, hs[0])
	waitFor(t, "the primary", func() bool { return roleOf(t, u.watch).Primary == 0 })
	u.run(1, hs[1])
	waitFor(t, "the secondary to take the sender role", func() bool { return roleOf(t, u.watch).Sender == 1 })
	if u.prod, err = mq.Connect(u.opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.prod.Disconnect() })
	if u.in, err = u.prod.Open("IN", mq.OpenOptions{Output: true}); err != nil {
		t.Fatal(err)
	}
	return u
}

// run starts the replica in position pos with handler h (stopped by
// u.stop[pos], u.stopped[pos] closed when it returned u.errs[pos]).
func (u *reuseUnit) run(pos int, h *hdrRec) {
	u.wg.Add(1)
	u.stopped[pos] = make(chan struct{})
	var rctx context.Context
	rctx, u.stop[pos] = context.WithCancel(context.Background())
	go func() {
		defer u.wg.Done()
		defer close(u.stopped[pos])
		u.errs[pos] = unit.RunWith(rctx, unit.ReplicaConfig{Connect: u.opts, Service: "LEDGER", Position: pos, BatchSize: 16, Poll: 20 * time.Millisecond}, h)
	}()
}

// exec runs an MQSC command on the member.
func (u *reuseUnit) exec(c string) {
	if r := u.m.Exec(c); !r.OK {
		u.t.Fatalf("%s: %s", c, r.Error)
	}
}

// secondaryHeldAt1 is the handlers of a primary and of a secondary whose
// Handle of LSN 1 waits until release is closed.
func secondaryHeldAt1(release chan struct{}) []*hdrRec {
	return []*hdrRec{{}, {hold: func(lsn uint64) {
		if lsn == 1 {
			<-release
		}
	}}}
}

func (u *reuseUnit) put(m *mq.Message) {
	if err := u.in.Put(m, mq.PutOptions{}); err != nil {
		u.t.Fatal(err)
	}
}

// confirmations gets what CONFIRM holds after a settle time.
func (u *reuseUnit) confirmations(want int) []string {
	c, err := mq.Connect(u.opts)
	if err != nil {
		u.t.Fatal(err)
	}
	defer c.Disconnect()
	q, err := c.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		u.t.Fatal(err)
	}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		wait := time.Until(deadline)
		if len(got) >= want {
			wait = 500 * time.Millisecond
		}
		m, err := q.Get(mq.GetOptions{Wait: wait})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			u.t.Fatal(err)
		}
		got = append(got, string(m.Body))
	}
	return got
}

// TestIndependentRetakePriorityInversion: two inputs with one MsgID, the first
// taken at priority 0, the second put later at priority 9. Both logged by
// reference and held (the secondary is held before LSN 1, so nothing is
// trimmed). The primary stops; its views go back at their places, the
// priority-9 one first in delivery order. The promoted secondary's
// indepRetake: takeRef(LSN 1) gets the priority-9 message first (its
// body differs), holds it aside in others until the end, takes LSN 1's;
// takeRef(LSN 2) then cannot find its input (held aside by itself):
// ErrLogGap, the promoted primary fails stop.
func TestIndependentRetakePriorityInversion(t *testing.T) {
	release := make(chan struct{})
	hs := secondaryHeldAt1(release)
	u := startReuse(t, hs)
	id := [24]byte{'S', 'A', 'M', 'E'}
	u.put(&mq.Message{MsgID: id, Priority: 0, Body: []byte("first, priority 0")})
	waitFor(t, "the primary to take LSN 1", func() bool { return progressOf(t, u.watch, 0) >= 1 })
	u.put(&mq.Message{MsgID: id, Priority: 9, Body: []byte("second, priority 9")})
	waitFor(t, "the primary to take LSN 2", func() bool { return progressOf(t, u.watch, 0) >= 2 })
	time.Sleep(100 * time.Millisecond) // the choices of LSN 2 logged by the idle primary
	u.stop[0]()
	<-u.stopped[0]
	dead(t, u.watch, 0)
	close(release)
	got := u.confirmations(2)
	t.Logf("confirmations: %q", got)
	select {
	case <-u.stopped[1]:
		t.Fatalf("the promoted primary stopped: %v", u.errs[1])
	case <-time.After(200 * time.Millisecond):
	}
	if len(got) != 2 {
		t.Fatalf("%d confirmations, want 2", len(got))
	}
}

// TestIndependentReadInPlaceOtherHeaders: two inputs with one MsgID and one
// body (a producer's retry: same MsgID and body; here another CorrelID
// and priority too) in one batch. The secondary reads LSN 2 in place by
// browsing from the head for the first message with the MsgID, length
// and hash: LSN 1's, still held. It processes LSN 2 with LSN 1's headers
// (CorrelID, priority, put time), which the primary did not: the states
// differ, silently (the ref's logged PutTime is not checked).
func TestIndependentReadInPlaceOtherHeaders(t *testing.T) {
	hs := []*hdrRec{{}, {}}
	u := startReuse(t, hs)
	id := [24]byte{'D', 'U', 'P'}
	if err := u.in.Put(&mq.Message{MsgID: id, CorrelID: [24]byte{'C', '1'}, Priority: 5, Body: []byte("same body")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if err := u.in.Put(&mq.Message{MsgID: id, CorrelID: [24]byte{'C', '2'}, Priority: 5, Body: []byte("same body")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := u.prod.Commit(); err != nil {
		t.Fatal(err)
	}
	got := u.confirmations(2)
	waitFor(t, "the secondary to apply LSN 2", func() bool { return progressOf(t, u.watch, 1) >= 2 })
	u.stop[0]()
	u.stop[1]()
	u.wg.Wait()
	t.Logf("confirmations %q", got)
	p, s := fmt.Sprint(hs[0].Seen), fmt.Sprint(hs[1].Seen)
	if p != s {
		t.Fatalf("the replicas processed different inputs:\nprimary   %s\nsecondary %s", p, s)
	}
}

// TestIndependentRetakeOtherHeaders: A (MsgID M, body X, CorrelID C1,
// priority 0) taken and logged by reference; the primary halts
// (RESENDQ(1), the secondary held before LSN 1) before B (MsgID M, body X,
// CorrelID C2, priority 9) arrives. The primary stops; the promoted
// secondary's indepRetake for LSN 1 gets B first (same MsgID, length,
// hash) and holds it as LSN 1's; A, logged and processed already, is
// taken as new input: C1 is processed twice, C2 never.
func TestIndependentRetakeOtherHeaders(t *testing.T) {
	release := make(chan struct{})
	hs := secondaryHeldAt1(release)
	u := startReuseWith(t, hs, " RESENDQ(1)")
	id := [24]byte{'S', 'A', 'M', 'E'}
	u.put(&mq.Message{MsgID: id, CorrelID: [24]byte{'C', '1'}, Priority: 0, Body: []byte("X")})
	waitFor(t, "the primary to take LSN 1", func() bool { return progressOf(t, u.watch, 0) >= 1 })
	time.Sleep(100 * time.Millisecond)
	u.put(&mq.Message{MsgID: id, CorrelID: [24]byte{'C', '2'}, Priority: 9, Body: []byte("X")})
	time.Sleep(200 * time.Millisecond)
	if p := progressOf(t, u.watch, 0); p != 1 {
		t.Fatalf("the primary applied %d, want it halted at 1", p)
	}
	u.stop[0]()
	<-u.stopped[0]
	dead(t, u.watch, 0)
	close(release)
	got := u.confirmations(2)
	t.Logf("confirmations: %q", got)
	if len(got) != 2 || got[0] == got[1] || !(strings.Contains(got[0], "C1") && strings.Contains(got[1], "C2")) {
		t.Fatalf("confirmations %q: want LSN 1 with C1, LSN 2 with C2", got)
	}
}
