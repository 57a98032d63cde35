package mq_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// TestOffloadMissingDataSetRefsFenced: a data set file that is gone (lost
// with its disk, removed by hand) while the structure still refers to
// runs in it is created again, empty, by the next process that puts. Its
// new map gives the first run to a put at block 0, gen 0: the very head,
// gen and length of a message put before, whose reference the structure
// still holds. That message's get finds its body lost and moves it, and
// its removal frees its reference: which must not free the new message's
// run (the next puts then write over it). The new map must start the head
// of every reference the structure holds at the gen after the
// reference's, as a rebuild does for the references it cannot keep.
func TestOffloadMissingDataSetRefsFenced(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)",
		"DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)")
	c := connect(t, g)
	q, dlq := open(t, c, "Q"), open(t, c, "DLQ")
	const size = 100 << 10
	old := &mq.Message{Body: offloadBody(0, size), Persistence: mq.NotPersistent}
	put(t, q, old)
	path := filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", c.Member().Slot))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	mq.ForgetDataSets() // as a process started after the file went
	live := &mq.Message{Body: offloadBody(1, size), Persistence: mq.NotPersistent}
	put(t, q, live)
	// The old message's get moves it (its body is gone) and frees its
	// reference.
	if m, err := q.Get(mq.GetOptions{MsgID: &old.MsgID}); err == nil {
		t.Fatalf("get of the message whose data set file is gone returned a body of %d bytes", len(m.Body))
	}
	if m, err := dlq.Get(mq.GetOptions{}); err != nil || m.MsgID != old.MsgID {
		t.Fatalf("the report of the lost message: %v", err)
	}
	// Enough puts to wrap around the first extent: a run freed under the
	// live message is written over.
	for i := 2; i < 60; i++ {
		put(t, q, &mq.Message{Body: offloadBody(i, size), Persistence: mq.NotPersistent})
	}
	m, err := q.Get(mq.GetOptions{MsgID: &live.MsgID})
	if err != nil || !bytes.Equal(m.Body, live.Body) {
		t.Fatalf("get of the message put into the re-created data set: %v (its run was freed by the lost message's removal and written over)", err)
	}
}
