package cli

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
)

// testAuthKey is the secret (AUTHKEY) of the test channels.
const testAuthKey = "test-channel-secret-0123456789"

// freePort is a TCP port nobody listens on (now).
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// depth is the depth of queue q of group g (0 if it cannot be read).
func (g *testGroup) depth(q string) int64 {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return 0
	}
	defer gr.Close()
	d, _ := gr.Depth("APPL1", q)
	return d
}

// chStatus is channel name's status entry in group g.
func (g *testGroup) chStatus(name string) (channel.Status, bool) {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return channel.Status{}, false
	}
	defer gr.Close()
	t := channel.NewTable(gr)
	st, ok, err := t.Find(name)
	if err != nil || !ok {
		return st, false
	}
	if !t.Locked(st) {
		st.Owner = -1
	}
	return st, true
}

func (g *testGroup) peerName(slot int) string {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return ""
	}
	defer gr.Close()
	p, err := gr.Peer(slot)
	if err != nil {
		return ""
	}
	return p.Name
}

// remoteSetup is a group of three sending through shared channel TO.R to a
// group of one (RQM) listening on a port.
func remoteSetup(t *testing.T) (g, r *testGroup, port int) {
	r = remoteSide(t)
	return sendingSide(t, r), r, r.port
}

// remoteSide is a group of one, RQM, listening on r.port with receiver
// channel TO.R and queue TARGET.
func remoteSide(t *testing.T) *testGroup {
	r := newRemoteGroup(t)
	r.port = freePort(t)
	r.startWith("RQM", "--port", strconv.Itoa(r.port))
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) AUTHKEY('" + testAuthKey + "')")
	r.mqsc("DEFINE QLOCAL(TARGET) MAXDEPTH(999999999)")
	return r
}

// newRemoteGroup is a group for a queue manager outside the group under
// test, its member logs in a directory of their own.
func newRemoteGroup(t *testing.T) *testGroup {
	r := newTestGroupSized(t, 256<<20)
	r.dir = filepath.Join(r.dir, "remote")
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return r
}

// sendingSide is a group of three with sender channel TO.R to remote side
// r and remote queue RQ for r's TARGET.
func sendingSide(t *testing.T, r *testGroup) *testGroup {
	g := newTestGroupSized(t, 256<<20)
	for _, n := range []string{"QM1", "QM2", "QM3"} {
		g.start(n)
	}
	g.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ) MAXDEPTH(999999999)")
	g.mqsc(fmt.Sprintf("DEFINE CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) BATCHSZ(50) SHORTTMR(1) AUTHKEY('%s')", r.port, testAuthKey))
	g.mqsc("DEFINE QREMOTE(RQ) RNAME(TARGET) RQMNAME(RQM) XMITQ(XQ)")
	return g
}

// putSeq puts n messages numbered from 0 to the remote queue, committed
// in batches.
func putSeq(t *testing.T, g *testGroup, via string, n int) { putRange(t, g, via, 0, n) }

// putRange puts messages numbered from..from+n-1.
func putRange(t *testing.T, g *testGroup, via string, from, n int) {
	c := g.connect(via)
	defer c.Disconnect()
	q, err := c.Open("RQ", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64)
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint64(body, uint64(from+i))
		if err := q.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 || i == n-1 {
			if err := c.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkSeq gets every message of TARGET: exactly 0..n-1, in order.
func checkSeq(t *testing.T, r *testGroup, n int) { checkRangeVia(t, r, "RQM", 0, n) }

// checkRangeVia gets every message of TARGET through member via: exactly
// from..from+n-1, in order.
func checkRangeVia(t *testing.T, r *testGroup, via string, from, n int) {
	t.Helper()
	got := drainSeq(t, r, via)
	for i, v := range got {
		if v != uint64(from+i) {
			t.Fatalf("message %d is number %d, want %d (lost, duplicated or out of order)", i, v, from+i)
		}
	}
	if len(got) != n {
		t.Fatalf("%d messages arrived, want %d", len(got), n)
	}
}

// drainSeq gets every message of TARGET through member via and returns
// their numbers.
func drainSeq(t *testing.T, r *testGroup, via string) []uint64 {
	t.Helper()
	c := r.connect(via)
	defer c.Disconnect()
	q, err := c.Open("TARGET", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for {
		m, err := q.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, binary.BigEndian.Uint64(m.Body))
	}
}

// TestSharedChannelFailover: messages put to a remote queue go through the
// shared sender channel; the member running it is SIGKILLed in the middle
// of the transfer; a survivor takes the channel over (and logs it:
// event=channel_takeover) and the remote queue gets every message exactly
// once, in order.
func TestSharedChannelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	n := 200000
	if v := os.Getenv("CHANNEL_MSGS"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	g, r, _ := remoteSetup(t)
	putSeq(t, g, "QM1", n)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "a quarter of the messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= int64(n/4) })
	st, _ := g.chStatus("TO.R")
	owner := g.peerName(st.Owner)
	if owner == "" {
		t.Fatalf("channel status %+v: no owner", st)
	}
	g.kill(owner)
	t.Logf("killed %s, which ran the channel, at remote depth %d", owner, r.depth("TARGET"))
	waitFor(t, "every message at the remote side", 120*time.Second, func() bool {
		return r.depth("TARGET") >= int64(n) && g.depth("XQ") == 0
	})
	waitFor(t, "the channel running on a survivor", 30*time.Second, func() bool {
		st, _ := g.chStatus("TO.R")
		now := g.peerName(st.Owner)
		return st.State == channel.Running && now != "" && now != owner
	})
	// The survivor's one line for the takeover names the channel and whose
	// it was.
	if !logsContain(g, "event=channel_takeover", "channel=TO.R", "from="+owner, "previous_state=") {
		t.Errorf("no channel_takeover line naming TO.R and %s in the survivors' logs", owner)
	}
	time.Sleep(200 * time.Millisecond) // nothing more arrives
	checkSeq(t, r, n)
	for _, gr := range []*testGroup{g, r} {
		if code, out, errs := gr.run("", "check"); code != 0 {
			t.Fatalf("check: %s %s", out, errs)
		}
	}
}

// children are the pids of process pid's children.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// chinitPid is the pid of member pid's channel initiator (its child).
func chinitPid(t *testing.T, pid int) int {
	if cs := children(pid); len(cs) > 0 {
		return cs[0]
	}
	t.Fatalf("member %d has no channel initiator", pid)
	return 0
}

// TestChannelStopStartAndInitiatorKilled: START of a running channel is
// refused with the owner's name; killing only the channel initiator that
// runs the channel moves it on without loss; a stopped channel stays
// stopped through a member failure until START CHANNEL.
func TestChannelStopStartAndInitiatorKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, r, _ := remoteSetup(t)
	putRange(t, g, "QM1", 0, 1000)
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the first messages at the remote side", 30*time.Second, func() bool { return r.depth("TARGET") == 1000 })
	st, _ := g.chStatus("TO.R")
	owner := g.peerName(st.Owner)
	code, out, errs := g.run("", "mqsc", "-c", "START CHANNEL(TO.R)")
	if code == 0 || !strings.Contains(out+errs, "on "+owner) {
		t.Fatalf("START of a running channel: exit %d %q %q, want a refusal naming %s", code, out, errs, owner)
	}
	// The running sender's lock: its connection and its three other lanes.
	if code, out, errs := g.run("", "mqsc", "--json", "-c", "DISPLAY CHSTATUS(TO.R)"); code != 0 || !strings.Contains(out, `"LOCKED":"YES"`) ||
		!regexp.MustCompile(`"LANES":"\d+\.\d+,\d+\.\d+,\d+\.\d+"`).MatchString(out) {
		t.Fatalf("DISPLAY CHSTATUS of a running sender: exit %d %s %s", code, out, errs)
	}
	// Only the channel initiator dies; its member restarts it.
	cp := chinitPid(t, g.member(owner).Process.Pid)
	syscall.Kill(cp, syscall.SIGKILL)
	putRange(t, g, "QM1", 1000, 1000)
	waitFor(t, "the messages put after the channel initiator died", 30*time.Second, func() bool { return r.depth("TARGET") == 2000 })
	waitFor(t, "a new channel initiator for "+owner, 15*time.Second, func() bool {
		for _, c := range children(g.member(owner).Process.Pid) {
			if c != cp {
				return true
			}
		}
		return false
	})
	// Stopped stays stopped, even when a member dies.
	g.mqsc("STOP CHANNEL(TO.R)")
	waitFor(t, "the channel stopped", 15*time.Second, func() bool { st, _ := g.chStatus("TO.R"); return st.State == channel.Stopped })
	killed := "QM2"
	if killed == owner {
		killed = "QM3"
	}
	g.kill(killed)
	putRange(t, g, "QM1", 2000, 100)
	time.Sleep(time.Second)
	if st, _ := g.chStatus("TO.R"); st.State != channel.Stopped || r.depth("TARGET") != 2000 {
		t.Fatalf("stopped channel: %v, remote depth %d", st.State, r.depth("TARGET"))
	}
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "the messages put while stopped", 30*time.Second, func() bool { return r.depth("TARGET") == 2100 })
	time.Sleep(100 * time.Millisecond)
	checkSeq(t, r, 2100)
}

// TestInboundFailover: a remote sender sends into the group's generic port;
// the member receiving is SIGKILLed; the sender reconnects, lands on a
// survivor, resynchronises through the shared sync queue, and every message
// arrives exactly once, in order.
func TestInboundFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	n := 50000
	gp := freePort(t)
	g := newTestGroupSized(t, 256<<20)
	for _, m := range []string{"QM1", "QM2", "QM3"} {
		g.startWith(m, "--generic-port", strconv.Itoa(gp))
	}
	g.mqsc("DEFINE CHANNEL(TO.G) CHLTYPE(RCVR) AUTHKEY('" + testAuthKey + "')")
	g.mqsc("DEFINE QLOCAL(TARGET) MAXDEPTH(999999999)")
	r := newRemoteGroup(t)
	r.start("RQM")
	r.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ) MAXDEPTH(999999999)")
	r.mqsc(fmt.Sprintf("DEFINE CHANNEL(TO.G) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) SHORTTMR(1) AUTHKEY('%s')", gp, testAuthKey))
	r.mqsc("DEFINE QREMOTE(RQ) RNAME(TARGET) RQMNAME(TG) XMITQ(XQ)")
	putRange(t, r, "RQM", 0, n)
	r.mqsc("START CHANNEL(TO.G)")
	waitFor(t, "a quarter of the messages in the group", 60*time.Second, func() bool { return g.depth("TARGET") >= int64(n/4) })
	st, _ := g.chStatus("TO.G")
	recv := g.peerName(st.Owner)
	if recv == "" {
		t.Fatalf("receiver status %+v: no owner", st)
	}
	g.kill(recv)
	t.Logf("killed %s, which received, at depth %d", recv, g.depth("TARGET"))
	waitFor(t, "every message in the group", 120*time.Second, func() bool {
		return g.depth("TARGET") >= int64(n) && r.depth("XQ") == 0
	})
	time.Sleep(200 * time.Millisecond)
	via := "QM1"
	if via == recv {
		via = "QM2"
	}
	checkRangeVia(t, g, via, 0, n)
}
