package mq_test

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
)

// putterMain connects to the group of MQ_GROUP_DIR and puts one message
// with body MQ_BODY on Q.
func putterMain() error {
	dir := os.Getenv("MQ_GROUP_DIR")
	c, err := mq.Connect(mq.ConnectOptions{Group: "T", QMgr: "QM1", DataDir: dir + "/data", CFDir: dir + "/cf"})
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open("Q", mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	return q.Put(&mq.Message{Body: []byte(os.Getenv("MQ_BODY"))}, mq.PutOptions{})
}

// waitForWaiters waits until n gets wait on queue q of connection c.
func waitForWaiters(t *testing.T, c *mq.Conn, q *mq.Queue, n int) {
	t.Helper()
	s, err := mqconn.Of(c).Group.Structure(q.Def().CFStruct, false)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.LookupQueue(q.Name())
	if err != nil {
		t.Fatal(err)
	}
	for s.Waiters(id) != n {
		time.Sleep(time.Millisecond)
	}
}

// TestInterruptWaitingGet: a get waiting for ever (a view batch, a get
// under syncpoint, a get outside it) fails with ErrInterrupted
// (RCCallInterrupted) once another goroutine interrupts it, and so does
// every later get that would wait until Reset; the handle works
// afterwards.
func TestInterruptWaitingGet(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q) DEFPSIST(YES)")
	c := connect(t, g)
	q := open(t, c, "Q")
	var in mq.Interrupter
	gets := map[string]func() error{
		"views": func() error {
			vs := make([]mq.View, 8)
			_, err := q.GetViewsInto(mq.GetOptions{Wait: mq.WaitForever, Interrupt: &in}, vs)
			return err
		},
		"syncpoint get": func() error {
			_, err := q.Get(mq.GetOptions{Syncpoint: true, Wait: mq.WaitForever, Interrupt: &in})
			return err
		},
		"get": func() error {
			_, err := q.Get(mq.GetOptions{Wait: mq.WaitForever, Interrupt: &in})
			return err
		},
	}
	for name, get := range gets {
		in.Reset()
		done := make(chan error, 1)
		go func() { done <- get() }()
		waitForWaiters(t, c, q, 1)
		in.Interrupt()
		if err := <-done; !errors.Is(err, mq.ErrInterrupted) || mq.ReasonOf(err) != mq.RCCallInterrupted {
			t.Fatalf("%s: %v", name, err)
		}
		if !in.Interrupted() {
			t.Fatalf("%s: the interrupt did not stay", name)
		}
		if err := get(); !errors.Is(err, mq.ErrInterrupted) {
			t.Fatalf("%s, interrupted before it waits: %v", name, err)
		}
	}
	// The handle works; a get that finds a message returns it, interrupted or not.
	put(t, q, &mq.Message{Body: []byte("A")})
	if m, err := q.Get(mq.GetOptions{Wait: mq.WaitForever, Interrupt: &in}); err != nil || string(m.Body) != "A" {
		t.Fatalf("get after the interrupt: %v", err)
	}
}

// TestInterruptibleGetWokenByPut: a get waiting with an Interrupter
// (a view, a get) is woken by a message another process puts.
func TestInterruptibleGetWokenByPut(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := member(t, "DEFINE QLOCAL(Q) DEFPSIST(YES)")
	c := connect(t, g)
	q := open(t, c, "Q")
	var in mq.Interrupter
	for i, name := range []string{"views", "get"} {
		var v mq.View
		done := make(chan error, 1)
		go func() {
			want := fmt.Sprintf("P%d", i)
			var body string
			var err error
			if name == "views" {
				if err = q.GetViewInto(mq.GetOptions{Wait: mq.WaitForever, Interrupt: &in}, &v); err == nil {
					body = string(v.Bytes())
					err = v.Release()
				}
			} else {
				var m *mq.Message
				if m, err = q.Get(mq.GetOptions{Wait: mq.WaitForever, Interrupt: &in}); err == nil {
					body = string(m.Body)
				}
			}
			if err == nil && body != want {
				err = fmt.Errorf("got %q, want %q", body, want)
			}
			done <- err
		}()
		waitForWaiters(t, c, q, 1)
		p := testproc.Command(t, "putter")
		p.Env = append(p.Env, "MQ_GROUP_DIR="+groupDir(g), fmt.Sprintf("MQ_BODY=P%d", i))
		if err := p.Run(); err != nil {
			t.Fatalf("putter: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("%s woken by a put: %v", name, err)
		}
	}
}
