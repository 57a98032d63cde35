package qsg_test

// Second adversarial review of issue 15 (branch i15-review2): each test
// here fails on 17d9672; see the report for the defect it shows.

import (
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"
)

// TestReview2TxRollbackKeepsDroppedHead: a publish in a transaction to a
// full x-max-length (drop-head) queue drops the queue's oldest message
// outside the transaction (dropHead: in.Get(mq.GetOptions{})), so a
// rollback discards the publish but the message it displaced is gone for
// good: a message lost without anyone's ack. RabbitMQ applies nothing of
// a rolled-back transaction.
func TestReview2TxRollbackKeepsDroppedHead(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "dh-tx", rmq.Table{"x-max-length": int32(1)})
	publish(t, ch, "", "dh-tx", rmq.Publishing{Body: []byte("kept")})
	waitDepth(t, e, "dh-tx", 1)

	tx := e.channel()
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	publish(t, tx, "", "dh-tx", rmq.Publishing{Body: []byte("rolled back")})
	if err := tx.TxRollback(); err != nil {
		t.Fatal(err)
	}
	d, ok := getWithin(t, ch, "dh-tx", true, 2*time.Second)
	if !ok || string(d.Body) != "kept" {
		t.Fatalf("after the rollback of a publish to the full queue: got %q (ok=%v), want the message it held, %q", d.Body, ok, "kept")
	}
}

// TestReview2FanoutRefusedKeepsDroppedHead: a publish routed to two
// queues (one unit of work) where the first is a full drop-head queue and
// the second a full reject-publish queue. dropHead removes the first
// queue's oldest message at once, outside the unit of work; the second
// queue refuses, failPut backs the unit of work out, and the first queue
// ends empty: its message was dropped for a publish that never landed
// there. (RabbitMQ would leave it holding the new message; either way it
// holds one.)
func TestReview2FanoutRefusedKeepsDroppedHead(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "fa-drop", rmq.Table{"x-max-length": int32(1)})
	declare(t, ch, "fa-reject", rmq.Table{"x-max-length": int32(1), "x-overflow": "reject-publish"})
	if err := ch.ExchangeDeclare("fa", "fanout", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"fa-drop", "fa-reject"} {
		if err := ch.QueueBind(q, "", "fa", false, nil); err != nil {
			t.Fatal(err)
		}
		publish(t, ch, "", q, rmq.Publishing{Body: []byte("first in " + q)})
		waitDepth(t, e, q, 1)
	}
	publish(t, ch, "fa", "", rmq.Publishing{Body: []byte("fanned out")})
	// A round trip on the channel: the publish has been handled.
	if _, err := ch.QueueDeclarePassive("fa-drop", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive("fa-drop", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 1 {
		t.Fatalf("fa-drop holds %d messages after a fanout publish the other queue refused, want 1 (its own, or the new one)", q.Messages)
	}
}

// TestReview2DropHeadQueueKeepsTheNewest: x-max-length 1 (drop-head, the
// default), its one message held unacknowledged by a consumer, and a new
// publish. RabbitMQ counts ready messages only and keeps the new one;
// qmgr counts the delivered, unacknowledged message in the length too (the
// README's table says so): the new one is dropped as the oldest ready
// message, and the held one is never dropped: given back, it is there.
func TestReview2DropHeadQueueKeepsTheNewest(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "dh-held", rmq.Table{"x-max-length": int32(1)})
	publish(t, ch, "", "dh-held", rmq.Publishing{Body: []byte("old")})
	holder := e.channel()
	holder.Qos(1, 0, false) // it holds "old" only, whatever comes next
	ds, err := holder.Consume("dh-held", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, ds)
	if string(d.Body) != "old" {
		t.Fatalf("got %q", d.Body)
	}
	publish(t, ch, "", "dh-held", rmq.Publishing{Body: []byte("new")})
	waitDepth(t, e, "dh-held", 1)
	if err := d.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	if d := next(t, ds); string(d.Body) != "old" || !d.Redelivered {
		t.Fatalf("after the held message was given back: got %q redelivered=%v, want old redelivered", d.Body, d.Redelivered)
	}
}

// TestReview2DropHeadTxKeepsTheNewest: two publishes to an empty
// x-max-length 1 queue in one transaction. RabbitMQ applies them at the
// commit, the second dropping the first: the queue holds the newest.
// Here the first, uncommitted, counts against MAXDEPTH and cannot be
// dropped (nothing is ready), so the second is silently discarded.
func TestReview2DropHeadTxKeepsTheNewest(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "dh-tx2", rmq.Table{"x-max-length": int32(1)})
	tx := e.channel()
	if err := tx.Tx(); err != nil {
		t.Fatal(err)
	}
	publish(t, tx, "", "dh-tx2", rmq.Publishing{Body: []byte("first")})
	publish(t, tx, "", "dh-tx2", rmq.Publishing{Body: []byte("second")})
	if err := tx.TxCommit(); err != nil {
		t.Fatal(err)
	}
	d, ok := getWithin(t, ch, "dh-tx2", true, 2*time.Second)
	if !ok || string(d.Body) != "second" {
		t.Fatalf("after a transaction of two publishes to a drop-head queue of length 1: got %q (ok=%v), want %q", d.Body, ok, "second")
	}
}
