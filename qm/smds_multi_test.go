package qm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
)

// offSizes are the body sizes producers cycle through: small ones in the
// CF, the others across OFFLDSZ(32K) up to a few MiB.
var offSizes = []int{200, 1 << 10, 16 << 10, 32<<10 - 1, 32 << 10, 64 << 10, 300 << 10, 100, 1 << 20, 3 << 20}

// testOffProducer puts QM_TEST_N messages to queue QM_TEST_Q through
// member QM: message i of producer P has id P*100000+i and a body of
// offSizes[i%len] bytes (bigBody), persistent when i%3 == 0, then says
// "done".
func testOffProducer() {
	c, err := mq.Connect(mq.ConnectOptions{Group: os.Getenv("G"), QMgr: os.Getenv("QM"), DataDir: os.Getenv("D"), CFDir: os.Getenv("CF")})
	if err != nil {
		fmt.Println("connect:", err)
		return
	}
	defer c.Disconnect()
	h, err := c.Open(os.Getenv("QM_TEST_Q"), mq.OpenOptions{Output: true})
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	p, _ := strconv.Atoi(os.Getenv("QM_TEST_PRODUCER"))
	n, _ := strconv.Atoi(os.Getenv("QM_TEST_N"))
	sizes := offSizes
	if v := os.Getenv("QM_TEST_SIZES"); v != "" { // the sizes to cycle through instead
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			k, _ := strconv.Atoi(f)
			sizes = append(sizes, k)
		}
	}
	for i := 0; i < n; i++ {
		m := &mq.Message{Body: bigBody(p*100000+i, sizes[i%len(sizes)]), Persistence: mq.NotPersistent}
		if i%3 == 0 {
			m.Persistence = mq.Persistent
		}
		if err := h.Put(m, mq.PutOptions{}); err != nil {
			fmt.Println("put:", err)
			return
		}
	}
	fmt.Println("done")
}

// startProducer starts producer p of n messages to q through member qm
// (env: more of its environment, e.g. QM_TEST_SIZES).
func startProducer(t *testing.T, cfg Config, qm, q string, p, n int, env ...string) *bufio.Scanner {
	t.Helper()
	cmd := testproc.Command(t, "offproducer")
	cmd.Env = append(cmd.Env, "G="+cfg.Group.Name, "QM="+qm, "D="+cfg.Group.DataDir, "CF="+cfg.Group.CFDir,
		"QM_TEST_Q="+q, "QM_TEST_PRODUCER="+strconv.Itoa(p), "QM_TEST_N="+strconv.Itoa(n))
	cmd.Env = append(cmd.Env, env...)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return bufio.NewScanner(out)
}

// consumeInOrder gets n messages from h (waiting up to 10s for each),
// checks each body, and checks every producer's messages come exactly
// once and in order.
func consumeInOrder(t *testing.T, h *mq.Queue, n int, next map[int]int) {
	t.Helper()
	for k := 0; k < n; k++ {
		m, err := h.Get(mq.GetOptions{Wait: 10 * time.Second})
		if err != nil {
			t.Fatalf("get %d of %d: %v", k, n, err)
		}
		id, ok := checkBigBody(m.Body)
		if !ok {
			t.Fatalf("get %d: a damaged body of %d bytes", k, len(m.Body))
		}
		p, i := id/100000, id%100000
		if i != next[p] {
			t.Fatalf("get %d: producer %d's message %d, want %d (lost, twice or out of order)", k, p, i, next[p])
		}
		next[p]++
	}
}

// checkClean runs both checkers on structure OFF (eventually: a recovery
// may still run) and returns the data sets' statistics.
func checkClean(t *testing.T, m *Member) []mq.DataSetCheck {
	t.Helper()
	var checks []mq.DataSetCheck
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for checks, err = mq.CheckDataSets(m.g, "OFF", true); err != nil; checks, err = mq.CheckDataSets(m.g, "OFF", true) {
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return checks
}

// TestOffloadMultiProcess: two producer processes put messages from 100
// bytes to 3 MiB, across OFFLDSZ(32K), persistent and not, into one
// queue (both write into their member's data set at once); this process
// browses them all, then gets them: each exactly once, in its producer's
// order, intact. Then the data set is empty and both checkers are clean.
func TestOffloadMultiProcess(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(32K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	const n = 30
	var outs []*bufio.Scanner
	for p := 1; p <= 2; p++ {
		outs = append(outs, startProducer(t, cfg, "QM1", "Q", p, n))
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	// Consume a third while they put, then browse what is there.
	next := map[int]int{1: 0, 2: 0}
	consumeInOrder(t, h, 2*n/3, next)
	for _, o := range outs {
		if o.Scan(); o.Text() != "done" {
			t.Fatalf("producer: %q", o.Text())
		}
	}
	b, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for {
		msg, err := b.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := checkBigBody(msg.Body); !ok {
			t.Fatalf("browse: a damaged body of %d bytes", len(msg.Body))
		}
		seen++
	}
	if seen != 2*n-2*n/3 {
		t.Fatalf("browsed %d messages, want %d", seen, 2*n-2*n/3)
	}
	checks := checkClean(t, m)
	if len(checks) != 1 || checks[0].Stats.Runs == 0 {
		t.Fatalf("want one data set holding the large bodies left: %+v", checks)
	}
	consumeInOrder(t, h, 2*n-2*n/3, next)
	if _, err := h.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("more messages than were put: %v", err)
	}
	// The gets after the browse found the bodies in this process's cache
	// (the member's: it runs in this process).
	r := mustExec(t, m, "DISPLAY CFSTATUS(OFF) TYPE(SMDS)")
	t.Logf("%s", r.Text)
	if !strings.Contains(r.Text, "QMNAME(QM1)") || !strings.Contains(r.Text, "RUNS(0)") || strings.Contains(r.Text, "CACHEHIT(0)") {
		t.Fatalf("DISPLAY CFSTATUS TYPE(SMDS) after the gets:\n%s", r.Text)
	}
	for _, ck := range checkClean(t, m) {
		if ck.Stats.Runs != 0 {
			t.Fatalf("data set %d still holds %d runs", ck.Num, ck.Stats.Runs)
		}
	}
}

// TestOffloadDeepQueue: a queue of a 24 MiB structure holds 480 messages
// of 1 MiB (20 times the structure's size) while its entries and elements
// stay nearly unused, and gives them all back in order.
func TestOffloadDeepQueue(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(4194304) MAXDEPTH(100000)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 480, 1 << 20
	for i := 0; i < n; i++ {
		if err := h.Put(&mq.Message{Body: bigBody(i, size)}, mq.PutOptions{}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if d := depth(t, m); d != n {
		t.Fatalf("depth %d, want %d", d, n)
	}
	r := mustExec(t, m, "DISPLAY CFSTATUS(OFF) ELEMUSED ELEMMAX")
	t.Logf("%d messages of 1 MiB (%d MiB) in a 24 MiB structure: %s", n, n*size>>20, strings.Join(strings.Fields(r.Text), " "))
	checks := checkClean(t, m)
	if len(checks) != 1 || checks[0].Stats.Runs != n || checks[0].Stats.FileBytes < n*size {
		t.Fatalf("data sets: %+v", checks)
	}
	for i := 0; i < n; i++ {
		msg, err := h.Get(mq.GetOptions{})
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if id, ok := checkBigBody(msg.Body); !ok || id != i {
			t.Fatalf("get %d: message %d, intact %v", i, id, ok)
		}
	}
	if ck := checkClean(t, m); ck[0].Stats.Runs != 0 {
		t.Fatalf("data set still holds %d runs", ck[0].Stats.Runs)
	}
}

// TestOffloadOwnerKilled: messages put through member QM2 have their
// bodies in QM2's data set; QM2 is SIGKILLed while this process (through
// QM1) reads and frees them: the rest come intact, exactly once and in
// order from the dead member's data set, its space is freed by the
// survivor, and both checkers are clean.
func TestOffloadOwnerKilled(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(32K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	qm2 := testproc.Command(t, "member")
	qm2.Env = append(qm2.Env, "G="+cfg.Group.Name, "D="+cfg.Group.DataDir, "CF="+cfg.Group.CFDir, "QM_TEST_MEMBER=QM2")
	out, _ := qm2.StdoutPipe()
	if err := qm2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { qm2.Process.Kill(); qm2.Wait() })
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "active\n" {
		t.Fatalf("member QM2: %q", l)
	}
	const n = 30
	p := startProducer(t, cfg, "QM2", "Q", 1, n)
	if p.Scan(); p.Text() != "done" {
		t.Fatalf("producer: %q", p.Text())
	}
	peer, ok, err := m.g.FindPeer("QM2")
	if err != nil || !ok {
		t.Fatalf("QM2's peer slot: %v", err)
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	next := map[int]int{1: 0}
	consumeInOrder(t, h, n/3, next)
	qm2.Process.Kill()
	qm2.Wait()
	consumeInOrder(t, h, n-n/3, next)
	if _, err := h.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("more messages than were put: %v", err)
	}
	found := false
	for _, ck := range checkClean(t, m) {
		if ck.Num == uint16(peer.Slot) {
			found = true
		}
		if ck.Stats.Runs != 0 {
			t.Fatalf("data set %d still holds %d runs", ck.Num, ck.Stats.Runs)
		}
	}
	if !found {
		t.Fatalf("no data set of QM2 (slot %d)", peer.Slot)
	}
}

// TestOffloadPersistentRecovery: persistent offloaded messages survive the
// loss of their CF structure: those in the backup (which refers to their
// runs) and those only in the logs (put records that refer to runs synced
// first) come back in order and intact, though their bodies together are
// several times what the structure's data elements hold; a non-persistent
// one is gone and its run freed by the rebuild of the data set's map; a
// message got before the loss stays got. Then draining empties the data
// set and both checkers are clean.
func TestOffloadPersistentRecovery(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	put := func(id, size int, p mq.Persistence, sync bool) {
		t.Helper()
		if err := h.Put(&mq.Message{Body: bigBody(id, size), Persistence: p}, mq.PutOptions{Syncpoint: sync}); err != nil {
			t.Fatalf("put %d: %v", id, err)
		}
	}
	put(1, 1<<10, mq.Persistent, false)
	put(2, 100<<10, mq.Persistent, false)
	put(3, 1<<20, mq.NotPersistent, false)
	put(4, 2<<20, mq.Persistent, true)
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, m, "BACKUP CFSTRUCT(OFF)")
	want := []int{2, 4}
	for id := 5; id < 17; id++ { // 12 MiB: more than the structure's elements hold
		put(id, 1<<20, mq.Persistent, id >= 15) // the last two under syncpoint
		want = append(want, id)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	put(99, 1<<20, mq.Persistent, true) // uncommitted when the structure is lost
	if msg, err := h.Get(mq.GetOptions{}); err != nil || len(msg.Body) != 1<<10 {
		t.Fatalf("get of message 1: %v", err)
	}
	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	mustExec(t, m, "RECOVER CFSTRUCT(OFF)")
	c.Backout()
	c2 := connect(t, cfg, "QM1")
	defer c2.Disconnect()
	h2, err := c2.Open("Q", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	checks := checkClean(t, m)
	if len(checks) != 1 || checks[0].Stats.Runs != len(want) {
		t.Fatalf("after the recovery, want %d runs: %+v\n%s", len(want), checks, logs())
	}
	for _, id := range want {
		msg, err := h2.Get(mq.GetOptions{})
		if err != nil {
			t.Fatalf("get message %d after the recovery: %v\n%s", id, err, logs())
		}
		if got, ok := checkBigBody(msg.Body); !ok || got != id {
			t.Fatalf("after the recovery: message %d (intact %v), want %d", got, ok, id)
		}
	}
	if msg, err := h2.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		id, _ := checkBigBody(msg.Body)
		t.Fatalf("after the recovery, message %d too: %v", id, err)
	}
	if ck := checkClean(t, m); ck[0].Stats.Runs != 0 {
		t.Fatalf("drained, the data set still holds %d runs", ck[0].Stats.Runs)
	}
}

// TestOffloadLargestBodies: a producer process puts bodies of 1 KiB to
// 64 MiB (two of 64 MiB, one of them persistent) through a data set; this
// process browses them, then gets them: exactly once, in order, intact;
// then the data set is empty and both checkers are clean.
func TestOffloadLargestBodies(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(32K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(104857600)")
	const n = 4 // 64 MiB persistent (i%3 == 0 is persistent: the first and the last), 1 KiB, 100 B, 64 MiB
	out := startProducer(t, cfg, "QM1", "Q", 1, n, "QM_TEST_SIZES="+strconv.Itoa(64<<20)+",1024,100,"+strconv.Itoa(64<<20))
	if out.Scan(); out.Text() != "done" {
		t.Fatalf("producer: %q", out.Text())
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < n; k++ {
		msg, err := b.Next(mq.GetOptions{})
		if err != nil {
			t.Fatalf("browse %d: %v", k, err)
		}
		if id, ok := checkBigBody(msg.Body); !ok || id != 100000+k {
			t.Fatalf("browse %d: message %d of %d bytes (intact %v)", k, id, len(msg.Body), ok)
		}
	}
	consumeInOrder(t, h, n, map[int]int{1: 0})
	if _, err := h.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("more messages than were put: %v", err)
	}
	for _, ck := range checkClean(t, m) {
		if ck.Stats.Runs != 0 {
			t.Fatalf("data set %d still holds %d runs", ck.Num, ck.Stats.Runs)
		}
	}
}
