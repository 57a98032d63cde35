package mq_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/smds"
)

// offloadBody is a body of n bytes that names its message i.
func offloadBody(i, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(i))).Read(b)
	copy(b, fmt.Sprintf("msg %06d ", i))
	return b
}

// offloadSizes are bodies across OFFLDSZ(16K): small ones in the CF,
// large ones in the data set.
var offloadSizes = []int{100, 1 << 10, 16<<10 - 1, 16 << 10, 100 << 10, 1 << 20, 200, 3 << 20, 50 << 10}

// TestOffloadPutGet: with OFFLOAD(SMDS) OFFLDSZ(16K), bodies at or above
// 16 KiB go to the member's data set and come back intact, in order, from
// gets outside and under syncpoint, browses and views, persistent or not;
// a backout keeps a body, a commit frees it; once the queue is empty the
// data set holds nothing and both checkers agree.
func TestOffloadPutGet(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	c := connect(t, g)
	q := open(t, c, "Q")
	slot := c.Member().Slot
	for round, p := range []mq.Persistence{mq.NotPersistent, mq.Persistent} {
		for i, n := range offloadSizes {
			put(t, q, &mq.Message{Body: offloadBody(round*100+i, n), Persistence: p})
		}
		st, err := mq.CheckOffload(c, "OFF", slot)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Runs != 5 {
			t.Fatalf("round %d: %d runs in the data set, want 5 (the bodies of 16K and more): %+v", round, st[0].Runs, st[0])
		}
		// Browse: every body, in order.
		b, err := q.Browse()
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range offloadSizes {
			m, err := b.Next(mq.GetOptions{})
			if err != nil || !bytes.Equal(m.Body, offloadBody(round*100+i, n)) {
				t.Fatalf("round %d: browse %d: %d bytes, %v", round, i, len(m.Body), err)
			}
		}
		// A get under syncpoint backed out keeps its body; the next one
		// (the same message) commits.
		m, err := q.Get(mq.GetOptions{Syncpoint: true})
		if err != nil || !bytes.Equal(m.Body, offloadBody(round*100, offloadSizes[0])) {
			t.Fatalf("round %d: get: %v", round, err)
		}
		for i, n := range offloadSizes[1:5] {
			m, err := q.Get(mq.GetOptions{Syncpoint: true})
			if err != nil || !bytes.Equal(m.Body, offloadBody(round*100+i+1, n)) {
				t.Fatalf("round %d: get %d: %v", round, i+1, err)
			}
		}
		if err := c.Backout(); err != nil {
			t.Fatal(err)
		}
		if st, err := mq.CheckOffload(c, "OFF", slot); err != nil || st[0].Runs != 5 {
			t.Fatalf("round %d after backout: %+v %v", round, st, err)
		}
		for i, n := range offloadSizes[:5] {
			m, err := q.Get(mq.GetOptions{Syncpoint: true})
			if err != nil || !bytes.Equal(m.Body, offloadBody(round*100+i, n)) || m.BackoutCount != 1 {
				t.Fatalf("round %d: get %d again: backout count %d, %v", round, i, m.BackoutCount, err)
			}
		}
		if err := c.Commit(); err != nil {
			t.Fatal(err)
		}
		// A view of the 1 MiB one, then gets outside syncpoint.
		v, err := q.GetView(mq.GetOptions{})
		if err != nil || !bytes.Equal(v.Bytes(), offloadBody(round*100+5, offloadSizes[5])) || v.Len() != offloadSizes[5] {
			t.Fatalf("round %d: view: %v", round, err)
		}
		if err := v.Release(); err != nil {
			t.Fatal(err)
		}
		for i := 6; i < len(offloadSizes); i++ {
			m, err := q.Get(mq.GetOptions{})
			if err != nil || !bytes.Equal(m.Body, offloadBody(round*100+i, offloadSizes[i])) {
				t.Fatalf("round %d: get %d: %v", round, i, err)
			}
		}
		if _, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
			t.Fatalf("round %d: queue not empty: %v", round, err)
		}
		st, err = mq.CheckOffload(c, "OFF", slot)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].Runs != 0 || st[0].UsedBlocks != 0 {
			t.Fatalf("round %d: the empty queue's data set still uses space: %+v", round, st[0])
		}
	}
	if _, err := os.Stat(filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", slot))); err != nil {
		t.Fatalf("the data set is not in the data directory: %v", err)
	}
}

// TestOffloadFillRule: with the default fill rules, a 8 KiB body stays
// in the CF while the structure's data elements are mostly free, and goes
// to the data set once they are more than 80% used.
func TestOffloadFillRule(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(1M)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXDEPTH(100000)")
	c := connect(t, g)
	q := open(t, c, "Q")
	slot := c.Member().Slot
	runs := func() int {
		t.Helper()
		st, err := mq.CheckOffload(c, "OFF", slot)
		if err != nil {
			return -1 // no data set yet
		}
		return st[0].Runs
	}
	put(t, q, &mq.Message{Body: offloadBody(0, 8<<10)})
	if n := runs(); n > 0 {
		t.Fatalf("an 8 KiB body went to the data set of a nearly empty structure (%d runs)", n)
	}
	// 2 KiB bodies (below every rule's size but the 90% one) up to 85%.
	for i := 0; ; i++ {
		put(t, q, &mq.Message{Body: offloadBody(i, 2<<10)})
		if i%100 == 0 {
			r := lockfreeFill(t, c)
			if r >= 0.85 {
				break
			}
			if i > 100000 {
				t.Fatal("the structure does not fill")
			}
		}
	}
	time.Sleep(50 * time.Millisecond) // the putter's sample of the fill is renewed
	put(t, q, &mq.Message{Body: offloadBody(1, 8<<10)})
	if n := runs(); n != 1 {
		t.Fatalf("at 85%% full, an 8 KiB body was not offloaded (%d runs)", n)
	}
}

// lockfreeFill is structure OFF's data elements used (a fraction).
func lockfreeFill(t *testing.T, c *mq.Conn) float64 {
	t.Helper()
	s, err := mqconn.Of(c).Group.Structure("OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	_, el := s.Fill(4096)
	return el
}

// TestOffloadCheckerFindsLeak: a run no CF entry refers to is reported by
// the combined checker (as qmgr check runs it), naming the run.
func TestOffloadCheckerFindsLeak(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	c := connect(t, g)
	q := open(t, c, "Q")
	put(t, q, &mq.Message{Body: offloadBody(1, 100<<10)})
	if _, err := mq.CheckOffload(c, "OFF", c.Member().Slot); err != nil {
		t.Fatal(err)
	}
	if err := mq.LeakRun(c, "OFF", 50<<10); err != nil {
		t.Fatal(err)
	}
	_, err := mq.CheckOffload(c, "OFF", c.Member().Slot)
	if err == nil || !strings.Contains(err.Error(), "leaked: run of 13 blocks") {
		t.Fatalf("checker after a leak: %v", err)
	}
}

// TestOffloadDamagedBody: a body damaged on disk is detected by its
// checksum: its get fails with smds.ErrDamaged naming the data set file,
// and leaves it on the queue; the other messages are got as usual.
func TestOffloadDamagedBody(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	c := connect(t, g)
	q := open(t, c, "Q")
	var ids [3][24]byte
	for i := range ids {
		m := &mq.Message{Body: offloadBody(i, 100<<10)}
		put(t, q, m)
		ids[i] = m.MsgID
	}
	path := filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", c.Member().Slot))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte("msg 000001 "))
	if at < 0 {
		t.Fatal("message 1's body is not in the data set file")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[at+5000] ^ 0xff}, int64(at+5000)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m, err := q.Get(mq.GetOptions{}); err != nil || !bytes.Equal(m.Body, offloadBody(0, 100<<10)) {
		t.Fatalf("get of message 0: %v", err)
	}
	_, err = q.Get(mq.GetOptions{})
	if !errors.Is(err, smds.ErrDamaged) || !strings.Contains(err.Error(), path) {
		t.Fatalf("get of the damaged message 1: %v, want smds.ErrDamaged naming %s", err, path)
	}
	if m, err := q.Get(mq.GetOptions{MsgID: &ids[2]}); err != nil || !bytes.Equal(m.Body, offloadBody(2, 100<<10)) {
		t.Fatalf("get of message 2 by id: %v", err)
	}
	if _, err := q.Get(mq.GetOptions{MsgID: &ids[1]}); !errors.Is(err, smds.ErrDamaged) {
		t.Fatalf("the damaged message is no longer there: %v", err)
	}
}

// TestOffloadOwnerSlots: a data set's map has an owner slot for every
// connection the group allows (each may be putting or freeing in it at
// once), and a put that finds none free fails with MQRC 2102 (a resource
// problem, try again), not 2195, and works once slots are given back.
func TestOffloadOwnerSlots(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(8388608)")
	c := connect(t, g)
	q := open(t, c, "Q")
	put(t, q, &mq.Message{Body: offloadBody(1, 64<<10)})
	n, release, err := mq.HoldOwners(c, "OFF")
	if err != nil {
		t.Fatal(err)
	}
	if n < group.MaxConnections {
		t.Fatalf("the data set has %d owner slots; the group allows %d connections", n, group.MaxConnections)
	}
	err = q.Put(&mq.Message{Body: offloadBody(2, 64<<10)}, mq.PutOptions{})
	var me *mq.Error
	if !errors.As(err, &me) || me.Reason != mq.RCResourceProblem {
		t.Fatalf("put with every owner slot taken: %v, want MQRC %d", err, mq.RCResourceProblem)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	put(t, q, &mq.Message{Body: offloadBody(3, 64<<10)})
	for _, want := range []int{1, 3} {
		m, err := q.Get(mq.GetOptions{})
		if err != nil || !bytes.Equal(m.Body, offloadBody(want, 64<<10)) {
			t.Fatalf("get: %v", err)
		}
	}
	if _, err := mq.CheckOffload(c, "OFF", c.Member().Slot); err != nil {
		t.Fatal(err)
	}
}
