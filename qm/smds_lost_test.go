package qm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// TestOffloadRebuildLostBody: a persistent offloaded message whose run
// header is damaged on disk when its structure is lost and recovered is
// rejected by the rebuild of the data set's map. The structure_recovered
// line counts it, and the queue is not blocked: its first get moves it to
// the dead-letter queue (RCMsgBodyLost) and goes on. Its space, free in
// the rebuilt map, is reused by a message put after the recovery, which
// moving the lost one must not free: every healthy message is got intact,
// and the data set ends empty.
func TestOffloadRebuildLostBody(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	mustExec(t, m, "DEFINE QLOCAL(DLQ)")
	mustExec(t, m, "ALTER QMGR DEADQ(DLQ)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	const size = 100 << 10
	var lostID [24]byte
	for id := 1; id <= 3; id++ {
		msg := &mq.Message{Body: bigBody(id, size), Persistence: mq.Persistent}
		if err := h.Put(msg, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		if id == 1 {
			lostID = msg.MsgID
		}
	}
	// Message 1's run: its body, then padding and the run header at the
	// end of its last block. Zero the header.
	path := filepath.Join(cfg.Group.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", c.Member().Slot))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, bigBody(1, size)[:20])
	if at < 0 {
		t.Fatal("message 1's body is not in the data set file")
	}
	const block = 4096
	end := at + (size+64+block-1)/block*block
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, end-at-size), int64(at+size)); err != nil {
		t.Fatal(err)
	}
	f.Close()
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
	// Message 4, the same size: the first free run is message 1's.
	if err := h2.Put(&mq.Message{Body: bigBody(4, size), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int{2, 3, 4} {
		msg, err := h2.Get(mq.GetOptions{})
		if err != nil {
			t.Fatalf("get, want message %d: %v\n%s", id, err, logs())
		}
		if got, ok := checkBigBody(msg.Body); !ok || got != id {
			t.Fatalf("got message %d (intact %v), want %d", got, ok, id)
		}
		if id == 2 {
			// Message 1 moved, 2 got: the runs of 3 and 4 remain.
			if ck := checkClean(t, m); ck[0].Stats.Runs != 2 {
				t.Fatalf("after message 1 was moved and 2 got, the data set holds %d runs, want 2 (messages 3 and 4): moving 1 freed 4's run, which a put may overwrite while 4 is on the queue", ck[0].Stats.Runs)
			}
		}
	}
	if _, err := h2.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("Q after the gets: %v", err)
	}
	dlq, err := c2.Open("DLQ", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := dlq.Get(mq.GetOptions{})
	if err != nil {
		t.Fatalf("the report of message 1: %v", err)
	}
	d, rest, err := mq.ParseDLH(msg.Body)
	if err != nil || d.Reason != mq.RCMsgBodyLost || msg.MsgID != lostID || !strings.Contains(string(rest), path) {
		t.Fatalf("the report of message 1: %+v %q %v", d, rest, err)
	}
	if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("a second report: %v", err)
	}
	rec := eventLine(logs(), "structure_recovered")
	if rec == nil || rec["bodies_lost"] != "1" || rec["bodies_kept"] != "2" {
		t.Fatalf("structure_recovered line: %v, want bodies_lost=1 bodies_kept=2\n%s", rec, logs())
	}
	if ck := checkClean(t, m); ck[0].Stats.Runs != 0 {
		t.Fatalf("drained, the data set still holds %d runs", ck[0].Stats.Runs)
	}
}
