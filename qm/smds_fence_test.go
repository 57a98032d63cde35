package qm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/smds"
)

// mapRetired reports whether the space map open as f (the file a rebuild
// replaces: f keeps it after the rename) is retired: its retired word is
// set by a rebuild before the new map is in place.
func mapRetired(t *testing.T, f *os.File) bool {
	t.Helper()
	var b [8]byte
	if _, err := f.ReadAt(b[:], smds.MapRetiredOffset); err != nil {
		t.Fatal(err)
	}
	return binary.LittleEndian.Uint64(b[:]) != 0
}

// stopAt sends cmd to app, which stops at the crash point it was started
// with (action stop), and waits until it is stopped.
func stopAt(t *testing.T, app *testProc, cmd string) {
	t.Helper()
	fmt.Fprintln(app.in, cmd)
	id, err := procid.Of(app.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the application stops in "+cmd, func() bool { return procid.Stopped(id) })
}

// getAll gets every message of q (no wait) and returns their bigBody
// ids; a damaged body or a get that fails is fatal.
func getAll(t *testing.T, c *mq.Conn, q string, logs func() string) []int {
	t.Helper()
	h, err := c.Open(q, mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var ids []int
	for {
		msg, err := h.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return ids
		}
		if err != nil {
			t.Fatalf("get after %v: %v (two live messages' bodies in the same blocks of the data set)\n%s", ids, err, logs())
		}
		id, ok := checkBigBody(msg.Body)
		if !ok {
			t.Fatalf("get after %v: a damaged body of %d bytes\n%s", ids, len(msg.Body), logs())
		}
		ids = append(ids, id)
	}
}

// TestOffloadPutAcrossStructureRecovery: an application's offloaded put
// passes its check that the structure is current and claims blocks in
// the data set's space map; then the structure fails and is recovered,
// which rebuilds the map (a new epoch). The stopped put must not write its
// body into blocks the new map gives to a message put after the
// recovery: it fails (its structure failed) without writing, and the
// recovery's rebuild does not replace the map while it could still write.
// The application is stopped (SIGSTOP, crash point smds.alloc.claimed)
// after its first block is claimed; it goes on once the recovery retired
// the old map, or, if the recovery does not wait for it, once a message
// was put into the new map's first free run (the one it claimed).
func TestOffloadPutAcrossStructureRecovery(t *testing.T) {
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
	// Message 1, persistent: the recovery keeps its run, so the first free
	// run of both maps is the one after it.
	if err := h.Put(&mq.Message{Body: bigBody(1, size), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT=smds.alloc.claimed:1:stop")
	if r := app.do("open Q"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	stopAt(t, app, fmt.Sprintf("bigput Q 2 %d", size))
	oldMap, err := os.Open(filepath.Join(cfg.Group.CFDir, fmt.Sprintf("OFF.M%d.smap", c.Member().Slot)))
	if err != nil {
		t.Fatal(err)
	}
	defer oldMap.Close()

	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	recovered := make(chan Response, 1)
	go func() { recovered <- m.Exec("RECOVER CFSTRUCT(OFF)") }()
	var rec *Response
	eventually(t, "the recovery ends or retires the old space map", func() bool {
		select {
		case r := <-recovered:
			rec = &r
			return true
		default:
			return mapRetired(t, oldMap)
		}
	})
	c2 := connect(t, cfg, "QM1")
	defer c2.Disconnect()
	put3 := func() { // once the structure is recovered
		h2, err := c2.Open("Q", mq.OpenOptions{Output: true})
		if err != nil {
			t.Fatalf("open Q after the recovery: %v\n%s", err, logs())
		}
		if err := h2.Put(&mq.Message{Body: bigBody(3, size)}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var answer string
	if rec != nil {
		// Recovered while the put could still write: message 3 takes the
		// new map's first free run, then the stopped put goes on.
		put3()
		app.cmd.Process.Signal(syscall.SIGCONT)
		answer = app.line()
	} else {
		app.cmd.Process.Signal(syscall.SIGCONT)
		answer = app.line()
		r := <-recovered
		rec = &r
		if !rec.OK {
			t.Fatalf("RECOVER: %s\n%s", rec.Error, logs())
		}
		put3()
	}
	if !rec.OK {
		t.Fatalf("RECOVER: %s\n%s", rec.Error, logs())
	}
	if strings.HasPrefix(answer, "reason 0 ") {
		t.Fatalf("the put through the failed structure answered %q, want a failure", answer)
	}
	if got := fmt.Sprint(getAll(t, c2, "Q", logs)); got != "[1 3]" {
		t.Fatalf("Q holds messages %s, want [1 3]\n%s", got, logs())
	}
	checkClean(t, m)
}

// TestOffloadPutAcrossInServiceRebuild: a space map rebuilt while its
// structure is in service (here its header was damaged, so the next
// process to open the data set rebuilds it from the structure's
// references) while another process, which mapped the old map, is in the
// middle of an offloaded put: it claimed blocks in the old map and has not
// written yet. Its write must not land in blocks the new map gives to
// another message: the rebuild retires the old map and waits for puts
// that passed the fence, and the stopped put, finding the map retired,
// puts again through the new map. Both messages are intact, each in its
// own run.
func TestOffloadPutAcrossInServiceRebuild(t *testing.T) {
	// The first put claims 26 blocks (hits 1..26); the second stops after
	// its first block.
	inServiceRebuild(t, "smds.alloc.claimed:27:stop")
}

// TestOffloadPublishAcrossInServiceRebuild: as
// TestOffloadPutAcrossInServiceRebuild, the putting process stopped once
// its body is written and its run marked used in the old map, before its
// CF put (crash point smds.alloc.used). The rebuild must not give that run
// to another message: its reference gets into the CF when the put goes
// on, after the rebuild may have read the CF's references.
func TestOffloadPublishAcrossInServiceRebuild(t *testing.T) {
	inServiceRebuild(t, "smds.alloc.used:2:stop")
}

// inServiceRebuild: an application puts message 1 (100 KiB, a run of 26
// blocks) and is stopped at point (QMGR_CRASHPOINT) in its put of message
// 2; the space map's header is damaged, and a second application's put of
// message 3 rebuilds it; then the first goes on. Both puts succeed, and
// messages 1, 2 and 3 are got intact.
func inServiceRebuild(t *testing.T, point string) {
	t.Helper()
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	const size = 100 << 10 // a run of 26 blocks
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT="+point)
	if r := app.do("open Q"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	if r := app.do(fmt.Sprintf("bigput Q 1 %d", size)); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	stopAt(t, app, fmt.Sprintf("bigput Q 2 %d", size))
	c := connect(t, cfg, "QM1") // opens no data set until it gets
	defer c.Disconnect()
	mapPath := filepath.Join(cfg.Group.CFDir, fmt.Sprintf("OFF.M%d.smap", c.Member().Slot))
	oldMap, err := os.OpenFile(mapPath, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer oldMap.Close()
	// Damage the map header's creation time: its checksum fails, and the
	// next process to open the data set rebuilds the map (in service).
	var b [1]byte
	if _, err := oldMap.ReadAt(b[:], 48); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := oldMap.WriteAt(b[:], 48); err != nil {
		t.Fatal(err)
	}

	app2 := startApp(t, cfg, "QM1")
	if r := app2.do("open Q"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	fmt.Fprintf(app2.in, "bigput Q 3 %d\n", size)
	answered := make(chan string, 1)
	go func() { answered <- app2.line() }()
	var answer2 string
	eventually(t, "the rebuilding put ends or retires the old space map", func() bool {
		select {
		case answer2 = <-answered:
			return true
		default:
			return mapRetired(t, oldMap)
		}
	})
	var answer string
	if answer2 != "" {
		// Rebuilt while the stopped put could still write or publish:
		// message 3 took the new map's first free run, the stopped put's.
		app.cmd.Process.Signal(syscall.SIGCONT)
		answer = app.line()
	} else {
		app.cmd.Process.Signal(syscall.SIGCONT)
		answer = app.line()
		answer2 = <-answered
	}
	if answer2 != "reason 0 <nil>" {
		t.Fatalf("the put that rebuilt the map: %s\n%s", answer2, logs())
	}
	if answer != "reason 0 <nil>" {
		t.Fatalf("the put stopped in the old map: %s\n%s", answer, logs())
	}
	ids := getAll(t, c, "Q", logs)
	if got := fmt.Sprint(ids); got != "[1 2 3]" && got != "[1 3 2]" {
		t.Fatalf("Q holds messages %s, want 1, 2 and 3\n%s", got, logs())
	}
	checkClean(t, m)
}

// TestOffloadFreeAfterInServiceRebuild: this process opened the data set
// (its puts of messages 1 and 2), then another process rebuilt its space
// map in service (the header damaged) and put message 3. This process's
// gets free their runs: through the new map, not the old one it still
// has open (a free there is lost to the new map, which keeps the run used
// for nobody), and its checker checks the new map. All three come back
// intact and both checkers are clean.
func TestOffloadFreeAfterInServiceRebuild(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	const size = 100 << 10
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for id := 1; id <= 2; id++ {
		if err := h.Put(&mq.Message{Body: bigBody(id, size)}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mapFile, err := os.OpenFile(filepath.Join(cfg.Group.CFDir, fmt.Sprintf("OFF.M%d.smap", c.Member().Slot)), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer mapFile.Close()
	var b [1]byte
	if _, err := mapFile.ReadAt(b[:], 48); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := mapFile.WriteAt(b[:], 48); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, cfg, "QM1")
	if r := app.do("open Q"); r != "reason 0 <nil>" {
		t.Fatal(r)
	}
	if r := app.do(fmt.Sprintf("bigput Q 3 %d", size)); r != "reason 0 <nil>" {
		t.Fatalf("the put that rebuilt the map: %s\n%s", r, logs())
	}
	if !mapRetired(t, mapFile) {
		t.Fatal("the put through a damaged map did not rebuild it")
	}
	if got := fmt.Sprint(getAll(t, c, "Q", logs)); got != "[1 2 3]" {
		t.Fatalf("Q holds messages %s, want [1 2 3]\n%s", got, logs())
	}
	checkClean(t, m)
	// The map in place, as a process opening the data set now sees it:
	// empty.
	d, err := smds.Open(smds.Options{Dir: filepath.Join(cfg.Group.DataDir, "smds"), MapDir: cfg.Group.CFDir,
		Structure: "OFF", Member: fmt.Sprintf("M%d", c.Member().Slot), Number: uint16(c.Member().Slot)})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if r := d.Check(nil, smds.CheckOptions{Quiescent: true}); !r.OK() || r.Runs != 0 {
		t.Fatalf("the space map in place after every message was got: %v", r)
	}
}
