package crashpoint

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
)

var (
	testA = New("test.a")
	testB = New("test.b")
	testC = New("test.c")
)

func TestMain(m *testing.M) {
	testproc.Register("stepper", func([]string) int {
		for i := 0; i < 5; i++ {
			testA.Hit()
			testB.Hit()
			if testC.Fail() {
				os.Stdout.WriteString("fail ")
			}
			os.Stdout.WriteString("step\n")
		}
		return 0
	})
	testproc.Main(m)
}

func run(t *testing.T, env string, extra ...string) (string, error) {
	cmd := testproc.Command(t, "stepper")
	cmd.Env = append(append(cmd.Env, EnvVar+"="+env), extra...)
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

// TestStopAtHit: name:n:stop stops the process at the n-th hit; after
// SIGCONT it carries on to the end.
func TestStopAtHit(t *testing.T) {
	cmd := testproc.Command(t, "stepper")
	cmd.Env = append(cmd.Env, EnvVar+"=test.a:2:stop")
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it is stopped (state T in /proc), without a time limit of
	// our own: the test's deadline bounds it.
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && len(b) > i+2 && b[i+2] == 'T' {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGCONT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child after SIGCONT: %v", err)
	}
	if n := strings.Count(out.String(), "step"); n != 5 {
		t.Fatalf("%d steps after SIGCONT, want 5", n)
	}
}

// TestOnce: with a once-file only the first process acts at the point.
func TestOnce(t *testing.T) {
	once := OnceVar + "=" + t.TempDir() + "/fired"
	if _, err := run(t, "test.b:2", once); err == nil {
		t.Fatal("the first process was not killed")
	}
	if out, err := run(t, "test.b:2", once); err != nil || strings.Count(out, "step") != 5 {
		t.Fatalf("the second process acted too: %v %q", err, out)
	}
}

// TestFail: name:n:fail:k fails hits n..n+k-1 of a point checked with Fail
// and kills nobody; a fail point armed to kill kills.
func TestFail(t *testing.T) {
	out, err := run(t, "test.c:2:fail:2")
	if err != nil {
		t.Fatal(err)
	}
	if want := "step\nfail step\nfail step\nstep\nstep\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	if out, err := run(t, "test.c:1:fail", OnceVar+"="+t.TempDir()+"/f"); err != nil || strings.Count(out, "fail") != 1 {
		t.Fatalf("default count: %v %q", err, out)
	}
	if _, err := run(t, "test.c:3"); err == nil {
		t.Fatal("a fail point armed to kill did not kill")
	}
}

// TestSleepAtHit: name:n:sleep:d makes the n-th hit wait d, and the
// process then carries on to the end.
func TestSleepAtHit(t *testing.T) {
	t0 := time.Now()
	out, err := run(t, "test.a:2:sleep:300ms")
	if err != nil || strings.Count(out, "step") != 5 {
		t.Fatalf("a sleep point must not kill: %v %q", err, out)
	}
	if el := time.Since(t0); el < 300*time.Millisecond {
		t.Fatalf("the child ended after %v: it did not sleep at the point", el)
	}
}
