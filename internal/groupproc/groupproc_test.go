package groupproc_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/internal/testproc"
)

// The members are this test binary acting as qmgr.
func TestMain(m *testing.M) {
	testproc.Register("qmgr", func(args []string) int { return cli.Main(args, os.Stdout, os.Stderr) })
	testproc.Main(m)
}

func newGroup(t *testing.T) *groupproc.Group {
	dir := t.TempDir()
	g, err := groupproc.New(group.Config{Name: "GP", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20}, dir)
	if err != nil {
		t.Fatal(err)
	}
	g.Command = func(args ...string) *exec.Cmd {
		c := exec.Command(os.Args[0], args...)
		c.Env = append(os.Environ(), testproc.RoleEnv("qmgr"))
		return c
	}
	g.StartFlags = []string{"--heartbeat", "20ms", "--no-chinit"}
	t.Cleanup(func() {
		g.KillAll()
		if t.Failed() {
			g.DumpLogs(t.Logf, 20000)
		}
	})
	return g
}

// TestStartKillRestart: a member started is active under its own pid; a
// killed one is reaped (Wait from anywhere, more than once) and inactive;
// a restarted one is active again under a new pid, its log appended.
func TestStartKillRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newGroup(t)
	m, err := g.Start("QM1")
	if err != nil {
		t.Fatal(err)
	}
	if !g.Active("QM1", m.Process.Pid) {
		t.Fatal("started member not active")
	}
	if out, err := g.MQSC("QM1", "DEFINE QLOCAL(Q)"); err != nil || !strings.Contains(out, "AMQ8006I") {
		t.Fatalf("MQSC: %q %v", out, err)
	}
	if _, err := g.MQSC("QM1", "DEFINE QLOCAL(Q)"); err == nil {
		t.Fatal("a failed command reported no error")
	}
	g.Kill("QM1")
	if !m.Exited() || m.Wait() == nil || m.Wait() == nil {
		t.Fatal("killed member not reaped, or its Wait reports a clean exit")
	}
	m2, err := g.Restart("QM1")
	if err != nil {
		t.Fatal(err)
	}
	if m2.Process.Pid == m.Process.Pid || !g.Active("QM1", m2.Process.Pid) || g.Member("QM1") != m2 {
		t.Fatal("restarted member not active under its new pid")
	}
	if n := strings.Count(g.Log("QM1"), `msg="member active"`); n != 2 {
		t.Fatalf("log of both incarnations: %d activations", n)
	}
	if err := g.StopMember("QM1", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m2.Wait(); err != nil {
		t.Fatalf("orderly stop: %v", err)
	}
}

// TestNeverTheDefaultGroup: a harness whose group has no name or
// directories refuses to start members (they would join the default
// group in the user's directories).
func TestNeverTheDefaultGroup(t *testing.T) {
	var g groupproc.Group
	if _, err := g.Spawn("QM1", nil); err == nil || !strings.Contains(err.Error(), "must be set") {
		t.Fatalf("got %v", err)
	}
}

// TestNewRefusesTheDefaultGroup: New refuses a configuration that leaves
// the group's name or a directory to its default (New fills the defaults
// in, so the Spawn check above cannot see them): its members would join
// group QSG1 in the user's state directory and /dev/shm.
func TestNewRefusesTheDefaultGroup(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // the defaults resolve, as on a user's machine
	dir := t.TempDir()
	for _, c := range []group.Config{
		{},
		{Name: "GP"},
		{Name: "GP", DataDir: filepath.Join(dir, "data")},
		{Name: "GP", CFDir: filepath.Join(dir, "cf")},
		{DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf")},
	} {
		g, err := groupproc.New(c, dir)
		if err == nil {
			t.Errorf("New(%+v) accepted: its members would join group %s in %s and %s", c, g.Cfg.Name, g.Cfg.DataDir, g.Cfg.CFDir)
		} else if !strings.Contains(err.Error(), "must be set") {
			t.Errorf("New(%+v): %v, want the refusal of a default group", c, err)
		}
	}
}

// TestWaitActiveSeesAnExit: a member that exits before it is active is
// reported at once, not after the time limit.
func TestWaitActiveSeesAnExit(t *testing.T) {
	g := newGroup(t)
	if _, err := g.Start("QM1", "--bogus-flag"); err == nil || !strings.Contains(err.Error(), "exited before it was active") {
		t.Fatalf("got %v", err)
	}
}
