package qsg_test

import (
	"net"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
)

// raw is a client speaking raw frames to the env's broker.
type raw struct {
	t  *testing.T
	nc net.Conn
	fr *amqp.FrameReader
}

func (e *env) raw() *raw {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.ln.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	r := &raw{t: e.t, nc: nc, fr: amqp.NewFrameReader(nc)}
	r.fr.SetMax(1 << 20)
	return r
}

func (r *raw) send(ch uint16, m amqp.Method) {
	r.t.Helper()
	b, err := amqp.AppendMethodFrame(nil, ch, m)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads frames until a method (skipping heartbeats and contents).
func (r *raw) recv() (uint16, amqp.Method) {
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
		return f.Channel, m
	}
}

// open logs in as guest and opens channel 1.
func (r *raw) open() {
	r.t.Helper()
	r.nc.Write(amqp.ProtocolHeader[:])
	r.recv()
	r.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	_, tm := r.recv()
	tune := tm.(*amqp.ConnectionTune)
	r.send(0, &amqp.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax})
	r.send(0, &amqp.ConnectionOpen{VirtualHost: "/"})
	r.recv()
	r.send(1, &amqp.ChannelOpen{})
	r.recv()
}

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
		do   func(r *raw)
	}{
		{"malformed frame", amqp.ReplyFrameError, func(r *raw) { r.nc.Write([]byte{1, 0, 1, 0, 0, 0, 4, 0, 60, 0, 80, 0x00}) }},
		{"unopened channel", amqp.ReplyChannelError, func(r *raw) { r.send(9, &amqp.BasicQos{PrefetchCount: 1}) }},
		{"out of order", amqp.ReplyCommandInvalid, func(r *raw) { r.send(0, &amqp.ConnectionTuneOk{}) }},
		{"vanishes", 0, func(r *raw) { r.nc.Close() }},
	}
	for i, b := range bad {
		publish(t, ch, "", "victim", rmq.Publishing{Body: []byte(b.name)})
		r := e.raw()
		r.open()
		r.send(1, &amqp.BasicConsume{Queue: "victim", ConsumerTag: "bad"})
		r.recv() // consume-ok
		if _, m := r.recv(); m.Name() != "basic.deliver" {
			t.Fatalf("%s: got %s, want the delivery", b.name, m.Name())
		}
		b.do(r)
		if b.code != 0 {
			_, m := r.recv()
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
