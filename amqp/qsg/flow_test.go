package qsg_test

import (
	"context"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp/qsg"
)

// TestFlowControlBlocksPublishers: once the queues' structure is used
// above the high-water mark, publishers are told connection.blocked and
// their publishes are held (not put); when consumers bring the use under
// the low-water mark they are unblocked and the held publish goes on.
func TestFlowControlBlocksPublishers(t *testing.T) {
	e := newEnvWith(t, func(c *qsg.Config) {
		c.HighWater, c.LowWater, c.FlowInterval = 0.02, 0.01, 20*time.Millisecond
	})
	pubConn := e.dial()
	// amqp091-go's reader blocks on a full notification channel (and
	// panics if the connection closes meanwhile): what the publisher sent
	// before it read connection.blocked is put once unblocked and may
	// block it again, so the state can flip many times before the test
	// ends; the buffer takes them all.
	blocked := pubConn.NotifyBlocked(make(chan rmq.Blocking, 1<<16))
	ch, _ := pubConn.Channel()
	declare(t, ch, "flow", nil)
	// The publisher publishes until told to stop and then "held", last;
	// once blocked, its writes stop when the socket's buffers are full.
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		body := make([]byte, 32<<10)
		for {
			select {
			case <-stop:
				done <- ch.PublishWithContext(context.Background(), "", "flow", false, false, rmq.Publishing{Body: []byte("held")})
				return
			default:
			}
			if err := ch.PublishWithContext(context.Background(), "", "flow", false, false, rmq.Publishing{Body: body}); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case b := <-blocked:
		if !b.Active || b.Reason == "" {
			t.Fatalf("first notification %+v, want blocked with a reason", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("never blocked")
	}
	close(stop)
	// Blocked, nothing more reaches the queue.
	before := depth(t, e, "flow")
	time.Sleep(300 * time.Millisecond)
	if now := depth(t, e, "flow"); now != before {
		t.Fatalf("depth went from %d to %d while publishers were blocked", before, now)
	}
	// Drain through another connection, which is not held. (Owners cache
	// a few hundred entries and elements, counted as used: the marks are
	// well above that, and 32 KiB messages reach them with what is queued.)
	cons := e.channel()
	ds, err := cons.Consume("flow", "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		d := next(t, ds)
		got++
		if string(d.Body) == "held" {
			break
		}
	}
	// What the client had sent before it read connection.blocked was held
	// unread with it and comes before it, once unblocked.
	if got < before+1 {
		t.Fatalf("consumed %d, want at least the %d there while blocked and then the held one", got, before)
	}
	select {
	case b := <-blocked:
		if b.Active {
			t.Fatalf("second notification %+v, want unblocked", b)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no connection.unblocked")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitDepth(t, e, "flow", 0)
}

// depth is a queue's depth as DISPLAY QLOCAL shows it.
func depth(t *testing.T, e *env, q string) int {
	t.Helper()
	out := e.mqsc("DISPLAY QLOCAL('" + q + "') CURDEPTH")
	var n int
	for i := 0; i+9 < len(out); i++ {
		if out[i:i+9] == "CURDEPTH(" {
			for j := i + 9; j < len(out) && out[j] >= '0' && out[j] <= '9'; j++ {
				n = n*10 + int(out[j]-'0')
			}
			return n
		}
	}
	t.Fatalf("no CURDEPTH in %q", out)
	return 0
}
