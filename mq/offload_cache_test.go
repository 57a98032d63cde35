package mq_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
)

// swapperMain connects to the group of MQ_GROUP_DIR, gets the first
// message of Q (offloadBody MQ_GOT of MQ_SIZE bytes, checked) and puts
// offloadBody MQ_PUT of the same size.
func swapperMain() error {
	dir := os.Getenv("MQ_GROUP_DIR")
	got, _ := strconv.Atoi(os.Getenv("MQ_GOT"))
	put, _ := strconv.Atoi(os.Getenv("MQ_PUT"))
	size, _ := strconv.Atoi(os.Getenv("MQ_SIZE"))
	c, err := mq.Connect(mq.ConnectOptions{Group: "T", QMgr: "QM1", DataDir: dir + "/data", CFDir: dir + "/cf"})
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		return err
	}
	m, err := q.Get(mq.GetOptions{})
	if err != nil {
		return err
	}
	if !bytes.Equal(m.Body, offloadBody(got, size)) {
		return fmt.Errorf("got a body of %d bytes that is not message %d's", len(m.Body), got)
	}
	return q.Put(&mq.Message{Body: offloadBody(put, size)}, mq.PutOptions{})
}

// TestOffloadCacheNoStaleAcrossProcesses: this process browses message 1
// (its body now in this process's read cache); another process gets it
// (its run freed) and puts message 2, a different body of the same size,
// into the very same run (the data set's only extent is full otherwise,
// so the allocation wraps to it: checked in the file). A browse and a get
// of message 2 here return message 2's bytes, never message 1's cached
// ones: the cache key holds the run's sequence number and checksum, not
// its place alone.
func TestOffloadCacheNoStaleAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	mq.SmallDataSets() // 1 MiB extents of 4 KiB blocks
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF) MAXMSGL(4194304)")
	c := connect(t, g)
	q := open(t, c, "Q")
	const size = 100 << 10 // 26 blocks with the run header
	put(t, q, &mq.Message{Body: offloadBody(1, size)})
	// The rest of the extent: 1024-26 blocks, one run.
	filler := offloadBody(7, (1024-26)*4096-64)
	put(t, q, &mq.Message{Body: filler})
	path := filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", c.Member().Slot))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, offloadBody(1, size)[:16])
	if at < 0 {
		t.Fatal("message 1's body is not in the data set file")
	}
	browse := func(want ...int) {
		t.Helper()
		b, err := q.Browse()
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range want {
			m, err := b.Next(mq.GetOptions{})
			if err != nil {
				t.Fatalf("browse, want message %d: %v", id, err)
			}
			if id == 7 {
				if !bytes.Equal(m.Body, filler) {
					t.Fatal("browse: the filler's body is wrong")
				}
				continue
			}
			if !bytes.Equal(m.Body, offloadBody(id, size)) {
				t.Fatalf("browse, want message %d's body: got %q... (message 1's cached bytes: %v)", id, m.Body[:16], bytes.Equal(m.Body, offloadBody(1, size)))
			}
		}
	}
	hits := mq.SMDSCacheMetrics().Hits
	browse(1, 7)
	mq.WaitSMDSCache() // the first browse's sets applied: the second must hit
	browse(1, 7)
	if mq.SMDSCacheMetrics().Hits <= hits {
		t.Fatal("the second browse of message 1 did not hit the cache: the test proves nothing")
	}
	p := testproc.Command(t, "swapper")
	p.Env = append(p.Env, "MQ_GROUP_DIR="+groupDir(g), "MQ_GOT=1", "MQ_PUT=2", "MQ_SIZE="+strconv.Itoa(size))
	if out, err := p.CombinedOutput(); err != nil {
		t.Fatalf("swapper: %v\n%s", err, out)
	}
	data, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.Index(data, offloadBody(2, size)[:16]); got != at {
		t.Fatalf("message 2's body is at %d in the data set file, message 1's was at %d: the run was not reused, the test proves nothing", got, at)
	}
	browse(7, 2)
	browse(7, 2)
	if m, err := q.Get(mq.GetOptions{}); err != nil || !bytes.Equal(m.Body, filler) {
		t.Fatalf("get of the filler: %v", err)
	}
	m, err := q.Get(mq.GetOptions{})
	if err != nil || !bytes.Equal(m.Body, offloadBody(2, size)) {
		t.Fatalf("get of message 2: %v (message 1's bytes: %v)", err, err == nil && bytes.Equal(m.Body, offloadBody(1, size)))
	}
	if _, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("Q after the gets: %v", err)
	}
}
