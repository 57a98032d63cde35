package qsg_test

// Adversarial review of issue 15 (branch i15-review): each test here
// failed on e125b2c; see the report for the defect it shows.

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/qsg"
	"github.com/qmgr/qmgr/mq"
)

// getWithin polls basic.get on queue until a message comes or d passes.
func getWithin(t *testing.T, ch *rmq.Channel, queue string, autoAck bool, d time.Duration) (rmq.Delivery, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		m, ok, err := ch.Get(queue, autoAck)
		if err != nil {
			t.Fatalf("get %s: %v", queue, err)
		}
		if ok || time.Now().After(deadline) {
			return m, ok
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReviewCancelThenCloseRequeues: a consumer is cancelled while it
// holds an unacknowledged delivery, then its channel closes. RabbitMQ
// requeues the delivery at the close. Here the cancelled consumer is no
// longer in h.consumers, so chanHandler.Close never stops it: its
// goroutine waits on its kick channel forever, its mq connection (a CF
// connection slot) stays, and the message stays held, never redelivered.
func TestReviewCancelThenCloseRequeues(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "cancelled", nil)
	publish(t, ch, "", "cancelled", rmq.Publishing{Body: []byte("held")})
	ds, err := ch.Consume("cancelled", "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next(t, ds) // held, not acked
	if err := ch.Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	if err := ch.Close(); err != nil {
		t.Fatal(err)
	}
	other := e.channel()
	d, ok := getWithin(t, other, "cancelled", false, 5*time.Second)
	if !ok {
		t.Fatal("the delivery held by a cancelled consumer did not come back when its channel closed")
	}
	if string(d.Body) != "held" || !d.Redelivered {
		t.Fatalf("got %q redelivered=%v, want \"held\" redelivered", d.Body, d.Redelivered)
	}
}

// TestReviewCancelThenConnectionCloseRequeues: the same through the
// client's connection.close.
func TestReviewCancelThenConnectionCloseRequeues(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "cancelled2", nil)
	publish(t, ch, "", "cancelled2", rmq.Publishing{Body: []byte("held")})
	ds, err := ch.Consume("cancelled2", "c1", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	next(t, ds)
	if err := ch.Cancel("c1", false); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	other := e.channel()
	if _, ok := getWithin(t, other, "cancelled2", false, 5*time.Second); !ok {
		t.Fatal("the delivery held by a cancelled consumer did not come back when its connection closed")
	}
}

// TestReviewDeadLetterTakesSourceTTL: a message rejected from a queue with
// x-message-ttl is dead-lettered with the SOURCE queue's TTL
// (deadLetterRoute builds the message with pub.message(&q, ...), q the
// queue it came from), so it silently expires in the dead-letter queue,
// which has no TTL. RabbitMQ drops the per-message expiration on
// dead-lettering and applies the destination queue's own TTL only.
func TestReviewDeadLetterTakesSourceTTL(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "dlq-ttl", nil)
	declare(t, ch, "src-ttl", rmq.Table{"x-message-ttl": int32(1500), "x-dead-letter-exchange": "",
		"x-dead-letter-routing-key": "dlq-ttl"})
	publish(t, ch, "", "src-ttl", rmq.Publishing{Body: []byte("rejected")})
	d, ok, err := ch.Get("src-ttl", false)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	waitDepth(t, e, "dlq-ttl", 1)
	time.Sleep(2 * time.Second) // past the source queue's TTL, which must not apply here
	if m, ok := getWithin(t, ch, "dlq-ttl", false, time.Second); !ok || string(m.Body) != "rejected" {
		t.Fatalf("dead-lettered message gone from the dead-letter queue (expired with its source queue's x-message-ttl): ok=%v", ok)
	}
}

// TestReviewTxDuplicateAckCommitsPartly: in a transaction the same
// delivery is acked twice. Both acks pass checkTags (the tag is still in
// the table until the commit), then tx.commit commits the publishes and
// applies the first ack before the second fails with 406: the client is
// told the commit failed, but its publish is in the queue and its ack
// done. RabbitMQ refuses the second ack at once (406) and rolls the
// transaction back with the channel.
func TestReviewTxDuplicateAckCommitsPartly(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "tx-src", nil)
	declare(t, ch, "tx-dst", nil)
	publish(t, ch, "", "tx-src", rmq.Publishing{Body: []byte("to ack")})
	d, ok, err := ch.Get("tx-src", false)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if err := ch.Tx(); err != nil {
		t.Fatal(err)
	}
	publish(t, ch, "", "tx-dst", rmq.Publishing{Body: []byte("in tx")})
	ch.Ack(d.DeliveryTag, false)
	ch.Ack(d.DeliveryTag, false)
	commitErr := ch.TxCommit()
	if commitErr == nil {
		t.Fatal("commit-ok after acking one tag twice")
	}
	other := e.channel()
	if m, ok := getWithin(t, other, "tx-dst", true, 500*time.Millisecond); ok {
		t.Fatalf("tx.commit answered %v, yet the transaction's publish %q is in the queue (committed partly)", commitErr, m.Body)
	}
}

// TestReviewExclusiveConsumer: with an exclusive consumer on a queue,
// RabbitMQ refuses any other consumer (403 ACCESS_REFUSED, "in exclusive
// use"); here consume checks exclusivity only for the exclusive one.
func TestReviewExclusiveConsumer(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "excl", nil)
	if _, err := ch.Consume("excl", "owner", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	other := e.channel()
	_, err := other.Consume("excl", "intruder", false, false, false, false, nil)
	if code(err) != rmq.AccessRefused {
		t.Fatalf("second consumer of a queue with an exclusive consumer: %v, want 403", err)
	}
}

// TestReviewConsumerCountIgnoresGet: a channel that did one basic.get
// keeps an input handle open on the queue; counts() takes the handles
// open for input (OpenIn) as consumers, so declare-ok says 1 consumer,
// delete if-unused refuses and an exclusive consume is refused, with no
// consumer at all.
func TestReviewConsumerCountIgnoresGet(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "getonly", nil)
	if _, _, err := ch.Get("getonly", false); err != nil {
		t.Fatal(err)
	}
	other := e.channel()
	q, err := other.QueueDeclarePassive("getonly", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Consumers != 0 {
		t.Fatalf("declare-ok consumer count %d after a basic.get and no consume, want 0", q.Consumers)
	}
	if _, err := other.Consume("getonly", "x", false, true, false, false, nil); err != nil {
		t.Fatalf("exclusive consume of a queue nobody consumes: %v", err)
	}
}

// TestReviewMaxLengthDropHead: x-max-length with x-overflow drop-head
// (RabbitMQ's default overflow) bounds the queue by dropping its oldest
// messages. createQueue bounds the CF depth only for reject-publish, so
// the put is never refused, dropHead never runs and the queue grows
// without bound; without x-overflow the bound is ignored too.
func TestReviewMaxLengthDropHead(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	for _, c := range []struct {
		name string
		args rmq.Table
	}{
		{"dh-explicit", rmq.Table{"x-max-length": int32(2), "x-overflow": "drop-head"}},
		{"dh-default", rmq.Table{"x-max-length": int32(2)}},
	} {
		declare(t, ch, c.name, c.args)
		for i := range 5 {
			publish(t, ch, "", c.name, rmq.Publishing{Body: []byte(fmt.Sprint(i))})
		}
		q, err := ch.QueueDeclarePassive(c.name, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Messages != 2 {
			t.Errorf("%s %v: %d messages after 5 publishes, want 2 (the newest)", c.name, c.args, q.Messages)
		}
	}
}

// TestReviewDeadLetterExchangeNeedsWrite: a user without write access to
// an exchange declares a queue whose x-dead-letter-exchange is that
// exchange, and rejects its own messages: they are published there.
// RabbitMQ checks write access to the dead-letter exchange (and read
// access to the queue) at queue.declare and refuses with 403; here
// neither queue.declare nor deadLetter checks it.
func TestReviewDeadLetterExchangeNeedsWrite(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "victim", nil)
	e.mqsc("SET AMQPUSER(app) PASSWORD('s3cret')")
	e.mqsc("SET AMQPPERM(app) VHOST(/) CONFIGURE('^app\\.') WRITE('^app\\.') READ('^app\\.')")
	c, err := rmq.Dial(strings.Replace(e.url, "guest:guest", "app:s3cret", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	app, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The default exchange is amq.default to permissions: app may not write to it.
	if err := app.PublishWithContext(context.Background(), "", "victim", false, false, rmq.Publishing{Body: []byte("direct")}); err != nil {
		t.Fatal(err)
	}
	// The channel was closed with 403 by the publish: the next call on it
	// fails (403 if the close arrives during it, 504 if before).
	if _, err := app.QueueDeclarePassive("app.probe", true, false, false, false, nil); err == nil {
		t.Fatal("the channel still works after a refused publish")
	}
	if app, err = c.Channel(); err != nil {
		t.Fatal(err)
	}
	_, err = app.QueueDeclare("app.q", true, false, false, false, rmq.Table{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "victim"})
	if code(err) == 403 {
		return // refused as RabbitMQ refuses it
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := app.ExchangeDeclare("app.x", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := app.QueueBind("app.q", "", "app.x", false, nil); err != nil {
		t.Fatal(err)
	}
	publish(t, app, "app.x", "", rmq.Publishing{Body: []byte("smuggled")})
	d, ok := getWithin(t, app, "app.q", false, 5*time.Second)
	if !ok {
		t.Fatal("nothing in app.q")
	}
	if err := d.Reject(false); err != nil {
		t.Fatal(err)
	}
	if m, ok := getWithin(t, ch, "victim", true, 2*time.Second); ok {
		t.Fatalf("user app (no write access to amq.default) put %q on queue victim through its queue's dead-letter exchange", m.Body)
	}
}

// TestReviewSystemQueuesOutOfReach: the group's own queues are reachable
// through AMQP with the usual '.*' permissions (guest's, or the README's
// example user's): queue.delete of SYSTEM.QSG.CHANNEL.SYNCQ, the shared
// channels' sequence state, succeeds, and so do basic.get from and
// basic.publish to a transmission queue. The channel receiver refuses
// SYSTEM.QSG.* to any partner and SYSTEM.* and transmission queues
// unless INQUEUES(ALL) (channel/receiver.go mayTarget); AMQP has no such
// guard.
func TestReviewSystemQueuesOutOfReach(t *testing.T) {
	e := newEnv(t)
	e.mqsc("DEFINE QLOCAL(XQ.TO.OTHER) USAGE(XMITQ)")
	ch := e.channel()
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "XQ.TO.OTHER", false, false, rmq.Publishing{Body: []byte("forged transmission")})
	if err != nil {
		t.Fatal(err)
	}
	if dc.Wait() {
		t.Errorf("basic.publish to a transmission queue confirmed")
	}
	if _, ok, err := ch.Get("XQ.TO.OTHER", true); err == nil {
		t.Errorf("basic.get from a transmission queue allowed (ok=%v)", ok)
	}
	ch = e.channel()
	if _, err := ch.QueueDelete("SYSTEM.QSG.CHANNEL.SYNCQ", false, false, false); err == nil {
		t.Errorf("queue.delete of SYSTEM.QSG.CHANNEL.SYNCQ through AMQP answered delete-ok")
	}
	if out := e.mqsc("DISPLAY QLOCAL('SYSTEM.QSG.CHANNEL.SYNCQ')"); !strings.Contains(out, "QUEUE(SYSTEM.QSG.CHANNEL.SYNCQ)") {
		t.Errorf("the shared channel sync queue is gone: %s", out)
	}
}

// TestReviewOneClientTakesEveryConnectionSlot: each consumer (and each
// channel that publishes or gets) takes one of the group's 1024 CF
// connection slots, with no bound per AMQP connection or per listener
// (channel_max 2047, consumers per channel unbounded): one client,
// logged in with a user that may read one queue, leaves no slot for the
// group's mq applications on any member.
func TestReviewOneClientTakesEveryConnectionSlot(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "hog", nil)
	// First as many consumers as the group lets one connection have (the
	// one over closes the connection with 506, which frees them all)...
	most := hog(conn, 2000)
	t.Logf("one AMQP connection opened %d consumers before a 506", most)
	// ...then that many again, held.
	conn = e.dial()
	if n := hog(conn, most); n != most {
		t.Fatalf("second time %d consumers, want %d", n, most)
	}
	mc, err := mq.Connect(mq.ConnectOptions{Group: e.g.Cfg.Name, DataDir: e.g.Cfg.DataDir, CFDir: e.g.Cfg.CFDir, QMgr: "QM1"})
	if err != nil {
		t.Fatalf("an mq application cannot connect while one AMQP client holds %d consumers: %v", most, err)
	}
	mc.Disconnect()
}

// hog opens up to n consumers of queue hog on conn, ten a channel, and
// says how many it opened.
func hog(conn *rmq.Connection, n int) int {
	taken := 0
	for !conn.IsClosed() && taken < n {
		c, err := conn.Channel()
		if err != nil {
			break
		}
		for k := 0; k < 10 && taken < n; k++ {
			if _, err := c.Consume("hog", "", false, false, false, false, nil); err != nil {
				return taken
			}
			taken++
		}
	}
	return taken
}

// TestReviewChannelPrefetchWakesOthers: with a channel-wide prefetch
// (basic.qos global=true), a consumer without credit sleeps on its kick
// channel until it is woken; an ack wakes only the consumer whose
// delivery it settles (apply posts to d.c), and an ack of a basic.get
// delivery wakes none. Here the channel's only held delivery is a
// basic.get's: once it is acked the channel has credit again, but the
// consumer is never told and the queue's next message is never
// delivered.
func TestReviewChannelPrefetchWakesOthers(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "pfw", nil)
	for i := range 2 {
		publish(t, ch, "", "pfw", rmq.Publishing{Body: []byte(fmt.Sprint(i))})
	}
	if err := ch.Qos(1, 0, true); err != nil {
		t.Fatal(err)
	}
	g, ok := getWithin(t, ch, "pfw", false, 5*time.Second)
	if !ok {
		t.Fatal("get: empty")
	}
	ds, err := ch.Consume("pfw", "c", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	none(t, ds, 300*time.Millisecond) // the channel's one credit is the get's
	if err := g.Ack(false); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-ds:
		if string(d.Body) != "1" {
			t.Fatalf("delivered %q, want 1", d.Body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the channel has credit again after the ack, but its consumer got nothing within 5s")
	}
}

// TestReviewConsumeOkSendFailsHangsReader: basic.consume whose consume-ok
// cannot be written (the client reset the connection right after sending
// it) calls c.stop(true) on a consumer whose goroutine was never started
// (go c.run() comes after), so stop waits on c.done for ever: the
// connection's reader never returns, its consumer's mq connection (a CF
// slot, an input handle) is never disconnected, its session never ends
// and Broker.Close (live.Wait) hangs. A client that sends basic.consume
// and resets the socket leaves all of it behind.
func TestReviewConsumeOkSendFailsHangsReader(t *testing.T) {
	e := newEnv(t)
	declare(t, e.channel(), "rst", nil)
	addr := e.ln.Addr().String()
	for range 5 {
		r := dialRawAMQP(t, addr)
		r.send(1, &amqp.BasicConsume{Queue: "rst", ConsumerTag: "c"})
		r.nc.(*net.TCPConn).SetLinger(0)
		r.nc.Close() // RST
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := e.channel().QueueDeclarePassive("rst", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if q.Consumers == 0 {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			var stuck []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "(*consumer).stop") {
					stuck = append(stuck, g)
				}
			}
			// The env's cleanup would wait for the stuck reader for ever
			// (Broker.Close: live.Wait): end the test binary here.
			fmt.Fprintf(os.Stderr, "--- FAIL: %s\n10s after 5 clients reset their connections right after basic.consume, the queue still has %d consumers; stuck:\n%s\n",
				t.Name(), q.Consumers, strings.Join(stuck, "\n\n"))
			e.g.KillAll()
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReviewFlowHoldKeepsAcksUndone: a client that consumes and publishes
// on one connection sends an ack and then a publish while publishers are
// blocked. The ack is handed to the consumer's goroutine (post), which
// is woken only when the reader is idle (Idle); the publish holds the
// reader in waitOpen first (waitOpen flushes the channel's gathered
// publishes, not the wakes), so the acked messages are never removed:
// the structure stays as full as it was and the block, and the hold,
// last for ever. RabbitMQ carries out the acks it has read before it
// blocks a connection.
func TestReviewFlowHoldKeepsAcksUndone(t *testing.T) {
	e := newEnvWith(t, func(c *qsg.Config) { c.HighWater, c.LowWater, c.FlowInterval = 0.5, 0.1, 50*time.Millisecond })
	declare(t, e.channel(), "flowq", nil)
	// Fill the structure through mq (no AMQP flow control there), up to
	// its last data element.
	mc, err := mq.Connect(mq.ConnectOptions{Group: e.g.Cfg.Name, DataDir: e.g.Cfg.DataDir, CFDir: e.g.Cfg.CFDir, QMgr: "QM1"})
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Disconnect()
	out, err := mc.Open("flowq", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		err := out.Put(&mq.Message{Body: make([]byte, 64<<10)}, mq.PutOptions{})
		if mq.ReasonOf(err) == mq.RCStorageMediumFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	out.Close()
	t.Logf("%d messages of 64 KiB fill the structure", n)
	// Wait until publishers are blocked.
	watch := e.dial()
	blocked := watch.NotifyBlocked(make(chan rmq.Blocking, 1<<16)) // never full: amqp091-go blocks its reader on a full one
	select {
	case b := <-blocked:
		if !b.Active {
			t.Fatalf("blocking %+v", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("publishers never blocked: the structure is not full enough for HighWater")
	}

	// A raw client consumes every message, then acks them all and
	// publishes, in one write.
	nc, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	fr := amqp.NewFrameReader(nc)
	fr.SetMax(1 << 20)
	frame := func(ch uint16, m amqp.Method) []byte {
		b, err := amqp.AppendMethodFrame(nil, ch, m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	write := func(b []byte) {
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	method := func() amqp.Method { // the next method frame, skipping contents and heartbeats
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != amqp.FrameMethod {
				continue
			}
			m, err := amqp.DecodeMethod(f.Payload)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	write(amqp.ProtocolHeader[:])
	method() // start
	write(frame(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"}))
	method() // tune
	write(frame(0, &amqp.ConnectionTuneOk{ChannelMax: 10, FrameMax: 131072}))
	write(frame(0, &amqp.ConnectionOpen{VirtualHost: "/"}))
	method()
	write(frame(1, &amqp.ChannelOpen{}))
	method()
	write(frame(1, &amqp.BasicConsume{Queue: "flowq", ConsumerTag: "c"}))
	var last uint64
	for got := 0; got < n; {
		if d, ok := method().(*amqp.BasicDeliver); ok {
			last = d.DeliveryTag
			got++
		}
	}
	burst := frame(1, &amqp.BasicAck{DeliveryTag: last, Multiple: true})
	burst = append(burst, frame(1, &amqp.BasicPublish{RoutingKey: "flowq"})...)
	burst, _ = amqp.AppendHeaderFrame(burst, 1, &amqp.ContentHeader{ClassID: 60, BodySize: 1})
	burst = amqp.AppendBodyFrames(burst, 1, 131072, []byte("x"))
	write(burst)

	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := e.g.MQSC("QM1", "DISPLAY QLOCAL('flowq') CURDEPTH")
		if strings.Contains(out, "CURDEPTH(1)") || strings.Contains(out, "CURDEPTH(0)") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after acking all %d messages (then publishing, held by flow control) they are still on the queue: %s", n, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReviewCloseDeletesOnlyOwnExclusive: connection A declares an
// exclusive queue, deletes it; connection B then declares a (shared)
// queue of that name and publishes to it. When A closes, session.Close
// deletes every queue name in s.exclusive without checking that the
// queue is still A's (deleteQueue refuses only another connection's
// exclusive queue), so B's queue and its messages go.
func TestReviewCloseDeletesOnlyOwnExclusive(t *testing.T) {
	e := newEnv(t)
	a := e.dial()
	ach, err := a.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ach.QueueDeclare("reused", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ach.QueueDelete("reused", false, false, false); err != nil {
		t.Fatal(err)
	}
	bch := e.channel()
	declare(t, bch, "reused", nil)
	publish(t, bch, "", "reused", rmq.Publishing{DeliveryMode: 2, Body: []byte("B's")})
	waitDepth(t, e, "reused", 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.channel().QueueDeclarePassive("reused", true, false, false, false, nil); err != nil {
		t.Fatalf("B's queue is gone after A (whose exclusive queue of that name it deleted) closed: %v", err)
	}
}

// TestReviewDeliveryTagsInOrder: delivery tags of a channel are numbered
// in the order the deliveries are sent (a client's ack with multiple
// covers the tags up to the one it names, which it takes to be those it
// has seen). register (the tag) and send (the write) are separate steps
// of each consumer goroutine, so two consumers of one channel write
// their deliveries out of tag order; a client that acks tag n with
// multiple then acks deliveries it has not received yet, and its later
// ack of one of them is an unknown tag (406, the channel closes).
func TestReviewDeliveryTagsInOrder(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	const per = 400
	for _, q := range []string{"tags-a", "tags-b"} {
		declare(t, ch, q, nil)
		for i := range per {
			publish(t, ch, "", q, rmq.Publishing{Body: []byte(fmt.Sprint(i))})
		}
		waitDepth(t, e, q, per)
	}
	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(1, &amqp.BasicConsume{Queue: "tags-a", ConsumerTag: "a", NoAck: true, NoWait: true})
	r.send(1, &amqp.BasicConsume{Queue: "tags-b", ConsumerTag: "b", NoAck: true, NoWait: true})
	var last uint64
	var disorder []string
	for got := 0; got < 2*per; {
		d, ok := r.recv().(*amqp.BasicDeliver)
		if !ok {
			continue
		}
		got++
		if d.DeliveryTag <= last && len(disorder) < 5 {
			disorder = append(disorder, fmt.Sprintf("tag %d (%s) after tag %d", d.DeliveryTag, d.ConsumerTag, last))
		}
		last = max(last, d.DeliveryTag)
	}
	if len(disorder) > 0 {
		t.Fatalf("deliveries on one channel written out of tag order: %v", disorder)
	}
}
