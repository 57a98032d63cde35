package qsg_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
)

// rawConn speaks AMQP with the package's codec, for a client that stops
// reading at a chosen frame (amqp091-go reads and buffers everything).
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *amqp.FrameReader
}

func dialRawAMQP(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	r := &rawConn{t: t, nc: nc, fr: amqp.NewFrameReader(nc)}
	r.fr.SetMax(4 << 20)
	r.write(amqp.ProtocolHeader[:])
	r.recv() // connection.start
	r.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	tune, ok := r.recv().(*amqp.ConnectionTune)
	if !ok {
		t.Fatal("no connection.tune")
	}
	r.send(0, &amqp.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax})
	r.send(0, &amqp.ConnectionOpen{VirtualHost: "/"})
	r.expect("connection.open-ok")
	r.send(1, &amqp.ChannelOpen{})
	r.expect("channel.open-ok")
	return r
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) send(ch uint16, m amqp.Method) {
	r.t.Helper()
	b, err := amqp.AppendMethodFrame(nil, ch, m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

// recv reads the next method, skipping heartbeats and contents.
func (r *rawConn) recv() amqp.Method {
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
		return m
	}
}

// expect reads methods until one named name (deliveries skipped).
func (r *rawConn) expect(name string) amqp.Method {
	r.t.Helper()
	for {
		if m := r.recv(); m.Name() == name {
			return m
		}
	}
}

// TestReview2TxCommitOkBeforeAckCarriedOut: a consumer's delivery is acked
// in a transaction and tx.commit-ok comes back; then the member the broker
// is attached through is SIGKILLed. The acked message must be gone (a
// committed transaction is durable; the issue: "a transaction is one unit
// of work"). Here txMethod commits the channel's unit of work and only
// posts the acks to the consumer's goroutine (settleTaken), which carries
// them out later, after commit-ok (gathered in c.acked, or not at all
// while the goroutine is busy writing deliveries): the member's death
// gives the committed-acked message back, to be delivered again.
func TestReview2TxCommitOkBeforeAckCarriedOut(t *testing.T) {
	txAckThenKill(t, func(r *rawConn) uint64 {
		r.send(1, &amqp.BasicConsume{Queue: "txgap", ConsumerTag: "c"})
		r.expect("basic.consume-ok")
		return r.expect("basic.deliver").(*amqp.BasicDeliver).DeliveryTag
	})
}

// TestReview2TxGetAckSurvivesKill is the control of
// TestReview2TxCommitOkBeforeAckCarriedOut (it passes): the same with
// basic.get, whose ack the reader carries out before tx.commit-ok.
func TestReview2TxGetAckSurvivesKill(t *testing.T) {
	txAckThenKill(t, func(r *rawConn) uint64 {
		r.send(1, &amqp.BasicGet{Queue: "txgap"})
		return r.expect("basic.get-ok").(*amqp.BasicGetOk).DeliveryTag
	})
}

// txAckThenKill fills a durable queue with persistent messages, has a raw
// client take one (take), ack it in a transaction and commit, stop
// reading, kills the member the broker is attached through and checks
// that the acked message is gone.
func txAckThenKill(t *testing.T, take func(r *rawConn) uint64) {
	e := newEnv(t)
	if _, err := e.g.Start("QM2"); err != nil {
		t.Fatal(err)
	}
	setup := e.channel()
	const n, size = 400, 32 << 10
	declare(t, setup, "txgap", nil)
	if err := setup.Confirm(false); err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("x", size))
	for i := range n {
		dc, err := setup.PublishWithDeferredConfirm("", "txgap", false, false,
			rmq.Publishing{DeliveryMode: rmq.Persistent, MessageId: fmt.Sprint(i), Body: body})
		if err != nil || !dc.Wait() {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	waitDepth(t, e, "txgap", n)

	r := dialRawAMQP(t, e.ln.Addr().String())
	r.send(1, &amqp.TxSelect{})
	r.expect("tx.select-ok")
	r.send(1, &amqp.BasicAck{DeliveryTag: take(r)})
	r.send(1, &amqp.TxCommit{})
	r.expect("tx.commit-ok") // the client stops reading here
	// Committed: the acked message is removed, n-1 remain (held or not).
	e.g.Kill("QM1")
	deadline := time.Now().Add(20 * time.Second)
	want := fmt.Sprintf("CURDEPTH(%d)", n-1)
	var out string
	for time.Now().Before(deadline) {
		o, err := e.g.MQSC("QM2", "DISPLAY QLOCAL('txgap') CURDEPTH")
		if err == nil {
			out = o
			if strings.Contains(out, want) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("after tx.commit-ok of an ack and the member's death, want %s (the acked message gone): %s", want, out)
}
