package qm

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// eventLine is the first line of log whose event is event, as its fields
// (slog's text format; values with blanks are quoted), or nil.
func eventLine(log, event string) map[string]string {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, " event="+event+" ") && !strings.HasSuffix(line, " event="+event) {
			continue
		}
		f := map[string]string{}
		for rest := line; rest != ""; rest = strings.TrimSpace(rest) {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				break
			}
			key, v := rest[:eq], rest[eq+1:]
			if q, err := strconv.QuotedPrefix(v); err == nil {
				f[key], _ = strconv.Unquote(q)
				rest = v[len(q):]
			} else if sp := strings.IndexByte(v, ' '); sp >= 0 {
				f[key], rest = v[:sp], v[sp:]
			} else {
				f[key], rest = v, ""
			}
		}
		return f
	}
	return nil
}

// TestStructureFailureLogLines: a structure whose file is removed under the
// member is one structure_failed line (which structure, why) and, once
// rebuilt, one structure_recovered line with the cause, the persistent
// messages put back and how long it took.
func TestStructureFailureLogLines(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	defer func() {
		if t.Failed() {
			t.Log(logs())
		}
	}()
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := h.Put(&mq.Message{Body: []byte("persistent"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Disconnect()
	if err := os.Remove(filepath.Join(cfg.Group.CFDir, "APPL1")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the structure recovered", func() bool { return eventLine(logs(), "structure_recovered") != nil })
	failed := eventLine(logs(), "structure_failed")
	if failed == nil || failed["structure"] != "APPL1" || failed["err"] == "" || failed["qmgr"] != "QM1" {
		t.Errorf("structure failure line %v: want APPL1 with its reason", failed)
	}
	rec := eventLine(logs(), "structure_recovered")
	if rec["structure"] != "APPL1" || rec["cause"] != "failed" || rec["messages"] != "3" {
		t.Errorf("structure recovery line %v: want APPL1, cause failed, 3 messages put back", rec)
	}
	if d, err := time.ParseDuration(rec["took"]); err != nil || d <= 0 {
		t.Errorf("structure recovery line: took=%q", rec["took"])
	}
	if n := strings.Count(logs(), "event=structure_recovered"); n != 1 {
		t.Errorf("%d structure_recovered lines for one recovery", n)
	}
}
