package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/mq"
)

// amqpGroup starts QM1 and QM2, each with an AMQP port of its own and the
// shared generic port, and waits until the listeners answer. It returns
// the ports: QM1's, QM2's, the generic one.
func amqpGroup(t *testing.T) (*testGroup, int, int, int) {
	t.Helper()
	g := newTestGroupSized(t, 64<<20)
	p1, p2, gen := freePort(t), freePort(t), freePort(t)
	for name, p := range map[string]int{"QM1": p1, "QM2": p2} {
		g.startWith(name, "--amqp-port", strconv.Itoa(p), "--amqp-generic-port", strconv.Itoa(gen), "--no-chinit")
	}
	for _, p := range []int{p1, p2, gen} {
		waitFor(t, fmt.Sprintf("AMQP on port %d", p), 30*time.Second, func() bool { return amqpAnswers(p) == nil })
	}
	return g, p1, p2, gen
}

// amqpDial logs in as guest through port, retrying while the port is not
// served (a member's listener starting or gone).
func amqpDial(t *testing.T, port int) *rmq.Connection {
	t.Helper()
	var c *rmq.Connection
	var err error
	waitFor(t, fmt.Sprintf("an AMQP connection through port %d", port), 30*time.Second, func() bool {
		c, err = rmq.Dial(fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port))
		return err == nil
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// node is the member an AMQP connection reached.
func node(c *rmq.Connection) string { s, _ := c.Properties["node"].(string); return s }

// TestAMQPFailoverConsumer: a consumer holds unacknowledged deliveries of
// persistent messages through QM1 when QM1 is SIGKILLed; it reconnects
// through the generic port, reaches QM2, and gets every message it had not
// acknowledged exactly once, those it had been given again with
// redelivered set; nothing it acknowledged comes again.
func TestAMQPFailoverConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, p1, _, gen := amqpGroup(t)
	const n = 200
	pub := amqpDial(t, p1)
	pch, _ := pub.Channel()
	if _, err := pch.QueueDeclare("fo", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := pch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dc, err := pch.PublishWithDeferredConfirmWithContext(context.Background(), "", "fo", false, false,
			rmq.Publishing{DeliveryMode: 2, Body: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		if !dc.Wait() {
			t.Fatalf("publish %d nacked", i)
		}
	}
	pub.Close()

	cons := amqpDial(t, p1)
	if node(cons) != "QM1" {
		t.Fatalf("connected to %q through QM1's port", node(cons))
	}
	cch, _ := cons.Channel()
	cch.Qos(50, 0, false)
	ds, err := cch.Consume("fo", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	given := map[string]bool{}
	for range 50 {
		d := nextDelivery(t, ds)
		given[string(d.Body)] = true
		if len(acked) < 20 {
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
			acked[string(d.Body)] = true
		}
	}
	// Acks are asynchronous: wait until the 20 are carried out (depth 180).
	waitFor(t, "the acks carried out", 30*time.Second, func() bool { return queueDepth(t, g, "fo") == n-len(acked) })

	g.kill("QM1")
	again := amqpDial(t, gen)
	if node(again) != "QM2" {
		t.Fatalf("reconnected to %q through the generic port with QM1 dead", node(again))
	}
	ach, _ := again.Channel()
	ads, err := ach.Consume("fo", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for len(seen) < n-len(acked) {
		d := nextDelivery(t, ads)
		b := string(d.Body)
		switch {
		case acked[b]:
			t.Fatalf("message %s acknowledged before the kill came again", b)
		case seen[b]:
			t.Fatalf("message %s came twice after the kill", b)
		case given[b] && !d.Redelivered:
			// (One the test did not read may have been sent before the
			// kill too: redelivered either way.)
			t.Fatalf("message %s, delivered before the kill, came again without redelivered", b)
		}
		seen[b] = true
		d.Ack(false)
	}
	waitFor(t, "the queue empty", 30*time.Second, func() bool { return queueDepth(t, g, "fo") == 0 })
}

// TestAMQPFailoverPublisher: a publisher in confirm mode through QM1 when
// QM1 is SIGKILLed reconnects through the generic port and publishes on;
// every message it had confirmed is on the queue (once), as are those
// confirmed after.
func TestAMQPFailoverPublisher(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, p1, _, gen := amqpGroup(t)
	conn := amqpDial(t, p1)
	ch, _ := conn.Channel()
	if _, err := ch.QueueDeclare("pfo", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ch.Confirm(false)
	confirmed := map[string]bool{}
	unsure := map[string]bool{}
	killed := false
	for i := 0; len(confirmed) < 300; i++ {
		body := strconv.Itoa(i)
		if i == 100 && !killed {
			g.kill("QM1")
			killed = true
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", "pfo", false, false,
			rmq.Publishing{DeliveryMode: 2, Body: []byte(body)})
		ok := err == nil && waitConfirm(dc)
		if ok {
			confirmed[body] = true
			continue
		}
		unsure[body] = true
		conn = amqpDial(t, gen)
		ch, _ = conn.Channel()
		ch.Confirm(false)
	}
	if !killed {
		t.Fatal("QM1 was not killed")
	}
	got := map[string]int{}
	dch, _ := amqpDial(t, gen).Channel()
	for {
		d, ok, err := dch.Get("pfo", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got[string(d.Body)]++
	}
	for b := range confirmed {
		if got[b] != 1 {
			t.Fatalf("confirmed message %s is on the queue %d times", b, got[b])
		}
	}
	for b, k := range got {
		if !confirmed[b] && !unsure[b] || k > 1 {
			t.Fatalf("message %s on the queue %d times (confirmed %v)", b, k, confirmed[b])
		}
	}
}

// waitConfirm waits for a publish's confirm; false when nacked or its
// connection went.
func waitConfirm(dc *rmq.DeferredConfirmation) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok, err := dc.WaitContext(ctx)
	return err == nil && ok
}

func nextDelivery(t *testing.T, ds <-chan rmq.Delivery) rmq.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatal("deliveries ended")
		}
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
	}
	return rmq.Delivery{}
}

// queueDepth is a queue's CURDEPTH through a surviving member's command
// server.
func queueDepth(t *testing.T, g *testGroup, q string) int {
	t.Helper()
	code, out, _ := g.run("", "mqsc", "-c", "DISPLAY QLOCAL('"+q+"') CURDEPTH")
	if code != 0 {
		return -1
	}
	var d int
	if i := strings.Index(out, "CURDEPTH("); i >= 0 {
		fmt.Sscanf(out[i+len("CURDEPTH("):], "%d", &d)
		return d
	}
	return -1
}

// TestAMQPPropertiesThroughQmgrGet: a message published through AMQP
// comes out of qmgr get with its body, and with --props its exchange,
// routing key and properties.
func TestAMQPPropertiesThroughQmgrGet(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, p1, _, _ := amqpGroup(t)
	ch, _ := amqpDial(t, p1).Channel()
	if _, err := ch.QueueDeclare("props", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	err := ch.PublishWithContext(context.Background(), "", "props", false, false, rmq.Publishing{ContentType: "text/plain",
		CorrelationId: "c-9", Headers: rmq.Table{"tenant": "blue"}, Body: []byte("hello")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message on the queue", 30*time.Second, func() bool { return queueDepth(t, g, "props") == 1 })
	code, out, errs := g.run("", "get", "--queue", "props", "--props")
	if code != 0 {
		t.Fatalf("get: %d %s", code, errs)
	}
	for _, want := range []string{`"RoutingKey":"props"`, `"ContentType":"text/plain"`, `"CorrelationID":"c-9"`, `"tenant":"blue"`, "\nhello\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("qmgr get --props output lacks %s:\n%s", want, out)
		}
	}
}

// TestAMQPPropertiesOverChannel: a message published through AMQP, moved
// by an mq application to a remote queue, crosses a channel to another
// group and comes out of an AMQP consumer there with its exchange, routing
// key and properties unchanged.
func TestAMQPPropertiesOverChannel(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	r := newRemoteGroup(t)
	r.port = freePort(t)
	rAMQP := freePort(t)
	r.startWith("RQM", "--port", strconv.Itoa(r.port), "--amqp-port", strconv.Itoa(rAMQP))
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) AUTHKEY('" + testAuthKey + "')")
	g := newTestGroupSized(t, 64<<20)
	gAMQP := freePort(t)
	g.startWith("QM1", "--amqp-port", strconv.Itoa(gAMQP))
	g.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ) MAXDEPTH(999999999) TRIGGER TRIGDATA(TO.R)")
	g.mqsc(fmt.Sprintf("DEFINE CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) SHORTTMR(1) AUTHKEY('%s')", r.port, testAuthKey))
	g.mqsc("DEFINE QREMOTE(RQ) RNAME(TARGET) RQMNAME(RQM) XMITQ(XQ)")

	rch, _ := amqpDial(t, rAMQP).Channel()
	if _, err := rch.QueueDeclare("TARGET", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	gch, _ := amqpDial(t, gAMQP).Channel()
	if _, err := gch.QueueDeclare("staging", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := gch.ExchangeDeclare("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := gch.QueueBind("staging", "eu.#", "orders", false, nil); err != nil {
		t.Fatal(err)
	}
	err := gch.PublishWithContext(context.Background(), "orders", "eu.fr.paris", false, false, rmq.Publishing{
		ContentType: "application/json", DeliveryMode: 2, Priority: 4, MessageId: "m-1", Headers: rmq.Table{"n": int32(7)}, Body: []byte(`{"a":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	// The bridge: an mq application moves it to the remote queue as it is.
	c := g.connect("QM1")
	defer c.Disconnect()
	in, err := c.Open("staging", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := in.Get(mq.GetOptions{Wait: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Open("RQ", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := out.Put(&mq.Message{Properties: m.Properties, Body: m.Body, Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	ds, err := rch.Consume("TARGET", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := nextDelivery(t, ds)
	if d.Exchange != "orders" || d.RoutingKey != "eu.fr.paris" || d.ContentType != "application/json" || d.DeliveryMode != 2 ||
		d.Priority != 4 || d.MessageId != "m-1" || d.Headers["n"] != int32(7) || string(d.Body) != `{"a":1}` {
		t.Fatalf("delivered at the remote group: %+v", d)
	}
}
