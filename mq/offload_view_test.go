package mq_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/smds"
)

// TestOffloadViews: views of offloaded messages under syncpoint (a
// channel sender's batch) give each body whole, as one piece, and a
// commit frees their runs; a view of a damaged body is refused with
// smds.ErrDamaged (never handed out to be sent), and backing the unit of
// work out leaves every message on the queue.
func TestOffloadViews(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	c := connect(t, g)
	q := open(t, c, "Q")
	sizes := []int{100 << 10, 1 << 10, 3<<20 + 5, 100 << 10}
	for i, n := range sizes {
		put(t, q, &mq.Message{Body: offloadBody(i, n)})
	}
	slot := c.Member().Slot
	vs := make([]mq.View, len(sizes))
	k, err := q.GetViewsInto(mq.GetOptions{Syncpoint: true}, vs)
	if err != nil || k != len(sizes) {
		t.Fatalf("views: %d, %v", k, err)
	}
	for i, n := range sizes {
		if !bytes.Equal(vs[i].Bytes(), offloadBody(i, n)) || vs[i].Len() != n {
			t.Fatalf("view %d: %d bytes, not the body put", i, vs[i].Len())
		}
		if n >= 16<<10 && len(vs[i].Pieces) != 1 {
			t.Fatalf("view %d of an offloaded body: %d pieces, want 1", i, len(vs[i].Pieces))
		}
	}
	if err := c.Backout(); err != nil {
		t.Fatal(err)
	}

	// Damage message 3's body in the data set file.
	path := filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", slot))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte("msg 000003 "))
	if at < 0 {
		t.Fatal("message 3's body is not in the data set file")
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{data[at+7000] ^ 0xff}, int64(at+7000)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	k, err = q.GetViewsInto(mq.GetOptions{Syncpoint: true}, vs)
	if !errors.Is(err, smds.ErrDamaged) {
		t.Fatalf("views with message 3 damaged: %d, %v, want smds.ErrDamaged", k, err)
	}
	if k == len(sizes) && vs[3].Pieces != nil {
		t.Fatal("the damaged body's view has pieces")
	}
	if err := c.Backout(); err != nil {
		t.Fatal(err)
	}
	// The sound ones commit, and their runs are freed.
	k, err = q.GetViewsInto(mq.GetOptions{Syncpoint: true}, vs[:3])
	if err != nil || k != 3 {
		t.Fatalf("views of the first three: %d, %v", k, err)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	st, err := mq.CheckOffload(c, "OFF", slot)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Runs != 1 {
		t.Fatalf("data set after the commit: %+v, want the damaged message's run alone", st[0])
	}
}
