package qm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
)

// testRecoverer does what a member does when it starts recovering
// structure QM_TEST_RECOVERER whose file is missing: it takes the
// structure's recovery lock and creates the structure out of service,
// recording itself as its recoverer; then it says so and waits to be
// killed (a recoverer dying in the middle of its replay).
func testRecoverer() {
	name := os.Getenv("QM_TEST_RECOVERER")
	unlock, err := lockRecover(os.Getenv("D"), name, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer unlock()
	g, err := group.Open(group.Config{Name: os.Getenv("G"), DataDir: os.Getenv("D"), CFDir: os.Getenv("CF"), AppSize: 32 << 20}, true)
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, created, err := g.CreateStructure(name, 32<<20, 0); err != nil || !created {
		fmt.Println("create:", created, err)
		return
	}
	fmt.Println("recovering")
	select {}
}

// startRecoverer starts a process that begins to recover structure name
// of cfg's group and stays alive (testRecoverer).
func startRecoverer(t *testing.T, cfg Config, name string) *testproc.Proc {
	t.Helper()
	rec := testproc.Command(t, "recoverer")
	rec.Env = append(rec.Env, "QM_TEST_RECOVERER="+name, "G="+cfg.Group.Name, "D="+cfg.Group.DataDir, "CF="+cfg.Group.CFDir)
	out, _ := rec.StdoutPipe()
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Process.Kill(); rec.Wait() })
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "recovering\n" {
		t.Fatalf("recoverer: %q", l)
	}
	return rec
}

// TestStartWaitIsBounded: a member starting while another process
// recovers a structure waits for it, for StructureWait, and then fails
// with an error naming the structure and its recoverer; once the
// recoverer is gone, the member starts and recovers the structure itself.
func TestStartWaitIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	cfg := testConfig(t, "QM1")
	rec := startRecoverer(t, cfg, "APPL1")
	cfg.StructureWait = 300 * time.Millisecond
	m, err := Start(cfg)
	if err == nil {
		m.Stop()
		t.Fatal("started while APPL1 was being recovered by a live process")
	}
	if msg := err.Error(); !strings.Contains(msg, "structure APPL1 is still recovering") || !strings.Contains(msg, fmt.Sprintf("pid %d, alive", rec.Process.Pid)) {
		t.Fatalf("error: %v", err)
	}
	rec.Process.Kill()
	rec.Wait()
	startMember(t, cfg)
}

// TestCFStatusOfAbandonedRecovery: a structure whose recoverer is alive
// shows as RECOVERING with its recoverer; once the recoverer is killed it
// shows as FAILED, and the member, which had attached the structure only
// in that state (no failed file of its own to notice), recovers it: its
// persistent messages are back and it shows as ACTIVE.
func TestCFStatusOfAbandonedRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	cfg := testConfig(t, "QM1")
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		if ran {
			m.Stop()
		}
	})
	mustExec(t, m, "DEFINE CFSTRUCT(APP2) SIZE(32)")
	mustExec(t, m, "DEFINE QLOCAL(Q2) CFSTRUCT(APP2)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("Q2", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b"} {
		if err := h.Put(&mq.Message{Body: []byte(b), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Disconnect()
	// The structure is lost and another process begins to recover it.
	if err := os.Remove(cfg.Group.CFDir + "/APP2"); err != nil {
		t.Fatal(err)
	}
	rec := startRecoverer(t, cfg, "APP2")
	st := mustExec(t, m, "DISPLAY CFSTATUS(APP2)").Text
	if !strings.Contains(st, "STATUS(RECOVERING)") || !strings.Contains(st, fmt.Sprintf("RECPID(%d)", rec.Process.Pid)) {
		t.Fatalf("while a live process recovers it:\n%s", st)
	}
	rec.Process.Kill()
	rec.Wait()
	st = mustExec(t, m, "DISPLAY CFSTATUS(APP2)").Text
	if !strings.Contains(st, "STATUS(FAILED)") || !strings.Contains(st, "died in the middle of the recovery") {
		t.Fatalf("after its recoverer died:\n%s", st)
	}
	// The member serves: it notices the abandoned recovery and recovers
	// the structure again.
	ran = true
	go m.Run(ctx)
	eventually(t, "the structure recovered", func() bool {
		return strings.Contains(m.Exec("DISPLAY CFSTATUS(APP2)").Text, "STATUS(ACTIVE)")
	})
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err = c.Open("Q2", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := drainBodies(t, h); fmt.Sprint(got) != "[a b]" {
		t.Fatalf("after the recovery: %v", got)
	}
}

// TestFailedRecoverCommandIsFinished: RECOVER CFSTRUCT fails half way
// (the new structure created, its messages not yet back): the structure is
// left recovering by the member itself, alive, with nobody recovering it.
// The member notices and recovers it again.
func TestFailedRecoverCommandIsFinished(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := false
	t.Cleanup(func() {
		cancel()
		if ran {
			m.Stop()
		}
	})
	mustExec(t, m, "DEFINE QLOCAL(P)")
	putOne(t, cfg, "QM1", "P", "gone with the CF")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("persistent"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	c.Disconnect()
	if err := os.Remove(cfg.Group.CFDir + "/APPL1"); err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	testHookRecoverInto = func(string) error {
		if calls.Add(1) == 1 {
			return errors.New("injected: the recovery fails")
		}
		return nil
	}
	t.Cleanup(func() { testHookRecoverInto = func(string) error { return nil } })
	// The run loop is not running yet: the command is the only recovery.
	if r := m.Exec("RECOVER CFSTRUCT(APPL1)"); r.OK {
		t.Fatalf("RECOVER with its recovery failing: %s", r.Text)
	}
	if st := m.Exec("DISPLAY CFSTATUS(APPL1)").Text; !strings.Contains(st, "STATUS(RECOVERING)") {
		t.Fatalf("after the failed recovery:\n%s", st)
	}
	ran = true
	go m.Run(ctx)
	eventually(t, "the structure recovered", func() bool {
		return strings.Contains(m.Exec("DISPLAY CFSTATUS(APPL1)").Text, "STATUS(ACTIVE)")
	})
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	if h, err = c.Open("P", mq.OpenOptions{Input: true}); err != nil {
		t.Fatal(err)
	}
	if got := drainBodies(t, h); fmt.Sprint(got) != "[persistent]" {
		t.Fatalf("after the recovery: %v", got)
	}
}

// TestStaleMappingFailsOnlyItself: a member that still holds its owner in
// the mapping of a structure's old file (removed by a recovery another
// member ran), while its group has attached the recovered file since (any
// Structure call re-attaches), finds the old mapping failed at its next
// check. Failing it must fail only the old mapping: the recovered
// structure stays in service for every process. (It failed the recovered
// one, by name, and every get and open after the recovery reported the
// structure failed until it was recovered again: TestOffloadRebuildBadDataSet
// met it when QM2's check ran between the recovery and the test's gets.)
func TestStaleMappingFailsOnlyItself(t *testing.T) {
	testHookNoStructureChecks.Store(true)
	defer testHookNoStructureChecks.Store(false)
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	twoStructures(t, m)
	cfg2 := cfg
	cfg2.Name = "QM2"
	m2 := startMember(t, cfg2)
	pc := connect(t, cfg, "QM1")
	defer pc.Disconnect()
	ph, err := pc.Open("Q2", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := ph.Put(&mq.Message{Body: []byte("before"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := m2.ownerIn("APP2"); err != nil { // QM2's owner in the file to be replaced
		t.Fatal(err)
	}
	old, err := m.g.Structure("APP2", false)
	if err != nil {
		t.Fatal(err)
	}
	old.Fail()
	if r := m.Exec("RECOVER CFSTRUCT(APP2)"); !r.OK {
		t.Fatalf("RECOVER CFSTRUCT(APP2): %s", r.Error)
	}
	if _, err := m2.g.Structure("APP2", false); err != nil { // QM2's group attaches the recovered file
		t.Fatal(err)
	}
	m2.checkStructures() // finds its owner's old mapping failed
	s, err := m.g.Structure("APP2", false)
	if err != nil {
		t.Fatal(err)
	}
	if !s.InService() {
		t.Fatal("the recovered structure was taken out of service by QM2's check of its old mapping")
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	if got := fmt.Sprint(browseBodies(t, c, "Q2")); got != "[before]" {
		t.Fatalf("Q2 after the recovery and QM2's check: %s", got)
	}
}
