package cli

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/lockfree"
)

// The test binary's children: members and applications running as qmgr
// (role qmgr, which a member's channel initiator inherits), and the test
// applications below.
func TestMain(m *testing.M) {
	waitBarrier() // a member of startTogether waits for its round's barrier
	qmgr := func(args []string) int { return Main(args, os.Stdout, os.Stderr) }
	testproc.Register("qmgr", qmgr)
	testproc.Register("app-hold", func(args []string) int { appHold(args); return 0 })
	testproc.Register("app-persist", func(args []string) int { appPersist(args); return 0 })
	testproc.Register("cmdsock", func([]string) int { cmdSockChild(os.Getenv("CLI_TEST_CMDSOCK")); return 0 })
	testproc.Register("foreign-owner", func([]string) int { foreignOwner(); return 0 })
	testproc.Register("dead-owner", func([]string) int {
		// Register an owner and exit without closing it: a dead owner.
		s, err := lockfree.Attach(os.Getenv("CLI_TEST_REGISTER"), "APPL1")
		if err == nil {
			_, err = s.Register()
		}
		if err != nil {
			return 3
		}
		return 0
	})
	testproc.Main(m)
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	s, _, err := lockfree.Create(lockfree.CreateOptions{Dir: dir, Name: "APPL1", Params: lockfree.Params{Owners: 4, Queues: 2, Entries: 64, Elements: 64}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := s.Register()
	q, _ := o.CreateQueue("Q", lockfree.QueueAttrs{})
	o.Put(q, &lockfree.Message{Body: []byte("x")}, lockfree.PutOptions{})
	o.Close()
	var out, errOut bytes.Buffer
	if code := Main([]string{"check", "-cf-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("healthy structure: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "APPL1: queues 1, messages 1") {
		t.Fatalf("output: %s", out.String())
	}
	// An owner whose process died without closing is a broken invariant
	// until it is repaired (no member here to repair it: no settle wait).
	cmd := testproc.Command(t, "dead-owner")
	cmd.Env = append(cmd.Env, "CLI_TEST_REGISTER="+dir)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := Main([]string{"check", "-cf-dir", dir, "-settle", "0"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "is dead and the owner was not repaired") {
		t.Fatalf("dead owner: exit %d\n%s", code, out.String())
	}
	if _, err := s.RepairDead(); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := Main([]string{"check", "-cf-dir", dir}, &out, &errOut); code != 0 {
		t.Fatalf("after repair: exit %d\n%s", code, out.String())
	}
	s.Close()
	out.Reset()
	if code := Main([]string{"check", "-cf-dir", t.TempDir()}, &out, &errOut); code == 0 {
		t.Fatal("an empty CF directory must fail")
	}
	if code := Main([]string{"nosuch"}, &out, &errOut); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
}

// TestChinitProcs: a channel initiator runs on half the CPUs by default
// (at least one), on what --procs says, and leaves a GOMAXPROCS from the
// environment alone.
func TestChinitProcs(t *testing.T) {
	was := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(was) })
	t.Setenv("GOMAXPROCS", "")
	setChinitProcs(0)
	if got, want := runtime.GOMAXPROCS(0), max(1, was/2); got != want {
		t.Fatalf("default: GOMAXPROCS %d, want %d", got, want)
	}
	setChinitProcs(3)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("--procs 3: GOMAXPROCS %d", got)
	}
	t.Setenv("GOMAXPROCS", "5")
	setChinitProcs(0)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS set in the environment: changed to %d", got)
	}
	var out bytes.Buffer
	if code := Main([]string{"chinit", "--procs", "-1", "--qmgr", "QM1"}, &out, &out); code == 0 || !strings.Contains(out.String(), "--procs -1") {
		t.Fatalf("chinit --procs -1: exit %d, %q", code, out.String())
	}
}
