package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
)

// putPersistent puts n persistent messages "p00".. to queue q through
// member via.
func putPersistent(t *testing.T, g *testGroup, via, q string, n int) {
	t.Helper()
	c := g.connect(via)
	defer c.Disconnect()
	h, err := c.Open(q, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("p%02d", i)), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// browseAll browses queue q through member via.
func browseAll(t *testing.T, g *testGroup, via, q string) []string {
	t.Helper()
	c := g.connect(via)
	defer c.Disconnect()
	h, err := c.Open(q, mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := cur.Next(mq.GetOptions{})
		if err != nil {
			if mq.ReasonOf(err) != mq.RCNoMsgAvailable {
				t.Fatalf("browse %s through %s: %v", q, via, err)
			}
			return got
		}
		got = append(got, string(m.Body))
	}
}

// cfStatus runs DISPLAY CFSTATUS through member via, failing the test if
// the member does not answer (a member whose commands wait for another
// member's recovery).
func (g *testGroup) cfStatus(via, name string) string {
	g.t.Helper()
	type res struct {
		code      int
		out, errs string
	}
	ch := make(chan res, 1)
	go func() {
		code, out, errs := g.run("", "mqsc", "--name", via, "-c", "DISPLAY CFSTATUS("+name+")")
		ch <- res{code, out, errs}
	}()
	select {
	case r := <-ch:
		if r.code != 0 {
			g.t.Fatalf("DISPLAY CFSTATUS(%s) through %s: exit %d %s %s", name, via, r.code, r.out, r.errs)
		}
		return r.out
	case <-time.After(20 * time.Second):
		g.t.Fatalf("DISPLAY CFSTATUS(%s) through %s did not answer within 20s", name, via)
	}
	return ""
}

// stoppedMember waits until one of names is stopped (SIGSTOP) and returns it.
func (g *testGroup) stoppedMember(names ...string) string {
	g.t.Helper()
	var stopped string
	waitFor(g.t, "a member stopped at the crash point", 30*time.Second, func() bool {
		for _, n := range names {
			if processStopped(g.member(n).Process.Pid) {
				stopped = n
				return true
			}
		}
		return false
	})
	return stopped
}

func wantSeq(t *testing.T, got []string, n int) {
	t.Helper()
	var want []string
	for i := range n {
		want = append(want, fmt.Sprintf("p%02d", i))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("queue holds %q, want p00..p%02d once each, in order", got, n-1)
	}
}

// TestStructureRecovererKilled: a member recovering a structure from the
// logs dies in the middle of its replay (a crash point). While the group
// runs, the other member sees it recovering (DISPLAY CFSTATUS says
// RECOVERING and names the recoverer, and answers while it waits) and
// takes the recovery over once the recoverer is SIGKILLed. After the whole
// group died and its CF directory was lost, the member that died in the
// middle of the recovery leaves the structure recovering under a dead
// recoverer (qmgr status says so), and recovers it again when it is
// restarted. Every persistent message is back once, in order.
func TestStructureRecovererKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const n = 30
	g := newTestGroup(t)
	names := []string{"QM1", "QM2"}
	fired, disarm := armOnce(t, "qm.recover.replay:5:stop")
	for _, name := range names {
		g.start(name)
	}
	disarm()
	g.mqsc("DEFINE QLOCAL(PQ)")
	putPersistent(t, g, "QM1", "PQ", n)

	// 1. The structure's file is lost while the group runs: the first
	// member to recover it stops half way through its replay.
	if err := os.Remove(filepath.Join(g.cfg.CFDir, "APPL1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the crash point reached", 30*time.Second, func() bool { _, err := os.Stat(fired); return err == nil })
	rec := g.stoppedMember(names...)
	live := names[0]
	if rec == live {
		live = names[1]
	}
	if out := g.cfStatus(live, "APPL1"); !strings.Contains(out, "STATUS(RECOVERING)") || !strings.Contains(out, "RECOVERER("+rec+")") {
		t.Fatalf("DISPLAY CFSTATUS while %s recovers APPL1:\n%s", rec, out)
	}
	g.kill(rec)
	waitFor(t, live+" taking the recovery over", 30*time.Second, func() bool {
		return strings.Contains(g.cfStatus(live, "APPL1"), "STATUS(ACTIVE)")
	})
	g.start(rec)
	wantSeq(t, browseAll(t, g, rec, "PQ"), n)

	// 2. The whole group dies and the CF is lost; the first member back
	// dies in the middle of recovering the structure.
	for _, name := range names {
		g.member(name).Process.Signal(syscall.SIGKILL)
		g.member(name).Wait()
	}
	if err := os.RemoveAll(g.cfg.CFDir); err != nil {
		t.Fatal(err)
	}
	_, disarm = armOnce(t, "qm.recover.replay:5")
	c, err := g.harness().Spawn("QM1", nil)
	disarm()
	if err != nil {
		t.Fatal(err)
	}
	dead := c.Process.Pid
	if err := c.Wait(); err == nil {
		t.Fatal("QM1 started instead of dying in the middle of the recovery")
	}
	s, err := lockfree.Attach(g.cfg.CFDir, "APPL1")
	if err != nil {
		t.Fatal(err)
	}
	st, who := s.Service()
	s.Close()
	if st != lockfree.Recovering || who.Pid != dead {
		t.Fatalf("APPL1 after its recoverer died: %v by %v, want recovering by pid %d", st, who, dead)
	}
	if _, out, _ := g.run("", "status"); !strings.Contains(out, "died in the middle of the recovery") {
		t.Fatalf("qmgr status does not say the structure's recoverer died:\n%s", out)
	}
	// Restarted, it recovers the structure again before it serves.
	g.start("QM1")
	if out := g.cfStatus("QM1", "APPL1"); !strings.Contains(out, "STATUS(ACTIVE)") {
		t.Fatalf("DISPLAY CFSTATUS after the restart:\n%s", out)
	}
	wantSeq(t, browseAll(t, g, "QM1", "PQ"), n)
	g.start("QM2")
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %d\n%s%s", code, out, errs)
	}
}
