package cli

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
)

// offChanSizes are the body sizes the offloaded channel tests cycle
// through: below, at and above OFFLDSZ(64K), up to 16 MiB (message i has
// size offChanSizes[i%len]).
var offChanSizes = []int{1 << 10, 4 << 10, 64<<10 - 1, 64 << 10, 64<<10 + 1, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 100, 3<<20 + 7}

// offChanBody is message i's body: its number, then bytes that depend on
// it, size bytes in all.
func offChanBody(i, size int) []byte {
	b := make([]byte, size)
	x := uint64(i)*0x9e3779b97f4a7c15 + 1
	for k := 8; k+8 <= size; k += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[k:], x)
	}
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

// offloadedChannel is a sending group of two (QM1, QM2) whose
// transmission queue XQ is in structure OFF (OFFLOAD(SMDS) OFFLDSZ(64K)),
// and a receiving group of one (RQM) whose TARGET is in a structure of
// the same rules: large bodies leave the sender from its data set and
// arrive in the receiver's. MAXMSGL is 20 MiB throughout.
func offloadedChannel(t *testing.T, batch int) (g, r *testGroup) {
	r = newRemoteGroup(t)
	r.port = freePort(t)
	r.startWith("RQM", "--port", strconv.Itoa(r.port))
	r.mqsc("DEFINE CFSTRUCT(OFF) SIZE(64) OFFLOAD(SMDS) OFFLDSZ(64K)")
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) MAXMSGL(20971520) AUTHKEY('" + testAuthKey + "')")
	r.mqsc("DEFINE QLOCAL(TARGET) CFSTRUCT(OFF) MAXDEPTH(999999999) MAXMSGL(20971520)")
	g = newTestGroupSized(t, 256<<20)
	for _, n := range []string{"QM1", "QM2"} {
		g.start(n)
	}
	g.mqsc("DEFINE CFSTRUCT(OFF) SIZE(64) OFFLOAD(SMDS) OFFLDSZ(64K)")
	g.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ) CFSTRUCT(OFF) MAXDEPTH(999999999) MAXMSGL(20971520)")
	g.mqsc(fmt.Sprintf("DEFINE CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) BATCHSZ(%d) SHORTTMR(1) MAXMSGL(20971520) AUTHKEY('%s')", r.port, batch, testAuthKey))
	g.mqsc("DEFINE QREMOTE(RQ) RNAME(TARGET) RQMNAME(RQM) XMITQ(XQ)")
	return g, r
}

// offDepth is the depth of queue q of structure OFF in group g (-1 if it
// cannot be read).
func (g *testGroup) offDepth(q string) int64 {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return -1
	}
	defer gr.Close()
	d, err := gr.Depth("OFF", q)
	if err != nil {
		return -1
	}
	return d
}

// offRuns is the number of runs used in group g's data sets of structure
// OFF, after both checkers (the CF's and each data set's against the
// references the CF holds) found them sound.
func (g *testGroup) offRuns(t *testing.T) int {
	t.Helper()
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	defer gr.Close()
	checks, err := mq.CheckDataSets(gr, "OFF", false)
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, c := range checks {
		runs += c.Stats.Runs
	}
	return runs
}

// putOffChan puts messages from..from+n-1 (offChanBody) to RQ through
// member via, committing every 5.
func putOffChan(t *testing.T, g *testGroup, via string, from, n int) {
	t.Helper()
	c := g.connect(via)
	defer c.Disconnect()
	q, err := c.Open("RQ", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := from; i < from+n; i++ {
		if err := q.Put(&mq.Message{Body: offChanBody(i, offChanSizes[i%len(offChanSizes)])}, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if i%5 == 4 || i == from+n-1 {
			if err := c.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkOffChan waits for n messages at TARGET and XQ empty, then gets
// them all: exactly 0..n-1, in order, each body intact; then both groups'
// checkers (qmgr check, which covers the data sets) are clean and both
// data sets are empty.
func checkOffChan(t *testing.T, g, r *testGroup, n int) {
	t.Helper()
	waitFor(t, "every message at the remote side", 180*time.Second, func() bool {
		return r.offDepth("TARGET") >= int64(n) && g.offDepth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond) // nothing more arrives
	if runs := r.offRuns(t); runs == 0 {
		t.Fatal("the receiver's data set holds no body: the large ones did not go to it")
	}
	c := r.connect("RQM")
	q, err := c.Open("TARGET", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for ; ; i++ {
		m, err := q.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if len(m.Body) < 8 {
			t.Fatalf("message %d: %d bytes", i, len(m.Body))
		}
		if got := binary.BigEndian.Uint64(m.Body); got != uint64(i) {
			t.Fatalf("message %d is number %d (lost, duplicated or out of order)", i, got)
		}
		if want := offChanBody(i, offChanSizes[i%len(offChanSizes)]); !bytes.Equal(m.Body, want) {
			t.Fatalf("message %d: body of %d bytes differs from the %d put", i, len(m.Body), len(want))
		}
	}
	c.Disconnect()
	if i != n {
		t.Fatalf("%d messages arrived, want %d", i, n)
	}
	for _, gr := range []*testGroup{g, r} {
		if code, out, errs := gr.run("", "check"); code != 0 {
			t.Fatalf("check: %s %s", out, errs)
		}
		if runs := gr.offRuns(t); runs != 0 {
			t.Fatalf("%d runs left in a data set with every message got", runs)
		}
	}
}

// TestChannelOffloaded: messages of 100 bytes to 16 MiB, across OFFLDSZ,
// put to a remote queue whose transmission queue is offloaded, go
// through the channel (bodies sent from the sender's data set, written to
// the receiver's) exactly once, in order and intact; both sides' checkers
// are clean and their data sets empty at the end.
func TestChannelOffloaded(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	n := 3 * len(offChanSizes)
	if v := os.Getenv("CHANNEL_MSGS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	g, r := offloadedChannel(t, 7)
	putOffChan(t, g, "QM1", 0, n)
	if runs := g.offRuns(t); runs < n/len(offChanSizes)*5 {
		t.Fatalf("the transmission queue's data set holds %d bodies: the large ones were not offloaded", runs)
	}
	g.mqsc("START CHANNEL(TO.R)")
	checkOffChan(t, g, r, n)
}

// TestChannelOffloadedSenderKilled: the channel initiator running the
// sender is SIGKILLed mid-batch with offloaded messages in it (after the
// batch's record is put, and after END_BATCH is sent); the channel
// restarts, resynchronises and every message arrives exactly once, in
// order and intact; the checkers are clean and the data sets empty.
func TestChannelOffloadedSenderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, point := range []string{"channel.sender.indoubt:3", "channel.sender.sent:3"} {
		t.Run(point, func(t *testing.T) {
			n := 3 * len(offChanSizes)
			fired, disarm := armOnce(t, point)
			g, r := offloadedChannel(t, 4)
			disarm()
			putOffChan(t, g, "QM1", 0, n)
			g.mqsc("START CHANNEL(TO.R)")
			checkOffChan(t, g, r, n)
			if _, err := os.Stat(fired); err != nil {
				t.Fatalf("the crash point was never reached: %v", err)
			}
		})
	}
}

// TestChannelOffloadedLostBody: a message on the transmission queue whose
// offloaded body is damaged in the sender's data set does not wedge the
// channel: the sender's batch moves it to the dead-letter queue (a DLH
// with RCMsgBodyLost naming XQ) and carries the others, which arrive
// exactly once, in order and intact; both sides' checkers are clean and
// their data sets empty.
func TestChannelOffloadedLostBody(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const n, lost = 11, 6 // message 6: 1 MiB, offloaded
	g, r := offloadedChannel(t, 4)
	g.mqsc("DEFINE QLOCAL(DLQ)")
	g.mqsc("ALTER QMGR DEADQ(DLQ)")
	putOffChan(t, g, "QM1", 0, n)
	// Damage message 6's body in whichever of the sender's data sets
	// holds it.
	want := offChanBody(lost, offChanSizes[lost%len(offChanSizes)])
	files, err := filepath.Glob(filepath.Join(g.cfg.DataDir, "smds", "OFF.M*.smds"))
	if err != nil {
		t.Fatal(err)
	}
	damaged := ""
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(data, want[8:72])
		if at < 0 {
			continue
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt([]byte{data[at+5000] ^ 0xff}, int64(at+5000))
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		damaged = path
	}
	if damaged == "" {
		t.Fatal("message 6's body is in no data set of the sender")
	}
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the healthy messages at the remote side", 90*time.Second, func() bool {
		return r.offDepth("TARGET") >= n-1 && g.offDepth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond) // nothing more arrives
	c := r.connect("RQM")
	q, err := c.Open("TARGET", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for i := 0; i < n; i++ {
		if i == lost {
			continue
		}
		m, err := q.Get(mq.GetOptions{})
		if err != nil {
			t.Fatalf("get of message %d: %v", i, err)
		}
		if !bytes.Equal(m.Body, offChanBody(i, offChanSizes[i%len(offChanSizes)])) {
			t.Fatalf("message %d expected, got %d bytes, number %d", i, len(m.Body), binary.BigEndian.Uint64(m.Body))
		}
		got++
	}
	if _, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("TARGET after the %d healthy messages: %v, want no more", got, err)
	}
	c.Disconnect()
	s := g.connect("QM1")
	dq, err := s.Open("DLQ", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := dq.Get(mq.GetOptions{})
	if err != nil {
		t.Fatalf("the lost message's report: %v", err)
	}
	d, text, err := mq.ParseDLH(m.Body)
	if err != nil || d.Reason != mq.RCMsgBodyLost || d.DestQ != "XQ" || !bytes.Contains(text, []byte(damaged)) {
		t.Fatalf("report: %+v %q %v, want RCMsgBodyLost for XQ naming %s", d, text, err, damaged)
	}
	if _, err := dq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("DLQ after the report: %v, want no more", err)
	}
	s.Disconnect()
	for _, gr := range []*testGroup{g, r} {
		if code, out, errs := gr.run("", "check"); code != 0 {
			t.Fatalf("check: %s %s", out, errs)
		}
		if runs := gr.offRuns(t); runs != 0 {
			t.Fatalf("%d runs left in a data set with every message got", runs)
		}
	}
}
