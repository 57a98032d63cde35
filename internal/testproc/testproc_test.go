package testproc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

func TestMain(m *testing.M) {
	Register("echo", func(args []string) int {
		fmt.Println("out", strings.Join(args, " "))
		fmt.Fprintln(os.Stderr, "err", os.Getenv(EnvRole))
		return 3
	})
	Register("block", func(args []string) int {
		fmt.Println("ready")
		select {}
	})
	RegisterCommand(func(args []string) int { fmt.Println("command", args[0]); return 0 }, "cmd-a")
	Main(m)
}

// TestRoles: a child runs its role with its arguments and exit status,
// both streams captured; Output separates standard output.
func TestRoles(t *testing.T) {
	p := Command(t, "echo", "a", "b")
	err := p.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("exit: %v", err)
	}
	if got := p.Log(); got != "out a b\nerr echo\n" {
		t.Fatalf("captured %q", got)
	}
	if p.SysProcAttr == nil || p.SysProcAttr.Pdeathsig != syscall.SIGKILL {
		t.Fatal("no Pdeathsig")
	}
	q := Command(t, "echo", "c")
	out, _ := q.Output()
	if string(out) != "out c\n" || q.Log() != "err echo\n" {
		t.Fatalf("Output %q, captured %q", out, q.Log())
	}
	c := Exec(t, os.Args[0], "cmd-a")
	if out, err := c.CombinedOutput(); err != nil || string(out) != "command cmd-a\n" {
		t.Fatalf("command: %q %v", out, err)
	}
}

// TestCleanupKills: a child still running when its test ends is killed
// and reaped, with Pdeathsig set whatever SysProcAttr the test gave.
func TestCleanupKills(t *testing.T) {
	var p *Proc
	t.Run("child", func(t *testing.T) {
		p = Command(t, "block")
		p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		out, err := p.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		if p.SysProcAttr.Pdeathsig != syscall.SIGKILL {
			t.Fatal("Start dropped Pdeathsig")
		}
		if l, _ := bufio.NewReader(out).ReadString('\n'); l != "ready\n" {
			t.Fatalf("child: %q", l)
		}
	})
	if p.ProcessState == nil || p.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("after its test the child is %v, want killed and reaped", p.ProcessState)
	}
}
