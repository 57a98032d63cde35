package qm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
)

func testConfig(t testing.TB, name string) Config {
	dir := t.TempDir()
	return Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: name, HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// logTo makes cfg's member log to a buffer and returns what it logged so
// far: for a test to print when it fails.
func logTo(t testing.TB, cfg *Config) func() string {
	b := &lockedBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(b, nil))
	return b.String
}

// lockedBuffer is a buffer the member's goroutines write to while a test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startMember(t testing.TB, cfg Config) *Member {
	t.Helper()
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	return m
}

func mustExec(t testing.TB, m *Member, cmd string) Response {
	t.Helper()
	r := m.Exec(cmd)
	if !r.OK {
		t.Fatalf("%s: %s", cmd, r.Error)
	}
	return r
}

func TestMemberAdminAndAPI(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(IN) MAXDEPTH(100) DESCR('input queue') BOTHRESH(2) BOQNAME(IN.BACKOUT)")
	mustExec(t, m, "define qlocal(in.backout)")
	r := mustExec(t, m, "DISPLAY QLOCAL(IN) ALL")
	if !strings.Contains(r.Text, "MAXDEPTH(100)") || !strings.Contains(r.Text, "DESCR('input queue')") {
		t.Fatalf("display:\n%s", r.Text)
	}
	if bad := m.Exec("DEFINE QLOCAL(IN)"); bad.OK || !strings.Contains(bad.Error, "already exists") {
		t.Fatalf("duplicate define: %+v", bad)
	}
	if bad := m.Exec("DEFINE QLOCAL(X) MAXDEPHT(5)"); bad.OK || !strings.Contains(bad.Error, "MAXDEPHT(5)") {
		t.Fatalf("bad attribute: %+v", bad)
	}
	if bad := m.Exec("DISPLAY QLOCAL(X)"); bad.OK {
		t.Fatal("the failed define created X")
	}

	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	q, err := c.Open("IN", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Put(&mq.Message{Body: []byte("hello")}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r = mustExec(t, m, "DISPLAY QSTATUS(IN)")
	if !strings.Contains(r.Text, "CURDEPTH(1)") || !strings.Contains(r.Text, "IPPROCS(1)") {
		t.Fatalf("qstatus:\n%s", r.Text)
	}
	if bad := m.Exec("DELETE QLOCAL(IN) PURGE"); bad.OK || !strings.Contains(bad.Error, "open") {
		t.Fatalf("delete of an open queue: %+v", bad)
	}
	// Back out twice: the third get finds it moved to the backout queue.
	for i := 0; i < 2; i++ {
		msg, err := q.Get(mq.GetOptions{Syncpoint: true})
		if err != nil || string(msg.Body) != "hello" || msg.BackoutCount != i {
			t.Fatalf("get %d: %v %+v", i, err, msg)
		}
		c.Backout()
	}
	if _, err := q.Get(mq.GetOptions{Syncpoint: true}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("message over the backout threshold returned: %v", err)
	}
	c.Commit()
	bq, err := c.Open("IN.BACKOUT", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := bq.Get(mq.GetOptions{}); err != nil || string(msg.Body) != "hello" {
		t.Fatalf("backout queue: %v", err)
	}
	if _, err := c.Open("NOSUCH", mq.OpenOptions{Input: true}); mq.ReasonOf(err) != mq.RCUnknownObjectName {
		t.Fatalf("unknown queue: %v", err)
	}
	r = mustExec(t, m, "DISPLAY CONN(*)")
	if !strings.Contains(r.Text, "QMNAME(QM1)") {
		t.Fatalf("conns:\n%s", r.Text)
	}
	r = mustExec(t, m, "DISPLAY GROUP")
	if !strings.Contains(r.Text, "STATUS(ACTIVE)") {
		t.Fatalf("group:\n%s", r.Text)
	}
	mustExec(t, m, "DISPLAY CFSTATUS(*)")
	mustExec(t, m, "ALTER QMGR DEADQ(DLQ)")
	if r := mustExec(t, m, "DISPLAY QMGR"); !strings.Contains(r.Text, "DEADQ(DLQ)") {
		t.Fatalf("qmgr:\n%s", r.Text)
	}
	// The command server answers the same over its socket.
	resp, err := Command(m.g.Config(), "QM1", "DISPLAY QLOCAL(IN*)")
	if err != nil || !resp.OK || len(resp.Objects) != 2 {
		t.Fatalf("socket: %v %+v", err, resp)
	}
}

func TestExpiryScanAndDeadLetter(t *testing.T) {
	cfg := testConfig(t, "QM1")
	cfg.ExpiryInterval = 30 * time.Millisecond
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(Q) BOTHRESH(1)")
	mustExec(t, m, "DEFINE QLOCAL(DLQ)")
	mustExec(t, m, "ALTER QMGR DEADQ(DLQ)")
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	q, _ := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	// Expired messages nobody gets are removed by the lease holder's scan.
	for i := 0; i < 5; i++ {
		q.Put(&mq.Message{Body: []byte("old"), Expiry: time.Now().Add(20 * time.Millisecond)}, mq.PutOptions{})
	}
	q.Put(&mq.Message{Body: []byte("poison"), Format: "MQSTR"}, mq.PutOptions{})
	t0 := time.Now()
	for !strings.Contains(m.Exec("DISPLAY QSTATUS(Q)").Text, "CURDEPTH(1)") {
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("expired messages not removed: %s", m.Exec("DISPLAY QSTATUS(Q)").Text)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Backed out once: at BOTHRESH(1) with no BOQNAME it goes to the DLQ.
	if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	c.Backout()
	if _, err := q.Get(mq.GetOptions{Syncpoint: true}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("poison message returned: %v", err)
	}
	c.Commit()
	dlq, _ := c.Open("DLQ", mq.OpenOptions{Input: true})
	dm, err := dlq.Get(mq.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, body, err := mq.ParseDLH(dm.Body)
	if err != nil || dm.Format != mq.FormatDeadLetter || h.Reason != mq.RCBackoutThresholdReached || h.DestQ != "Q" ||
		h.DestQMgr != "QM1" || h.OrigFormat != "MQSTR" || string(body) != "poison" {
		t.Fatalf("dead letter: %+v %q %v (format %q)", h, body, err, dm.Format)
	}
}

// TestStructureElementSize: a structure defined with ELEMSIZE has data
// elements of that size (its queues take large messages in few elements),
// others the group's; ELEMSIZE is fixed at creation and checked.
func TestStructureElementSize(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(BIG) SIZE(32) ELEMSIZE(4096)")
	mustExec(t, m, "DEFINE QLOCAL(LARGE) CFSTRUCT(BIG) MAXMSGL(1048576)")
	if r := mustExec(t, m, "DISPLAY CFSTRUCT(BIG)"); !strings.Contains(r.Text, "ELEMSIZE(4096)") {
		t.Fatalf("display:\n%s", r.Text)
	}
	if r := mustExec(t, m, "DISPLAY CFSTRUCT(APPL1)"); !strings.Contains(r.Text, "ELEMSIZE(256)") {
		t.Fatalf("display of the default structure:\n%s", r.Text)
	}
	for cmd, want := range map[string]string{
		"ALTER CFSTRUCT(BIG) ELEMSIZE(1024)":          "fixed at creation",
		"DEFINE CFSTRUCT(ODD) SIZE(24) ELEMSIZE(100)": "multiple of 64",
		"DEFINE CFSTRUCT(TINY) SIZE(24) ELEMSIZE(32)": "ELEMSIZE(32)",
		"DEFINE CFSTRUCT(HUGE) SIZE(24) ELEMSIZE(4M)": "ELEMSIZE",
	} {
		if r := m.Exec(cmd); r.OK || !strings.Contains(r.Error, want) {
			t.Fatalf("%s: %+v, want an error with %q", cmd, r, want)
		}
	}
	mustExec(t, m, "ALTER CFSTRUCT(BIG) DESCR('large messages')") // other attributes change
	s, err := m.g.Structure("BIG", false)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Params().ElementSize; got != 4096 {
		t.Fatalf("BIG has %d-byte elements", got)
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	q, err := c.Open("LARGE", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(strings.Repeat("0123456789abcdef", 1<<16)) // 1 MiB
	if err := q.Put(&mq.Message{Body: body}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := q.Get(mq.GetOptions{})
	if err != nil || string(got.Body) != string(body) {
		t.Fatalf("get: %v, %d bytes", err, len(got.Body))
	}
}
