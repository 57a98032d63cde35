package cli

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
)

// processState is the state letter of pid in /proc (R, S, T, Z, ...).
func processState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i > 0 && len(s) > i+2 {
		return s[i+2]
	}
	return 0
}

// processStopped reports whether every thread of pid is stopped (a stop
// sent to a process reaches its threads one by one).
func processStopped(pid int) bool {
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/stat")
		if err != nil {
			return false
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || len(s) <= i+2 || s[i+2] != 'T' {
			return false
		}
	}
	return true
}

func peerState(t *testing.T, g *testGroup, name string) group.PeerState {
	t.Helper()
	p, _, err := mustPeer(t, g, name)
	if err != nil {
		t.Fatal(err)
	}
	return p.State
}

// waitFor polls cond until it holds; the limit bounds correctness, it is
// not a speed assertion.
func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAppStalledInOperationWhenMemberDies: an application is stopped in the
// middle of a get (SIGSTOP at a crash point) when its member is killed. The
// survivor recovering the member waits for the operation to end, for the
// heartbeat timeout (2 s here), and meanwhile keeps its heartbeat: no
// survivor takes another for hung. Then it kills the stopped application,
// as it would a hung member, and the recovery completes: the message is
// back with backout count 1 and the checker is clean.
func TestAppStalledInOperationWhenMemberDies(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	qm2 := g.start("QM2")
	qm3 := g.start("QM3")
	g.mqsc("DEFINE QLOCAL(Q)")
	c := g.connect("QM2")
	defer c.Disconnect()
	q, _ := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err := q.Put(&mq.Message{Body: []byte("m")}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	app := g.role("app-hold", g.cfg.Name, g.cfg.DataDir, g.cfg.CFDir, "QM1", "Q", "1")
	app.Env = append(app.Env, "QMGR_CRASHPOINT=lockfree.get.claimed:1:stop")
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- app.Wait() }()
	defer func() { app.Process.Kill(); <-waited }()
	waitFor(t, "the application stopping in its get", 15*time.Second, func() bool { return processStopped(app.Process.Pid) })
	killed := time.Now()
	g.kill("QM1")
	waitFor(t, "QM1 recovered", 15*time.Second, func() bool { return peerState(t, g, "QM1") == group.PeerRecovered })
	select {
	case err := <-waited:
		if err == nil || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("the stopped application ended with %v, want killed", err)
		}
		waited <- err
	case <-time.After(5 * time.Second):
		t.Fatal("QM1 is recovered but its stopped application still runs")
	}
	if d := time.Since(killed); d < 2*time.Second {
		t.Fatalf("the stopped application was killed %v after its member: before the heartbeat timeout", d)
	}
	for _, m := range []*struct {
		name string
		pid  int
	}{{"QM2", qm2.Process.Pid}, {"QM3", qm3.Process.Pid}} {
		if st := processState(m.pid); st == 0 || st == 'Z' {
			t.Fatalf("%s was killed while a recovery waited for an application", m.name)
		}
	}
	m, err := q.Get(mq.GetOptions{Wait: 15 * time.Second})
	if err != nil || string(m.Body) != "m" || m.BackoutCount != 1 {
		t.Fatalf("after the recovery: %v %+v", err, m)
	}
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %s %s", out, errs)
	}
}

// TestWholeGroupStopped: every member is stopped (SIGSTOP) for longer than
// the heartbeat timeout and then continued, as a host suspended and
// resumed. Nobody is taken for hung: a member judges heartbeats by its own
// clock, and forgets what it saw when it did not run itself.
func TestWholeGroupStopped(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	names := []string{"QM1", "QM2", "QM3"}
	for _, n := range names {
		g.start(n)
	}
	for _, n := range names {
		g.member(n).Process.Signal(syscall.SIGSTOP)
	}
	time.Sleep(3 * time.Second)
	for _, n := range names {
		g.member(n).Process.Signal(syscall.SIGCONT)
	}
	time.Sleep(time.Second) // several heartbeat intervals (20 ms)
	for _, n := range names {
		if st := processState(g.member(n).Process.Pid); st == 0 || st == 'Z' {
			t.Fatalf("%s was killed after the group resumed", n)
		}
		if st := peerState(t, g, n); st != group.PeerActive {
			t.Fatalf("%s is %v after the group resumed", n, st)
		}
	}
}
