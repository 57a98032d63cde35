package qsg_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp/qsg"
)

func publish(t *testing.T, ch *rmq.Channel, exchange, key string, p rmq.Publishing) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		t.Fatal(err)
	}
}

func declare(t *testing.T, ch *rmq.Channel, name string, args rmq.Table) rmq.Queue {
	t.Helper()
	q, err := ch.QueueDeclare(name, true, false, false, false, args)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestPublishConsumeAck: a message published to the default exchange comes
// to a consumer with every property as sent; acked, it is gone; the queue
// is a QLOCAL that DISPLAY QLOCAL shows.
func TestPublishConsumeAck(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	q := declare(t, ch, "orders-1", nil)
	if q.Name != "orders-1" || q.Messages != 0 {
		t.Fatalf("declare-ok %+v", q)
	}
	sent := rmq.Publishing{ContentType: "application/json", ContentEncoding: "gzip", DeliveryMode: 2, Priority: 3,
		CorrelationId: "corr-1", ReplyTo: "replies", Expiration: "60000", MessageId: "m-1", Timestamp: time.Unix(1700000000, 0),
		Type: "order.created", UserId: "guest", AppId: "test", Body: []byte(`{"id":1}`),
		Headers: rmq.Table{"s": "str", "i": int32(-7), "l": int64(1 << 40), "b": true, "f": 1.5, "t": rmq.Table{"x": "y"},
			"a": []any{"one", int32(2)}, "bytes": []byte{0, 1, 2}, "void": nil, "d": rmq.Decimal{Scale: 2, Value: 314}}}
	publish(t, ch, "", "orders-1", sent)
	ds, err := ch.Consume("orders-1", "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, ds)
	if d.Redelivered || d.Exchange != "" || d.RoutingKey != "orders-1" || d.ConsumerTag != "c1" || !bytes.Equal(d.Body, sent.Body) {
		t.Fatalf("delivery %+v", d)
	}
	got := fmt.Sprintf("%v %v %v %v %v %v %v %v %v %v %v %v %v", d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority,
		d.CorrelationId, d.ReplyTo, d.Expiration, d.MessageId, d.Timestamp.Unix(), d.Type, d.UserId, d.AppId, d.Headers)
	want := fmt.Sprintf("%v %v %v %v %v %v %v %v %v %v %v %v %v", sent.ContentType, sent.ContentEncoding, sent.DeliveryMode, sent.Priority,
		sent.CorrelationId, sent.ReplyTo, sent.Expiration, sent.MessageId, sent.Timestamp.Unix(), sent.Type, sent.UserId, sent.AppId, sent.Headers)
	if got != want {
		t.Fatalf("properties\n got %s\nwant %s", got, want)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	if out := e.mqsc("DISPLAY QLOCAL('orders-1') CURDEPTH"); !strings.Contains(out, "QUEUE(orders-1)") {
		t.Fatalf("DISPLAY QLOCAL: %s", out)
	}
	waitDepth(t, e, "orders-1", 0)
}

// waitDepth waits until a queue's depth is n.
func waitDepth(t *testing.T, e *env, q string, n int) {
	t.Helper()
	want := fmt.Sprintf("CURDEPTH(%d)", n)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := e.mqsc("DISPLAY QLOCAL('" + q + "') CURDEPTH")
		if strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want %s: %s", q, want, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNackRequeueRedelivers: a nack with requeue gives the message back
// where it was, and it comes again with redelivered set; a reject without
// requeue and no dead-letter exchange drops it.
func TestNackRequeueRedelivers(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "work", nil)
	for i := range 3 {
		publish(t, ch, "", "work", rmq.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	ch.Qos(1, 0, false)
	ds, err := ch.Consume("work", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, ds)
	if string(d.Body) != "0" || d.Redelivered {
		t.Fatalf("first delivery %q redelivered=%v", d.Body, d.Redelivered)
	}
	d.Nack(false, true)
	d = next(t, ds)
	if string(d.Body) != "0" || !d.Redelivered {
		t.Fatalf("after nack-requeue: %q redelivered=%v, want 0 redelivered", d.Body, d.Redelivered)
	}
	d.Reject(false)
	d = next(t, ds)
	if string(d.Body) != "1" || d.Redelivered {
		t.Fatalf("after reject: %q redelivered=%v", d.Body, d.Redelivered)
	}
	d.Ack(false)
	d = next(t, ds)
	if string(d.Body) != "2" {
		t.Fatalf("third %q", d.Body)
	}
	d.Ack(false)
	waitDepth(t, e, "work", 0)
}

// TestPrefetchBoundsUnacked: with prefetch 2 a consumer holds at most two
// unacknowledged deliveries; each ack lets one more come.
func TestPrefetchBoundsUnacked(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "pf", nil)
	for i := range 5 {
		publish(t, ch, "", "pf", rmq.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, _ := ch.Consume("pf", "", false, false, false, false, nil)
	a, b := next(t, ds), next(t, ds)
	none(t, ds, 300*time.Millisecond)
	a.Ack(false)
	c := next(t, ds)
	none(t, ds, 300*time.Millisecond)
	if string(a.Body)+string(b.Body)+string(c.Body) != "012" {
		t.Fatalf("order %q %q %q", a.Body, b.Body, c.Body)
	}
	b.Ack(true)
	c.Ack(false)
	next(t, ds).Ack(false)
	next(t, ds).Ack(false)
	waitDepth(t, e, "pf", 0)
}

// TestChannelCloseRequeues: deliveries not acknowledged when their channel
// closes come back, redelivered, to the next consumer.
func TestChannelCloseRequeues(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	ch, _ := conn.Channel()
	declare(t, ch, "cc", nil)
	publish(t, ch, "", "cc", rmq.Publishing{Body: []byte("x")})
	ds, _ := ch.Consume("cc", "", false, false, false, false, nil)
	next(t, ds)
	ch.Close()
	ch2, _ := conn.Channel()
	ds2, _ := ch2.Consume("cc", "", false, false, false, false, nil)
	d := next(t, ds2)
	if string(d.Body) != "x" || !d.Redelivered {
		t.Fatalf("after close: %q redelivered=%v", d.Body, d.Redelivered)
	}
	d.Ack(false)
}

// TestBasicGet: basic.get takes one message (or says empty), and its ack
// removes it.
func TestBasicGet(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "g", nil)
	if _, ok, err := ch.Get("g", false); ok || err != nil {
		t.Fatalf("get on empty: ok=%v err=%v", ok, err)
	}
	publish(t, ch, "", "g", rmq.Publishing{Body: []byte("a")})
	publish(t, ch, "", "g", rmq.Publishing{Body: []byte("b")})
	d, ok, err := ch.Get("g", false)
	if !ok || err != nil || string(d.Body) != "a" {
		t.Fatalf("get: %q ok=%v err=%v", d.Body, ok, err)
	}
	d.Ack(false)
	d, ok, _ = ch.Get("g", true)
	if !ok || string(d.Body) != "b" {
		t.Fatalf("no-ack get: %q ok=%v", d.Body, ok)
	}
	waitDepth(t, e, "g", 0)
}

// TestConfirms: in confirm mode every publish is acknowledged; one to a
// full x-max-length queue with x-overflow reject-publish is nacked.
func TestConfirms(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "bounded", rmq.Table{"x-max-length": int32(2), "x-overflow": "reject-publish"})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan rmq.Confirmation, 10))
	for i := range 3 {
		publish(t, ch, "", "bounded", rmq.Publishing{DeliveryMode: 2, Body: []byte(fmt.Sprint(i))})
	}
	publish(t, ch, "", "no-such-queue", rmq.Publishing{Body: []byte("unroutable")})
	var acks []bool
	for range 4 {
		select {
		case c := <-confirms:
			acks = append(acks, c.Ack)
		case <-time.After(20 * time.Second):
			t.Fatalf("confirms so far %v", acks)
		}
	}
	if fmt.Sprint(acks) != "[true true false true]" {
		t.Fatalf("confirms %v, want [true true false true] (the third refused by x-max-length; unroutable acked)", acks)
	}
}

// TestTransactions: a transaction's publishes appear only at commit, and
// a rollback drops them; its acks are applied at commit.
func TestTransactions(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "txq", nil)
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", "txq", rmq.Publishing{Body: []byte("rolled back")})
	if err := ch.TxRollback(); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", "txq", rmq.Publishing{Body: []byte("committed")})
	waitDepth(t, e, "txq", 1) // uncommitted counts in CURDEPTH
	other := e.channel()
	if _, ok, _ := other.Get("txq", true); ok {
		t.Fatal("an uncommitted publish was got")
	}
	if err := ch.TxCommit(); err != nil {
		t.Fatal(err)
	}
	d, ok, _ := other.Get("txq", true)
	if !ok || string(d.Body) != "committed" {
		t.Fatalf("after commit: %q ok=%v", d.Body, ok)
	}
}

// TestExchanges: fanout, direct, topic and headers exchanges route as
// RabbitMQ's do; mandatory unroutable publishes come back.
func TestExchanges(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	for _, x := range []struct{ name, kind string }{{"fan", "fanout"}, {"dir", "direct"}, {"top", "topic"}, {"hdr", "headers"}} {
		if err := ch.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"q1", "q2", "q3"} {
		declare(t, ch, q, nil)
	}
	bind := func(q, key, x string, args rmq.Table) {
		if err := ch.QueueBind(q, key, x, false, args); err != nil {
			t.Fatal(err)
		}
	}
	bind("q1", "", "fan", nil)
	bind("q2", "", "fan", nil)
	bind("q1", "red", "dir", nil)
	bind("q2", "stock.*.nyse", "top", nil)
	bind("q3", "stock.#", "top", nil)
	bind("q3", "", "hdr", rmq.Table{"x-match": "all", "format": "pdf"})
	publish(t, ch, "fan", "", rmq.Publishing{Body: []byte("f")})
	publish(t, ch, "dir", "red", rmq.Publishing{Body: []byte("d")})
	publish(t, ch, "dir", "blue", rmq.Publishing{Body: []byte("lost")})
	publish(t, ch, "top", "stock.ibm.nyse", rmq.Publishing{Body: []byte("t1")})
	publish(t, ch, "top", "stock.ibm.lse.x", rmq.Publishing{Body: []byte("t2")})
	publish(t, ch, "hdr", "", rmq.Publishing{Headers: rmq.Table{"format": "pdf"}, Body: []byte("h")})
	publish(t, ch, "hdr", "", rmq.Publishing{Headers: rmq.Table{"format": "zip"}, Body: []byte("lost")})
	want := map[string]string{"q1": "f d", "q2": "f t1", "q3": "t1 t2 h"}
	for q, w := range want {
		var got []string
		for {
			d, ok, err := ch.Get(q, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			got = append(got, string(d.Body))
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s got %q want %q", q, got, w)
		}
	}
	returns := ch.NotifyReturn(make(chan rmq.Return, 1))
	if err := ch.PublishWithContext(context.Background(), "dir", "nobody", true, false, rmq.Publishing{Body: []byte("back")}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		if r.ReplyCode != 312 || string(r.Body) != "back" {
			t.Fatalf("return %d %q", r.ReplyCode, r.Body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no basic.return")
	}
}

// TestDeadLettering: a rejected message goes to the queue's dead-letter
// exchange with an x-death header.
func TestDeadLettering(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	if err := ch.ExchangeDeclare("dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "dead", nil)
	if err := ch.QueueBind("dead", "", "dlx", false, nil); err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "live", rmq.Table{"x-dead-letter-exchange": "dlx"})
	publish(t, ch, "", "live", rmq.Publishing{Body: []byte("bad")})
	d, ok, _ := ch.Get("live", false)
	if !ok {
		t.Fatal("no message")
	}
	d.Reject(false)
	var got rmq.Delivery
	deadline := time.Now().Add(20 * time.Second)
	for !ok || got.Body == nil {
		if time.Now().After(deadline) {
			t.Fatal("nothing dead-lettered")
		}
		got, ok, _ = ch.Get("dead", true)
	}
	deaths, _ := got.Headers["x-death"].([]any)
	if string(got.Body) != "bad" || len(deaths) != 1 || got.Headers["x-first-death-reason"] != "rejected" {
		t.Fatalf("dead-lettered %q headers %v", got.Body, got.Headers)
	}
}

// TestDeclareErrors: the reply codes RabbitMQ gives for bad declares.
func TestDeclareErrors(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	try := func(f func(ch *rmq.Channel) error) int {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		err = f(ch)
		ch.Close()
		return code(err)
	}
	cases := []struct {
		name string
		want int
		f    func(ch *rmq.Channel) error
	}{
		{"passive missing", 404, func(ch *rmq.Channel) error {
			_, err := ch.QueueDeclarePassive("nope", false, false, false, false, nil)
			return err
		}},
		{"reserved prefix", 403, func(ch *rmq.Channel) error {
			_, err := ch.QueueDeclare("amq.mine", false, false, false, false, nil)
			return err
		}},
		{"inequivalent", 406, func(ch *rmq.Channel) error {
			ch.QueueDeclare("eq", true, false, false, false, nil)
			_, err := ch.QueueDeclare("eq", false, false, false, false, nil)
			return err
		}},
		{"bad arg", 406, func(ch *rmq.Channel) error {
			_, err := ch.QueueDeclare("badarg", true, false, false, false, rmq.Table{"x-max-length": "ten"})
			return err
		}},
		{"unsupported arg", 406, func(ch *rmq.Channel) error {
			_, err := ch.QueueDeclare("sac", true, false, false, false, rmq.Table{"x-single-active-consumer": true})
			return err
		}},
		{"exchange missing", 404, func(ch *rmq.Channel) error {
			return ch.ExchangeDeclarePassive("nox", "direct", false, false, false, false, nil)
		}},
		{"bind to missing exchange", 404, func(ch *rmq.Channel) error { return ch.QueueBind("eq", "k", "nox", false, nil) }},
	}
	for _, c := range cases {
		if got := try(c.f); got != c.want {
			t.Errorf("%s: code %d, want %d", c.name, got, c.want)
		}
	}
	// An exclusive queue is locked to its connection, and goes with it.
	ch, _ := conn.Channel()
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil || !strings.HasPrefix(q.Name, "amq.gen-") {
		t.Fatalf("server-named exclusive queue %q: %v", q.Name, err)
	}
	other := e.channel()
	if _, err := other.QueueDeclarePassive(q.Name, false, false, true, false, nil); code(err) != 405 {
		t.Fatalf("another connection's passive declare of an exclusive queue: %v, want 405", err)
	}
	conn.Close()
	ch3 := e.channel()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := ch3.QueueDeclarePassive(q.Name, false, false, false, false, nil)
		if code(err) == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exclusive queue still there after its connection closed: %v", err)
		}
		ch3 = e.channel()
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLargeMessageAndManyChannels: an 8 MiB message goes through whole,
// and a connection runs 100 channels at once.
func TestLargeMessageAndManyChannels(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	ch, _ := conn.Channel()
	declare(t, ch, "big", nil)
	body := bytes.Repeat([]byte("0123456789abcdef"), 8<<20/16)
	publish(t, ch, "", "big", rmq.Publishing{Body: body})
	d, ok, err := ch.Get("big", true)
	if err != nil || !ok || !bytes.Equal(d.Body, body) {
		t.Fatalf("8 MiB: ok=%v err=%v len=%d", ok, err, len(d.Body))
	}
	chans := make([]*rmq.Channel, 100)
	for i := range chans {
		if chans[i], err = conn.Channel(); err != nil {
			t.Fatalf("channel %d: %v", i, err)
		}
		publish(t, chans[i], "", "big", rmq.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	seen := map[string]bool{}
	for _, c := range chans {
		d, ok, err := c.Get("big", true)
		if err != nil || !ok {
			t.Fatalf("get: ok=%v err=%v", ok, err)
		}
		seen[string(d.Body)] = true
	}
	if len(seen) != 100 {
		t.Fatalf("%d distinct messages of 100", len(seen))
	}
}

// TestQueueLifetimes: an auto-delete queue goes when its last consumer
// cancels; an x-expires queue goes once unused that long; deleting a queue
// cancels its consumers (consumer cancel notification) and an ack of one
// of their deliveries afterwards is harmless.
func TestQueueLifetimes(t *testing.T) {
	e := newEnvWith(t, func(c *qsg.Config) { c.ReapInterval = 20 * time.Millisecond })
	ch := e.channel()
	if _, err := ch.QueueDeclare("auto", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("auto", "ac", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Cancel("ac", false); err != nil {
		t.Fatal(err)
	}
	waitGone(t, e, "auto")

	if _, err := ch.QueueDeclare("exp", false, false, false, false, rmq.Table{"x-expires": int32(300)}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, e, "exp")

	declare(t, ch, "doomed", nil)
	publish(t, ch, "", "doomed", rmq.Publishing{Body: []byte("x")})
	cancels := ch.NotifyCancel(make(chan string, 1))
	ds, err := ch.Consume("doomed", "dc", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := next(t, ds)
	other := e.channel()
	if n, err := other.QueueDelete("doomed", false, false, false); err != nil || n != 1 {
		t.Fatalf("delete: %d messages, %v", n, err)
	}
	select {
	case tag := <-cancels:
		if tag != "dc" {
			t.Fatalf("cancel notification for %q", tag)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no basic.cancel after the queue was deleted")
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	// The channel is still open: a declare on it works.
	declare(t, ch, "doomed", nil)
	if q, _ := ch.QueueDeclarePassive("doomed", true, false, false, false, nil); q.Messages != 0 {
		t.Fatalf("redeclared queue holds %d messages", q.Messages)
	}
}

// waitGone waits until queue q is no longer defined (asked through MQSC:
// a passive declare would count as a use of the queue).
func waitGone(t *testing.T, e *env, q string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := e.g.MQSC("QM1", "DISPLAY QLOCAL('"+q+"')")
		if err != nil && strings.Contains(out+err.Error(), "not found") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue %s still there: %s %v", q, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsersAndPermissions: a wrong password is refused (403 at login); a
// user's permission patterns decide what it may configure, write and
// read, and a refusal closes the channel with 403.
func TestUsersAndPermissions(t *testing.T) {
	e := newEnv(t)
	e.mqsc("SET AMQPUSER(app) PASSWORD('s3cret')")
	e.mqsc("SET AMQPPERM(app) VHOST(/) CONFIGURE('^app\\.') WRITE('^(app\\..*|amq\\.default)$') READ('^app\\.in$')")
	if _, err := rmq.Dial(strings.Replace(e.url, "guest:guest", "app:wrong", 1)); code(err) != 403 {
		t.Fatalf("wrong password: %v, want 403", err)
	}
	c, err := rmq.Dial(strings.Replace(e.url, "guest:guest", "app:s3cret", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	try := func(f func(ch *rmq.Channel) error) int {
		ch, err := c.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		return code(f(ch))
	}
	for _, q := range []string{"app.in", "app.out"} {
		if n := try(func(ch *rmq.Channel) error { _, err := ch.QueueDeclare(q, true, false, false, false, nil); return err }); n != 0 {
			t.Fatalf("declare %s: %d", q, n)
		}
	}
	cases := []struct {
		name string
		want int
		f    func(ch *rmq.Channel) error
	}{
		{"configure outside its pattern", 403, func(ch *rmq.Channel) error {
			_, err := ch.QueueDeclare("other", true, false, false, false, nil)
			return err
		}},
		{"read app.in", 0, func(ch *rmq.Channel) error { _, _, err := ch.Get("app.in", true); return err }},
		{"read app.out", 403, func(ch *rmq.Channel) error { _, _, err := ch.Get("app.out", true); return err }},
		{"consume app.out", 403, func(ch *rmq.Channel) error {
			_, err := ch.Consume("app.out", "", true, false, false, false, nil)
			return err
		}},
	}
	for _, k := range cases {
		if got := try(k.f); got != k.want {
			t.Errorf("%s: code %d, want %d", k.name, got, k.want)
		}
	}
	// Publishing to the default exchange is a write to amq.default; the
	// channel survives it, and the message arrives.
	ch, _ := c.Channel()
	publish(t, ch, "", "app.in", rmq.Publishing{Body: []byte("ok")})
	if d, ok, err := ch.Get("app.in", true); err != nil || !ok || string(d.Body) != "ok" {
		t.Fatalf("publish then get: %q %v %v", d.Body, ok, err)
	}
}

// TestGroupConnectionsBounded: one client cannot take the group's
// connection slots: past MaxConnsPerConnection mq connections (a consumer
// each here) its connection is closed with RESOURCE_ERROR, and what it
// held is given back, so the next client gets as many.
func TestGroupConnectionsBounded(t *testing.T) {
	e := newEnvWith(t, func(c *qsg.Config) { c.MaxConnsPerConnection = 3 })
	ch := e.channel()
	declare(t, ch, "many-consumers", nil)
	for round := range 2 {
		conn := e.dial()
		var err error
		for i := range 4 {
			var c *rmq.Channel
			if c, err = conn.Channel(); err != nil {
				break
			}
			if _, err = c.Consume("many-consumers", "", false, false, false, false, nil); err != nil {
				if i != 3 {
					t.Fatalf("round %d: consumer %d refused: %v", round, i, err)
				}
				break
			}
		}
		if code(err) != 506 {
			t.Fatalf("round %d: the fourth consumer: %v, want 506 RESOURCE_ERROR", round, err)
		}
	}
}

// TestQueueArguments: a queue with x-max-length and RabbitMQ's default
// overflow (drop-head) drops its oldest message to take a new one; with
// x-message-ttl messages expire; with x-max-priority higher priorities
// come first.
func TestQueueArguments(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "dh", rmq.Table{"x-max-length": int64(2)})
	for _, b := range []string{"a", "b", "c"} {
		publish(t, ch, "", "dh", rmq.Publishing{Body: []byte(b)})
	}
	var got []string
	for {
		d, ok, err := ch.Get("dh", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, string(d.Body))
	}
	if strings.Join(got, "") != "bc" {
		t.Fatalf("drop-head queue of 2 after a, b, c: %q, want b c", got)
	}

	declare(t, ch, "ttl", rmq.Table{"x-message-ttl": int32(1)})
	publish(t, ch, "", "ttl", rmq.Publishing{Body: []byte("old")})
	publish(t, ch, "", "ttl2", rmq.Publishing{Body: []byte("x")})
	time.Sleep(50 * time.Millisecond)
	if d, ok, _ := ch.Get("ttl", true); ok {
		t.Fatalf("an expired message was got: %q", d.Body)
	}

	declare(t, ch, "prio", rmq.Table{"x-max-priority": int32(10)})
	for i, p := range []uint8{1, 9, 5} {
		publish(t, ch, "", "prio", rmq.Publishing{Priority: p, Body: []byte(fmt.Sprint(i))})
	}
	got = nil
	for range 3 {
		d, ok, _ := ch.Get("prio", true)
		if !ok {
			t.Fatal("a priority message is missing")
		}
		got = append(got, string(d.Body))
	}
	if strings.Join(got, "") != "120" {
		t.Fatalf("priority order %q, want 1 (9), 2 (5), 0 (1)", got)
	}
}

// TestDeletedQueueNotReachedThroughACachedHandle: a channel that
// published to a queue keeps a handle on it; once the queue is deleted
// (and another declared, perhaps in its slot), a publish naming it is
// unroutable and reaches no other queue.
func TestDeletedQueueNotReachedThroughACachedHandle(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "qa", nil)
	publish(t, ch, "", "qa", rmq.Publishing{Body: []byte("1")})
	other := e.channel()
	if _, err := other.QueueDelete("qa", false, false, false); err != nil {
		t.Fatal(err)
	}
	declare(t, other, "qb", nil)
	publish(t, ch, "", "qa", rmq.Publishing{Body: []byte("2")})
	// The channel is still open and qb holds nothing.
	if q, err := ch.QueueDeclarePassive("qb", true, false, false, false, nil); err != nil || q.Messages != 0 {
		t.Fatalf("qb after a publish to deleted qa: %+v %v", q, err)
	}
}

// TestDeleteExchangeBoundToItself: an exchange bound to itself is deleted
// with its binding (listed both as the source's and the destination's).
func TestDeleteExchangeBoundToItself(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	if err := ch.ExchangeDeclare("loop", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeBind("loop", "", "loop", false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDelete("loop", false, false); err != nil {
		t.Fatalf("delete of an exchange bound to itself: %v", err)
	}
	if err := ch.ExchangeDeclarePassive("loop", "fanout", true, false, false, false, nil); code(err) != 404 {
		t.Fatalf("after its delete: %v, want 404", err)
	}
}
