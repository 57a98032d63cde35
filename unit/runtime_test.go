package unit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// ledger is a small stateful handler: transfers between accounts, each
// stamped with the time, a random id and a chosen byte, one confirmation
// per transfer.
type ledger struct {
	Balances map[string]int64
	Applied  int
	Stamps   uint64 // folds every time, random id and choice: replicas agree only if they replayed them
	// hold, when set, is called before each input (a test holds the
	// replica there).
	hold func(lsn uint64)
	// extra, when set, gives a transfer an output before its
	// confirmation (queue "": none).
	extra func(id int64) (queue string, body []byte)
}

func newLedger() *ledger { return &ledger{Balances: map[string]int64{}} }

func (l *ledger) Handle(ctx *unit.Ctx, in *unit.Input) error {
	if l.hold != nil {
		l.hold(in.LSN)
	}
	var id, amount int64
	var from, to string
	if _, err := fmt.Sscanf(string(in.Body), "%d %s %s %d", &id, &from, &to, &amount); err != nil {
		return err
	}
	now := ctx.Now()
	rid := ctx.Rand().Uint64()
	pick := ctx.Choose(func() []byte { return []byte{byte(time.Now().UnixNano())} })
	ok := l.balance(from) >= amount
	if ok {
		l.Balances[from] -= amount
		l.Balances[to] = l.balance(to) + amount
	}
	l.Applied++
	l.Stamps = l.Stamps*31 + uint64(now.UnixNano()) ^ rid + uint64(pick[0])
	if l.extra != nil {
		if q, b := l.extra(id); q != "" {
			ctx.Send(q, &mq.Message{Body: b})
		}
	}
	ctx.Send("CONFIRM", &mq.Message{Body: fmt.Appendf(nil, "%d %d %d %d %v %d", id, ctx.LSN(), now.UnixNano(), rid, ok, pick[0])})
	return nil
}

func (l *ledger) balance(a string) int64 {
	if b, ok := l.Balances[a]; ok {
		return b
	}
	return 1000
}

func (l *ledger) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(l) }
func (l *ledger) Restore(r io.Reader) error  { return json.NewDecoder(r).Decode(l) }

func (l *ledger) digest() string {
	var b bytes.Buffer
	l.Snapshot(&b)
	return b.String()
}

func startMember(t *testing.T, mqsc ...string) group.Config {
	t.Helper()
	_, g := startMemberM(t, mqsc...)
	return g
}

// startMemberM is startMember returning the member too (for commands
// after the start).
func startMemberM(t *testing.T, mqsc ...string) (*qm.Member, group.Config) {
	t.Helper()
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
	for _, c := range mqsc {
		if r := m.Exec(c); !r.OK {
			t.Fatalf("%s: %s", c, r.Error)
		}
	}
	return m, cfg.Group
}

// roleOf reads the unit's role record (status slot 0 of APPL1: the first
// service's STATUSBASE).
func roleOf(t *testing.T, c *mq.Conn) *role.Role {
	t.Helper()
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(0, buf); err != nil {
		t.Fatal(err)
	}
	r, err := role.Decode(buf)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(t0) > 15*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestLatePrimaryAndSender: a unit of two replicas in this process, the
// primary (position 0) and a secondary that takes the sender role, fed
// 1500 transfers: every transfer is confirmed exactly once, the
// confirmations' sequence numbers run 1..n in order, both replicas end in
// the same state, and that state is what a reference ledger reaches
// applying the transfers in LSN order with the primary's logged choices
// (as the confirmations carry them).
func TestLatePrimaryAndSender(t *testing.T) { runLedger(t, 2, 1500, 0) }

// TestFlowControl: RESENDQ is the flow control (design 5.4). The
// secondary (the sender) is held in its handler at LSN heldAt+1 while
// 600 transfers arrive: the primary takes at most RESENDQ inputs beyond
// the secondary's applied LSN (the trim bound), shows itself halted, and
// the log never holds more than its MAXDEPTH (2 x RESENDQ + 64 messages;
// the primary logs 2 inputs a message here, so without the halt it would
// reach it). Released, the secondary catches up, the primary resumes and
// every transfer is confirmed once, in order.
func TestFlowControl(t *testing.T) {
	const resendQ, heldAt = 50, 40
	runLedgerWith(t, ledgerRun{replicas: 2, n: 600, batch: 2, resendQ: resendQ, holdSecondary: heldAt,
		whileHeld: func(t *testing.T, watch *mq.Conn) {
			waitFor(t, "the primary to halt", func() bool { return progressOf(t, watch, 0) >= heldAt+resendQ || haltedOf(t, watch, 0) })
			time.Sleep(300 * time.Millisecond) // room to overrun, were there no halt
			if a := progressOf(t, watch, 0); a > heldAt+resendQ {
				t.Errorf("the primary applied %d inputs, the held secondary %d: more than RESENDQ(%d) beyond it", a, heldAt, resendQ)
			}
			if !haltedOf(t, watch, 0) {
				t.Errorf("the primary's progress does not show it halted")
			}
			if d, max := logDepth(t, watch), int64(2*resendQ+64); d > max {
				t.Errorf("the log holds %d messages, its MAXDEPTH is %d", d, max)
			}
		}})
}

// TestPromotion: the primary stops half way (its connection ends, its
// unit of work in progress is backed out) and the test, standing in for
// the member that recovers its connection, makes the death transition:
// the secondary, already the sender, applies the rest of the log, takes
// input as primary and sender at a new epoch, and every transfer is still
// confirmed once, in sequence, its state the reference's.
func TestPromotion(t *testing.T) { runLedger(t, 2, 1200, 600) }

// TestPromotionNotPolled: with a Poll longer than the test's deadline for
// the confirmations, the secondary still acts on its promotion: the
// change of the role record ends its wait on the log (roleWatch), which
// no longer moves once the primary is gone.
func TestPromotionNotPolled(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1200, killAt: 600, poll: 10 * time.Minute})
}

// TestLatePrimaryAlone: REPLICAS(1): the primary is the sender, its log
// is trimmed as it goes, and every output goes out once.
func TestLatePrimaryAlone(t *testing.T) { runLedger(t, 1, 500, 0) }

// TestFullAndUnknownDestinations: CONFIRM holds 43 messages and its
// consumer starts only after all 600 transfers are put; every 40th
// transfer also sends an output to a queue that does not exist, and
// every 40th another one too long for its queue, each before its
// confirmation. The sender retries the full queue (committing what it
// put, OUT saying how far into an input's outputs it got: the 44th
// transfer's refused output is put, its confirmation is not, so the
// retries must not put the first again), the primary
// halts at RESENDQ, and once the consumer runs every transfer is
// confirmed once, in order; the refused outputs are on the DEADQ, once
// each, in order, behind a dead-letter header with the put's reason,
// their MsgIDs the unit's outputs (their destinations' sequences).
func TestFullAndUnknownDestinations(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 600, resendQ: 100, confirmDepth: 43, refusedOutputs: true})
}

// TestFullDestinationPrimarySender: the same with REPLICAS(1): the
// primary is the sender and retries between its batches.
func TestFullDestinationPrimarySender(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 1, n: 600, resendQ: 100, confirmDepth: 43, refusedOutputs: true})
}

// TestSenderStoppedIdle: the sender (the secondary, held at LSN 100) is
// stopped once the primary has processed every transfer, and its death
// made: the primary becomes the sender with outputs above LSN_out and no
// input to come, and must send them all the same.
func TestSenderStoppedIdle(t *testing.T) {
	const n = 300
	runLedgerWith(t, ledgerRun{replicas: 2, n: n, holdSecondary: 100, stopSender: true,
		whileHeld: func(t *testing.T, watch *mq.Conn) {
			waitFor(t, "the primary to process every transfer", func() bool { return progressOf(t, watch, 0) == n })
		}})
}

// runLedger runs a unit of replicas replicas fed n transfers; with
// killAt > 0 the primary is stopped after killAt of them and its death
// transition made.
func runLedger(t *testing.T, replicas, n, killAt int) {
	runLedgerWith(t, ledgerRun{replicas: replicas, n: n, killAt: killAt})
}

// ledgerRun is what runLedgerWith runs.
type ledgerRun struct {
	replicas, n, killAt int
	batch               int // the replicas' BatchSize (default 16)
	resendQ             int // the service's RESENDQ (0: the default)
	// holdSecondary > 0: the secondary's handler stops before input
	// holdSecondary+1; whileHeld runs once all input is put, then the
	// secondary is released.
	holdSecondary int
	whileHeld     func(t *testing.T, watch *mq.Conn)
	// stopSender: once whileHeld returns, the held secondary (the
	// sender) is stopped as it is released and its death made: the
	// primary becomes the sender with no more input to come.
	stopSender bool
	// confirmDepth > 0: CONFIRM's MAXDEPTH, and its consumer starts
	// 500 ms after the last transfer is put.
	confirmDepth int
	// refusedOutputs: transfers id%40 == 3 send an output to NOWHERE (not
	// defined), id%40 == 5 one too long for SMALL (MAXMSGL 16), before
	// their confirmation; both must reach the DEADQ (DLQ).
	refusedOutputs bool
	// poll: the replicas' Poll (default 20 ms).
	poll time.Duration
	// logging: the service's LOGGING (default LATE).
	logging string
	// sameMsgID: every transfer is put with one MsgID (INDEPENDENT's
	// secondaries and promoted primary tell the inputs apart by length
	// and hash).
	sameMsgID bool
	// persistent: the transfers are persistent (IN is DEFPSIST(YES)).
	persistent bool
	// expiry > 0: every transfer expires that long after it is put.
	expiry time.Duration
}

func runLedgerWith(t *testing.T, lr ledgerRun) {
	replicas, n, killAt := lr.replicas, lr.n, lr.killAt
	if lr.batch == 0 {
		lr.batch = 16
	}
	if lr.poll == 0 {
		lr.poll = 20 * time.Millisecond
	}
	svc := fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(%d)", replicas)
	if lr.resendQ > 0 {
		svc += fmt.Sprintf(" RESENDQ(%d)", lr.resendQ)
	}
	if lr.logging != "" {
		svc += " LOGGING(" + lr.logging + ")"
	}
	confirmDef := "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)"
	if lr.confirmDepth > 0 {
		confirmDef = fmt.Sprintf("DEFINE QLOCAL(CONFIRM) MAXDEPTH(%d)", lr.confirmDepth)
	}
	inDef := "DEFINE QLOCAL(IN) MAXDEPTH(100000)"
	if lr.logging == "INDEPENDENT" {
		inDef += " INDXTYPE(MSGID)" // DEFINE SERVICE requires it
	}
	if lr.persistent {
		inDef += " DEFPSIST(YES)"
	}
	g := startMember(t, inDef, confirmDef, svc,
		"DEFINE QLOCAL(DLQ) MAXDEPTH(100000)", "ALTER QMGR DEADQ(DLQ)", "DEFINE QLOCAL(SMALL) MAXMSGL(16)")
	opts := mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	watch, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Disconnect()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	handlers := []*ledger{newLedger(), newLedger()}
	if lr.refusedOutputs {
		for _, h := range handlers {
			h.extra = refusedOutput
		}
	}
	release := make(chan struct{})
	if lr.holdSecondary > 0 {
		handlers[1].hold = func(lsn uint64) {
			if lsn == uint64(lr.holdSecondary)+1 {
				<-release
			}
		}
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	var stopped [2]chan struct{}
	var stop [2]context.CancelFunc
	run := func(pos int) {
		wg.Add(1)
		stopped[pos] = make(chan struct{})
		var rctx context.Context
		rctx, stop[pos] = context.WithCancel(ctx)
		go func() {
			defer wg.Done()
			defer close(stopped[pos])
			errs[pos] = unit.RunWith(rctx, unit.ReplicaConfig{Connect: opts, Service: "LEDGER", Position: pos, BatchSize: lr.batch, Poll: lr.poll}, handlers[pos])
			if errs[pos] != nil {
				cancel()
			}
		}()
	}
	run(0)
	waitFor(t, "the primary", func() bool { return roleOf(t, watch).Primary == 0 || ctx.Err() != nil })
	sender, primary := uint8(0), uint8(0)
	if replicas > 1 {
		run(1)
		sender = 1
		waitFor(t, "the secondary to take the sender role", func() bool { return roleOf(t, watch).Sender == 1 || ctx.Err() != nil })
	}
	if ctx.Err() != nil {
		wg.Wait()
		t.Fatalf("a replica stopped: %v", errors.Join(errs...))
	}

	prod, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Disconnect()
	in, err := prod.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	accounts := []string{"a", "b", "c", "d"}
	transfers := map[int64]string{}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%d %s %s %d", i, accounts[i%4], accounts[(i/4+1+i)%4], 1+i*7%300)
		transfers[int64(i)] = body
		msg := &mq.Message{Body: []byte(body)}
		if lr.sameMsgID {
			msg.MsgID = [24]byte{'S', 'A', 'M', 'E'}
		}
		if lr.expiry > 0 {
			msg.Expiry = time.Now().Add(lr.expiry)
		}
		if err := in.Put(msg, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			if err := prod.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		if i+1 == killAt {
			// Let the primary get going, then stop it in the middle of
			// its work and make its death transition as its member would
			// once its connection is recovered.
			waitFor(t, "the primary to process some input", func() bool { return progressOf(t, watch, 0) >= uint64(killAt/3) })
			stop[0]()
			<-stopped[0]
			before := roleOf(t, watch)
			dead(t, watch, 0)
			after := roleOf(t, watch)
			if after.Primary != 1 || after.Sender != 1 || after.Epoch <= before.Epoch {
				t.Fatalf("after the death: primary %d sender %d epoch %d (was %d)", after.Primary, after.Sender, after.Epoch, before.Epoch)
			}
			sender, primary = 1, 1
		}
	}
	if err := prod.Commit(); err != nil {
		t.Fatal(err)
	}
	if lr.holdSecondary > 0 {
		lr.whileHeld(t, watch)
		if lr.stopSender {
			stop[1]()
		}
		close(release)
		if lr.stopSender {
			<-stopped[1]
			dead(t, watch, 1)
			sender = 0
		}
	}
	if lr.confirmDepth > 0 {
		time.Sleep(500 * time.Millisecond)
	}

	cons, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Disconnect()
	confirm, err := cons.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	type conf struct {
		id, lsn, at int64
		rid         uint64
		ok          bool
		pick        int
	}
	var got []conf
	seen := map[int64]bool{}
	source := xxhash.Sum64String("LEDGER")
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < n+1 && time.Now().Before(deadline) {
		wait := time.Until(deadline)
		if len(got) == n {
			wait = 300 * time.Millisecond // nothing more may come
		}
		m, err := confirm.Get(mq.GetOptions{Wait: wait})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id, err := logrec.ParseOutputID(m.MsgID)
		if err != nil {
			t.Fatalf("confirmation %d: MsgID: %v", len(got), err)
		}
		if id.Source != source || id.Gen != 1 || id.Seq != uint64(len(got)+1) {
			t.Fatalf("confirmation %d: output id %+v, want source %x generation 1 sequence %d", len(got), id, source, len(got)+1)
		}
		var c conf
		f := strings.Fields(string(m.Body))
		c.id, _ = strconv.ParseInt(f[0], 10, 64)
		c.lsn, _ = strconv.ParseInt(f[1], 10, 64)
		c.at, _ = strconv.ParseInt(f[2], 10, 64)
		c.rid, _ = strconv.ParseUint(f[3], 10, 64)
		c.ok = f[4] == "true"
		c.pick, _ = strconv.Atoi(f[5])
		if seen[c.id] {
			t.Fatalf("transfer %d confirmed twice", c.id)
		}
		seen[c.id] = true
		got = append(got, c)
	}
	if len(got) != n {
		t.Fatalf("%d confirmations of %d transfers (replica errors: %v)", len(got), n, errors.Join(errs...))
	}
	if r := roleOf(t, watch); r.Primary != primary || r.Sender != sender {
		t.Fatalf("roles: primary %d sender %d", r.Primary, r.Sender)
	}
	if primary != sender {
		// An idle primary drops from its resend queue what the sender
		// sent, and says so (DISPLAY SVSTATUS, the metrics).
		waitFor(t, "the idle primary's progress to show every output sent", func() bool {
			p := progressRec(t, watch, int(primary))
			return p != nil && p.LSNOut == uint64(n) && p.ResendInputs == 0
		})
	}
	// Let the primary see the last LSN_out, then stop both.
	time.Sleep(100 * time.Millisecond)
	cancel()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	// The reference: the transfers in LSN order, with the logged choices.
	sort.Slice(got, func(i, j int) bool { return got[i].lsn < got[j].lsn })
	ref := newLedger()
	for i, c := range got {
		if c.lsn != int64(i+1) {
			t.Fatalf("LSNs not 1..%d: %d at %d", n, c.lsn, i)
		}
		var id, amount int64
		var from, to string
		fmt.Sscanf(transfers[c.id], "%d %s %s %d", &id, &from, &to, &amount)
		ok := ref.balance(from) >= amount
		if ok != c.ok {
			t.Fatalf("transfer %d: confirmed ok=%v, the reference says %v", c.id, c.ok, ok)
		}
		if ok {
			ref.Balances[from] -= amount
			ref.Balances[to] = ref.balance(to) + amount
		}
		ref.Applied++
		ref.Stamps = ref.Stamps*31 + uint64(c.at) ^ c.rid + uint64(c.pick)
	}
	for k := 0; k < replicas; k++ {
		if k == 0 && killAt > 0 || k == 1 && lr.stopSender {
			continue // stopped half way
		}
		if d := handlers[k].digest(); d != ref.digest() {
			t.Fatalf("replica %d's state differs from the reference:\nreplica   %s\nreference %s", k, d, ref.digest())
		}
	}
	if lr.refusedOutputs {
		checkDeadLetters(t, watch, n)
	}
	// The log holds at most what the secondary had not applied when the
	// primary last trimmed.
	if replicas == 1 {
		if d := logDepth(t, watch); d > 1 {
			t.Fatalf("the log of a unit without secondaries holds %d messages", d)
		}
	}
}

// refusedOutput is the extra output of TestFullAndUnknownDestinations.
func refusedOutput(id int64) (string, []byte) {
	switch id % 40 {
	case 3:
		return "NOWHERE", fmt.Appendf(nil, "nowhere %d", id)
	case 5:
		return "SMALL", fmt.Appendf(nil, "too long for SMALL: transfer %d", id)
	}
	return "", nil
}

// checkDeadLetters checks that the DEADQ holds the refused outputs of n
// transfers, once each, in order, behind a dead-letter header with the
// put's reason and each output's identity.
func checkDeadLetters(t *testing.T, c *mq.Conn, n int) {
	t.Helper()
	dlq, err := c.Open("DLQ", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	seq := map[string]uint64{}
	for id := int64(0); id < int64(n); id++ {
		q, want := refusedOutput(id)
		if q == "" {
			continue
		}
		m, err := dlq.Get(mq.GetOptions{Wait: 2 * time.Second})
		if err != nil {
			t.Fatalf("DEADQ: the refused output of transfer %d: %v", id, err)
		}
		d, body, err := mq.ParseDLH(m.Body)
		if err != nil {
			t.Fatalf("DEADQ: transfer %d: %v", id, err)
		}
		reason := mq.RCUnknownObjectName
		if q == "SMALL" {
			reason = mq.RCMsgTooBigForQ
		}
		seq[q]++
		oid, err := logrec.ParseOutputID(m.MsgID)
		if d.Reason != reason || d.DestQ != q || string(body) != string(want) || m.Format != mq.FormatDeadLetter || err != nil || oid.Seq != seq[q] {
			t.Fatalf("DEADQ: transfer %d: header %+v, format %q, body %q, output id %+v (%v); want reason %v, %s, %q, sequence %d",
				id, d, m.Format, body, oid, err, reason, q, want, seq[q])
		}
	}
	if m, err := dlq.Get(mq.GetOptions{}); err == nil {
		t.Fatalf("DEADQ: one more message: %q", m.Body)
	}
}

func logDepth(t *testing.T, c *mq.Conn) int64 {
	t.Helper()
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.LookupQueue("SYSTEM.UNIT.LEDGER.LOG")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.QueueInfo(id)
	if err != nil {
		t.Fatal(err)
	}
	return info.Depth
}

// TestRunPlain: the baseline consumer confirms every transfer once.
func TestRunPlain(t *testing.T) {
	const n = 300
	g := startMember(t, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)")
	opts := mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	in, err := c.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := in.Put(&mq.Message{Body: fmt.Appendf(nil, "%d a b 1", i)}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	l := newLedger()
	go func() {
		done <- unit.RunPlain(ctx, unit.PlainConfig{Connect: opts, Input: "IN", Commit: 8, Poll: 20 * time.Millisecond}, l)
	}()
	out, err := c.Open("CONFIRM", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n {
		m, err := out.Get(mq.GetOptions{Wait: 10 * time.Second})
		if err != nil {
			t.Fatalf("after %d confirmations: %v", len(seen), err)
		}
		id := strings.Fields(string(m.Body))[0]
		if seen[id] {
			t.Fatalf("transfer %s confirmed twice", id)
		}
		seen[id] = true
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.Applied != n {
		t.Fatalf("applied %d of %d", l.Applied, n)
	}
}

// progressRec is position k's progress record (nil: none decodes).
func progressRec(t *testing.T, c *mq.Conn, k int) *role.Progress {
	t.Helper()
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(1+k, buf); err != nil {
		t.Fatal(err)
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return nil
	}
	return p
}

// progressOf is position k's applied LSN.
func progressOf(t *testing.T, c *mq.Conn, k int) uint64 {
	t.Helper()
	if p := progressRec(t, c, k); p != nil {
		return p.Applied
	}
	return 0
}

// haltedOf reports whether position k's progress shows it halted by flow
// control.
func haltedOf(t *testing.T, c *mq.Conn, k int) bool {
	t.Helper()
	p := progressRec(t, c, k)
	return p != nil && p.Flags&role.FlagHalted != 0
}

// dead makes position k's death transition, as the member that recovered
// its connection would (unless the member's sweep, which sees the
// connection gone, made it first).
func dead(t *testing.T, c *mq.Conn, k uint8) {
	t.Helper()
	o, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	for {
		before := make([]byte, s.StatusSize())
		if _, err := s.ReadStatus(0, before); err != nil {
			t.Fatal(err)
		}
		r, err := role.Decode(before)
		if err != nil {
			t.Fatal(err)
		}
		if r.Pos[k].State == role.Vacant {
			return // the member's sweep saw its connection gone first
		}
		var applied [role.MaxReplicas]uint64
		for j := 0; j < role.MaxReplicas; j++ {
			applied[j] = progressOf(t, c, j)
		}
		n, _, err := role.Next(r, role.Event{Kind: role.EvDeath, Pos: k, Tag: r.Pos[k].Tag, Reason: role.ExitDied, Applied: applied, Now: time.Now().UnixNano()})
		if err != nil {
			t.Fatal(err)
		}
		after, err := n.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if err := o.CompareAndSwapStatus(0, before, after); err == nil {
			return
		}
	}
}
