package qm

import (
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
