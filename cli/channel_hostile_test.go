package cli

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/xmit"
)

// qinfo is queue q's depth and uncommitted count in group g.
func (g *testGroup) qinfo(q string) (depth, uncom int64) {
	g.t.Helper()
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		g.t.Fatal(err)
	}
	defer gr.Close()
	s, err := gr.Structure("APPL1", false)
	if err != nil {
		g.t.Fatal(err)
	}
	id, err := s.LookupQueue(q)
	if err != nil {
		g.t.Fatal(err)
	}
	info, err := s.QueueInfo(id)
	if err != nil {
		g.t.Fatal(err)
	}
	return info.Depth, info.Uncom
}

// hostilePeer is a sender written by hand, speaking the wire protocol to
// a receiver: it does what a faulty or hostile partner may.
type hostilePeer struct {
	t   *testing.T
	nc  net.Conn
	r   *channel.Reader
	w   *channel.Writer
	ack channel.HelloAck
}

// dialHostile opens channel TO.R to the receiver on port, proposing a
// batch size of 100 and heartbeat interval hbint, proving the channel's
// secret (a hostile partner that knows it), and reads the answer.
func dialHostile(t *testing.T, port int, hbint uint32) *hostilePeer {
	t.Helper()
	p, f := openPeer(t, port, "TO.R", "HOSTILE", testAuthKey, hbint)
	if f.Type != channel.FrameHelloAck {
		t.Fatalf("answer to HELLO: frame %d", f.Type)
	}
	var err error
	if p.ack, err = channel.DecodeHelloAck(f.Payload); err != nil {
		t.Fatal(err)
	}
	return p
}

// openPeer connects to port and opens channel ch as queue manager qm of
// group HG, proposing a batch size of 100 and heartbeat interval hbint,
// and answers the receiver's CHALLENGE with a proof of secret key (none
// when key is empty). It returns the frame that answers (HELLO_ACK, or a
// CLOSE), or the first frame that is not a CHALLENGE.
func openPeer(t *testing.T, port int, ch, qm, key string, hbint uint32) (*hostilePeer, channel.Frame) {
	t.Helper()
	nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	p := &hostilePeer{t: t, nc: nc, r: channel.NewReader(nc, 2<<20), w: channel.NewWriter(nc)}
	cn, err := channel.NewNonce()
	if err != nil {
		t.Fatal(err)
	}
	p.w.Hello(channel.Hello{Channel: ch, QMgr: qm, Group: "HG", BatchSz: 100, MaxMsgL: 1 << 20, HBInt: hbint,
		MinVer: channel.ProtoVersion, MaxVer: channel.ProtoVersion, Nonce: cn})
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := p.r.Read()
	if err != nil {
		t.Fatalf("answer to HELLO: %v", err)
	}
	if f.Type != channel.FrameChallenge {
		return p, f
	}
	c, err := channel.DecodeChallenge(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	a := channel.Auth{}
	if key != "" {
		a = channel.Auth{HasProof: true, Proof: channel.MakeProof(key, channel.RoleSender, channel.AuthContext{Channel: ch, SenderQMgr: qm,
			SenderGroup: "HG", RecvQMgr: c.QMgr, SenderNonce: cn, RecvNonce: c.Nonce})}
	}
	p.w.Auth(a)
	if err := p.w.Flush(); err != nil {
		t.Fatal(err)
	}
	if f, err = p.r.Read(); err != nil {
		t.Fatalf("answer to AUTH: %v", err)
	}
	return p, f
}

// msg queues a MSG frame for queue TARGET of RQM, numbered i.
func (p *hostilePeer) msg(i int) { p.msgSized(i, 8) }

// msgSized queues a MSG frame for queue TARGET of RQM, numbered i, with a
// body of size bytes.
func (p *hostilePeer) msgSized(i, size int) {
	body := binary.BigEndian.AppendUint64(make([]byte, 0, size), uint64(i))
	body = body[:size]
	b, err := xmit.Append(nil, &xmit.Header{DestQMgr: "RQM", DestQueue: "TARGET", PutTime: time.Now().UnixNano()}, nil, body)
	if err != nil {
		p.t.Fatal(err)
	}
	p.w.MsgV([][]byte{b}, len(b))
}

// hostileRemote is a group of one, RQM, listening on r.port, whose channel
// initiator clamps heartbeat intervals to 2 s and cuts a partner silent
// for twice that plus 1 s; receiver channel TO.R has BATCHSZ(5) and
// HBINT(1).
func hostileRemote(t *testing.T) *testGroup {
	return receiverGroup(t, "BATCHSZ(5) HBINT(1)", "--channel-max-hbint", "2s", "--channel-silence-grace", "1s")
}

// receiverGroup starts the remote group's member RQM listening on a free
// port (with flags), defines receiver channel TO.R (with attrs and the
// test's AUTHKEY) and queue TARGET, and waits until the listener is up.
func receiverGroup(t *testing.T, attrs string, flags ...string) *testGroup {
	r := newRemoteGroup(t)
	r.port = freePort(t)
	r.startWith("RQM", append([]string{"--port", strconv.Itoa(r.port)}, flags...)...)
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) " + attrs + " AUTHKEY('" + testAuthKey + "')")
	r.mqsc("DEFINE QLOCAL(TARGET) MAXDEPTH(999999999)")
	// Its listener is up once its channel initiator says it started (the
	// member's own line, as it starts the process, names no port).
	waitFor(t, "the remote channel initiator listening", 15*time.Second, func() bool {
		return logsContain(r, "channel initiator started", "port="+strconv.Itoa(r.port))
	})
	return r
}

// TestChannelHostilePeer: a partner cannot hold an unbounded unit of work
// in the receiver. A batch of more messages than the negotiated BATCHSZ is
// refused (a CLOSE naming BATCHSZ) and its puts backed out; a partner that
// proposes a huge heartbeat interval gets the clamped one, and when it
// goes silent in the middle of a batch it is cut off after twice that (plus
// the grace) and its puts backed out.
func TestChannelHostilePeer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	r := hostileRemote(t)
	t.Run("batch over BATCHSZ", func(t *testing.T) {
		p := dialHostile(t, r.port, 1)
		if p.ack.BatchSz != 5 {
			t.Fatalf("negotiated batch size %d, want 5", p.ack.BatchSz)
		}
		for i := range 6 {
			p.msg(i)
		}
		p.w.EndBatch(1, 6)
		p.w.Flush() // the receiver may have closed already
		f, err := p.r.Read()
		switch {
		case err == nil && f.Type == channel.FrameConfirm:
			t.Fatal("a batch of 6 messages over BATCHSZ(5) was confirmed")
		case err != nil || f.Type != channel.FrameClose:
			t.Fatalf("answer to the batch over BATCHSZ: frame %d, %v; want a CLOSE", f.Type, err)
		}
		reason, text, err := channel.DecodeClose(f.Payload)
		if err != nil || reason != channel.ReasonProtocol || !strings.Contains(text, "BATCHSZ") {
			t.Fatalf("CLOSE reason %d %q %v, want a protocol error naming BATCHSZ", reason, text, err)
		}
		waitFor(t, "the batch backed out", 10*time.Second, func() bool { d, u := r.qinfo("TARGET"); return d == 0 && u == 0 })
	})
	t.Run("silent mid-batch", func(t *testing.T) {
		p := dialHostile(t, r.port, 999_999)
		p.msg(0)
		p.msg(1)
		if err := p.w.Flush(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the partner's batch put, uncommitted", 10*time.Second, func() bool { _, u := r.qinfo("TARGET"); return u == 2 })
		// Silence: the receiver must cut the connection.
		p.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		f, err := p.r.Read()
		if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a partner silent in the middle of a batch for 30 s was not cut off (heartbeat interval agreed: %d s)", p.ack.HBInt)
		}
		if err == nil {
			t.Fatalf("frame %d from the receiver, want the connection cut", f.Type)
		}
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("read after the silence: %v", err)
		}
		waitFor(t, "the silent partner's batch backed out", 10*time.Second, func() bool { d, u := r.qinfo("TARGET"); return d == 0 && u == 0 })
		if p.ack.HBInt != 2 {
			t.Fatalf("heartbeat interval agreed: %d s, want the 2 s clamp", p.ack.HBInt)
		}
		if !logsContain(r, "inbound channel ended", "partner silent") {
			t.Fatal("no log line says the partner was silent")
		}
	})
	t.Run("slow, not silent", func(t *testing.T) {
		// Large messages two seconds apart, the batch lasting longer than
		// the silence limit (5 s): each frame shows the partner is there.
		p := dialHostile(t, r.port, 999_999)
		for i := range 4 {
			if i > 0 {
				time.Sleep(2 * time.Second)
			}
			p.msgSized(i, 256<<10)
			if err := p.w.Flush(); err != nil {
				t.Fatalf("message %d: %v (cut off while it was sending)", i, err)
			}
		}
		p.w.EndBatch(1, 4)
		p.w.Flush()
		p.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		f, err := p.r.Read()
		if err != nil || f.Type != channel.FrameConfirm {
			t.Fatalf("answer to a slow batch: frame %d, %v; want a CONFIRM", f.Type, err)
		}
		if d, u := r.qinfo("TARGET"); d != 4 || u != 0 {
			t.Fatalf("after the slow batch: depth %d, uncommitted %d", d, u)
		}
	})
}
