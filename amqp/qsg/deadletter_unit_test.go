package qsg_test

import (
	"testing"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
)

// TestRejectDeadLetterFailureKeepsGatheredPublishes: a channel in confirm
// mode gathers persistent publishes in its unit of work; in the same burst
// of frames the client rejects a basic.get delivery whose dead-letter queue
// is full, so dead-lettering it fails. The publishes gathered before the
// reject must still be put and confirmed: the failed dead-lettering backs
// out its own puts, never the publishes gathered before it (were they in
// the unit of work it backs out, they would be acked at the next commit
// and lost). Handle commits what is gathered before any other method.
func TestRejectDeadLetterFailureKeepsGatheredPublishes(t *testing.T) {
	e := newEnv(t)
	setup := e.channel()
	if err := setup.ExchangeDeclare("dlx.full", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, setup, "dl.full", rmq.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	if err := setup.QueueBind("dl.full", "full", "dlx.full", false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, setup, "dl.src", rmq.Table{"x-dead-letter-exchange": "dlx.full", "x-dead-letter-routing-key": "full"})
	declare(t, setup, "dl.pub", nil)
	for _, q := range []string{"dl.full", "dl.src"} { // dl.full is full from now on
		if err := setup.Publish("", q, false, false, rmq.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		waitDepth(t, e, q, 1)
	}

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(1, &amqp.ConfirmSelect{})
	r.expect("confirm.select-ok")
	r.send(1, &amqp.BasicGet{Queue: "dl.src"})
	tag := r.expect("basic.get-ok").(*amqp.BasicGetOk).DeliveryTag

	// Three persistent publishes and the reject, in one write: the reader
	// handles the reject before it is idle, with the publishes gathered.
	const n = 3
	var burst []byte
	for range n {
		burst = appendPublish(t, burst, "dl.pub", []byte("keep"))
	}
	burst, err := amqp.AppendMethodFrame(burst, 1, &amqp.BasicReject{DeliveryTag: tag, Requeue: false})
	if err != nil {
		t.Fatal(err)
	}
	r.write(burst)
	var acked uint64
	for acked < n {
		switch m := r.recv().(type) {
		case *amqp.BasicAck:
			acked = m.DeliveryTag
		case *amqp.BasicNack:
			t.Fatalf("publish %d nacked", m.DeliveryTag)
		}
	}
	if got := depth(t, e, "dl.pub"); got != n {
		t.Fatalf("%d publishes confirmed, %d on the queue", n, got)
	}
	waitDepth(t, e, "dl.src", 1) // its dead-lettering failed: back on its queue
}

// TestTxDeadLetterFailureKeepsOtherChannelsPublishes: as above, with the
// reject in a transaction on channel 2 (its message got before tx.select,
// through the connection's shared mq connection) and the publishes gathered
// by channel 1, all in one burst: the dead-lettering at tx.commit fails,
// and channel 1's confirmed publishes must still be on their queue.
func TestTxDeadLetterFailureKeepsOtherChannelsPublishes(t *testing.T) {
	e := newEnv(t)
	setup := e.channel()
	if err := setup.ExchangeDeclare("dlx.full", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, setup, "dl.full", rmq.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	if err := setup.QueueBind("dl.full", "full", "dlx.full", false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, setup, "dl.src", rmq.Table{"x-dead-letter-exchange": "dlx.full", "x-dead-letter-routing-key": "full"})
	declare(t, setup, "dl.pub", nil)
	if err := setup.Publish("", "dl.src", false, false, rmq.Publishing{Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, e, "dl.src", 1)

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(1, &amqp.ConfirmSelect{})
	r.expect("confirm.select-ok")
	r.send(2, &amqp.ChannelOpen{})
	r.expect("channel.open-ok")
	r.send(2, &amqp.BasicGet{Queue: "dl.src"})
	tag := r.expect("basic.get-ok").(*amqp.BasicGetOk).DeliveryTag
	r.send(2, &amqp.TxSelect{})
	r.expect("tx.select-ok")

	const n = 3
	var burst []byte
	for range n {
		burst = appendPublishOn(t, burst, 1, "", "dl.pub", []byte("keep"))
	}
	for _, m := range []amqp.Method{&amqp.BasicReject{DeliveryTag: tag, Requeue: false}, &amqp.TxCommit{}} {
		var err error
		if burst, err = amqp.AppendMethodFrame(burst, 2, m); err != nil {
			t.Fatal(err)
		}
	}
	r.write(burst)
	var acked uint64
	for acked < n {
		switch m := r.recvOn().(type) {
		case onChannel[*amqp.BasicAck]:
			acked = m.m.DeliveryTag
		case onChannel[*amqp.BasicNack]:
			t.Fatalf("publish %d nacked", m.m.DeliveryTag)
		}
	}
	if got := depth(t, e, "dl.pub"); got != n {
		t.Fatalf("%d publishes confirmed, %d on the queue", n, got)
	}
}
