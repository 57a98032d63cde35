package qm

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
)

// stoppedApp starts an application that opens P and is stopped (SIGSTOP)
// by crash point point during command cmd.
func stoppedApp(t *testing.T, cfg Config, point, cmd string) *testProc {
	t.Helper()
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT="+point+":1:stop")
	if r := app.do("open P"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	fmt.Fprintln(app.in, cmd)
	id, err := procid.Of(app.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the application stops at "+point, func() bool { return procid.Stopped(id) })
	return app
}

// waitKilled waits for app's process to end and checks it was killed.
func waitKilled(t *testing.T, app *testProc) {
	t.Helper()
	err := app.cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the stopped application ended with %v, want killed", err)
	}
}

// TestStoppedApplicationDoesNotStallBackup: an application stopped in the
// middle of a persistent put (its record logged, the message not yet
// visible: marked in flight) would hold every backup. Past the heartbeat
// timeout the member kills it and the backup goes on.
func TestStoppedApplicationDoesNotStallBackup(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	app := stoppedApp(t, cfg, "lockfree.put.linked", "pputnow P x")
	t0 := time.Now()
	if r := m.Exec("BACKUP CFSTRUCT(APPL1)"); !r.OK {
		t.Fatalf("backup with an application stopped in a put: %s\n%s", r.Error, logs())
	}
	t.Logf("backup took %v", time.Since(t0).Round(time.Millisecond))
	waitKilled(t, app)
	if !strings.Contains(logs(), "an application stalled in the middle of an operation on shared memory: killing it") {
		t.Fatalf("no log line for the kill:\n%s", logs())
	}
}

// TestStoppedApplicationIsFenced: a connection must be revoked while its
// application is stopped in the middle of an operation (a put under
// syncpoint). The fence would wait for ever; past the heartbeat timeout the
// member kills the application and the revocation finishes, backing the put
// out.
func TestStoppedApplicationIsFenced(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	app := stoppedApp(t, cfg, "lockfree.put.linked", "put P x")
	tag, ok := m.g.Admin().SlotTag(app.slot)
	if !ok {
		t.Fatal("the application's connection is gone")
	}
	done := make(chan bool, 1)
	go m.withKey(connBusyKey(tag), func() { _, ok := m.recoverConn(tag, procid.ID{}, true); done <- ok })
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("the revocation did not finish:\n%s", logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the revocation of a stopped application still waits after 20s:\n%s", logs())
	}
	waitKilled(t, app)
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	if b, _ := getBody(t, c, "P"); b != "" {
		t.Fatalf("P holds %q: the put of the revoked connection was not backed out", b)
	}
}

// testFencer fences owner slot QM_TEST_FENCER in APPL1, as a recoverer
// does, and waits there for the application (stopped) until it is killed.
func testFencer() {
	slot, _ := strconv.Atoi(os.Getenv("QM_TEST_FENCER"))
	s, err := lockfree.Attach(os.Getenv("CF"), "APPL1")
	if err != nil {
		fmt.Println(err)
		return
	}
	tag, _ := s.SlotTag(slot)
	fmt.Println("fencing")
	fmt.Println(s.Fence(tag))
}

// TestTakeoverOfStoppedApplication: a recoverer fencing a connection whose
// application is stopped in an operation dies while it waits; the member's
// recovery that takes its claim over must fence the application the same
// way (kill it after the heartbeat timeout) instead of waiting for ever.
func TestTakeoverOfStoppedApplication(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	app := stoppedApp(t, cfg, "lockfree.put.linked", "put P x")
	f := testproc.Command(t, "fencer")
	f.Env = append(f.Env, "QM_TEST_FENCER="+strconv.Itoa(app.slot), "CF="+cfg.Group.CFDir)
	out, _ := f.StdoutPipe()
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "fencing\n" {
		t.Fatalf("fencer: %q", l)
	}
	s, err := m.g.Structure("APPL1", false)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the fencer claims the application's owner", func() bool {
		oi, ok := s.Owner(app.slot)
		return ok && oi.State == "repairing"
	})
	f.Process.Kill() // the first recoverer dies while it waits
	f.Wait()
	tag, ok := m.g.Admin().SlotTag(app.slot)
	if !ok {
		t.Fatal("no connection")
	}
	done := make(chan bool, 1)
	go m.withKey(connBusyKey(tag), func() { _, ok := m.recoverConn(tag, procid.ID{}, true); done <- ok })
	select {
	case ok := <-done:
		if !ok {
			t.Fatalf("the takeover did not finish:\n%s", logs())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the takeover still waits for the stopped application after 20s (heartbeat timeout %v):\n%s", cfg.HeartbeatTimeout, logs())
	}
	waitKilled(t, app)
}
