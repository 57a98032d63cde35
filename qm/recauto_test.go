package qm

import (
	"os"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// TestRecAutoNoIsTheGroups: RECAUTO(NO) is a decision of the group, not of
// the member that found the structure failed. A member that never mapped
// the structure must not create and recover it because its file is gone;
// a member that left it failed must use it again once another member ran
// RECOVER CFSTRUCT; and a structure whose file is gone is failed even for
// a command that comes before the member's own check noticed.
func TestRecAutoNoIsTheGroups(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m1 := startMember(t, cfg)
	mustExec(t, m1, "DEFINE CFSTRUCT(MANUAL) SIZE(24) RECAUTO(NO)")
	mustExec(t, m1, "DEFINE QLOCAL(M) CFSTRUCT(MANUAL)")
	file := cfg.Group.CFDir + "/MANUAL"
	putKept := func(via string, body string) {
		t.Helper()
		c := connect(t, cfg, via)
		defer c.Disconnect()
		h, err := c.Open("M", mq.OpenOptions{Output: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Put(&mq.Message{Body: []byte(body), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	getKept := func(via string, want string) {
		t.Helper()
		c := connect(t, cfg, via)
		defer c.Disconnect()
		h, err := c.Open("M", mq.OpenOptions{Input: true})
		if err != nil {
			t.Fatalf("open M through %s: %v", via, err)
		}
		if msg, err := h.Get(mq.GetOptions{}); err != nil || string(msg.Body) != want {
			t.Fatalf("get through %s: %v %v, want %q", via, msg, err, want)
		}
	}
	putKept("QM1", "kept")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	eventually(t, "QM1 to leave the structure failed", func() bool { return eventLine(logs(), "structure_left_failed") != nil })

	// A member that never mapped it.
	cfg2 := cfg
	cfg2.Name = "QM2"
	m2 := startMember(t, cfg2)
	m2.Exec("DISPLAY QLOCAL(M)")
	m2.Exec("DISPLAY CFSTATUS(MANUAL)")
	if c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir, QMgr: "QM2"}); err == nil {
		c.Open("M", mq.OpenOptions{Input: true})
		c.Disconnect()
	}
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a member that never mapped the RECAUTO(NO) structure created and recovered it")
	}

	// Recovered by QM2: QM1, which left it failed, uses it again.
	mustExec(t, m2, "RECOVER CFSTRUCT(MANUAL)")
	getKept("QM1", "kept")
	if r := m1.Exec("DISPLAY QSTATUS(M)"); !r.OK {
		t.Errorf("QM1 after QM2 recovered the structure: DISPLAY QSTATUS(M): %s", r.Error)
	}

	// Gone again, and a command before any check of the members.
	putKept("QM2", "kept again")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	m1.Exec("DISPLAY CFSTATUS(MANUAL)")
	m2.Exec("DISPLAY QLOCAL(M)")
	if _, err := os.Stat(file); err == nil {
		t.Fatal("a command created the RECAUTO(NO) structure its members had not yet found failed")
	}
	mustExec(t, m1, "RECOVER CFSTRUCT(MANUAL)")
	getKept("QM2", "kept again")
}
