package qsg_test

import (
	"bytes"
	"encoding/hex"
	"testing"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/mq"
)

// mqConn connects an mq application to the env's group.
func (e *env) mqConn() *mq.Conn {
	e.t.Helper()
	cfg := e.g.Cfg
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Disconnect() })
	return c
}

// TestPropertiesThroughMQ: an AMQP queue is a queue mq applications use:
// a message published through AMQP, got by an mq application and put by it
// to another queue, comes out of that queue through AMQP with its
// properties, exchange and routing key unchanged; and a message an mq
// application put comes to an AMQP consumer with its ids as properties.
func TestPropertiesThroughMQ(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "in", nil)
	declare(t, ch, "out", nil)
	if err := ch.ExchangeDeclare("x", "direct", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind("in", "k", "x", false, nil); err != nil {
		t.Fatal(err)
	}
	sent := rmq.Publishing{ContentType: "text/plain", Headers: rmq.Table{"h": "v"}, CorrelationId: "c", MessageId: "m", DeliveryMode: 2, Body: []byte("through mq")}
	publish(t, ch, "x", "k", sent)

	c := e.mqConn()
	in, err := c.Open("in", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := in.Get(mq.GetOptions{Wait: 20e9})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Persistent || string(m.Body) != "through mq" || len(m.Properties) == 0 {
		t.Fatalf("mq got persistent=%v body %q properties %d bytes", m.Persistent, m.Body, len(m.Properties))
	}
	out, err := c.Open("out", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	fwd := &mq.Message{Properties: m.Properties, Body: m.Body, Persistence: mq.Persistent}
	if err := out.Put(fwd, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	d, ok, err := ch.Get("out", true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if d.Exchange != "x" || d.RoutingKey != "k" || d.ContentType != "text/plain" || d.Headers["h"] != "v" ||
		d.CorrelationId != "c" || d.MessageId != "m" || d.DeliveryMode != 2 || string(d.Body) != "through mq" {
		t.Fatalf("forwarded delivery %+v", d)
	}

	// An mq application's message.
	plain := &mq.Message{Body: []byte("from mq"), Format: "MQSTR", CorrelID: [24]byte{1, 2, 3}}
	if err := out.Put(plain, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	d, ok, err = ch.Get("out", true)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if d.Exchange != "" || d.RoutingKey != "out" || !bytes.Equal(d.Body, plain.Body) || d.ContentType != "text/plain" ||
		d.MessageId != hex.EncodeToString(plain.MsgID[:]) || d.CorrelationId != hex.EncodeToString(plain.CorrelID[:]) {
		t.Fatalf("mq message as delivered %+v", d)
	}
}
