package mq_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
)

func TestMain(m *testing.M) {
	testproc.Register("holder", func([]string) int {
		if err := holderMain(); err != nil {
			fmt.Fprintln(os.Stderr, "holder:", err)
			return 3
		}
		return 0
	})
	testproc.Register("putter", func([]string) int {
		if err := putterMain(); err != nil {
			fmt.Fprintln(os.Stderr, "putter:", err)
			return 3
		}
		return 0
	})
	testproc.Register("swapper", func([]string) int {
		if err := swapperMain(); err != nil {
			fmt.Fprintln(os.Stderr, "swapper:", err)
			return 3
		}
		return 0
	})
	testproc.Main(m)
}

// holderMain connects to the group of MQ_GROUP_DIR, holds the first two
// messages of Q as views outside syncpoint and the third in a get under
// syncpoint, says "held" and waits to be killed.
func holderMain() error {
	dir := os.Getenv("MQ_GROUP_DIR")
	c, err := mq.Connect(mq.ConnectOptions{Group: "T", QMgr: "QM1", DataDir: dir + "/data", CFDir: dir + "/cf"})
	if err != nil {
		return err
	}
	q, err := c.Open("Q", mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	for i := 0; i < 2; i++ {
		if _, err := q.GetView(mq.GetOptions{}); err != nil {
			return err
		}
	}
	if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		return err
	}
	fmt.Println("held")
	select {}
}

// putFour puts M0 (persistent), M1, M2 (persistent), M3 on q.
func putFour(t *testing.T, q *mq.Queue) {
	t.Helper()
	for i := 0; i < 4; i++ {
		ps := mq.NotPersistent
		if i%2 == 0 {
			ps = mq.Persistent
		}
		put(t, q, &mq.Message{Body: []byte(fmt.Sprintf("M%d", i)), Persistence: ps})
	}
}

// expectQueue gets the messages of q, each waiting up to wait, until
// it has as many as want, checks bodies and backout counts against want,
// and checks the queue is then empty.
func expectQueue(t *testing.T, q *mq.Queue, wait time.Duration, what string, want ...string) {
	t.Helper()
	var got []string
	for len(got) < len(want) {
		m, err := q.Get(mq.GetOptions{Wait: wait})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got = append(got, fmt.Sprintf("%s/%d", m.Body, m.BackoutCount))
	}
	if m, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("%s: after %v, the queue still holds %+v (%v)", what, got, m, err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: queue holds %v, want %v", what, got, want)
	}
}

// TestViewRequeue: a view got outside syncpoint, persistent or not, is
// given back by Requeue at its place with its backout count raised; a
// syncpoint view is refused with RCOptionError and stays valid in its
// unit of work.
func TestViewRequeue(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	putFour(t, q)
	var vs [3]mq.View
	if n, err := q.GetViewsInto(mq.GetOptions{}, vs[:]); n != 3 || err != nil {
		t.Fatalf("got %d views: %v", n, err)
	}
	for i := 2; i >= 0; i-- { // in reverse: each goes back to its own place
		if err := vs[i].Requeue(); err != nil {
			t.Fatal(err)
		}
	}
	if err := vs[0].Requeue(); mq.ReasonOf(err) != mq.RCOptionError {
		t.Fatalf("second requeue: %v", err)
	}
	v, err := q.GetView(mq.GetOptions{})
	if err != nil || string(v.Bytes()) != "M0" || v.BackoutCount != 1 || v.Persistence != mq.Persistent {
		t.Fatalf("after requeue: %v %+v", err, v)
	}
	if err := v.Release(); err != nil { // the persistent get, logged now
		t.Fatal(err)
	}
	sv, err := q.GetView(mq.GetOptions{Syncpoint: true})
	if err != nil || string(sv.Bytes()) != "M1" {
		t.Fatalf("syncpoint view: %v", err)
	}
	if err := sv.Requeue(); mq.ReasonOf(err) != mq.RCOptionError {
		t.Fatalf("requeue of a syncpoint view: %v", err)
	}
	if string(sv.Bytes()) != "M1" {
		t.Fatal("the refused syncpoint view lost its body")
	}
	if err := c.Backout(); err != nil {
		t.Fatal(err)
	}
	expectQueue(t, q, 0, "after requeue and backout", "M1/2", "M2/1", "M3/0")
}

// TestDisconnectGivesViewsBack: views still held when the connection
// disconnects go back at their places with their backout counts raised.
func TestDisconnectGivesViewsBack(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c1 := connect(t, g)
	putFour(t, open(t, c1, "Q"))
	c2 := connect(t, g)
	q2 := open(t, c2, "Q")
	for i := 0; i < 2; i++ {
		if _, err := q2.GetView(mq.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q2.GetView(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := c2.Disconnect(); err != nil {
		t.Fatal(err)
	}
	expectQueue(t, open(t, c1, "Q"), 0, "after disconnect", "M0/1", "M1/1", "M2/1", "M3/0")
}

// TestHolderDiesViewsBack: a process SIGKILLed while it holds views
// outside syncpoint (persistent and not) and a get under syncpoint: its
// member's recovery gives every one back at its place with its backout
// count raised by one.
func TestHolderDiesViewsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	putFour(t, q)
	cmd := testproc.Command(t, "holder")
	cmd.Env = append(cmd.Env, "MQ_GROUP_DIR="+groupDir(g))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("holder: %q %v", line, err)
	}
	if m, err := q.Get(mq.GetOptions{}); err != nil || string(m.Body) != "M3" {
		t.Fatalf("while held: %v %+v", err, m)
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The member notices the death (pidfd) and gives the messages back,
	// waking this waiter.
	expectQueue(t, q, time.Minute, "after the holder died", "M0/1", "M1/1", "M2/1")
}

// groupDir is the directory member made g's data and CF directories in.
func groupDir(g group.Config) string { return g.DataDir[:len(g.DataDir)-len("/data")] }
