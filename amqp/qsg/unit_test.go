package qsg_test

import (
	"context"
	"fmt"
	"testing"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/qsg"
	"github.com/qmgr/qmgr/lockfree"
)

// TestChannelsShareOneGroupConnection: the channels of one AMQP
// connection that publish and get outside a transaction share one of the
// group's connection slots, so a client with many channels is not refused
// (with MaxConnsPerConnection 3, the fourth channel that published was
// closed with 506 when each held one); transactional channels and
// consumers still hold one each.
func TestChannelsShareOneGroupConnection(t *testing.T) {
	e := newEnvWith(t, func(c *qsg.Config) { c.MaxConnsPerConnection = 3 })
	declare(t, e.channel(), "shared.slot", nil)
	conn := e.dial()
	const n = 20
	for i := range n {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("channel %d: %v", i, err)
		}
		if i%2 == 0 {
			if err := ch.Confirm(false); err != nil {
				t.Fatal(err)
			}
		}
		dc, err := ch.PublishWithDeferredConfirm("", "shared.slot", false, false,
			rmq.Publishing{DeliveryMode: rmq.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatalf("publish on channel %d: %v", i, err)
		}
		if dc != nil && !dc.Wait() {
			t.Fatalf("publish on channel %d nacked", i)
		}
		if i%5 == 4 {
			if _, _, err := ch.Get("shared.slot", false); err != nil {
				t.Fatalf("get on channel %d: %v", i, err)
			}
		}
	}
	// Two transactional channels take the other two slots; a third is
	// one too many.
	for i := range 3 {
		ch, err := conn.Channel()
		if err == nil {
			err = ch.Tx()
		}
		if err == nil {
			err = ch.PublishWithContext(context.Background(), "", "shared.slot", false, false, rmq.Publishing{Body: []byte("tx")})
		}
		if err == nil {
			err = ch.TxCommit()
		}
		if i < 2 && err != nil {
			t.Fatalf("transactional channel %d: %v", i, err)
		}
		if i == 2 && code(err) != 506 {
			t.Fatalf("a third transactional channel (the fourth group connection): %v, want 506", err)
		}
	}
}

// TestSharedUnitFailureNacksOnlyItsOwn: channel 1 gathers confirmed
// publishes in the connection's shared unit of work; in the same burst,
// channel 2 publishes to a fanout exchange one of whose queues is full, so
// its publish is refused half-way and its puts backed out. Channel 1's
// publishes must all be confirmed and on their queue, and channel 2's
// nacked and on neither queue.
func TestSharedUnitFailureNacksOnlyItsOwn(t *testing.T) {
	e := newEnv(t)
	setup := e.channel()
	declare(t, setup, "unit.keep", nil)
	declare(t, setup, "unit.open", nil)
	declare(t, setup, "unit.full", rmq.Table{"x-max-length": int32(0), "x-overflow": "reject-publish"})
	if err := setup.ExchangeDeclare("unit.fan", "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"unit.open", "unit.full"} {
		if err := setup.QueueBind(q, "", "unit.fan", false, nil); err != nil {
			t.Fatal(err)
		}
	}

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(2, &amqp.ChannelOpen{})
	r.expect("channel.open-ok")
	for _, ch := range []uint16{1, 2} {
		r.send(ch, &amqp.ConfirmSelect{})
		r.expect("confirm.select-ok")
	}
	const n = 4
	var burst []byte
	for range n {
		burst = appendPublishOn(t, burst, 1, "", "unit.keep", []byte("keep"))
	}
	burst = appendPublishOn(t, burst, 2, "unit.fan", "", []byte("fan"))
	for range n {
		burst = appendPublishOn(t, burst, 1, "", "unit.keep", []byte("keep"))
	}
	r.write(burst)
	acked := map[uint16]uint64{}
	nacked := map[uint16]uint64{}
	for acked[1]+nacked[1] < 2*n || acked[2]+nacked[2] < 1 {
		switch m := r.recvOn().(type) {
		case onChannel[*amqp.BasicAck]:
			acked[m.ch] = m.m.DeliveryTag
		case onChannel[*amqp.BasicNack]:
			nacked[m.ch] = m.m.DeliveryTag
		}
	}
	if nacked[1] != 0 || acked[1] != 2*n {
		t.Fatalf("channel 1: last ack %d, nack %d; want all %d acked", acked[1], nacked[1], 2*n)
	}
	if nacked[2] != 1 {
		t.Fatalf("channel 2's refused fanout publish: ack %d nack %d, want nacked", acked[2], nacked[2])
	}
	for q, want := range map[string]int{"unit.keep": 2 * n, "unit.open": 0, "unit.full": 0} {
		if got := depth(t, e, q); got != want {
			t.Errorf("queue %s: depth %d, want %d", q, got, want)
		}
	}
}

// appendPublish appends a persistent basic.publish of body to queue (the
// default exchange) on channel 1.
func appendPublish(t *testing.T, b []byte, queue string, body []byte) []byte {
	return appendPublishOn(t, b, 1, "", queue, body)
}

// appendPublishOn appends a persistent basic.publish of body on channel ch.
func appendPublishOn(t *testing.T, b []byte, ch uint16, exchange, key string, body []byte) []byte {
	t.Helper()
	b, err := amqp.AppendMethodFrame(b, ch, &amqp.BasicPublish{Exchange: exchange, RoutingKey: key})
	if err != nil {
		t.Fatal(err)
	}
	b, err = amqp.AppendHeaderFrame(b, ch, &amqp.ContentHeader{ClassID: 60, BodySize: uint64(len(body)),
		Props: amqp.Properties{Flags: amqp.FlagDeliveryMode, DeliveryMode: 2}})
	if err != nil {
		t.Fatal(err)
	}
	return amqp.AppendBodyFrames(b, ch, 1<<17, body)
}

// onChannel is a method received on channel ch.
type onChannel[M amqp.Method] struct {
	ch uint16
	m  M
}

// recvOn reads the next method, skipping heartbeats and contents, as an
// onChannel of its type for the acks and nacks the tests look at.
func (r *rawConn) recvOn() any {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if f.Type != amqp.FrameMethod {
			continue
		}
		m, err := amqp.DecodeMethod(f.Payload)
		if err != nil {
			r.t.Fatal(err)
		}
		switch m := m.(type) {
		case *amqp.BasicAck:
			return onChannel[*amqp.BasicAck]{f.Channel, m}
		case *amqp.BasicNack:
			return onChannel[*amqp.BasicNack]{f.Channel, m}
		default:
			return m
		}
	}
}

// TestOtherChannelsMethodsKeepTheBatch: channel 2's methods that do not
// use the shared connection (basic.qos here; a consumer's acks alike) do
// not end channel 1's gathering: channel 1's publishes before and after
// them, read in one burst, are committed as one unit of work (one log
// write), not two.
func TestOtherChannelsMethodsKeepTheBatch(t *testing.T) {
	e := newEnv(t)
	declare(t, e.channel(), "unit.batch", nil)
	s, err := lockfree.Attach(e.g.Cfg.CFDir, "APPL1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(2, &amqp.ChannelOpen{})
	r.expect("channel.open-ok")
	r.send(1, &amqp.ConfirmSelect{})
	r.expect("confirm.select-ok")
	before, _, err := s.UOWCounts()
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	var burst []byte
	for range n {
		burst = appendPublishOn(t, burst, 1, "", "unit.batch", []byte("m"))
	}
	if burst, err = amqp.AppendMethodFrame(burst, 2, &amqp.BasicQos{PrefetchCount: 10}); err != nil {
		t.Fatal(err)
	}
	for range n {
		burst = appendPublishOn(t, burst, 1, "", "unit.batch", []byte("m"))
	}
	r.write(burst)
	for acked := uint64(0); acked < 2*n; {
		switch m := r.recvOn().(type) {
		case onChannel[*amqp.BasicAck]:
			acked = m.m.DeliveryTag
		case onChannel[*amqp.BasicNack]:
			t.Fatalf("publish %d nacked", m.m.DeliveryTag)
		}
	}
	after, _, err := s.UOWCounts()
	if err != nil {
		t.Fatal(err)
	}
	if after-before != 1 {
		t.Fatalf("%d publishes around another channel's basic.qos, in one burst, took %d units of work, want 1", 2*n, after-before)
	}
	waitDepth(t, e, "unit.batch", 2*n)
}
