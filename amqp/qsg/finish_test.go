package qsg_test

import (
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/amqp/qsg"
)

// TestCloseWaitsForFinishingConsumer: a consumer that ends on its own (a
// basic.cancel here; in CI its group connection revoked by its member's
// death) leaves its channel's table before it gives back its group
// connection. A channel that closes in between must still wait for it:
// the broker's Close waits for every session, and a session for its
// channels, so once Close returns no group connection may be held. The
// consumer is held inside that window until Close returned, or for half
// a second if Close (rightly) waits for it.
func TestCloseWaitsForFinishingConsumer(t *testing.T) {
	e := newEnv(t)
	ch := e.channel()
	declare(t, ch, "finishing", nil)
	var entered sync.Once
	inWindow, release := make(chan struct{}), make(chan struct{})
	defer qsg.SetConsumerFinishing(func() {
		entered.Do(func() { close(inWindow) })
		<-release
	})()
	if _, err := ch.Consume("finishing", "c", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Cancel("c", false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inWindow:
	case <-time.After(10 * time.Second):
		t.Fatal("the cancelled consumer did not finish")
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		e.close() // fails the test if a group connection is still held
	}()
	select {
	case <-closed:
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker's Close did not return once the consumer finished")
	}
}
