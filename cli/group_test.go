package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/cli/demo"
	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/status"
)

// testGroup is a group whose members run as real processes (this test
// binary acting as qmgr: testproc role "qmgr"), started through the group
// harness (groupproc).
type testGroup struct {
	t     *testing.T
	dir   string
	cfg   group.Config
	procs *groupproc.Group
	port  int // the inbound port of a remote side (channel tests)
}

func newTestGroup(t *testing.T) *testGroup { return newTestGroupSized(t, 32<<20) }

// newTestGroupSized is a test group whose default structure has size bytes.
func newTestGroupSized(t *testing.T, size uint64) *testGroup {
	dir := t.TempDir()
	cfg := group.Config{Name: "TG", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: size}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	g := &testGroup{t: t, dir: dir, cfg: cfg}
	t.Cleanup(func() {
		g.procs.KillAll()
		if t.Failed() {
			// The members' logs say what happened (g.dir: a remote
			// group's logs are in a directory of their own).
			g.harness().DumpLogs(t.Logf, 20000)
		}
	})
	g.procs = &groupproc.Group{Dir: dir, StartFlags: []string{"--heartbeat", "20ms", "--heartbeat-timeout", "2s", "--stop-grace", "300ms"},
		Command: qmgrCommand}
	return g
}

func (g *testGroup) args(a ...string) []string {
	return g.cfg.Args(a...)
}

// qmgrCommand runs this test binary as qmgr with args (the group
// harness's members).
func qmgrCommand(args ...string) *exec.Cmd {
	c := exec.Command(os.Args[0], args...)
	c.Env = append(os.Environ(), testproc.RoleEnv("qmgr"))
	return c
}

// cmd is a child process running qmgr with args (an application).
func (g *testGroup) cmd(args ...string) *testproc.Proc { return testproc.Command(g.t, "qmgr", args...) }

// role is a child process of the test in role with args.
func (g *testGroup) role(role string, args ...string) *testproc.Proc {
	return testproc.Command(g.t, role, args...)
}

// startAt starts member name with crash point spec (crashpoint.EnvVar,
// e.g. "qm.recover.claimed:1" or "qm.stop.closing:1:sleep:5s") and waits
// until it is active; the members started after it have none.
func (g *testGroup) startAt(name, spec string) *groupproc.Member {
	g.t.Helper()
	os.Setenv(crashpoint.EnvVar, spec)
	defer os.Unsetenv(crashpoint.EnvVar)
	return g.start(name)
}

// startHolder starts an application child (role app-hold) that gets n
// messages of queue Q under syncpoint through member via, and returns it
// once it says it holds them. The caller ends it.
func (g *testGroup) startHolder(via string, n int) *testproc.Proc {
	g.t.Helper()
	app := g.role("app-hold", g.cfg.Name, g.cfg.DataDir, g.cfg.CFDir, via, "Q", strconv.Itoa(n))
	outp, _ := app.StdoutPipe()
	if err := app.Start(); err != nil {
		g.t.Fatal(err)
	}
	if line, _ := bufio.NewReader(outp).ReadString('\n'); line != "held\n" {
		app.Process.Kill()
		app.Wait()
		g.t.Fatalf("application: %q", line)
	}
	return app
}

// start starts member name and waits until it is active.
func (g *testGroup) start(name string) *groupproc.Member {
	g.t.Helper()
	return g.startWith(name)
}

// startWith starts member name with extra flags (ports) and waits until
// it is active.
func (g *testGroup) startWith(name string, extra ...string) *groupproc.Member {
	g.t.Helper()
	m, err := g.harness().Start(name, extra...)
	if err != nil {
		g.t.Fatalf("%v\n%s", err, g.harness().Log(name))
	}
	return m
}

// harness is the group harness, with the group's configuration and log
// directory as the test has them now (a test may change g.cfg before it
// starts members; a remote group's logs have a directory of their own).
func (g *testGroup) harness() *groupproc.Group {
	g.procs.Cfg, g.procs.Dir = g.cfg, g.dir
	return g.procs
}

// member is member name's current process.
func (g *testGroup) member(name string) *groupproc.Member { return g.procs.Member(name) }

// kill SIGKILLs a member.
func (g *testGroup) kill(name string) { g.procs.Kill(name) }

// run runs qmgr in this process against the group.
func (g *testGroup) run(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := MainIO(g.args(args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func (g *testGroup) mqsc(cmd string) string {
	g.t.Helper()
	code, out, errs := g.run("", "mqsc", "-c", cmd)
	if code != 0 {
		g.t.Fatalf("%s: exit %d %s %s", cmd, code, out, errs)
	}
	return out
}

func (g *testGroup) connect(via string) *mq.Conn {
	g.t.Helper()
	c, err := mq.Connect(mq.ConnectOptions{Group: g.cfg.Name, QMgr: via, DataDir: g.cfg.DataDir, CFDir: g.cfg.CFDir})
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

func TestAdminCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	ok := []struct{ cmd, want string }{
		{"DEFINE QLOCAL(IN) MAXDEPTH(10) MAXMSGL(1000) DEFPSIST(YES) DEFPRTY(3) BOTHRESH(2) BOQNAME(IN.BO) INDXTYPE(CORRELID) USAGE(NORMAL) DESCR('the input')", "AMQ8006I"},
		{"define qlocal(in.bo)", "AMQ8006I"},
		{"DEFINE QLOCAL('mixed.Case')", "AMQ8006I"},
		{"DEFINE QLOCAL(IN) MAXDEPTH(20) REPLACE", "AMQ8006I"},
		{"ALTER QLOCAL(IN) MAXDEPTH(5) DESCR('changed')", "AMQ8008I"},
		{"DISPLAY QLOCAL(IN) ALL", "MAXDEPTH(5)"},
		{"DISPLAY QLOCAL(IN) MAXDEPTH CURDEPTH", "CURDEPTH(0)"},
		{"DISPLAY QUEUE(I*)", "QUEUE(IN.BO)"},
		{"DISPLAY QSTATUS(IN)", "UNCOM(0)"},
		{"DEFINE CFSTRUCT(APPL2) SIZE(32) DESCR('second')", "AMQ8110I"},
		{"DISPLAY CFSTRUCT(*)", "CFSTRUCT(APPL2)"},
		{"DISPLAY CFSTATUS(APPL1)", "STATUS(ACTIVE)"},
		{"DEFINE QLOCAL(OTHER) CFSTRUCT(APPL2)", "AMQ8006I"},
		{"DISPLAY GROUP", "QMNAME(QM1)"},
		{"DISPLAY CONN(*)", "AMQ8276I"},
		{"ALTER QMGR DEADQ(DLQ) DESCR('the group')", "AMQ8005I"},
		{"DISPLAY QMGR", "DEADQ(DLQ)"},
		{"CLEAR QLOCAL(IN)", "AMQ8022I"},
		{"DELETE QLOCAL(OTHER)", "AMQ8007I"},
	}
	for _, c := range ok {
		if out := g.mqsc(c.cmd); !strings.Contains(out, c.want) {
			t.Fatalf("%s: %q lacks %q", c.cmd, out, c.want)
		}
	}
	// Bad input: an error naming the token, and nothing changed.
	bad := []struct{ cmd, want string }{
		{"DEFINE QLOCAL(IN)", "already exists"},
		{"DEFINE QLOCAL(X1) MAXDEPHT(5)", "MAXDEPHT(5)"},
		{"DEFINE QLOCAL(X2) MAXDEPTH(-1)", "MAXDEPTH(-1)"},
		{"DEFINE QLOCAL(X3) MAXDEPTH(abc)", "MAXDEPTH(ABC)"},
		{"DEFINE QLOCAL(X4) DEFPRTY(10)", "DEFPRTY(10)"},
		{"DEFINE QLOCAL(X5) INDXTYPE(GROUPID)", "INDXTYPE(GROUPID)"},
		{"DEFINE QLOCAL(X6) CFSTRUCT(NOPE)", "CFSTRUCT(NOPE)"},
		{"DEFINE QLOCAL(X7) BOGUS", "BOGUS"},
		{"DEFINE QLOCAL(bad name)", "NAME"},
		{"FROB QLOCAL(IN)", "FROB"},
		{"DEFINE QWIDGET(IN)", "QWIDGET"},
		{"DEFINE QLOCAL", "needs a name"},
		{"DEFINE QLOCAL(X8) DESCR('unterminated)", "unterminated"},
		{"ALTER QLOCAL(NOSUCH) MAXDEPTH(5)", "not found"},
		{"DISPLAY QLOCAL(NOSUCH)", "not found"},
		{"DELETE QLOCAL(NOSUCH)", "not found"},
		{"ALTER QLOCAL(IN) CFSTRUCT(APPL2)", "cannot change"},
		{"ALTER CFSTRUCT(APPL2) SIZE(64)", "fixed"},
		{"ALTER QMGR DEADQ('bad name')", "DEADQ"},
		{"DISPLAY QLOCAL(IN) MAXDEPTH(5)", "MAXDEPTH"},
	}
	for _, c := range bad {
		code, out, errs := g.run("", "mqsc", "-c", c.cmd)
		if code == 0 || !strings.Contains(errs+out, c.want) {
			t.Fatalf("%s: exit %d, %q %q, want an error naming %q", c.cmd, code, out, errs, c.want)
		}
	}
	if out := g.mqsc("DISPLAY QLOCAL(X*)"); strings.Contains(out, "QUEUE(X") {
		t.Fatalf("a failed command defined something:\n%s", out)
	}
	// JSON: one object per result, MQSC names as keys.
	code, out, _ := g.run("", "mqsc", "--json", "-c", "DISPLAY QSTATUS(IN)")
	var obj map[string]any
	if code != 0 || json.Unmarshal([]byte(strings.TrimSpace(out)), &obj) != nil || obj["QUEUE"] != "IN" || obj["CURDEPTH"] != float64(0) {
		t.Fatalf("json: %d %q", code, out)
	}
	// Commands from stdin, several at once.
	if code, out, errs := g.run("DEFINE QLOCAL(S1)\n* a comment\nDEFINE QLOCAL(S2) +\n  DESCR('two lines')\n", "mqsc"); code != 0 || strings.Count(out, "AMQ8006I") != 2 {
		t.Fatalf("stdin: %d %q %q", code, out, errs)
	}
	// put and get.
	if code, _, errs := g.run("one\ntwo\nthree\n", "put", "--queue", "IN.BO", "--correlid", "abc"); code != 0 {
		t.Fatalf("put: %s", errs)
	}
	if code, out, _ := g.run("", "get", "--queue", "IN.BO", "--browse"); code != 0 || out != "one\ntwo\nthree\n" {
		t.Fatalf("browse: %q", out)
	}
	if code, out, _ := g.run("", "get", "--queue", "IN.BO", "--correlid", "abc", "--count", "1"); code != 0 || out != "one\n" {
		t.Fatalf("get by correlid: %q", out)
	}
	if code, out, _ := g.run("", "get", "--queue", "IN.BO", "--syncpoint", "--commit-every", "1"); code != 0 || out != "two\n#commit\nthree\n#commit\n" {
		t.Fatalf("syncpoint get: %q", out)
	}
	if code, _, errs := g.run("", "put", "--queue", "IN.BO", "--count", "6", "--size", "10", "--syncpoint", "--commit-every", "4"); code != 0 {
		t.Fatalf("generated put: %s", errs)
	}
	if code, out, _ := g.run("", "get", "--queue", "IN.BO", "--wait", "10ms"); code != 0 || strings.Count(out, "\n") != 6 || !strings.HasPrefix(out, "0000000000\n") {
		t.Fatalf("generated get: %q", out)
	}
	if code, _, errs := g.run("x\n", "put", "--queue", "NOSUCH"); code == 0 || !strings.Contains(errs, "2085") {
		t.Fatalf("put to an unknown queue: %d %s", code, errs)
	}
	// A full queue, then DELETE without and with PURGE.
	for i := 0; i < 5; i++ {
		g.run("m\n", "put", "--queue", "IN")
	}
	if code, _, errs := g.run("m\n", "put", "--queue", "IN"); code == 0 || !strings.Contains(errs, "2053") {
		t.Fatalf("put to a full queue: %d %s", code, errs)
	}
	if code, _, errs := g.run("", "mqsc", "-c", "DELETE QLOCAL(IN)"); code == 0 || !strings.Contains(errs, "PURGE") {
		t.Fatalf("delete of a non-empty queue: %s", errs)
	}
	g.mqsc("DELETE QLOCAL(IN) PURGE")
	// status and stop.
	code, out, _ = g.run("", "status", "--json")
	var st status.Report
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Active != 1 || len(st.Members) != 1 || st.Members[0].Name != "QM1" {
		t.Fatalf("status: %d %q", code, out)
	}
	if code, out, errs := g.run("", "stop", "--name", "QM1"); code != 0 {
		t.Fatalf("stop: %s %s", out, errs)
	}
	g.member("QM1").Wait()
	if code, _, _ := g.run("", "status"); code == 0 {
		t.Fatal("status exits 0 with no active member")
	}
	if code, _, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check after an orderly stop: %s", errs)
	}
}

// TestMemberKilledHoldingUOW: an application holds messages under syncpoint
// through QM2; QM2 is SIGKILLed; the survivor QM1 puts the messages back in
// their original positions with backout count + 1, and the application's
// next call fails with "connection broken". Then the same with the
// application killed and its member alive.
func TestMemberKilledHoldingUOW(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	g.start("QM2")
	g.mqsc("DEFINE QLOCAL(Q)")
	c1 := g.connect("QM1")
	defer c1.Disconnect()
	q1, err := c1.Open("Q", mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := q1.Put(&mq.Message{Body: []byte(fmt.Sprint(i))}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	browse := func() string {
		t.Helper()
		cur, err := q1.Browse()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for {
			m, err := cur.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				return strings.Join(got, " ")
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s/%d", m.Body, m.BackoutCount))
		}
	}
	// An application through QM2, in this process: it stays alive.
	c2 := g.connect("QM2")
	q2, err := c2.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := q2.Get(mq.GetOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
	}
	q2.Put(&mq.Message{Body: []byte("uncommitted")}, mq.PutOptions{Syncpoint: true})
	if b := browse(); b != "3/0 4/0" {
		t.Fatalf("while held: %s", b)
	}
	t0 := time.Now()
	g.kill("QM2")
	for browse() != "0/1 1/1 2/1 3/0 4/0" {
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("after QM2 died: %s", browse())
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("messages back %v after the kill", time.Since(t0))
	if _, err := q2.Get(mq.GetOptions{}); mq.ReasonOf(err) != mq.RCConnectionBroken {
		t.Fatalf("the application of the dead member got %v, want connection broken", err)
	}
	c2.Disconnect()

	// Now the application dies and its member lives.
	app := g.startHolder("QM1", 2)
	app.Process.Signal(syscall.SIGKILL)
	app.Wait()
	t0 = time.Now()
	for browse() != "0/2 1/2 2/1 3/0 4/0" {
		if time.Since(t0) > 5*time.Second {
			t.Fatalf("after the application died: %s", browse())
		}
		time.Sleep(time.Millisecond)
	}
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %s %s", out, errs)
	}
}

// appHold is a child application: it gets n messages under syncpoint
// through member via, says "held" and waits to be killed.
func appHold(args []string) {
	n, _ := strconv.Atoi(args[5])
	c, err := mq.Connect(mq.ConnectOptions{Group: args[0], DataDir: args[1], CFDir: args[2], QMgr: args[3]})
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(1)
	}
	q, err := c.Open(args[4], mq.OpenOptions{Input: true})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	for i := 0; i < n; i++ {
		if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
			fmt.Println("get:", err)
			os.Exit(1)
		}
	}
	fmt.Println("held")
	select {}
}

// TestGroupTorture: three members, producers and consumers (processes),
// members and applications SIGKILLed at random and restarted. Every
// message a producer committed arrives exactly once. GROUP_TORTURE=5m for a
// long run.
func TestGroupTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	d := 8 * time.Second
	if v := os.Getenv("GROUP_TORTURE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	g := newTestGroup(t)
	demoMembers := []string{"QM1", "QM2", "QM3"}
	for _, n := range demoMembers {
		g.start(n)
	}
	g.mqsc("DEFINE QLOCAL(DEMO.IN) MAXDEPTH(5000)")
	g.mqsc("DEFINE QLOCAL(DEMO.DONE) MAXDEPTH(999999999)")
	type app struct {
		name  string
		cmd   *testproc.Proc
		out   *bytes.Buffer
		outs  []*bytes.Buffer // every incarnation's output
		inc   int
		alive bool
	}
	apps := map[string]*app{}
	startApp := func(a *app) {
		a.inc++
		role, via := "consumer", demoMembers[1+a.inc%2]
		args := []string{demo.GroupWorkerName, "--role", "consumer", "--via", via, "--batch", "7"}
		if strings.HasPrefix(a.name, "producer") {
			role = "producer"
			// Every incarnation of a producer puts its own messages (no
			// re-puts), and reports each commit.
			id := a.name[len(a.name)-1:]
			args = []string{demo.GroupWorkerName, "--role", "torture-producer", "--tag", id + "." + strconv.Itoa(a.inc), "--via", demoMembers[a.inc%2],
				"--batch", "9", "--rate", "3000"}
		}
		_ = role
		a.cmd = g.cmd(g.args(args...)...)
		a.out = &bytes.Buffer{}
		a.outs = append(a.outs, a.out)
		a.cmd.Stdout = a.out
		if err := a.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		a.alive = true
	}
	for _, n := range []string{"producer0", "producer1", "consumer0", "consumer1"} {
		apps[n] = &app{name: n}
		startApp(apps[n])
	}
	// A drainer empties DEMO.DONE while the torture runs, so a long run
	// does not fill the structure; it reconnects (to any member) when its
	// member is killed. Its gets are outside syncpoint: a get that returned
	// a message removed it, one that failed removed nothing.
	seen := map[string]int{}
	var seenMu sync.Mutex
	drainStop := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		var dc *mq.Conn
		var dq *mq.Queue
		for {
			select {
			case <-drainStop:
				if dc != nil {
					dc.Disconnect()
				}
				return
			default:
			}
			if dq == nil {
				c, err := mq.Connect(mq.ConnectOptions{Group: g.cfg.Name, DataDir: g.cfg.DataDir, CFDir: g.cfg.CFDir})
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				if dq, err = c.Open("DEMO.DONE", mq.OpenOptions{Input: true}); err != nil {
					c.Disconnect()
					dq = nil
					time.Sleep(20 * time.Millisecond)
					continue
				}
				dc = c
			}
			m, err := dq.Get(mq.GetOptions{Wait: 50 * time.Millisecond})
			switch {
			case err == nil:
				seenMu.Lock()
				seen[string(m.Body)]++
				seenMu.Unlock()
			case !errors.Is(err, mq.ErrNoMessage):
				dc.Disconnect()
				dc, dq = nil, nil
			}
		}
	}()
	rng := newRand()
	kills := map[string]int{}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(100+rng.Intn(300)) * time.Millisecond)
		if rng.Intn(3) == 0 {
			n := demoMembers[rng.Intn(3)]
			g.kill(n)
			kills["member"]++
			time.Sleep(time.Duration(rng.Intn(50)) * time.Millisecond)
			g.start(n)
		} else {
			names := []string{"producer0", "producer1", "consumer0", "consumer1"}
			a := apps[names[rng.Intn(4)]]
			a.cmd.Process.Signal(syscall.SIGKILL)
			a.cmd.Wait()
			kills["app"]++
			startApp(a)
		}
	}
	// stopApp asks an application to stop; one that does not within 30 s
	// has its goroutines dumped (SIGQUIT) for the log.
	stopApp := func(n string) {
		a := apps[n]
		a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- a.cmd.Wait() }()
		select {
		case err := <-done:
			// A worker restarted a moment ago may die of the SIGTERM before
			// it handles it: like a kill, its member backs out its work.
			var ee *exec.ExitError
			if err != nil && !(errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGTERM) {
				t.Fatalf("%s: %v", n, err)
			}
		case <-time.After(30 * time.Second):
			a.cmd.Process.Signal(syscall.SIGQUIT)
			<-done
			t.Fatalf("%s did not stop within 30s (goroutines above)", n)
		}
	}
	// Stop the producers in order, let the consumers drain DEMO.IN.
	for _, n := range []string{"producer0", "producer1"} {
		stopApp(n)
	}
	c := g.connect("QM1")
	defer c.Disconnect()
	in, err := c.Open("DEMO.IN", mq.OpenOptions{Browse: true, Input: true})
	if err != nil {
		t.Fatal(err)
	}
	for t0 := time.Now(); ; {
		cur, _ := in.Browse()
		if _, err := cur.Next(mq.GetOptions{}); errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if time.Since(t0) > time.Minute {
			t.Fatal("DEMO.IN does not drain")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range []string{"consumer0", "consumer1"} {
		stopApp(n)
	}
	close(drainStop)
	<-drained
	// Every reported commit's messages arrived; nothing twice; nothing that
	// was never put.
	committed := map[string]bool{}
	for _, n := range []string{"producer0", "producer1"} {
		for _, out := range apps[n].outs {
			for _, line := range strings.Split(out.String(), "\n") {
				if strings.HasPrefix(line, "committed ") {
					for _, id := range strings.Fields(line)[1:] {
						committed[id] = true
					}
				}
			}
		}
	}
	done, err := c.Open("DEMO.DONE", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := done.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		seen[string(m.Body)]++
	}
	for id := range committed {
		if seen[id] != 1 {
			t.Fatalf("committed message %s arrived %d times", id, seen[id])
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s arrived %d times", id, n)
		}
		if !strings.HasPrefix(id, "p") {
			t.Fatalf("unexpected message %q", id)
		}
	}
	if len(committed) == 0 {
		t.Fatal("nothing was committed")
	}
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %s %s", out, errs)
	}
	t.Logf("%d messages committed and delivered exactly once (%d arrived, some committed just before a kill); kills %v", len(committed), len(seen), kills)
	_ = io.Discard
}

func newRand() *rand.Rand {
	seed := time.Now().UnixNano()
	if v := os.Getenv("GROUP_TORTURE_SEED"); v != "" {
		seed, _ = strconv.ParseInt(v, 10, 64)
	}
	fmt.Fprintf(os.Stderr, "group torture seed %d\n", seed)
	return rand.New(rand.NewSource(seed))
}

// TestRecovererDies: QM2 dies holding a unit of work; QM1, the only
// survivor, dies in the middle of recovering it (a crash point); QM3 then
// starts alone and, before it serves, recovers both: the messages are back
// with backout count 1 and the checker is clean.
func TestRecovererDies(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, point := range []string{"qm.recover.claimed", "qm.recover.conn"} {
		t.Run(point, func(t *testing.T) {
			g := newTestGroup(t)
			// QM1 dies at the crash point the first time it recovers a peer.
			g.startAt("QM1", point+":1")
			g.start("QM2")
			g.mqsc("DEFINE QLOCAL(Q)")
			c := g.connect("QM1")
			q, _ := c.Open("Q", mq.OpenOptions{Output: true})
			for i := 0; i < 3; i++ {
				q.Put(&mq.Message{Body: []byte(fmt.Sprint(i))}, mq.PutOptions{})
			}
			c.Disconnect()
			app := g.startHolder("QM2", 2)
			defer func() { app.Process.Kill(); app.Wait() }()
			g.kill("QM2")
			// QM1 notices, claims the recovery and dies at the crash point.
			died := make(chan error, 1)
			go func() { died <- g.member("QM1").Wait() }()
			select {
			case err := <-died:
				if err == nil {
					t.Fatal("QM1 stopped instead of dying at the crash point")
				}
			case <-time.After(20 * time.Second):
				t.Fatal("QM1 did not reach the crash point")
			}
			if p, _, _ := mustPeer(t, g, "QM2"); p.State != group.PeerRecovering {
				t.Fatalf("QM2 left in state %v, want recovering (by the dead QM1)", p.State)
			}
			// QM3 starts alone and recovers everything first.
			g.start("QM3")
			for _, n := range []string{"QM1", "QM2"} {
				if p, _, _ := mustPeer(t, g, n); p.State != group.PeerRecovered {
					t.Fatalf("%s: %v after QM3 started", n, p.State)
				}
			}
			c = g.connect("QM3")
			defer c.Disconnect()
			q, _ = c.Open("Q", mq.OpenOptions{Browse: true})
			cur, _ := q.Browse()
			var got []string
			for {
				m, err := cur.Next(mq.GetOptions{})
				if err != nil {
					break
				}
				got = append(got, fmt.Sprintf("%s/%d", m.Body, m.BackoutCount))
			}
			if strings.Join(got, " ") != "0/1 1/1 2/0" {
				t.Fatalf("after recovery: %v", got)
			}
			if code, out, errs := g.run("", "check"); code != 0 {
				t.Fatalf("check: %s %s", out, errs)
			}
		})
	}
}

func mustPeer(t *testing.T, g *testGroup, name string) (group.Peer, bool, error) {
	t.Helper()
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	return gr.FindPeer(name)
}

// TestNotAuthorised: the group's files are owner/group only; a process of
// another user gets "not authorised" (MQRC 2035), not a crash.
func TestNotAuthorised(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	g := newTestGroup(t)
	g.start("QM1")
	g.mqsc("DEFINE QLOCAL(Q)")
	for _, p := range []string{g.cfg.CFDir, g.cfg.DataDir} {
		st, err := os.Stat(p)
		if err != nil || st.Mode().Perm() != 0o770 {
			t.Fatalf("%s: mode %v %v", p, st.Mode(), err)
		}
	}
	// A copy of this binary that nobody may run, and parents nobody may
	// traverse, so the refusal comes from the group's own modes.
	for _, d := range []string{filepath.Dir(g.dir), g.dir} {
		os.Chmod(d, 0o755)
	}
	bin := testproc.CopyBinary(t, g.dir)
	for _, args := range [][]string{{"put", "--queue", "Q"}, {"get", "--queue", "Q"}, {"status"}} {
		c := testproc.CommandBinary(t, bin, "qmgr", g.args(args...)...)
		c.Stdin = strings.NewReader("x\n")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := c.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || ee.Sys().(syscall.WaitStatus).Signaled() {
			t.Fatalf("%v as nobody: %v %s", args, err, out)
		}
		if args[0] != "status" && !strings.Contains(string(out), "2035") {
			t.Fatalf("%v as nobody: %s", args, out)
		}
	}
}

// TestHungMemberIsFenced: a member that stops heartbeating while its
// process lives (SIGSTOP) is killed by a survivor after the heartbeat
// timeout, and its work recovered.
func TestHungMemberIsFenced(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	qm2 := g.start("QM2")
	g.mqsc("DEFINE QLOCAL(Q)")
	c := g.connect("QM1")
	defer c.Disconnect()
	q, _ := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	q.Put(&mq.Message{Body: []byte("m")}, mq.PutOptions{})
	app := g.startHolder("QM2", 1)
	defer func() { app.Process.Kill(); app.Wait() }()
	t0 := time.Now()
	qm2.Process.Signal(syscall.SIGSTOP)
	// The heartbeat timeout of the test members is 2 s.
	m, err := q.Get(mq.GetOptions{Wait: 20 * time.Second})
	if err != nil || string(m.Body) != "m" || m.BackoutCount != 1 {
		t.Fatalf("after QM2 hung: %v %+v", err, m)
	}
	el := time.Since(t0)
	// QM1 counts the timeout from the last heartbeat it saw change, which
	// QM2 stored up to one heartbeat interval (20 ms) and one tick of QM1
	// (20 ms) before the SIGSTOP: fenced any earlier than that is too soon.
	if el < 2*time.Second-40*time.Millisecond {
		t.Fatalf("a hung member was fenced after %v, before its heartbeat timed out", el)
	}
	var ee *exec.ExitError
	if err := qm2.Wait(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("QM2 ended with %v, want SIGKILL", err)
	}
	t.Logf("hung member killed and its unit of work recovered after %v", el.Round(time.Millisecond))
}
