package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

var (
	testA = New("test.a")
	testB = New("test.b")
)

func TestMain(m *testing.M) {
	if os.Getenv("CP_CHILD") == "1" {
		for i := 0; i < 5; i++ {
			testA.Hit()
			testB.Hit()
			os.Stdout.WriteString("step\n")
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func run(t *testing.T, env string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CP_CHILD=1", EnvVar+"="+env)
	out, err := cmd.Output()
	return string(out), err
}

func TestKillAtHit(t *testing.T) {
	out, err := run(t, "test.b:3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child not SIGKILLed: %v", err)
	}
	if n := strings.Count(out, "step"); n != 2 {
		t.Fatalf("killed after %d steps, want 2", n)
	}
	if out, err := run(t, "count"); err != nil || strings.Count(out, "step") != 5 {
		t.Fatalf("count mode must not kill: %v %q", err, out)
	}
	if out, err := run(t, "test.a:99"); err != nil || strings.Count(out, "step") != 5 {
		t.Fatalf("an unreached hit must not kill: %v %q", err, out)
	}
}

func TestRegistry(t *testing.T) {
	all := strings.Join(All(), " ")
	if !strings.Contains(all, "test.a") || !strings.Contains(all, "test.b") {
		t.Fatalf("All() = %s", all)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("duplicate point accepted")
		}
	}()
	New("test.a")
}
