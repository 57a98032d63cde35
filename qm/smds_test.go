package qm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// TestOffloadCrashPoints: an application SIGKILLed at each step of an
// offloaded put, get, commit, backout and free (the data set's own crash
// points, the CF's, and mq's between them) leaves, once its member has
// recovered its connection (the CF's repair, then the data sets'), both
// checkers clean: no run leaked, none doubly used, no entry referring to
// a run that is not used; and every message on the queue reads back
// intact. Draining the queue then empties the data set.
func TestOffloadCrashPoints(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(4K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(4194304)")
	const size = 100 << 10 // 25 blocks: tails to mark and free
	rounds := []struct {
		point, script string
		pers          bool // the messages to get are persistent
	}{
		{"smds.alloc.claimed", "bigput Q", false},
		{"smds.alloc.written", "bigput Q", false},
		{"smds.alloc.marking", "bigput Q", false},
		{"smds.alloc.used", "bigput Q", false},
		{"lockfree.put.filled", "bigput Q", false},
		{"lockfree.put.linked", "bigputsp Q", false},
		{"mq.offload.published", "bigput Q", false},
		{"mq.offload.published", "bigputsp Q", false},
		{"lockfree.commit.put", "bigputsp Q;commit", false},
		{"lockfree.backout.put", "bigputsp Q;backout", false},
		{"mq.offload.claimed", "biggetnow Q", false},
		{"mq.offload.claimed", "biggetsp Q", false},
		{"lockfree.get.claimed", "biggetnow Q", false},
		{"smds.free.marked", "biggetnow Q", false},
		{"smds.free.tail", "biggetnow Q", false},
		{"lockfree.commit.get", "biggetsp Q;commit", false},
		{"smds.free.marked", "biggetsp Q;commit", false},
		{"smds.free.tail", "biggetsp Q;commit", false},
		{"lockfree.backout.get", "biggetsp Q;backout", false},
		// Persistent: the run synced, then the record that refers to it.
		{"smds.alloc.written", "bigpput Q", true},
		{"mq.put.appended", "bigpput Q", true},
		{"mq.put.durable", "bigpput Q", true},
		{"mq.put.decided", "bigpput Q", true},
		{"mq.offload.published", "bigpput Q", true},
		{"mq.commit.appended", "bigpputsp Q;commit", true},
		{"mq.commit.durable", "bigpputsp Q;commit", true},
		{"mq.commit.decided", "bigpputsp Q;commit", true},
		{"mq.offload.claimed", "biggetnow Q", true},
		{"mq.get.appended", "biggetnow Q", true},
		{"mq.get.durable", "biggetnow Q", true},
		{"mq.get.decided", "biggetnow Q", true},
		{"smds.free.marked", "biggetnow Q", true},
		{"mq.commit.durable", "biggetsp Q;commit", true},
		{"smds.free.tail", "biggetsp Q;commit", true},
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("Q", mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	id := 0
	for _, r := range rounds {
		// Something to get.
		p := mq.NotPersistent
		if r.pers {
			p = mq.Persistent
			for depth(t, m) > 0 && !persistentHead(t, h) {
				if _, err := h.Get(mq.GetOptions{}); err != nil {
					t.Fatal(err)
				}
			}
		}
		for depth(t, m) < 2 {
			id++
			if err := h.Put(&mq.Message{Body: bigBody(id, size), Persistence: p}, mq.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT="+r.point+":1")
		if res := app.do("open Q"); res != "reason 0 <nil>" {
			t.Fatal(res)
		}
		killed := false
		for _, cmd := range strings.Split(r.script, ";") {
			id++
			if strings.HasPrefix(cmd, "bigput") {
				cmd += fmt.Sprintf(" %d %d", id, size)
			}
			res := app.do(cmd)
			if res == "" {
				killed = true
				break
			}
			if strings.Contains(res, "damaged") {
				t.Fatalf("%s at %s: %s", r.script, r.point, res)
			}
		}
		if !killed {
			t.Fatalf("%s: crash point %s not hit", r.script, r.point)
		}
		app.cmd.Wait()
		var last error
		ok := func() bool {
			_, last = mq.CheckDataSets(m.g, "OFF", true)
			return last == nil
		}
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("killed at %s during %q: checkers after recovery: %v\n%s", r.point, r.script, last, logs())
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Every message there reads back intact.
		b, err := h.Browse()
		if err != nil {
			t.Fatal(err)
		}
		for {
			msg, err := b.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				t.Fatalf("after %s: browse: %v", r.point, err)
			}
			if _, ok := checkBigBody(msg.Body); !ok {
				t.Fatalf("after %s: a damaged body of %d bytes", r.point, len(msg.Body))
			}
		}
	}
	// The structure lost and recovered: the persistent messages left come
	// back from the logs referring to their runs, the maps are rebuilt.
	for range 3 {
		id++
		if err := h.Put(&mq.Message{Body: bigBody(id, size), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var kept []int
	b, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := b.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if msg.Persistent {
			id, _ := checkBigBody(msg.Body)
			kept = append(kept, id)
		}
	}
	if len(kept) == 0 {
		t.Fatal("no persistent message left to recover")
	}
	t.Logf("recovering %d persistent messages: %v", len(kept), kept)
	s, err := m.g.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	mustExec(t, m, "RECOVER CFSTRUCT(OFF)")
	c.Disconnect()
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	if h, err = c.Open("Q", mq.OpenOptions{Input: true, Output: true, Browse: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := mq.CheckDataSets(m.g, "OFF", true); err != nil {
		t.Fatalf("after the structure's recovery: %v\n%s", err, logs())
	}
	var got []int
	for {
		msg, err := h.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id, ok := checkBigBody(msg.Body)
		if !ok {
			t.Fatalf("drain: a damaged body of %d bytes", len(msg.Body))
		}
		got = append(got, id)
	}
	if fmt.Sprint(got) != fmt.Sprint(kept) {
		t.Fatalf("after the structure's recovery: messages %v, want the persistent ones %v", got, kept)
	}
	if l := logs(); strings.Contains(l, "level=ERROR") {
		t.Fatalf("the member logged errors:\n%s", l)
	}
	checks, err := mq.CheckDataSets(m.g, "OFF", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range checks {
		if ck.Stats.Runs != 0 || ck.Stats.UsedBlocks != 0 {
			t.Fatalf("the drained queue's data set %d still uses space: %+v", ck.Num, ck.Stats)
		}
	}
}

func depth(t *testing.T, m *Member) int64 {
	t.Helper()
	d, err := m.g.Depth("OFF", "Q")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// persistentHead reports whether the first message of h is persistent.
func persistentHead(t *testing.T, h *mq.Queue) bool {
	t.Helper()
	b, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	msg, err := b.Next(mq.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return msg.Persistent
}
