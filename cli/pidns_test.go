package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
)

// foreignOwner registers an admin owner labelled CLI_TEST_LABEL in the
// group whose CF directory is CLI_TEST_FOREIGN_OWNER, prints its slot and
// waits to be killed.
func foreignOwner() {
	s, err := lockfree.Attach(os.Getenv("CLI_TEST_FOREIGN_OWNER"), "ADMIN")
	if err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	label, _ := strconv.ParseUint(os.Getenv("CLI_TEST_LABEL"), 10, 64)
	o, err := s.RegisterLabel(label)
	if err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	o.SetRevocable(true)
	fmt.Println("slot", o.Tag().Slot())
	select {}
}

// adminOwner reads connection slot slot of group g.
func adminOwner(t *testing.T, g *testGroup, slot int) (lockfree.OwnerInfo, bool) {
	t.Helper()
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	return gr.Admin().Owner(slot)
}

// TestPidNamespaceRefused: a member and an application started in a pid
// namespace of their own (a container without --pid=host) cannot judge
// the group's processes by pid: they are refused at start and at connect
// with an error naming the pid namespaces, and take nobody for dead: the
// member already running is neither recovered nor disturbed. A connection
// of the other namespace registered without connect's check (an older
// binary) is neither watched nor taken for dead by its member.
func TestPidNamespaceRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	if os.Geteuid() != 0 {
		t.Skip("creating a pid namespace (CLONE_NEWPID) needs root; this test runs only as root")
	}
	g := newTestGroup(t)
	g.start("QM1")
	g.mqsc("DEFINE QLOCAL(Q)")
	qm1 := g.member("QM1").Process.Pid
	p0, _, _ := mustPeer(t, g, "QM1")
	inNewNS := func(args ...string) (int, string) {
		c := g.cmd(g.args(args...)...)
		c.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
		var out bytes.Buffer
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatalf("start %v in a new pid namespace: %v", args, err)
		}
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				c.Process.Kill()
			}
		}()
		c.Wait()
		close(done)
		return c.ProcessState.ExitCode(), out.String()
	}
	code, out := inNewNS("start", "--name", "QM2", "--heartbeat", "20ms", "--heartbeat-timeout", "2s", "--no-chinit")
	if code == 0 || !strings.Contains(out, "pid namespace") {
		t.Fatalf("a member in another pid namespace: exit %d\n%s", code, out)
	}
	code, out = inNewNS("put", "--name", "QM1", "--queue", "Q", "--count", "1")
	if code == 0 || !strings.Contains(out, "pid namespace") {
		t.Fatalf("an application in another pid namespace: exit %d\n%s", code, out)
	}
	// A connection registered under QM1 from the other namespace without
	// connect's check (an older binary): QM1 cannot watch it, and must not
	// take it for dead while it lives.
	c := g.role("foreign-owner")
	c.SysProcAttr.Cloneflags = syscall.CLONE_NEWPID
	c.Env = append(c.Env, "CLI_TEST_FOREIGN_OWNER="+g.cfg.CFDir, "CLI_TEST_LABEL="+strconv.FormatUint(group.ConnLabel(p0.Slot, p0.Incarnation), 10))
	outp, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	line, _ := bufio.NewReader(outp).ReadString('\n')
	slot, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "slot "))
	if err != nil {
		t.Fatalf("foreign owner: %q", line)
	}
	waitFor(t, "QM1 to look at the connection of another pid namespace", 30*time.Second, func() bool {
		b, _ := os.ReadFile(g.dir + "/QM1.log")
		return strings.Contains(string(b), fmt.Sprintf("connection from another pid namespace: not watched, not recovered\" qmgr=QM1 slot=%d ", slot))
	})
	info, ok := adminOwner(t, g, slot)
	if !ok || info.State != "active" || info.Process.Pid != 1 || info.PidNS == 0 || info.PidNS == procid.SelfNS() {
		t.Fatalf("the connection of another pid namespace after QM1 looked at it: %+v", info)
	}
	// Nobody took QM1 for dead.
	p, found, err := mustPeer(t, g, "QM1")
	if err != nil || !found || p.Process.Pid != qm1 || p.Incarnation != 1 || peerState(t, g, "QM1").String() != "active" {
		t.Fatalf("QM1 after the refusals: %+v %v", p, err)
	}
	if b, _ := os.ReadFile(g.dir + "/QM1.log"); strings.Contains(string(b), `msg="recovered a`) {
		t.Fatalf("QM1 recovered something:\n%s", b)
	}
	if code, out, errs := g.run("", "put", "--name", "QM1", "--queue", "Q", "--count", "1"); code != 0 {
		t.Fatalf("put through QM1 after the refusals: %s %s", out, errs)
	}
	// The checker, like every pid-based judgement in the CF, would take
	// the foreign connection for dead: end it, and repair it by hand as an
	// operator would, before checking the rest.
	c.Process.Kill()
	c.Wait()
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = gr.Admin().Repair(info.Tag)
	gr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %d\n%s%s", code, out, errs)
	}
}
