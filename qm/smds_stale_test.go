package qm

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// TestOffloadStaleHandleAfterRecovery: a connection whose queue handle
// still maps the structure that failed must not write a body into the
// data set: the recovery rebuilt the data set's space map (new epoch), so
// the old map it would allocate from no longer says which blocks hold
// live bodies. Here the old map's next free block lies inside a run the
// new map gave to a message put since the recovery; that message must
// still read back intact.
func TestOffloadStaleHandleAfterRecovery(t *testing.T) {
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
	// The old map's allocation hand moves past a small run, which is
	// freed again.
	if err := h.Put(&mq.Message{Body: bigBody(1, 20<<10)}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(mq.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	mustExec(t, m, "RECOVER CFSTRUCT(OFF)")
	c2 := connect(t, cfg, "QM1")
	defer c2.Disconnect()
	h2, err := c2.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	// The new map starts allocating at block 0: this run covers the old
	// map's next free block.
	if err := h2.Put(&mq.Message{Body: bigBody(2, 200<<10)}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	perr := h.Put(&mq.Message{Body: bigBody(3, 20<<10)}, mq.PutOptions{})
	t.Logf("put through the handle of the failed structure: %v", perr)
	msg, err := h2.Get(mq.GetOptions{})
	if err != nil {
		t.Fatalf("get of the message put after the recovery: %v\n%s", err, logs())
	}
	if id, ok := checkBigBody(msg.Body); !ok || id != 2 {
		t.Fatalf("got message %d (intact %v), want 2", id, ok)
	}
}

// TestOffloadStaleBrowseDoesNotRebuild: a browse through a handle still
// mapping a structure that failed reads entries of the old structure; the
// first use of their data set in this process must not rebuild the data
// set's space map from the old structure's references (its map is of the
// recovered structure's epoch, not the old one's): that rebuild would
// replace the map every process of the recovered structure allocates
// from, freeing the runs of messages put since the recovery.
func TestOffloadStaleBrowseDoesNotRebuild(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	// Another process puts offloaded messages: this one never opened the
	// data set before the structure fails.
	out := startProducer(t, cfg, "QM1", "Q", 1, 5)
	if out.Scan(); out.Text() != "done" {
		t.Fatalf("producer: %q", out.Text())
	}
	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	mustExec(t, m, "RECOVER CFSTRUCT(OFF)")
	mapPath := filepath.Join(cfg.Group.CFDir, "OFF.M0.smap")
	before, err := os.Stat(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		msg, err := b.Next(mq.GetOptions{})
		if err != nil {
			t.Logf("stale browse %d: %v", i, err)
			break
		}
		t.Logf("stale browse %d: %d bytes", i, len(msg.Body))
	}
	after, err := os.Stat(mapPath)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatalf("a browse through the failed structure's handle replaced the recovered structure's space map %s (rebuilt it from the old structure's references)\n%s", mapPath, logs())
	}
}

// TestOffloadNoRebuildOutOfService: a process that first opens a data set
// while its structure is out of service (being recovered: its entries
// not all replayed yet; here, failed) must not rebuild the data set's
// space map from it: the recovery rebuilds the map from the recovered
// entries before the structure is back in service, and a process that
// kept a map it built itself would allocate from it afterwards, in space
// the recovery's map gives to others. Here a DISPLAY CFSTATUS
// TYPE(SMDS) finds the map missing while the structure is failed.
func TestOffloadNoRebuildOutOfService(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	// Another process puts offloaded messages: this one never opened the
	// data set.
	out := startProducer(t, cfg, "QM1", "Q", 1, 5)
	if out.Scan(); out.Text() != "done" {
		t.Fatalf("producer: %q", out.Text())
	}
	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	mapPath := filepath.Join(cfg.Group.CFDir, "OFF.M0.smap")
	if err := os.Remove(mapPath); err != nil {
		t.Fatal(err)
	}
	r := m.Exec("DISPLAY CFSTATUS(OFF) TYPE(SMDS)")
	t.Logf("DISPLAY while the structure is failed: OK %v, %v", r.OK, r.Error)
	if _, err := os.Stat(mapPath); err == nil {
		t.Fatalf("the space map %s was rebuilt while its structure was out of service", mapPath)
	}
}
