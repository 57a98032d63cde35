package cli

import (
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/mq"
)

// chstatus is the JSON of DISPLAY CHSTATUS(name) in group g ("" when the
// command fails: no status).
func (g *testGroup) chstatus(name string) string {
	code, out, _ := g.run("", "mqsc", "--json", "-c", "DISPLAY CHSTATUS("+name+")")
	if code != 0 {
		return ""
	}
	return out
}

// mqscFails runs cmd in group g and returns its error output, failing the
// test if the command succeeds or its output lacks any of want.
func (g *testGroup) mqscFails(cmd string, want ...string) string {
	g.t.Helper()
	code, out, errs := g.run("", "mqsc", "-c", cmd)
	if code == 0 {
		g.t.Fatalf("%s: succeeded (%s), want a refusal", cmd, out)
	}
	for _, w := range want {
		if !strings.Contains(out+errs, w) {
			g.t.Fatalf("%s: %q %q, want it to say %q", cmd, out, errs, w)
		}
	}
	return out + errs
}

// recvRecord reads receiver channel name's sync record in group g: the
// last batch it committed and whether the record is persistent (ok false:
// no record).
func (g *testGroup) recvRecord(via, name string) (last uint64, persistent, ok bool) {
	g.t.Helper()
	c := g.connect(via)
	defer c.Disconnect()
	q, err := c.Open(channel.SyncQueue, mq.OpenOptions{Browse: true})
	if err != nil {
		g.t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		g.t.Fatal(err)
	}
	var key [24]byte
	key[0] = 'R'
	copy(key[1:], name)
	m, err := cur.Next(mq.GetOptions{CorrelID: &key})
	if errors.Is(err, mq.ErrNoMessage) {
		return 0, false, false
	}
	if err != nil {
		g.t.Fatal(err)
	}
	if len(m.Body) != 12 || string(m.Body[:4]) != "QSR1" {
		g.t.Fatalf("receiver record of %d bytes: %q", len(m.Body), m.Body)
	}
	return binary.LittleEndian.Uint64(m.Body[4:]), m.Persistent, true
}

// waitGone waits until process pid has exited (a child of another
// process: it is reaped by its parent or, once that died, by init).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	waitFor(t, "process "+strconv.Itoa(pid)+" gone", 15*time.Second, func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		// A zombie has exited: its state (after the command in parentheses) is Z.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
	})
}

// stopRemoteAfterCommit arms, for the remote side started by the caller,
// the crash point that stops (SIGSTOP) the receiving channel initiator
// after it committed its batch n and before it confirms it: the sender is
// left in doubt about that batch (and those it sent on its other lanes).
func remoteStoppedAfterCommit(t *testing.T, n int) (r *testGroup, fired string) {
	fired, disarm := armOnce(t, "channel.receiver.committed:"+strconv.Itoa(n)+":stop")
	r = remoteSide(t)
	disarm()
	return r, fired
}

// TestChannelPartnerLostState: the remote side commits 20 batches of
// non-persistent messages and stops before confirming the 20th; it is
// killed and its CF directory removed, so its sync record is gone (its
// batches were non-persistent, as were its messages). The sender, in doubt
// about batches the partner no longer knows, stops with "partner lost its
// state" in its status and log (it used to retry for ever on "sequence
// mismatch"); RESET is refused while it is in doubt; RESOLVE
// ACTION(BACKOUT) sends the in-doubt batches again and RESET SEQNUM makes
// both sides number from there: every message from the first in-doubt one
// arrives once, in order, and both sides agree on the numbers.
func TestChannelPartnerLostState(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const n = 5000
	r, fired := remoteStoppedAfterCommit(t, 20)
	g := sendingSide(t, r)
	// The sender retries every second while the remote side restarts,
	// however long that takes on a loaded machine.
	g.mqsc("ALTER CHANNEL(TO.R) CHLTYPE(SDR) SHORTRTY(999999)")
	putSeq(t, g, "QM1", n)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the receiver stopped after its 20th batch", 60*time.Second, func() bool { _, err := os.Stat(fired); return err == nil })
	rc := chinitPid(t, r.member("RQM").Process.Pid)
	waitFor(t, "the receiving channel initiator stopped", 15*time.Second, func() bool { return processStopped(rc) })
	waitFor(t, "the sender in doubt", 15*time.Second, func() bool { return g.depth(channel.SyncQueue) > 0 })

	// The remote side loses its CF.
	r.kill("RQM")
	waitGone(t, rc)
	if err := os.RemoveAll(r.cfg.CFDir); err != nil {
		t.Fatal(err)
	}
	r.startWith("RQM", "--port", strconv.Itoa(r.port))
	waitFor(t, "the sender stopped", 60*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		return st.State == channel.Stopped && st.Owner < 0
	})
	if out := g.chstatus("TO.R"); !strings.Contains(out, "partner lost its state") || strings.Contains(out, `"INDOUBT":0`) {
		t.Fatalf("the stopped channel's status does not say the partner lost its state, or its batches in doubt: %s", out)
	}
	if !logsContain(g, "partner lost its state", "RESOLVE CHANNEL(TO.R)") {
		t.Fatal("no log line says the partner lost its state and how to resolve it")
	}
	if logsContain(g, "channel failed; retrying", "sequence mismatch") {
		t.Fatal("the sender retried on an opaque sequence mismatch")
	}
	g.mqscFails("RESET CHANNEL(TO.R) SEQNUM(1000)", "in doubt", "RESOLVE CHANNEL(TO.R)")
	g.mqsc("RESOLVE CHANNEL(TO.R) ACTION(BACKOUT)")
	g.mqscFails("RESOLVE CHANNEL(TO.R) ACTION(BACKOUT)", "not in doubt")
	if d := g.depth(channel.SyncQueue); d != 0 {
		t.Fatalf("%d sender records left after RESOLVE", d)
	}
	g.mqsc("RESET CHANNEL(TO.R) SEQNUM(1000)")
	left := g.depth("XQ")
	if left < n-20*50 || left >= n {
		t.Fatalf("%d messages on the transmission queue after RESOLVE ACTION(BACKOUT): want those of the batches not confirmed, from the 20th", left)
	}
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the messages not confirmed at the remote side", 60*time.Second, func() bool {
		return r.depth("TARGET") >= left && g.depth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond) // nothing more arrives
	checkRangeVia(t, r, "RQM", int(n-left), int(left))
	if last, _, ok := r.recvRecord("RQM", "TO.R"); !ok || last < 1000 {
		t.Fatalf("the receiver's last batch %d (record %v) after RESET SEQNUM(1000)", last, ok)
	}
	if st, _ := g.chStatus("TO.R"); st.LastBatch < 1000 || st.State != channel.Running {
		t.Fatalf("sender status after RESET SEQNUM(1000): %v, last batch %d", st.State, st.LastBatch)
	}
}

// resolveSetup is a sender in doubt about its only batch (messages 0..29),
// which the partner committed: the receiving channel initiator stopped
// before confirming it, the remote member was killed, and the sender
// channel stopped. The remote side is down.
func resolveSetup(t *testing.T) (g, r *testGroup) {
	r, fired := remoteStoppedAfterCommit(t, 1)
	g = sendingSide(t, r)
	// Retry every second however long the remote side takes to restart.
	g.mqsc("ALTER CHANNEL(TO.R) CHLTYPE(SDR) SHORTRTY(999999)")
	putSeq(t, g, "QM1", 30) // one batch (BATCHSZ 50)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the receiver stopped after its first batch", 60*time.Second, func() bool { _, err := os.Stat(fired); return err == nil })
	rc := chinitPid(t, r.member("RQM").Process.Pid)
	r.kill("RQM")
	waitGone(t, rc)
	waitFor(t, "the sender retrying", 30*time.Second, func() bool { st, _ := g.chStatus("TO.R"); return st.State == channel.Retrying })
	g.mqsc("STOP CHANNEL(TO.R)")
	waitFor(t, "the sender stopped", 30*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		return st.State == channel.Stopped && st.Owner < 0
	})
	if d, x := g.depth(channel.SyncQueue), g.depth("XQ"); d != 1 || x != 30 {
		t.Fatalf("in doubt: %d sender records, %d messages on the transmission queue; want 1 and 30", d, x)
	}
	if out := g.chstatus("TO.R"); !strings.Contains(out, `"INDOUBT":1`) {
		t.Fatalf("the stopped channel's status does not show in-doubt batch 1: %s", out)
	}
	g.mqscFails("DELETE CHANNEL(TO.R)", "in doubt", "RESOLVE CHANNEL(TO.R)")
	g.mqscFails("RESET CHANNEL(TO.R)", "in doubt")
	g.mqscFails("RESOLVE CHANNEL(TO.R)", "ACTION")
	return g, r
}

// TestChannelResolve: RESOLVE CHANNEL ACTION(COMMIT) of a batch the
// partner committed removes its messages: each arrives exactly once;
// ACTION(BACKOUT) sends them again: they arrive twice (at least once),
// nothing is lost and the later messages follow in order.
func TestChannelResolve(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	t.Run("commit", func(t *testing.T) {
		g, r := resolveSetup(t)
		g.mqsc("RESOLVE CHANNEL(TO.R) ACTION(COMMIT)")
		if d, x := g.depth(channel.SyncQueue), g.depth("XQ"); d != 0 || x != 0 {
			t.Fatalf("after RESOLVE ACTION(COMMIT): %d sender records, %d messages on the transmission queue", d, x)
		}
		if out := g.chstatus("TO.R"); !strings.Contains(out, `"INDOUBT":0`) {
			t.Fatalf("status after RESOLVE: %s", out)
		}
		r.startWith("RQM", "--port", strconv.Itoa(r.port))
		g.mqsc("START CHANNEL(TO.R)")
		putRange(t, g, "QM1", 30, 30)
		waitFor(t, "the later messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= 60 && g.depth("XQ") == 0 })
		time.Sleep(200 * time.Millisecond)
		checkSeq(t, r, 60) // exactly once
	})
	t.Run("backout", func(t *testing.T) {
		g, r := resolveSetup(t)
		g.mqsc("RESOLVE CHANNEL(TO.R) ACTION(BACKOUT)")
		if d, x := g.depth(channel.SyncQueue), g.depth("XQ"); d != 0 || x != 30 {
			t.Fatalf("after RESOLVE ACTION(BACKOUT): %d sender records, %d messages on the transmission queue", d, x)
		}
		r.startWith("RQM", "--port", strconv.Itoa(r.port))
		g.mqsc("START CHANNEL(TO.R)")
		waitFor(t, "the in-doubt batch again at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= 60 && g.depth("XQ") == 0 })
		putRange(t, g, "QM1", 30, 30)
		waitFor(t, "the later messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= 90 && g.depth("XQ") == 0 })
		time.Sleep(200 * time.Millisecond)
		got := drainSeq(t, r, "RQM")
		var want []uint64
		for _, span := range [][2]int{{0, 30}, {0, 30}, {30, 60}} {
			for i := span[0]; i < span[1]; i++ {
				want = append(want, uint64(i))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%d messages arrived, want %d (the in-doubt batch twice, then the later ones)", len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("message %d is number %d, want %d", i, got[i], want[i])
			}
		}
	})
}

// TestChannelDeleteStartsClean: RESOLVE and DELETE of a running channel
// are refused; DELETE CHANNEL of a stopped channel removes its status
// entry and, on the receiving side, its sync record, so that the channel
// defined again starts from its first batch.
func TestChannelDeleteStartsClean(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, r, port := remoteSetup(t)
	sendAndCheck(t, g, r, 200)
	if last, _, ok := r.recvRecord("RQM", "TO.R"); !ok || last < 4 {
		t.Fatalf("receiver record after 200 messages: %d %v", last, ok)
	}
	g.mqscFails("RESOLVE CHANNEL(TO.R) ACTION(COMMIT)", "running")
	r.mqscFails("RESOLVE CHANNEL(TO.R) ACTION(COMMIT)", "sender")
	g.mqscFails("RESET CHANNEL(TO.R)", "running")
	g.mqscFails("DELETE CHANNEL(TO.R)", "running")
	g.mqsc("STOP CHANNEL(TO.R)")
	waitFor(t, "both sides stopped", 30*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		rs, _ := r.chStatus("TO.R")
		return st.State == channel.Stopped && st.Owner < 0 && rs.Owner < 0
	})
	g.mqsc("DELETE CHANNEL(TO.R)")
	r.mqsc("DELETE CHANNEL(TO.R)")
	for _, side := range []*testGroup{g, r} {
		if out := side.chstatus("TO.R"); out != "" {
			t.Fatalf("status of the deleted channel: %s", out)
		}
		if d := side.depth(channel.SyncQueue); d != 0 {
			t.Fatalf("%d sync records of the deleted channel", d)
		}
	}
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) AUTHKEY('" + testAuthKey + "')")
	g.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(" + strconv.Itoa(port) + ")') XMITQ(XQ) BATCHSZ(50) SHORTTMR(1) AUTHKEY('" + testAuthKey + "')")
	if out := g.chstatus("TO.R"); out != "" {
		t.Fatalf("status of the channel defined again, before it starts: %s", out)
	}
	putRange(t, g, "QM1", 200, 200) // four batches
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= 200 && g.depth("XQ") == 0 })
	time.Sleep(200 * time.Millisecond)
	checkRangeVia(t, r, "RQM", 200, 200)
	if last, _, ok := r.recvRecord("RQM", "TO.R"); !ok || last != 4 {
		t.Fatalf("receiver's last batch %d (record %v): want 4, numbered from 1 again", last, ok)
	}
	if st, _ := g.chStatus("TO.R"); st.Msgs > 200 {
		t.Fatalf("status of the channel defined again counts %d messages: the old instance's too", st.Msgs)
	}
}

// TestChannelReceiverRecordKeepsPersistence: a batch of non-persistent
// messages after a persistent one replaces the receiver's persistent sync
// record with a persistent one, so that the loss of the remote CF does not
// take the receiver's state back behind what the sender saw committed.
func TestChannelReceiverRecordKeepsPersistence(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, r, _ := remoteSetup(t)
	c := g.connect("QM1")
	q, err := c.Open("RQ", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64)
	put := func(from, n int, p mq.Persistence) {
		for i := from; i < from+n; i++ {
			binary.BigEndian.PutUint64(body, uint64(i))
			if err := q.Put(&mq.Message{Body: body, Persistence: p}, mq.PutOptions{Syncpoint: true}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	put(0, 100, mq.Persistent)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the persistent messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= 100 })
	put(100, 100, mq.NotPersistent)
	waitFor(t, "the non-persistent messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= 200 && g.depth("XQ") == 0 })
	c.Disconnect()
	g.mqsc("STOP CHANNEL(TO.R)")
	waitFor(t, "the sender stopped", 30*time.Second, func() bool { st, _ := g.chStatus("TO.R"); return st.State == channel.Stopped })
	last, pers, ok := r.recvRecord("RQM", "TO.R")
	if !ok || last < 4 {
		t.Fatalf("receiver record: last %d, %v", last, ok)
	}
	if !pers {
		t.Fatalf("receiver record of batch %d is not persistent though it replaced a persistent one", last)
	}
	r.kill("RQM")
	if err := os.RemoveAll(r.cfg.CFDir); err != nil {
		t.Fatal(err)
	}
	r.startWith("RQM", "--port", strconv.Itoa(r.port))
	if got, _, ok := r.recvRecord("RQM", "TO.R"); !ok || got != last {
		t.Fatalf("receiver record after the CF was lost: batch %d (%v), want %d", got, ok, last)
	}
	checkSeq(t, r, 100) // the persistent messages, once; the others went with the CF
}

// TestChannelReceiverLetsQueuesGo: a running receiver channel does not
// hold the queues it put to open between batches, so DELETE QLOCAL of one
// succeeds while the channel runs, and the channel goes on.
func TestChannelReceiverLetsQueuesGo(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, r, _ := remoteSetup(t)
	r.mqsc("DEFINE QLOCAL(OTHER)")
	g.mqsc("DEFINE QREMOTE(RO) RNAME(OTHER) RQMNAME(RQM) XMITQ(XQ)")
	c := g.connect("QM1")
	q, err := c.Open("RO", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if err := q.Put(&mq.Message{Body: []byte("other")}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.Disconnect()
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the messages at the remote side", 60*time.Second, func() bool { return r.depth("OTHER") == 10 && g.depth("XQ") == 0 })
	running := func() bool { st, _ := r.chStatus("TO.R"); return st.State == channel.Running && st.Owner >= 0 }
	if !running() {
		t.Fatal("the receiver does not run")
	}
	r.mqsc("DELETE QLOCAL(OTHER) PURGE")
	if !running() {
		t.Fatal("the receiver stopped running")
	}
	putRange(t, g, "QM1", 0, 100)
	waitFor(t, "messages sent after the delete", 60*time.Second, func() bool { return r.depth("TARGET") >= 100 && g.depth("XQ") == 0 })
	time.Sleep(200 * time.Millisecond)
	checkSeq(t, r, 100)
}
