package mq_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/mq"
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
