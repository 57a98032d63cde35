package qm

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// TestCommandProgress: a client asking for progress gets, before the
// answer of BACKUP CFSTRUCT and of RECOVER CFSTRUCT, progress lines whose
// total is the number of messages the command goes through and whose
// count never exceeds it; the answer is the same as without progress.
func TestCommandProgress(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	defer func() {
		if t.Failed() {
			t.Log(logs())
			t.Log(Command(cfg.Group, "QM1", "DISPLAY CFSTATUS(MANUAL)"))
		}
	}()
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(MANUAL) SIZE(24) RECAUTO(NO)")
	mustExec(t, m, "DEFINE QLOCAL(M) CFSTRUCT(MANUAL)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("M", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := 0; i < n; i++ {
		if err := h.Put(&mq.Message{Body: []byte("kept"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Disconnect()
	run := func(cmd string) []Progress {
		t.Helper()
		var got []Progress
		resp, err := CommandProgress(m.g.Config(), "QM1", cmd, func(p Progress) { got = append(got, p) })
		if err != nil || !resp.OK || resp.Progress != nil {
			t.Fatalf("%s: %v %+v", cmd, err, resp)
		}
		if len(got) == 0 {
			t.Fatalf("%s: no progress line", cmd)
		}
		for _, p := range got {
			if p.Total != n || p.Done > p.Total {
				t.Errorf("%s: progress %+v, want a count up to %d of %d", cmd, p, n, n)
			}
		}
		return got
	}
	run("BACKUP CFSTRUCT(MANUAL)")
	if err := os.Remove(cfg.Group.CFDir + "/MANUAL"); err != nil {
		t.Fatal(err)
	}
	// Waited for in the log (a command that needs the structure would
	// find it failed too: TestRecAutoNoIsTheGroups).
	eventually(t, "the structure failed", func() bool { return eventLine(logs(), "structure_left_failed") != nil })
	run("RECOVER CFSTRUCT(MANUAL)")
	// Without asking, the answer alone.
	if resp, err := Command(m.g.Config(), "QM1", "BACKUP CFSTRUCT(MANUAL)"); err != nil || !resp.OK || !strings.Contains(resp.Text, "40 messages") {
		t.Fatalf("without progress: %v %+v", err, resp)
	}
}

func FuzzDecodeResponse(f *testing.F) {
	for _, r := range []Response{{OK: true, Text: "AMQ8006I\n", Member: "QM1"}, {Member: "QM1", Progress: &Progress{Done: 5, Total: 9}},
		{Error: "mqsc: syntax error", Objects: []json.RawMessage{json.RawMessage(`{"QUEUE":"Q"}`)}}} {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"progress":{"done":-1,"total":2}}`))
	f.Add([]byte(`{"progress":null}`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeResponse(b)
		if err != nil {
			return
		}
		if p := r.Progress; p != nil && (p.Done < 0 || p.Total < 0) {
			t.Fatalf("negative progress accepted: %+v", *p)
		}
	})
}
