package qsg_test

import (
	"testing"

	rmq "github.com/rabbitmq/amqp091-go"
)

// TestDeadLetterTrimsDropHeadQueue: messages dead-lettered to a drop-head
// queue (x-max-length 1) keep it at its length, as publishes to it do
// (RabbitMQ applies the length limit to dead-lettered messages too): two
// basic.get deliveries rejected without requeue leave one message there.
func TestDeadLetterTrimsDropHeadQueue(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	if err := ch.ExchangeDeclare("dlx.dh", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "dl.dh", rmq.Table{"x-max-length": int32(1)})
	if err := ch.QueueBind("dl.dh", "k", "dlx.dh", false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "dl.dhsrc", rmq.Table{"x-dead-letter-exchange": "dlx.dh", "x-dead-letter-routing-key": "k"})
	for _, b := range []string{"m1", "m2"} {
		if err := ch.Publish("", "dl.dhsrc", false, false, rmq.Publishing{Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	waitDepth(t, e, "dl.dhsrc", 2)
	for range 2 {
		d, ok, err := ch.Get("dl.dhsrc", false)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		if err := d.Reject(false); err != nil {
			t.Fatal(err)
		}
	}
	waitDepth(t, e, "dl.dhsrc", 0)
	if got := depth(t, e, "dl.dh"); got != 1 {
		t.Fatalf("dl.dh (x-max-length 1, drop-head): depth %d after two dead-letterings, want 1", got)
	}
}
