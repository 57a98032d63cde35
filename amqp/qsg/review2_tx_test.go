package qsg_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
)

// gives the committed-acked message back, to be delivered again.
func TestReview2TxCommitOkBeforeAckCarriedOut(t *testing.T) {
	txAckThenKill(t, func(r *rawConn) uint64 {
		r.send(1, &amqp.BasicConsume{Queue: "txgap", ConsumerTag: "c"})
		r.expect("basic.consume-ok")
		return r.expect("basic.deliver").(*amqp.BasicDeliver).DeliveryTag
	})
}

// TestReview2TxGetAckSurvivesKill is the control of
// TestReview2TxCommitOkBeforeAckCarriedOut (it passes): the same with
// basic.get, whose ack the reader carries out before tx.commit-ok.
func TestReview2TxGetAckSurvivesKill(t *testing.T) {
	txAckThenKill(t, func(r *rawConn) uint64 {
		r.send(1, &amqp.BasicGet{Queue: "txgap"})
		return r.expect("basic.get-ok").(*amqp.BasicGetOk).DeliveryTag
	})
}

// txAckThenKill fills a durable queue with persistent messages, has a raw
// client take one (take), ack it in a transaction and commit, stop
// reading, kills the member the broker is attached through and checks
// that the acked message is gone.
func txAckThenKill(t *testing.T, take func(r *rawConn) uint64) {
	e := newEnv(t)
	if _, err := e.g.Start("QM2"); err != nil {
		t.Fatal(err)
	}
	setup := e.channel()
	const n, size = 400, 32 << 10
	declare(t, setup, "txgap", nil)
	if err := setup.Confirm(false); err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", size))
	for i := range n {
		dc, err := setup.PublishWithDeferredConfirm("", "txgap", false, false,
			rmq.Publishing{DeliveryMode: rmq.Persistent, MessageId: fmt.Sprint(i), Body: body})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitDepth(t, e, "txgap", n)

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(1, &amqp.TxSelect{})
	r.expect("tx.select-ok")
	r.send(1, &amqp.BasicAck{DeliveryTag: take(r)})
	r.send(1, &amqp.TxCommit{})
	r.expect("tx.commit-ok") // the client stops reading here
	// Committed: the acked message is removed, n-1 remain (held or not).
	e.g.Kill("QM1")
	deadline := time.Now().Add(20 * time.Second)
	want := fmt.Sprintf("CURDEPTH(%d)", n-1)
	var out string
	for time.Now().Before(deadline) {
		o, err := e.g.MQSC("QM2", "DISPLAY QLOCAL('txgap') CURDEPTH")
		if err == nil {
			out = o
			if strings.Contains(out, want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after tx.commit-ok of an ack and the member's death, want %s (the acked message gone): %s", want, out)
}
