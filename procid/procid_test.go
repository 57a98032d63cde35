package procid

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"github.com/qmgr/qmgr/internal/testproc"
)

func TestSelfAlive(t *testing.T) {
	id := Self()
	if !Alive(id) {
		t.Fatal("self not alive")
	}
	if Alive(ID{Pid: id.Pid, Start: id.Start + 1}) {
		t.Fatal("a different start time must not count as the same process")
	}
}

func TestDeadChild(t *testing.T) {
	cmd := testproc.Exec(t, "sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Of(cmd.Process.Pid)
	if err != nil || !Alive(id) {
		t.Fatalf("child: %v", err)
	}
	cmd.Process.Kill()
	// Before the wait the child is a zombie: it must already count as gone.
	for i := 0; i < 1000 && Alive(id); i++ {
		exec.Command("true").Run()
	}
	if Alive(id) {
		t.Fatal("killed child (zombie) still alive")
	}
	cmd.Wait()
	if Alive(id) {
		t.Fatal("reaped child still alive")
	}
}

func TestParseStat(t *testing.T) {
	line := []byte("123 (we ird) name)) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20")
	st, start, err := parseStat(line)
	if err != nil || st != 'S' || start != 777 {
		t.Fatalf("%c %d %v", st, start, err)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// TestSignalChecksIdentity: Signal sends through a pidfd only to the
// process the identity names: a process with the pid but another start
// time (the pid reused) is refused and left alone; the right one gets the
// signal; a process that is gone is reported as such.
func TestSignalChecksIdentity(t *testing.T) {
	cmd := testproc.Exec(t, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	reused := ID{Pid: id.Pid, Start: id.Start + 1} // what a reused pid looks like
	if err := Signal(reused, syscall.SIGKILL); !errors.Is(err, ErrGone) {
		t.Fatalf("signal to a pid now naming another process: %v, want ErrGone", err)
	}
	if !Alive(id) {
		t.Fatal("the process that now has the pid was signalled")
	}
	if err := Signal(id, syscall.SIGKILL); err != nil {
		t.Fatalf("signal: %v", err)
	}
	if err := cmd.Wait(); err == nil || cmd.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the process did not get SIGKILL: %v", err)
	}
	if err := Signal(id, syscall.SIGKILL); !errors.Is(err, ErrGone) {
		t.Fatalf("signal to a reaped process: %v, want ErrGone", err)
	}
	if err := Signal(ID{}, syscall.SIGKILL); !errors.Is(err, ErrGone) {
		t.Fatalf("signal to no process: %v, want ErrGone", err)
	}
}

// TestSelfNS: the pid namespace is the inode /proc/self/ns/pid names
// ("pid:[inode]").
func TestSelfNS(t *testing.T) {
	ns := SelfNS()
	link, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	if ns == 0 || link != "pid:["+strconv.FormatUint(ns, 10)+"]" {
		t.Fatalf("pid namespace %d, /proc/self/ns/pid -> %s", ns, link)
	}
}
