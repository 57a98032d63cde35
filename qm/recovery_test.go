package qm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// The test binary doubles as an application process driven by lines on
// stdin (role app): "open Q", "getsp Q", "put Q body" (under
// syncpoint), "pput Q body" (persistent, under syncpoint), "pputnow Q
// body" (persistent, outside syncpoint), "getnow Q" (outside syncpoint),
// "views Q n" (n views outside syncpoint, held), "release i j ..." (the
// held views i, j, ... by one ReleaseViews), "commit".
func TestMain(m *testing.M) {
	for role, fn := range map[string]func(){"app": testApp, "orphan": testOrphan, "adminowner": testAdminOwner,
		"fencer": testFencer, "recoverer": testRecoverer, "member": testMember, "offproducer": testOffProducer,
		"cmdserve": func() { testCmdServer(os.Getenv("QM_TEST_CMDSERVE")) }} {
		testproc.Register(role, func([]string) int { fn(); return 0 })
	}
	testproc.Main(m)
}

func testApp() {
	c, err := mq.Connect(mq.ConnectOptions{Group: os.Getenv("G"), QMgr: os.Getenv("QM"), DataDir: os.Getenv("D"), CFDir: os.Getenv("CF")})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	fmt.Println("slot", c.Tag().Slot())
	hs := map[string]*mq.Queue{}
	var views []*mq.View
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		var err error
		switch f[0] {
		case "open":
			hs[f[1]], err = c.Open(f[1], mq.OpenOptions{Input: true, Output: true})
		case "getsp":
			var m *mq.Message
			if m, err = hs[f[1]].Get(mq.GetOptions{Syncpoint: true}); err == nil {
				fmt.Println("got", string(m.Body))
				continue
			}
		case "put":
			err = hs[f[1]].Put(&mq.Message{Body: []byte(f[2])}, mq.PutOptions{Syncpoint: true})
		case "pput":
			err = hs[f[1]].Put(&mq.Message{Body: []byte(f[2]), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true})
		case "getnow":
			var m *mq.Message
			if m, err = hs[f[1]].Get(mq.GetOptions{}); err == nil {
				fmt.Println("got", string(m.Body))
				continue
			}
		case "pputnow":
			err = hs[f[1]].Put(&mq.Message{Body: []byte(f[2]), Persistence: mq.Persistent}, mq.PutOptions{})
		case "views":
			n, _ := strconv.Atoi(f[2])
			vs := make([]mq.View, n)
			if n, err = hs[f[1]].GetViewsInto(mq.GetOptions{}, vs); err == nil {
				for i := range vs[:n] {
					views = append(views, &vs[i])
				}
			}
		case "release":
			var batch []*mq.View
			for _, a := range f[1:] {
				i, _ := strconv.Atoi(a)
				batch = append(batch, views[i])
			}
			err = c.ReleaseViews(batch)
		case "commit":
			err = c.Commit()
		case "backout":
			err = c.Backout()
		case "bigput", "bigputsp", "bigpput", "bigpputsp": // bigput Q id n: a body of n bytes made by bigBody (pput: persistent)
			id, _ := strconv.Atoi(f[2])
			n, _ := strconv.Atoi(f[3])
			p := mq.NotPersistent
			if strings.HasPrefix(f[0], "bigpput") {
				p = mq.Persistent
			}
			err = hs[f[1]].Put(&mq.Message{Body: bigBody(id, n), Persistence: p}, mq.PutOptions{Syncpoint: strings.HasSuffix(f[0], "sp")})
		case "biggetnow", "biggetsp":
			var m *mq.Message
			if m, err = hs[f[1]].Get(mq.GetOptions{Syncpoint: f[0] == "biggetsp"}); err == nil {
				if id, ok := checkBigBody(m.Body); ok {
					fmt.Println("got", id)
				} else {
					fmt.Println("got a damaged body")
				}
				continue
			}
		}
		fmt.Printf("reason %d %v\n", mq.ReasonOf(err), err)
	}
}

// testOrphan registers owner slot QM_TEST_ORPHAN in structure APP2
// directly (no connection in the admin structure), gets a message from Q2
// under syncpoint, says so and waits to be killed.
func testOrphan() {
	slot, _ := strconv.Atoi(os.Getenv("QM_TEST_ORPHAN"))
	s, err := lockfree.Attach(os.Getenv("CF"), "APP2")
	if err != nil {
		fmt.Println(err)
		return
	}
	o, err := s.RegisterSlot(slot)
	if err != nil {
		fmt.Println(err)
		return
	}
	o.SetRevocable(true) // as a connection's: the sweep may revoke it while it lives
	q, err := s.LookupQueue("Q2")
	if err != nil {
		fmt.Println(err)
		return
	}
	var m lockfree.Message
	if err := o.Get(q, lockfree.GetOptions{Syncpoint: true}, &m); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held", string(m.Body))
	select {}
}

// testAdminOwner registers an owner without a label in the admin
// structure (as a starting member's short-lived owner is), says its slot
// and waits to be killed.
func testAdminOwner() {
	s, err := lockfree.Attach(os.Getenv("CF"), shm.AdminStructure)
	if err != nil {
		fmt.Println(err)
		return
	}
	o, err := s.Register()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("slot", o.Tag().Slot())
	select {}
}

// TestUnlabelledAdminOwnerIsRepaired: a process that dies holding an admin
// owner without a connection label (a member killed while it claims its
// peer slot) is repaired by the member that sees it (the harness found one
// left for good after members were killed together).
func TestUnlabelledAdminOwnerIsRepaired(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	cmd := testproc.Command(t, "adminowner")
	cmd.Env = append(cmd.Env, "QM_TEST_ADMIN_OWNER=1", "CF="+cfg.Group.CFDir)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Scan()
	slot, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "slot "))
	if err != nil {
		t.Fatalf("child: %q", sc.Text())
	}
	cmd.Process.Kill()
	cmd.Wait()
	eventually(t, "the dead unlabelled owner is repaired", func() bool {
		_, held := m.g.Admin().Owner(slot)
		return !held
	})
}

type testProc struct {
	cmd  *testproc.Proc
	in   io.WriteCloser
	out  *bufio.Scanner
	slot int // the connection's admin slot
}

// bigBody is a body of n bytes (at least 20) naming message id, whose
// bytes checkBigBody checks.
func bigBody(id, n int) []byte {
	b := make([]byte, n)
	copy(b, fmt.Sprintf("%08d:%010d|", id, n))
	for i := 20; i < n; i++ {
		b[i] = byte(i*31 + id)
	}
	return b
}

// checkBigBody returns the id of body b if it is what bigBody made.
func checkBigBody(b []byte) (int, bool) {
	if len(b) < 20 {
		return 0, false
	}
	var id, n int
	if _, err := fmt.Sscanf(string(b[:20]), "%08d:%010d|", &id, &n); err != nil || n != len(b) {
		return 0, false
	}
	return id, bytes.Equal(b, bigBody(id, n))
}

// startApp starts an application process connected through member qm;
// env adds to its environment (a crash point).
func startApp(t *testing.T, cfg Config, qm string, env ...string) *testProc {
	t.Helper()
	cmd := testproc.Command(t, "app")
	cmd.Env = append(cmd.Env, "G="+cfg.Group.Name, "QM="+qm, "D="+cfg.Group.DataDir, "CF="+cfg.Group.CFDir)
	cmd.Env = append(cmd.Env, env...)
	in, _ := cmd.StdinPipe()
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &testProc{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	l := p.line()
	slot, ok := strings.CutPrefix(l, "slot ")
	if !ok {
		t.Fatalf("application: %q", l)
	}
	p.slot, _ = strconv.Atoi(slot)
	return p
}

func (p *testProc) line() string { p.out.Scan(); return p.out.Text() }
func (p *testProc) do(s string) string {
	fmt.Fprintln(p.in, s)
	return p.line()
}

func connect(t *testing.T, cfg Config, qm string) *mq.Conn {
	t.Helper()
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: qm, DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// twoStructures defines Q1 in APPL1 and Q2 in APP2.
func twoStructures(t *testing.T, m *Member) {
	mustExec(t, m, "DEFINE CFSTRUCT(APP2) SIZE(32)")
	mustExec(t, m, "DEFINE QLOCAL(Q1)")
	mustExec(t, m, "DEFINE QLOCAL(Q2) CFSTRUCT(APP2)")
}

func putOne(t *testing.T, cfg Config, qm, q, body string) {
	t.Helper()
	c := connect(t, cfg, qm)
	defer c.Disconnect()
	h, err := c.Open(q, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte(body)}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond until it holds or the deadline passes (a bound on
// correctness, not a speed assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// getBody gets one message (no wait), or "" when there is none.
func getBody(t *testing.T, c *mq.Conn, q string) (string, int) {
	t.Helper()
	h, err := c.Open(q, mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	m, err := h.Get(mq.GetOptions{})
	if errors.Is(err, mq.ErrNoMessage) {
		return "", 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(m.Body), m.BackoutCount
}

// A unit of work spanning two structures is never half committed: the
// application commits while its recoverer is between the structures. The
// recoverer fenced the connection first, so the commit fails and both puts
// are backed out.
func TestRecoveryNeverHalfCommits(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	twoStructures(t, m)
	c := connect(t, cfg, "QM1")
	q1, _ := c.Open("Q1", mq.OpenOptions{Output: true})
	q2, _ := c.Open("Q2", mq.OpenOptions{Output: true})
	if err := q1.Put(&mq.Message{Body: []byte("a")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := q2.Put(&mq.Message{Body: []byte("b")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	var commitErr error
	committed := false
	testHookStructureFixed = func(name string) {
		if !committed {
			committed = true
			commitErr = c.Commit()
		}
	}
	defer func() { testHookStructureFixed = func(string) {} }()
	m.withKey(fmt.Sprintf("conn %d", c.Tag().Slot()), func() { m.recoverConn(c.Tag(), procid.ID{}, true) }) // as the member does: one recovery of a slot at a time
	if !committed {
		t.Fatal("the hook never ran")
	}
	if mq.ReasonOf(commitErr) != mq.RCConnectionBroken {
		t.Fatalf("commit during recovery: %v, want connection broken", commitErr)
	}
	d := connect(t, cfg, "QM1")
	defer d.Disconnect()
	for _, q := range []string{"Q1", "Q2"} {
		if b, _ := getBody(t, d, q); b != "" {
			t.Fatalf("%s holds %q: half committed", q, b)
		}
	}
}

// A revoked connection cannot start using a structure it had not used yet.
func TestRevokedConnectionCannotRegister(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	twoStructures(t, m)
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	q1, _ := c.Open("Q1", mq.OpenOptions{Output: true})
	slot := c.Tag().Slot()
	m.withKey(fmt.Sprintf("conn %d", c.Tag().Slot()), func() { m.recoverConn(c.Tag(), procid.ID{}, true) }) // as the member does: one recovery of a slot at a time
	if err := q1.Put(&mq.Message{Body: []byte("x")}, mq.PutOptions{}); mq.ReasonOf(err) != mq.RCConnectionBroken {
		t.Fatalf("put after revocation: %v", err)
	}
	if _, err := c.Open("Q2", mq.OpenOptions{Output: true}); mq.ReasonOf(err) != mq.RCConnectionBroken {
		t.Fatalf("open of a queue in a new structure after revocation: %v", err)
	}
	s, err := m.g.Structure("APP2", false)
	if err != nil {
		t.Fatal(err)
	}
	if oi, ok := s.Owner(slot); ok {
		t.Fatalf("APP2 slot %d still registered: %+v", slot, oi)
	}
	if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatal(r)
	}
}

// Disconnecting with handles open leaves no open counts behind.
func TestDisconnectClearsOpenCounts(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(Q1)")
	c := connect(t, cfg, "QM1")
	if _, err := c.Open("Q1", mq.OpenOptions{Output: true, Input: true}); err != nil {
		t.Fatal(err)
	}
	if r := mustExec(t, m, "DISPLAY QSTATUS(Q1)"); !strings.Contains(r.Text, "IPPROCS(1)") || !strings.Contains(r.Text, "OPPROCS(1)") {
		t.Fatalf("while open:\n%s", r.Text)
	}
	c.Disconnect()
	if r := mustExec(t, m, "DISPLAY QSTATUS(Q1)"); !strings.Contains(r.Text, "IPPROCS(0)") || !strings.Contains(r.Text, "OPPROCS(0)") {
		t.Fatalf("after disconnect:\n%s", r.Text)
	}
	mustExec(t, m, "DELETE QLOCAL(Q1)")
}

// Once a member stops, it runs no more commands; commands racing with the
// stop either ran before it or were refused.
func TestNoCommandsAfterStop(t *testing.T) {
	for iter := 0; iter < 10; iter++ {
		cfg := testConfig(t, "QM1")
		m, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		go m.Run(t.Context())
		var stopped sync.WaitGroup
		stopped.Add(1)
		var after []string
		var mu sync.Mutex
		done := make(chan struct{})
		stopReturned := make(chan struct{})
		go func() {
			defer close(done)
			// A command issued once Stop has returned must be refused.
			// (One issued before may run and return OK after Stop
			// returned: Exec's caller learns its result later than the
			// command ran, so the result's arrival says nothing.)
			for i, late := 0, 0; late < 3; i++ {
				issuedAfter := false
				select {
				case <-stopReturned:
					issuedAfter = true
					late++
				default:
				}
				r := m.Exec(fmt.Sprintf("DEFINE QLOCAL(Q%d)", i))
				if issuedAfter && r.OK {
					mu.Lock()
					after = append(after, fmt.Sprint(i))
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Duration(iter) * 3 * time.Millisecond)
		m.Stop()
		close(stopReturned)
		<-done
		if len(after) > 0 {
			t.Fatalf("iteration %d: commands ran after Stop returned: %v", iter, after)
		}
		if r := m.Exec("DISPLAY QLOCAL(*)"); r.OK || !strings.Contains(r.Error, "stopping") {
			t.Fatalf("after stop: %+v", r)
		}
	}
}

// A connection slot reused by another process while the first process
// lives is watched anew: the second process's death is recovered.
func TestConnectionSlotReusedByAnotherProcess(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(Q1)")
	putOne(t, cfg, "QM1", "Q1", "m1")
	a := connect(t, cfg, "QM1")
	sA := a.Tag().Slot()
	eventually(t, "watching the first connection", func() bool {
		return m.watch.Watching(connKey{tag: a.Tag(), id: procid.Self()})
	})
	a.Disconnect()
	// Occupy every other admin slot so that the next connection gets sA.
	var fill []*lockfree.Owner
	for i := 0; i < m.g.Admin().Params().Owners; i++ {
		if i == sA {
			continue
		}
		if o, err := m.g.Admin().RegisterSlot(i); err == nil {
			fill = append(fill, o)
		}
	}
	b := startApp(t, cfg, "QM1")
	for _, o := range fill {
		o.Close()
	}
	if info, ok := m.g.Admin().Owner(sA); !ok || info.Process.Pid != b.cmd.Process.Pid {
		t.Fatalf("the application did not get slot %d: %+v", sA, info)
	}
	if r := b.do("open Q1"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	if r := b.do("getsp Q1"); r != "got m1" {
		t.Fatal(r)
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	d := connect(t, cfg, "QM1")
	defer d.Disconnect()
	eventually(t, "the dead application's message back", func() bool {
		body, n := getBody(t, d, "Q1")
		if body != "" && (body != "m1" || n != 1) {
			t.Fatalf("got %q backout count %d", body, n)
		}
		return body != ""
	})
}

// A connection revoked by an orderly stop cannot register in a structure
// it had not used; killed afterwards, it leaves nothing held.
func TestRevokedByStopThenKilled(t *testing.T) {
	cfg := testConfig(t, "QM1")
	cfg.StopGrace = 100 * time.Millisecond
	m1, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go m1.Run(t.Context())
	twoStructures(t, m1)
	putOne(t, cfg, "QM1", "Q2", "precious")
	putOne(t, cfg, "QM1", "Q1", "held")
	b := startApp(t, cfg, "QM1")
	if r := b.do("open Q1"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	if r := b.do("getsp Q1"); r != "got held" {
		t.Fatal(r)
	}
	m1.Stop() // revokes b after the grace period
	if r := b.do("open Q2"); !strings.HasPrefix(r, fmt.Sprintf("reason %d ", mq.RCConnectionBroken)) {
		t.Fatalf("open Q2 after the member stopped: %s", r)
	}
	b.cmd.Process.Signal(syscall.SIGKILL)
	b.cmd.Wait()
	cfg2 := cfg
	cfg2.Name = "QM2"
	startMember(t, cfg2)
	c := connect(t, cfg2, "QM2")
	defer c.Disconnect()
	if body, _ := getBody(t, c, "Q2"); body != "precious" {
		t.Fatalf("Q2: %q", body)
	}
	if body, n := getBody(t, c, "Q1"); body != "held" || n != 1 {
		t.Fatalf("Q1: %q backout count %d, want the held message back with backout count 1", body, n)
	}
}

// orphanSlot is an owner slot free in the admin structure that this
// process's own connections will not take soon: Register probes from a
// start derived from the pid upwards, so the slot just before that start
// is the last one they reach.
func orphanSlot(t *testing.T, m *Member) int {
	t.Helper()
	n := m.g.Admin().Params().Owners
	start := int(uint32(os.Getpid())*2654435761) % n
	for i := 1; i < n; i++ {
		slot := (start - i + n) % n
		if _, ok := m.g.Admin().Owner(slot); !ok {
			return slot
		}
	}
	t.Fatal("no free admin slot")
	return 0
}

// An owner in an application structure without a connection in the admin
// structure (an application killed between registering there and checking
// its connection) is found by the orphan sweep and repaired.
func TestOrphanOwnerIsRepaired(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	twoStructures(t, m)
	putOne(t, cfg, "QM1", "Q2", "orphaned")
	slot := orphanSlot(t, m)
	cmd := testproc.Command(t, "orphan")
	cmd.Env = append(cmd.Env, "QM_TEST_ORPHAN="+strconv.Itoa(slot), "CF="+cfg.Group.CFDir)
	outp, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if l, _ := bufio.NewReader(outp).ReadString('\n'); l != "held orphaned\n" {
		t.Fatalf("orphan: %q", l)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	eventually(t, "the orphan's message back", func() bool {
		body, n := getBody(t, c, "Q2")
		if body != "" && (body != "orphaned" || n != 1) {
			t.Fatalf("got %q backout count %d", body, n)
		}
		return body != ""
	})
}
