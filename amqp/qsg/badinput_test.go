package qsg_test

import (
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
)

// TestBadClientsLeaveNothingHeld: clients that hold deliveries and then
// break the protocol (a malformed frame, a method on an unopened channel,
// a method out of order) or vanish are closed with the right code, and
// what they held comes back to the queue, redelivered; no group
// connection stays held (the harness checks at the end).
func TestBadClientsLeaveNothingHeld(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "victim", nil)
	bad := []struct {
		name string
		code uint16 // 0: the client just goes
		do   func(r *rawConn)
	}{
		{"malformed frame", amqp.ReplyFrameError, func(r *rawConn) { r.nc.Write([]byte{1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 80, 0x00}) }},
		{"unopened channel", amqp.ReplyChannelError, func(r *rawConn) { r.send(9, &amqp.BasicQos{PrefetchCount: 1}) }},
		{"out of order", amqp.ReplyCommandInvalid, func(r *rawConn) { r.send(0, &amqp.ConnectionTuneOk{}) }},
		{"vanishes", 0, func(r *rawConn) { r.nc.Close() }},
	}
	for i, b := range bad {
		publish(t, ch, "", "victim", rmq.Publishing{Body: []byte(b.name)})
		r := dialRawAMQP(t, e.ln.Addr().String())
		r.send(1, &amqp.BasicConsume{Queue: "victim", ConsumerTag: "bad"})
		r.recv() // consume-ok
		if m := r.recv(); m.Name() != "basic.deliver" {
			t.Fatalf("%s: got %s, want the delivery", b.name, m.Name())
		}
		b.do(r)
		if b.code != 0 {
			m := r.recv()
			if c, ok := m.(*amqp.ConnectionClose); !ok || c.ReplyCode != b.code {
				t.Fatalf("%s: got %s %+v, want connection.close %d", b.name, m.Name(), m, b.code)
			}
			r.send(0, &amqp.ConnectionCloseOk{})
		}
		d, ok, err := ch.Get("victim", false)
		for deadline := time.Now().Add(20 * time.Second); !ok && err == nil && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			d, ok, err = ch.Get("victim", false)
		}
		if err != nil || !ok || string(d.Body) != b.name || !d.Redelivered {
			t.Fatalf("case %d %s: after the bad client, get %q ok=%v redelivered=%v err=%v", i, b.name, d.Body, ok, d.Redelivered, err)
		}
		d.Ack(false)
	}
	waitDepth(t, e, "victim", 0)
}
