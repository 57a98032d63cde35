package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/recovery/logbuf"
)

// putGetPersistent puts a persistent message on q through a new
// connection to via and gets it back.
func putGetPersistent(t *testing.T, g *testGroup, via, q, body string) error {
	t.Helper()
	c, err := mq.Connect(mq.ConnectOptions{Group: g.cfg.Name, QMgr: via, DataDir: g.cfg.DataDir, CFDir: g.cfg.CFDir})
	if err != nil {
		return err
	}
	defer c.Disconnect()
	h, err := c.Open(q, mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		return err
	}
	if err := h.Put(&mq.Message{Body: []byte(body), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		return err
	}
	m, err := h.Get(mq.GetOptions{})
	if err != nil {
		return err
	}
	if string(m.Body) != body {
		return errors.New("got " + string(m.Body) + ", want " + body)
	}
	return nil
}

// poll polls cond every 20ms until it holds or d passed, and returns
// whether it held.
func poll(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestLogBufferTruncated: a member's log buffer file truncated while the
// member runs (design rule: mapping faults become errors, not crashes)
// does not kill the member with SIGBUS, nor an application that logs
// through it: the member replaces the buffer and says so, the
// application's persistent work fails with a clear error, new
// connections log again. A member started on a short or damaged buffer
// file replaces it instead of failing to start.
func TestLogBufferTruncated(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	cmd := g.start("QM1")
	g.mqsc("DEFINE QLOCAL(P)")
	path := filepath.Join(logbuf.Dir(g.cfg.CFDir), "QM1")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	full := st.Size()

	// An application with a ring in the buffer.
	app := g.connect("QM1")
	defer app.Disconnect()
	h, err := app.Open("P", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("before"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(mq.GetOptions{}); err != nil {
		t.Fatal(err)
	}

	// Cut the file to its header page: every ring and counter is gone.
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	memberLog := func() string { b, _ := os.ReadFile(filepath.Join(g.dir, "QM1.log")); return string(b) }
	replaced := poll(15*time.Second, func() bool {
		st, err := os.Stat(path)
		return err == nil && st.Size() == full && strings.Contains(memberLog(), "log buffer replaced")
	})
	if _, err := procid.Of(cmd.Process.Pid); err != nil {
		t.Fatalf("the member died after its log buffer was truncated:\n%s", memberLog())
	}
	if !replaced {
		t.Fatalf("the member did not replace its truncated log buffer:\n%s", memberLog())
	}
	// The application, whose mapping lost its pages, gets an error, not
	// a SIGBUS.
	err = h.Put(&mq.Message{Body: []byte("lost"), Persistence: mq.Persistent}, mq.PutOptions{})
	if err == nil {
		t.Fatal("a persistent put through the truncated buffer succeeded")
	}
	if r := mq.ReasonOf(err); r != mq.RCConnectionBroken {
		t.Fatalf("persistent put through the truncated buffer: %v, want MQRC 2009", err)
	}
	t.Logf("the application's put: %v", err)
	// New connections log through the new buffer.
	if err := putGetPersistent(t, g, "QM1", "P", "after"); err != nil {
		t.Fatalf("persistent put and get after the buffer was replaced: %v", err)
	}

	// A member killed and restarted on a buffer file shorter than a
	// header, then on one with a damaged header, starts.
	for _, damage := range []func() error{
		func() error { return os.Truncate(path, 100) },
		func() error { return os.WriteFile(path, make([]byte, 8192), 0o660) },
	} {
		g.kill("QM1")
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		said := strings.Count(memberLog(), "cannot be used")
		g.start("QM1")
		if err := putGetPersistent(t, g, "QM1", "P", "restarted"); err != nil {
			t.Fatalf("persistent put and get after a restart on a damaged buffer: %v\n%s", err, memberLog())
		}
		if strings.Count(memberLog(), "cannot be used") != said+1 {
			t.Fatalf("the member did not say it replaced the damaged buffer and dropped its records:\n%s", memberLog())
		}
	}
}
