package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
)

// TestHandlerErrorToBackoutQueue: transfers the ledger rejects (a negative
// amount: Handle returns an error) do not stop the unit (design 2: the
// input becomes an output to the input queue's BOQNAME, once like any
// output, and the unit goes on). Two replicas in this process, the
// secondary the sender; 300 transfers, every 50th refused: each refused
// transfer reaches IN.BO exactly once, as it was put; every other one is
// confirmed once, in sequence; both replicas applied all 300 and agree.
func TestHandlerErrorToBackoutQueue(t *testing.T) { handlerErrorScenario(t, true) }

// TestHandlerErrorToDeadLetterQueue: the same with no BOQNAME: the
// refused transfers reach the queue manager's DEADQ behind a dead-letter
// header (reason unit handler failed, the input queue's name, the
// original format).
func TestHandlerErrorToDeadLetterQueue(t *testing.T) { handlerErrorScenario(t, false) }

func handlerErrorScenario(t *testing.T, boq bool) {
	const n = 300
	in := "DEFINE QLOCAL(IN) MAXDEPTH(100000)"
	aside := "IN.BO"
	if boq {
		in += " BOQNAME(IN.BO)"
	} else {
		aside = "DLQ"
	}
	_, g := startMember(t, true, in, "DEFINE QLOCAL(IN.BO)", "DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)",
		"DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)", "DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN)")
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

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ledgers := []*ledger.Ledger{ledger.New(), ledger.New()}
	errs := make([]error, 2)
	exited := make(chan error, 2)
	var wg sync.WaitGroup
	run := func(pos int) {
		wg.Go(func() {
			errs[pos] = unit.RunWith(ctx, unit.ReplicaConfig{Connect: opts, Service: "LEDGER", Position: pos, BatchSize: 16, Poll: 20 * time.Millisecond}, ledgers[pos])
			if errs[pos] != nil {
				exited <- fmt.Errorf("position %d: %w", pos, errs[pos])
			}
		})
	}
	run(0)
	waitFor(t, "the primary", exited, func() bool { return roleOf(t, s).Primary == 0 })
	run(1)
	waitFor(t, "the secondary to take the sender role", exited, func() bool { return roleOf(t, s).Sender == 1 })

	q, err := c.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	refused := map[string]bool{}
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("%d a b %d", i, 1+i%7)
		if i%50 == 7 {
			body = fmt.Sprintf("%d a b -%d", i, i)
			refused[body] = false
		}
		if err := q.Put(&mq.Message{Body: []byte(body), Format: "MQSTR"}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both replicas to apply every transfer", exited, func() bool {
		return appliedOf(t, s, 0) == n && appliedOf(t, s, 1) == n
	})

	got := confirmations(t, c, n-len(refused))
	for i, cf := range got {
		if cf.ID%50 == 7 {
			t.Fatalf("confirmation %d confirms refused transfer %d", i, cf.ID)
		}
	}
	bo, err := c.Open(aside, mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < len(refused)+1; k++ {
		wait := 5 * time.Second
		if k == len(refused) {
			wait = 300 * time.Millisecond // nothing more may come
		}
		m, err := bo.Get(mq.GetOptions{Wait: wait})
		if errors.Is(err, mq.ErrNoMessage) && k == len(refused) {
			break
		}
		if err != nil {
			t.Fatalf("%s, message %d of %d: %v", aside, k+1, len(refused), err)
		}
		if k == len(refused) {
			t.Fatalf("%s holds more than the %d refused transfers: %q", aside, len(refused), m.Body)
		}
		body := m.Body
		if !boq {
			d, rest, err := mq.ParseDLH(m.Body)
			if err != nil {
				t.Fatalf("DLQ message %d: %v", k, err)
			}
			if d.Reason != mq.RCUnitHandlerFailed || d.DestQ != "IN" || d.OrigFormat != "MQSTR" || m.Format != mq.FormatDeadLetter {
				t.Fatalf("DLQ message %d: header %+v, format %q", k, d, m.Format)
			}
			body = rest
		} else if m.Format != "MQSTR" {
			t.Fatalf("%s message %d: format %q", aside, k, m.Format)
		}
		if _, err := logrec.ParseOutputID(m.MsgID); err != nil {
			t.Fatalf("%s message %d: not a unit output: %v", aside, k, err)
		}
		done, ok := refused[string(body)]
		if !ok || done {
			t.Fatalf("%s message %d: %q (refused: %v)", aside, k, body, refused)
		}
		refused[string(body)] = true
	}
	cancel()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if a, b := ledgers[0].Digest(), ledgers[1].Digest(); a != b {
		t.Fatalf("the replicas differ:\n0 %s\n1 %s", a, b)
	}
	if ledgers[1].Applied != n-len(refused) {
		t.Fatalf("the ledger applied %d transfers, want %d", ledgers[1].Applied, n-len(refused))
	}
}
