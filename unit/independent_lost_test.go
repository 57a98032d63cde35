package unit_test

// stateLost with inputs logged by reference (found by the review of
// e47dd05, each seen failing with its fix undone).

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/qm"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit"
)

// TestIndependentStateLostSharedMsgID: A (MsgID M, prio 0) logged by ref at
// LSN 1, B (M, prio 9, other body) at LSN 2, in two log messages; both
// replicas die with nothing trimmed; the new generation's stateLost must
// move both inputs to the DEADQ (B is met first by takeRef(LSN 1) and set
// aside; takeRef(LSN 2) must find it among the set-aside ones).
func TestIndependentStateLostSharedMsgID(t *testing.T) {
	release := make(chan struct{})
	hs := []*hdrRec{{}, {hold: func(lsn uint64) {
		if lsn == 1 {
			<-release
		}
	}}}
	u := startReuse(t, hs)
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- unit.RunWith(ctx, unit.ReplicaConfig{Connect: u.opts, Service: "LEDGER", Position: 0, BatchSize: 16, Poll: 20 * time.Millisecond}, h)
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "a new generation's primary", func() bool { r := roleOf(t, u.watch); return r.Gen > gen && r.Primary == 0 })
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the new primary stopped: %v", err)
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
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, UnitsByHand: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(context.Background())
	go m.Run(mctx)
	t.Cleanup(func() { mcancel(); m.Stop() })
	exec := func(c string) {
		if r := m.Exec(c); !r.OK {
			t.Fatalf("%s: %s", c, r.Error)
		}
	}
	for _, c := range []string{"DEFINE QLOCAL(IN) MAXDEPTH(100000) INDXTYPE(MSGID)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		"DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(2) LOGGING(INDEPENDENT)",
		"DEFINE QLOCAL(DLQ) MAXDEPTH(100000)", "ALTER QMGR DEADQ(DLQ)"} {
		exec(c)
	}
	opts := mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir}
	watch, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Disconnect()
	release := make(chan struct{})
	hs := []*hdrRec{{}, {hold: func(lsn uint64) {
		if lsn == 1 {
			<-release
		}
	}}}
	var stops [2]context.CancelFunc
	var dones [2]chan error
	run := func(pos int, h *hdrRec) {
		var ctx context.Context
		ctx, stops[pos] = context.WithCancel(context.Background())
		dones[pos] = make(chan error, 1)
		go func() {
			dones[pos] <- unit.RunWith(ctx, unit.ReplicaConfig{Connect: opts, Service: "LEDGER", Position: pos, BatchSize: 16, Poll: 20 * time.Millisecond}, h)
		}()
	}
	run(0, hs[0])
	waitFor(t, "the primary", func() bool { return roleOf(t, watch).Primary == 0 })
	run(1, hs[1])
	waitFor(t, "the sender", func() bool { return roleOf(t, watch).Sender == 1 })
	prod, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Disconnect()
	in, err := prod.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := in.Put(&mq.Message{Body: []byte{'x', byte('0' + i)}}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the primary to take 3", func() bool { return progressOf(t, watch, 0) >= 3 })
	time.Sleep(100 * time.Millisecond)
	stops[1]()
	stops[0]()
	<-dones[0]
	close(release)
	<-dones[1]
	dead(t, watch, 0)
	dead(t, watch, 1)
	exec("STOP SERVICE(LEDGER)")
	exec("ALTER SERVICE(LEDGER) LOGGING(LATE)")
	exec("START SERVICE(LEDGER)")
	gen := roleOf(t, watch).Gen
	h := &hdrRec{}
	run(0, h)
	defer func() { stops[0](); <-dones[0] }()
	waitFor(t, "a new generation's primary", func() bool { r := roleOf(t, watch); return r.Gen > gen && r.Primary == 0 })
	time.Sleep(500 * time.Millisecond)
	t.Logf("role %+v; gen-2 handler saw %q", roleOf(t, watch).Logging, h.Seen)
	if len(h.Seen) != 0 {
		t.Fatalf("logged inputs processed again after LOGGING(LATE): %q", h.Seen)
	}
}
