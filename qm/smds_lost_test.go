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

// TestOffloadRebuildBadDataSet: one data set of a structure whose file is
// unusable when the structure is lost and recovered (its header
// overwritten, the file of another structure copied over it, or the file
// truncated below its header) does not fail the whole recovery: the other
// data set is rebuilt and its bodies kept, the bad file is moved aside
// (a log line names it, where it went, and how many bodies were lost), and
// its messages, counted lost in the structure_recovered line, are moved to
// the dead-letter queue by their first gets; the CF's messages and the
// healthy data set's come intact and in order, and the checkers are clean.
func TestOffloadRebuildBadDataSet(t *testing.T) {
	for _, how := range []string{"header", "copied", "truncated"} {
		t.Run(how, func(t *testing.T) {
			cfg := testConfig(t, "QM1")
			logs := logTo(t, &cfg)
			m := startMember(t, cfg)
			for _, cmd := range []string{"DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)",
				"DEFINE CFSTRUCT(OFF2) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q2) CFSTRUCT(OFF2)",
				"DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)"} {
				mustExec(t, m, cmd)
			}
			cfg2 := cfg
			cfg2.Name = "QM2"
			startMember(t, cfg2)
			const size = 100 << 10
			c1, c2 := connect(t, cfg, "QM1"), connect(t, cfg, "QM2")
			defer c1.Disconnect()
			defer c2.Disconnect()
			var ids [7][24]byte
			// 1, 2 through QM1 (its data set), 3, 4 through QM2 (the bad
			// one), 5 and 6 small (in the CF), all persistent.
			for id := 1; id <= 6; id++ {
				c := c1
				if id == 3 || id == 4 || id == 6 {
					c = c2
				}
				h, err := c.Open("Q", mq.OpenOptions{Output: true})
				if err != nil {
					t.Fatal(err)
				}
				n := size
				if id >= 5 {
					n = 100
				}
				msg := &mq.Message{Body: bigBody(id, n), Persistence: mq.Persistent}
				if err := h.Put(msg, mq.PutOptions{}); err != nil {
					t.Fatal(err)
				}
				ids[id] = msg.MsgID
				h.Close()
			}
			// A data set of OFF2 for QM2 (the file copied over).
			h, err := c2.Open("Q2", mq.OpenOptions{Output: true, Input: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Put(&mq.Message{Body: bigBody(9, size)}, mq.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Get(mq.GetOptions{}); err != nil {
				t.Fatal(err)
			}
			h.Close()
			dir := filepath.Join(cfg.Group.DataDir, "smds")
			bad := filepath.Join(dir, fmt.Sprintf("OFF.M%d.smds", c2.Member().Slot))
			switch how {
			case "header":
				f, err := os.OpenFile(bad, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt(bytes.Repeat([]byte{0xab}, 64), 0); err != nil {
					t.Fatal(err)
				}
				f.Close()
			case "copied":
				data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("OFF2.M%d.smds", c2.Member().Slot)))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(bad, data, 0o600); err != nil {
					t.Fatal(err)
				}
			case "truncated":
				if err := os.Truncate(bad, 100); err != nil {
					t.Fatal(err)
				}
			}
			s, err := m.g.Structure("OFF", false)
			if err != nil {
				t.Fatal(err)
			}
			s.Fail()
			if r := m.Exec("RECOVER CFSTRUCT(OFF)"); !r.OK {
				t.Fatalf("RECOVER CFSTRUCT(OFF) with data set %s unusable (%s): %s\n%s", bad, how, r.Error, logs())
			}
			c3 := connect(t, cfg, "QM1")
			defer c3.Disconnect()
			q, err := c3.Open("Q", mq.OpenOptions{Input: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []int{1, 2, 5, 6} {
				msg, err := q.Get(mq.GetOptions{})
				if err != nil {
					t.Fatalf("get, want message %d: %v\n%s", id, err, logs())
				}
				if got, ok := checkBigBody(msg.Body); !ok || got != id {
					t.Fatalf("got message %d (intact %v), want %d", got, ok, id)
				}
			}
			if _, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
				t.Fatalf("Q after the gets: %v", err)
			}
			dlq, err := c3.Open("DLQ", mq.OpenOptions{Input: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []int{3, 4} {
				msg, err := dlq.Get(mq.GetOptions{})
				if err != nil {
					t.Fatalf("the report of message %d: %v", id, err)
				}
				d, _, err := mq.ParseDLH(msg.Body)
				if err != nil || d.Reason != mq.RCMsgBodyLost || msg.MsgID != ids[id] {
					t.Fatalf("the report of message %d: %+v %v", id, d, err)
				}
			}
			if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
				t.Fatalf("a third report: %v", err)
			}
			rec := eventLine(logs(), "structure_recovered")
			if rec == nil || rec["bodies_lost"] != "2" || rec["bodies_kept"] != "2" {
				t.Fatalf("structure_recovered line: %v, want bodies_lost=2 bodies_kept=2\n%s", rec, logs())
			}
			found := false
			for _, line := range strings.Split(logs(), "\n") {
				if strings.Contains(line, "level=ERROR") && strings.Contains(line, bad) && strings.Contains(line, "moved_to=") && strings.Contains(line, "bodies_lost=2") {
					found = true
				}
			}
			if !found {
				t.Fatalf("no ERROR line names the unusable data set %s, where it went and the bodies lost:\n%s", bad, logs())
			}
			if ck := checkClean(t, m); len(ck) != 2 || ck[0].Stats.Runs+ck[1].Stats.Runs != 0 {
				t.Fatalf("drained, the data sets: %+v", ck)
			}
		})
	}
}
