package metrics_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/smds"
)

// lockedBuffer is a log destination written from several goroutines.
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

// TestSMDSFreeErrors: runs of offloaded messages whose frees fail (here
// two entries whose references do not decode, removed by a get) are no
// longer only counted out of sight: DISPLAY CFSTATUS TYPE(SMDS) shows
// this process's failed frees of the structure and the last error
// (FREEERRS, FREEERR), the metrics qmgr_smds_free_errors_total, and the
// first failure is logged once (not once per failure).
func TestSMDSFreeErrors(t *testing.T) {
	var logs lockedBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	m, cfg := startMember(t, "QM1")
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	reg := metrics.NewRegistry(m)
	read := func() float64 {
		t.Helper()
		return value(t, scrape(t, metrics.Handler(reg, nil)), "qmgr_smds_free_errors_total", map[string]string{"member": "QM1", "structure": "OFF"})
	}
	if got := read(); got != 0 {
		t.Fatalf("failed frees before any: %v", got)
	}
	// A body offloaded and got, so that the structure has a data set.
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	q, err := c.Open("Q", mq.OpenOptions{Output: true, Input: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Put(&mq.Message{Body: bytes.Repeat([]byte("b"), 64<<10)}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(mq.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	// Two entries whose references do not decode, got by an owner of a
	// structure attached through the group (whose frees go through mq's
	// hook): both frees fail.
	gr, err := group.Open(cfg.Group, false)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	s, err := gr.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	o, err := s.Register()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	id, err := s.LookupQueue("Q")
	if err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, smds.RefSize) // data set 0, Seq 0: does not decode
	for range 2 {
		if err := o.Put(id, &lockfree.Message{Offload: bad, OffloadLen: 5000}, lockfree.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		var lm lockfree.Message
		if err := o.Get(id, lockfree.GetOptions{}, &lm); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.OffloadFreeErrors(); n != 2 {
		t.Fatalf("lockfree counted %d failed frees, want 2", n)
	}
	if got := read(); got != 2 {
		t.Errorf("qmgr_smds_free_errors_total = %v, want 2", got)
	}
	r := m.Exec("DISPLAY CFSTATUS(OFF) TYPE(SMDS)")
	if !r.OK || !strings.Contains(r.Text, "FREEERRS(2)") || !strings.Contains(r.Text, "FREEERR(") || !strings.Contains(r.Text, "reference") {
		t.Errorf("DISPLAY CFSTATUS(OFF) TYPE(SMDS) does not show the two failed frees and the last error:\n%s %v", r.Text, r.Error)
	}
	if n := strings.Count(logs.String(), "could not be freed"); n != 1 {
		t.Errorf("the failed frees were logged %d times, want once:\n%s", n, logs.String())
	}
}
