package qm

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/recovery/replay"
	"github.com/qmgr/qmgr/vfs"
	"golang.org/x/sys/unix"
)

// TestLogDiskFullAndFailingSync: the member's log disk fills up, then
// its syncs fail for a while. Persistent puts and commits fail with MQRC
// 2102 and a reason that says why while the log cannot write, DISPLAY
// GROUP shows the log failed, and both work again by themselves once the
// disk does. Non-persistent work goes on throughout. Afterwards the queue
// holds exactly the messages whose puts and commits succeeded, and so
// does the structure recovered from the log after the CF is lost.
func TestLogDiskFullAndFailingSync(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(41)
	cfg.LogFS = disk
	cfg.LogSegmentSize = 64 << 10
	memberLog := logTo(t, &cfg)
	m, c := startConnected(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P) MAXDEPTH(100000)")
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	// G holds one persistent message that gets try to take while the log
	// is failed: they fail and leave it as it was.
	mustExec(t, m, "DEFINE QLOCAL(G)")
	gh, err := c.Open("G", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := gh.Put(&mq.Message{Body: []byte("g"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	var acked []string
	n := 0
	// put puts one persistent message outside syncpoint and reports the
	// failure. (A commit whose record fails while it waits is the
	// business of package mq's commit; commits here run while the log
	// writes, or while it is known failed: uow.)
	put := func() error {
		n++
		body := fmt.Sprintf("p%05d", n)
		if err := h.Put(&mq.Message{Body: []byte(body), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			return err
		}
		acked = append(acked, body)
		return nil
	}
	// uow puts two persistent messages in a unit of work and commits.
	uow := func(i int) error {
		a, b := fmt.Sprintf("u%05da", i), fmt.Sprintf("u%05db", i)
		for _, body := range []string{a, b} {
			if err := h.Put(&mq.Message{Body: []byte(body), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
				c.Backout()
				return err
			}
		}
		if err := c.Commit(); err != nil {
			return err
		}
		acked = append(acked, a, b)
		return nil
	}
	logStatus := func() string {
		r := mustExec(t, m, "DISPLAY GROUP")
		return r.Text
	}
	// failUntil puts until a put fails, checks the failure, and then
	// puts until the log writes again.
	failUntil := func(what, reason string, heal func()) {
		t.Helper()
		var err error
		for range 100000 {
			if err = put(); err != nil {
				break
			}
		}
		if err == nil {
			t.Fatalf("%s: no put failed", what)
		}
		if r := mq.ReasonOf(err); r != mq.RCResourceProblem {
			t.Fatalf("%s: put: %v, want MQRC 2102", what, err)
		}
		if !strings.Contains(err.Error(), reason) {
			t.Fatalf("%s: %v does not say %q", what, err, reason)
		}
		t.Logf("%s: %v", what, err)
		if err := h.Put(&mq.Message{Body: []byte("np"), Persistence: mq.NotPersistent}, mq.PutOptions{}); err != nil {
			t.Fatalf("%s: a non-persistent put: %v", what, err)
		}
		if err := uow(n); err == nil {
			t.Fatalf("%s: a commit of persistent work while the log is failed succeeded", what)
		}
		if _, err := gh.Get(mq.GetOptions{}); mq.ReasonOf(err) != mq.RCResourceProblem {
			t.Fatalf("%s: a persistent get while the log is failed: %v, want MQRC 2102", what, err)
		}
		heal()
		deadline := time.Now().Add(20 * time.Second)
		for put() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: persistent puts still fail after the disk healed:\n%s", what, memberLog())
			}
			time.Sleep(10 * time.Millisecond)
		}
		for i := range 20 {
			if err := put(); err != nil {
				t.Fatalf("%s: after the disk healed: %v", what, err)
			}
			if err := uow(n*100 + i); err != nil {
				t.Fatalf("%s: a commit after the disk healed: %v", what, err)
			}
		}
	}

	for i := range 30 {
		if err := put(); err != nil {
			t.Fatal(err)
		}
		if err := uow(i); err != nil {
			t.Fatal(err)
		}
	}
	// The disk fills up: the next segment cannot be reserved.
	disk.SetCapacity(disk.Used() + 16<<10)
	sawFailed := make(chan string, 1)
	var readyWhileFailed error
	failUntil("disk full", "no space", func() {
		sawFailed <- logStatus()
		readyWhileFailed = m.Ready()
		disk.SetCapacity(0)
	})
	if s := <-sawFailed; !strings.Contains(s, "LOGSTATUS(FAILED)") || !strings.Contains(s, "no space") {
		t.Fatalf("DISPLAY GROUP while the log disk is full:\n%s", s)
	}
	// Not ready while its log refuses records (/readyz); ready again once
	// it writes.
	if readyWhileFailed == nil || !strings.Contains(readyWhileFailed.Error(), "recovery log is failed") {
		t.Fatalf("Ready while the log disk is full: %v, want the failed log", readyWhileFailed)
	}
	// fdatasync fails for a while.
	var mu sync.Mutex
	failing := true
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if op == vfs.OpSync && failing {
			return 0, unix.EIO
		}
		return n, nil
	})
	failUntil("failing sync", "input/output error", func() {
		mu.Lock()
		failing = false
		mu.Unlock()
	})
	deadline := time.Now().Add(10 * time.Second)
	for s := logStatus(); !strings.Contains(s, "LOGSTATUS(OK)"); s = logStatus() {
		if time.Now().After(deadline) {
			t.Fatalf("DISPLAY GROUP after the disk healed:\n%s", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := logStatus(); !strings.Contains(s, "LOGFAILS(") || strings.Contains(s, "LOGFAILS(0)") {
		t.Fatalf("DISPLAY GROUP does not count the failures:\n%s", s)
	}
	if g, err := gh.Get(mq.GetOptions{}); err != nil || string(g.Body) != "g" || g.BackoutCount != 0 {
		t.Fatalf("after gets failed with the log: %v, want g with backout count 0 (a get that did not happen is no backout)", describe(g, err))
	}
	want := strings.Join(acked, " ")
	if got := persistentBodies(t, c, "P"); got != want {
		t.Fatalf("queue after the failures:\n got %s\nwant %s", got, want)
	}
	// What a recovery of the structure would put back from the log (the
	// log is on the test's disk, so replay reads it there): exactly what
	// was acknowledged.
	c.Disconnect()
	m.Stop()
	disk.Crash(true)
	disk.Restart()
	res, err := replay.Run(replay.Options{FS: disk, LogDirs: []string{LogDir(cfg.Group, "QM1")}, Structure: "APPL1"})
	if err != nil {
		t.Fatal(err)
	}
	var replayed []string
	for _, msg := range res.Messages {
		replayed = append(replayed, string(msg.Body))
	}
	if got := strings.Join(replayed, " "); got != want {
		t.Fatalf("replayed from the log:\n got %s\nwant %s", got, want)
	}
}

// describe says what a get returned.
func describe(m *mq.Message, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s with backout count %d", m.Body, m.BackoutCount)
}

// persistentBodies browses queue q and returns the bodies of its
// persistent messages, in order.
func persistentBodies(t *testing.T, c *mq.Conn, q string) string {
	t.Helper()
	h, err := c.Open(q, mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cur, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		msg, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.Persistent {
			out = append(out, string(msg.Body))
		}
	}
	return strings.Join(out, " ")
}
