package cli

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// barrierEnv names the file descriptor a child of startTogether waits on
// before it runs: it reads until the parent closes the pipe's other end,
// which the parent does once every child of the round is spawned.
const barrierEnv = "CLI_TEST_BARRIER_FD"

// waitBarrier blocks the calling test child until its barrier opens.
func waitBarrier() {
	if os.Getenv(barrierEnv) == "" {
		return
	}
	f := os.NewFile(3, "barrier")
	io.Copy(io.Discard, f)
	f.Close()
	os.Unsetenv(barrierEnv) // the member's own children (chinit) do not wait
}

// startTogether spawns members names, all blocked on one barrier, opens the
// barrier once all are spawned, and returns the names (not yet active).
func (g *testGroup) startTogether(names []string) []string {
	g.t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		g.t.Fatal(err)
	}
	for _, name := range names {
		if _, err := g.harness().Spawn(name, func(c *exec.Cmd) {
			c.ExtraFiles = []*os.File{r}
			c.Env = append(c.Env, barrierEnv+"=3")
		}); err != nil {
			g.t.Fatal(err)
		}
	}
	r.Close()
	w.Close() // every child is spawned: let them all go at once
	return names
}

// waitAllActive waits until every member of names is active, failing the
// test with the log of the first that exited or stayed inactive.
func (g *testGroup) waitAllActive(names []string) {
	g.t.Helper()
	active := make(chan error, len(names))
	for _, name := range names {
		go func() { active <- g.procs.WaitActiveWithin(name, 60*time.Second) }()
	}
	for range names {
		if err := <-active; err != nil {
			g.t.Fatalf("starting together with %d others: %v", len(names)-1, err)
		}
	}
}

// TestMembersStartTogether: N members (3 to 5) of a group started at the
// same instant, on a fresh CF directory and again after the whole group
// was killed and its CF directory removed (a host reboot), all become
// active, in every round; the persistent messages put before the loss
// are back exactly once, and the checker is clean.
func TestMembersStartTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	rounds := 6
	for round := 0; round < rounds; round++ {
		n := 3 + round%3
		t.Run(fmt.Sprintf("round%d-%dmembers", round, n), func(t *testing.T) {
			g := newTestGroup(t)
			var names []string
			for i := 1; i <= n; i++ {
				names = append(names, fmt.Sprintf("QM%d", i))
			}
			// A fresh group: nothing in the data or CF directory.
			g.waitAllActive(g.startTogether(names))
			g.mqsc("DEFINE QLOCAL(PQ) DEFPSIST(YES)")
			c := g.connect(names[0])
			q, err := c.Open("PQ", mq.OpenOptions{Output: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 5; i++ {
				if err := q.Put(&mq.Message{Body: []byte(fmt.Sprint(i)), Persistence: mq.PersistenceAsQDef}, mq.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			c.Disconnect()
			// The whole group dies and the CF is lost; the members come
			// back together (in another order).
			for _, name := range names {
				g.member(name).Process.Signal(syscall.SIGKILL)
			}
			for _, name := range names {
				g.member(name).Wait()
			}
			if err := os.RemoveAll(g.cfg.CFDir); err != nil {
				t.Fatal(err)
			}
			rev := make([]string, len(names))
			for i, name := range names {
				rev[len(names)-1-i] = name
			}
			g.waitAllActive(g.startTogether(rev))
			c = g.connect(names[len(names)-1])
			defer c.Disconnect()
			q, err = c.Open("PQ", mq.OpenOptions{Input: true})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for {
				m, err := q.Get(mq.GetOptions{})
				if err != nil {
					if !errorsIsNoMsg(err) {
						t.Fatal(err)
					}
					break
				}
				got = append(got, string(m.Body))
			}
			if strings.Join(got, " ") != "0 1 2 3 4" {
				t.Fatalf("after the CF was lost and the members started together: %q, want 0 1 2 3 4 once each", got)
			}
			if code, out, errs := g.run("", "check"); code != 0 {
				t.Fatalf("check: %d\n%s%s", code, out, errs)
			}
		})
	}
}

func errorsIsNoMsg(err error) bool { return mq.ReasonOf(err) == mq.RCNoMsgAvailable }
