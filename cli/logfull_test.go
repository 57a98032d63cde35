package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// TestLogFullShownInStatus: a real member whose log disk is full (the
// reservation of its next segments fails, by fault injection, eight
// times). Persistent puts fail with MQRC 2102 saying why, `qmgr status`
// and its --json say the log failed and why, DISPLAY GROUP says it too;
// the log writes again by itself once a reservation works, and status
// says so.
func TestLogFullShownInStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	// Hits 1 and 2 reserve the first two segments at start; 3 to 10 fail
	// (the log retries once a second: it stays failed for seconds).
	t.Setenv("QMGR_CRASHPOINT", "rlog.reserve:3:fail:8")
	g.startWith("QM1", "--no-chinit", "--log-segment-size", "1")
	os.Unsetenv("QMGR_CRASHPOINT")
	g.mqsc("DEFINE QLOCAL(P) MAXDEPTH(100000)")
	c := g.connect("QM1")
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 8<<10)
	var putErr error
	for i := 0; i < 1000 && putErr == nil; i++ {
		putErr = h.Put(&mq.Message{Body: body, Persistence: mq.Persistent}, mq.PutOptions{})
	}
	memberLog := func() string { b, _ := os.ReadFile(filepath.Join(g.dir, "QM1.log")); return string(b) }
	if putErr == nil {
		t.Fatalf("no persistent put failed with the log disk full:\n%s", memberLog())
	}
	if mq.ReasonOf(putErr) != mq.RCResourceProblem || !strings.Contains(putErr.Error(), "no space") {
		t.Fatalf("persistent put on a full log disk: %v, want MQRC 2102 saying no space", putErr)
	}
	t.Logf("put: %v", putErr)

	type report struct {
		Members []struct {
			Name string
			Log  *struct {
				State    string
				Reason   string
				Failures uint64
			}
		}
	}
	status := func() (report, string) {
		code, out, errs := g.run("", "status", "--json")
		if code != 0 {
			t.Fatalf("status: exit %d %s %s", code, out, errs)
		}
		var r report
		if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Members) != 1 || r.Members[0].Log == nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return r, out
	}
	r, out := status()
	if l := r.Members[0].Log; l.State != "failed" || !strings.Contains(l.Reason, "no space") || l.Failures == 0 {
		t.Fatalf("status --json while the log disk is full: %s", out)
	}
	if _, text, _ := g.run("", "status"); !strings.Contains(text, "recovery log: FAILED") || !strings.Contains(text, "no space") {
		t.Fatalf("status while the log disk is full:\n%s", text)
	}
	if d := g.mqsc("DISPLAY GROUP"); !strings.Contains(d, "LOGSTATUS(FAILED)") {
		t.Fatalf("DISPLAY GROUP while the log disk is full:\n%s", d)
	}
	// The reservation works again (the fault is over): the log writes.
	deadline := time.Now().Add(30 * time.Second)
	for h.Put(&mq.Message{Body: body, Persistence: mq.Persistent}, mq.PutOptions{}) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("persistent puts still fail:\n%s", memberLog())
		}
		time.Sleep(50 * time.Millisecond)
	}
	r, out = status()
	if l := r.Members[0].Log; l.State != "ok" || l.Failures == 0 || !strings.Contains(l.Reason, "no space") {
		t.Fatalf("status --json after the log writes again: %s", out)
	}
	if !strings.Contains(memberLog(), "recovery log writes again") {
		t.Fatalf("the member's log does not say the recovery log writes again:\n%s", memberLog())
	}
}
