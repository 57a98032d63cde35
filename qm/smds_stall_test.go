package qm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// TestOffloadRecoveryKillsStoppedPut: an application stopped (SIGSTOP,
// crash point smds.alloc.fence, action stop) in an offloaded put, between
// claiming blocks in its member's data set and writing them, when the
// structure is lost and recovered. The recovery's rebuild of the data
// set's space map retires the old map and waits for puts in their claim
// (docs/design/smds.md, section 6a): the stopped one would hold it, and
// the recovery, forever. The member waits its heartbeat timeout, finds the
// application stopped, kills it (event application_killed) and the
// recovery completes: every committed (persistent) message comes back
// intact, a put after the recovery works, both checkers are clean.
func TestOffloadRecoveryKillsStoppedPut(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	const size = 100 << 10
	for id := 1; id <= 3; id++ {
		if err := h.Put(&mq.Message{Body: bigBody(id, size), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT=smds.alloc.fence:1:stop")
	if r := app.do("open Q"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	stopAt(t, app, fmt.Sprintf("bigput Q 4 %d", size))

	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	recovered := make(chan Response, 1)
	go func() { recovered <- m.Exec("RECOVER CFSTRUCT(OFF)") }()
	const within = 30 * time.Second
	select {
	case rec := <-recovered:
		if !rec.OK {
			t.Fatalf("RECOVER: %s\n%s", rec.Error, logs())
		}
	case <-time.After(within):
		t.Fatalf("RECOVER CFSTRUCT(OFF) not done within %v (heartbeat timeout %v): the rebuild of the data set's space map waits for the application stopped between claiming blocks and writing them\n%s",
			within, cfg.HeartbeatTimeout, logs())
	}
	werr := make(chan error, 1)
	go func() { werr <- app.cmd.Wait() }()
	select {
	case err := <-werr:
		if !killedBySIGKILL(err) {
			t.Fatalf("the stopped application ended with %v, want killed by the member\n%s", err, logs())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the stopped application is still there after the recovery\n%s", logs())
	}
	if l := logs(); !strings.Contains(l, "event=application_killed") {
		t.Fatalf("no application_killed event in the member's log\n%s", l)
	}

	c2 := connect(t, cfg, "QM1")
	defer c2.Disconnect()
	h2, err := c2.Open("Q", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatalf("open Q after the recovery: %v\n%s", err, logs())
	}
	if err := h2.Put(&mq.Message{Body: bigBody(5, size), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatalf("put after the recovery: %v\n%s", err, logs())
	}
	if got := fmt.Sprint(getAll(t, c2, "Q", logs)); got != "[1 2 3 5]" {
		t.Fatalf("Q holds messages %s, want [1 2 3 5]\n%s", got, logs())
	}
	checkClean(t, m)
}

// killedBySIGKILL reports whether a child's Wait returned err because
// SIGKILL ended it.
func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestOffloadInServiceRebuildStalled: a space map rebuilt in service (its
// header damaged: the next process to open the data set rebuilds it)
// while an application is stopped in an offloaded put between claiming
// blocks in the old map and writing them. The rebuilding put (this
// process's: its member set the stall limit to its heartbeat timeout)
// must not wait for it as long as it stays stopped, holding the data
// set's lock file that every process reopening the data set waits for:
// it fails with MQRC 2102 (resource problem) and releases the lock. Once
// the application goes on, its put (fenced: it writes nothing through the
// old map) reopens the data set, rebuilds the map and puts again; a put
// after that works, and every message comes back intact.
func TestOffloadInServiceRebuildStalled(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	const size = 100 << 10
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT=smds.alloc.fence:2:stop")
	if r := app.do("open Q"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	if r := app.do(fmt.Sprintf("bigput Q 1 %d", size)); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	stopAt(t, app, fmt.Sprintf("bigput Q 2 %d", size))
	c := connect(t, cfg, "QM1") // this process has no data set open
	defer c.Disconnect()
	mapFile, err := os.OpenFile(filepath.Join(cfg.Group.CFDir, fmt.Sprintf("OFF.M%d.smap", c.Member().Slot)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mapFile.Close()
	var b [1]byte // the header's creation time: its checksum fails
	if _, err := mapFile.ReadAt(b[:], 48); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := mapFile.WriteAt(b[:], 48); err != nil {
		t.Fatal(err)
	}
	h, err := c.Open("Q", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	const within = 30 * time.Second
	put := make(chan error, 1)
	go func() { put <- h.Put(&mq.Message{Body: bigBody(3, size)}, mq.PutOptions{}) }()
	select {
	case err := <-put:
		if mq.ReasonOf(err) != mq.RCResourceProblem || !mapRetired(t, mapFile) {
			t.Fatalf("the put that rebuilds the map while an application is stopped in its claim: %v (map retired: %v), want MQRC 2102 with the map retired\n%s",
				err, mapRetired(t, mapFile), logs())
		}
	case <-time.After(within):
		t.Fatalf("the put that rebuilds the map not done within %v (heartbeat timeout %v): it waits for the application stopped between claiming blocks and writing them, holding the data set's lock\n%s",
			within, cfg.HeartbeatTimeout, logs())
	}
	app.cmd.Process.Signal(syscall.SIGCONT)
	answered := make(chan string, 1)
	go func() { answered <- app.line() }()
	select {
	case a := <-answered:
		if a != "reason 0 <nil>" {
			t.Fatalf("the put stopped in the old map, once it went on: %s\n%s", a, logs())
		}
	case <-time.After(within):
		t.Fatalf("the put stopped in the old map not done within %v of going on (the data set's lock not released?)\n%s", within, logs())
	}
	if err := h.Put(&mq.Message{Body: bigBody(3, size)}, mq.PutOptions{}); err != nil {
		t.Fatalf("put after the rebuild: %v\n%s", err, logs())
	}
	if got := fmt.Sprint(getAll(t, c, "Q", logs)); got != "[1 2 3]" {
		t.Fatalf("Q holds messages %s, want [1 2 3]\n%s", got, logs())
	}
	checkClean(t, m)
}
