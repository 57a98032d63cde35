package qsg_test

import (
	"strings"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/lockfree"
)

// TestPublishAfterStructureRecovery: the queues' structure fails and is
// recovered under a connection whose channels publish through its shared
// mq connection (whose output handles are cached). A publish through a
// stale handle fails with 2373, which closes the AMQP connection (541);
// the client's next connection publishes again, and its message is
// delivered.
func TestPublishAfterStructureRecovery(t *testing.T) {
	e := newEnv(t)
	conn := e.dial()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	declare(t, ch, "rec.q", nil)
	publish(t, ch, "", "rec.q", rmq.Publishing{DeliveryMode: rmq.Persistent, Body: []byte("before")})
	waitDepth(t, e, "rec.q", 1)

	s, err := lockfree.Attach(e.g.Cfg.CFDir, "APPL1")
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	s.Close()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(e.mqsc("DISPLAY CFSTATUS(APPL1)"), "STATUS(ACTIVE)") {
		if time.Now().After(deadline) {
			t.Fatalf("APPL1 not recovered: %s", e.mqsc("DISPLAY CFSTATUS(APPL1)"))
		}
		e.mqsc("RECOVER CFSTRUCT(APPL1)")
		time.Sleep(50 * time.Millisecond)
	}

	var ok bool
	for end := time.Now().Add(30 * time.Second); !ok && time.Now().Before(end); { // the first publish may fail on a stale handle
		if conn.IsClosed() {
			conn = e.dial()
		}
		c, err := conn.Channel()
		if err != nil {
			time.Sleep(10 * time.Millisecond) // closing: dialled again once closed
			continue
		}
		if err := c.Confirm(false); err != nil {
			t.Fatal(err)
		}
		dc, err := c.PublishWithDeferredConfirm("", "rec.q", false, false, rmq.Publishing{DeliveryMode: rmq.Persistent, Body: []byte("after")})
		ok = err == nil && dc.Wait()
	}
	if !ok {
		t.Fatal("no channel of the connection could publish after the structure's recovery")
	}
	d, got, err := ch2(t, conn).Get("rec.q", true)
	for err == nil && got && string(d.Body) != "after" {
		d, got, err = ch2(t, conn).Get("rec.q", true)
	}
	if err != nil || !got {
		t.Fatalf("the message published after the recovery: %v %v", got, err)
	}
}

// ch2 is a new channel of conn.
func ch2(t *testing.T, conn *rmq.Connection) *rmq.Channel {
	t.Helper()
	c, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return c
}
