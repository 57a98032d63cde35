package cli

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/xmit"
)

// anonPeer is an anonymous peer: it connects to port and opens channel
// ch as queue manager qm without knowing the channel's secret (its AUTH
// carries no proof). It returns the first frame answering its AUTH (or
// its HELLO, if that is not a CHALLENGE).
func anonPeer(t *testing.T, port int, ch, qm string) (*hostilePeer, channel.Frame) {
	t.Helper()
	return openPeer(t, port, ch, qm, "", 1)
}

// msgTo queues a MSG frame for queue q of queue manager qm with
// correlation id correl.
func (p *hostilePeer) msgTo(qm, q string, correl [24]byte) {
	b, err := xmit.Append(nil, &xmit.Header{DestQMgr: qm, DestQueue: q, CorrelID: correl, PutTime: time.Now().UnixNano()}, nil, []byte("forged"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.w.MsgV([][]byte{b}, len(b))
}

// syncDepth is the number of records on the sync queue of g.
func syncDepth(t *testing.T, g *testGroup) int64 {
	d, _ := g.qinfo(channel.SyncQueue)
	return d
}

// expectRefused reads the answer to what p sent: a CLOSE, or the
// connection ended; anything else fails the test with what.
func expectRefused(t *testing.T, p *hostilePeer, f channel.Frame, what string) {
	t.Helper()
	if f.Type != channel.FrameClose {
		t.Fatalf("%s: answered with frame %d, want a CLOSE", what, f.Type)
	}
	_, text, err := channel.DecodeClose(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, "TG") || strings.Contains(text, "TO.") {
		t.Fatalf("%s: the refusal %q names the group or a channel", what, text)
	}
}

// authRemote is a group of one, RQM, listening on r.port: receiver
// channel TO.R (BATCHSZ(5)), application queue TARGET and transmission
// queue XQ.
func authRemote(t *testing.T) *testGroup {
	r := receiverGroup(t, "BATCHSZ(5)")
	r.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ)")
	r.mqsc("DEFINE QLOCAL(DLQ)")
	r.mqsc("ALTER QMGR DEADQ(DLQ)")
	return r
}

// TestChannelAnonymousPeer: a peer that does not know the channel's
// secret cannot put messages anywhere (an application queue, the sync
// queue, a transmission queue), cannot move the receiver's last batch
// with an empty END_BATCH, and is told nothing about the group; each
// refusal is logged with the peer's address.
func TestChannelAnonymousPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	r := authRemote(t)
	t.Run("inject", func(t *testing.T) {
		p, f := anonPeer(t, r.port, "TO.R", "EVIL")
		if f.Type == channel.FrameHelloAck {
			ack, _ := channel.DecodeHelloAck(f.Payload)
			var forged [24]byte
			forged[0] = 'S'
			copy(forged[1:], "TO.S")
			p.msgTo("RQM", "TARGET", [24]byte{})
			p.msgTo("RQM", channel.SyncQueue, forged)
			p.msgTo("RQM", "XQ", [24]byte{})
			p.w.EndBatch(ack.LastBatch+1, 3)
			p.w.Flush()
			f, _ = p.r.Read()
		}
		if d := r.depth("TARGET"); d != 0 {
			t.Errorf("an anonymous peer put %d messages on TARGET", d)
		}
		if d := r.depth("XQ"); d != 0 {
			t.Errorf("an anonymous peer put %d messages on transmission queue XQ", d)
		}
		if d := syncDepth(t, r); d != 0 {
			t.Errorf("an anonymous peer left %d records on %s", d, channel.SyncQueue)
		}
		expectRefused(t, p, f, "an anonymous HELLO")
		if !logsContain(r, "inbound channel refused", "partner=EVIL", "remote=127.0.0.1", "proved no secret") {
			t.Error("the refusal is not logged with the peer's address and why")
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		p, f := anonPeer(t, r.port, "TO.R", "EVIL")
		if f.Type == channel.FrameHelloAck {
			ack, _ := channel.DecodeHelloAck(f.Payload)
			p.w.EndBatch(ack.LastBatch+1, 0)
			p.w.Flush()
			f, _ = p.r.Read()
		}
		if st, ok := r.chStatus("TO.R"); ok && st.LastBatch != 0 {
			t.Errorf("an empty batch moved the receiver's last batch to %d", st.LastBatch)
		}
		expectRefused(t, p, f, "an anonymous empty batch")
	})
	t.Run("wrong secret", func(t *testing.T) {
		p, f := openPeer(t, r.port, "TO.R", "EVIL", "not-the-secret-0123456789", 1)
		expectNotAuthorised(t, p, f, "a HELLO with the wrong secret")
		if !logsContain(r, "inbound channel refused", "partner=EVIL", "wrong proof") {
			t.Error("the refusal of a wrong proof is not logged")
		}
		if out := r.mqsc("DISPLAY QMGR INUNAUTH"); !strings.Contains(out, "INUNAUTH(") || strings.Contains(out, "INUNAUTH(0)") {
			t.Errorf("the refusals are not counted in DISPLAY QMGR:\n%s", out)
		}
	})
	t.Run("unknown channel", func(t *testing.T) {
		p, f := openPeer(t, r.port, "NOSUCH", "EVIL", testAuthKey, 1)
		expectNotAuthorised(t, p, f, "a HELLO for an unknown channel")
	})
	t.Run("protocol version 1", func(t *testing.T) {
		// A HELLO of version 1 (which has no authentication) is answered
		// in version 1, so that the old partner says why.
		nc, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(r.port))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		hello := make([]byte, 8+168)
		copy(hello, []byte{'Q', 'C', 1, channel.FrameHello, 168})
		copy(hello[8:], "TO.R")
		copy(hello[8+48:], "OLD")
		binary.LittleEndian.PutUint32(hello[8+144:], 50)
		hello[8+157], hello[8+158] = 1, 1
		if _, err := nc.Write(hello); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		hdr := make([]byte, 8)
		if _, err := io.ReadFull(nc, hdr); err != nil {
			t.Fatalf("answer to a version 1 HELLO: %v", err)
		}
		if hdr[2] != 1 || hdr[3] != channel.FrameClose {
			t.Fatalf("answer to a version 1 HELLO: header % x, want a version 1 CLOSE", hdr)
		}
		payload := make([]byte, binary.LittleEndian.Uint32(hdr[4:]))
		if _, err := io.ReadFull(nc, payload); err != nil {
			t.Fatal(err)
		}
		reason, text, err := channel.DecodeClose(payload)
		if err != nil || reason != channel.ReasonProtocol || !strings.Contains(text, "protocol version 1 is refused") || !strings.Contains(text, "upgrade") {
			t.Fatalf("CLOSE %d %q %v", reason, text, err)
		}
	})
}

// expectNotAuthorised checks that f, the answer to p's AUTH, is a CLOSE
// saying only "not authorised".
func expectNotAuthorised(t *testing.T, p *hostilePeer, f channel.Frame, what string) {
	t.Helper()
	expectRefused(t, p, f, what)
	reason, text, _ := channel.DecodeClose(f.Payload)
	if reason != channel.ReasonNotAuthorized || text != "not authorised" {
		t.Fatalf("%s: CLOSE reason %d %q, want %d \"not authorised\"", what, reason, text, channel.ReasonNotAuthorized)
	}
}

// TestChannelPartnerLimits: an authenticated partner may put to
// application queues only (the sync queue and transmission queues are
// refused: their messages are dead-lettered, not put), may not send an
// empty batch, and must be the queue manager (or group) RQMNAME names.
func TestChannelPartnerLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	r := authRemote(t)
	t.Run("secret not shown", func(t *testing.T) {
		out := r.mqsc("DISPLAY CHANNEL(TO.R)")
		if strings.Contains(out, testAuthKey) || !strings.Contains(out, "AUTHKEY(SET)") {
			t.Fatalf("DISPLAY CHANNEL shows the secret, or not that it is set:\n%s", out)
		}
		if logsContain(r, testAuthKey) {
			t.Fatal("the member's log holds the channel's secret")
		}
	})
	t.Run("targets", func(t *testing.T) {
		p := dialHostile(t, r.port, 1)
		var forged [24]byte
		forged[0] = 'S'
		copy(forged[1:], "TO.S")
		p.msgTo("RQM", "TARGET", [24]byte{})
		p.msgTo("RQM", channel.SyncQueue, forged)
		p.msgTo("RQM", "XQ", [24]byte{})
		p.msgTo("RQM", "SYSTEM.ANY.QUEUE", [24]byte{})
		p.w.EndBatch(p.ack.LastBatch+1, 4)
		p.w.Flush()
		f, err := p.r.Read()
		if err != nil || f.Type != channel.FrameConfirm {
			t.Fatalf("answer to the batch: frame %d, %v; want a CONFIRM", f.Type, err)
		}
		if d := r.depth("TARGET"); d != 1 {
			t.Errorf("TARGET depth %d, want 1", d)
		}
		if d := r.depth("XQ"); d != 0 {
			t.Errorf("the partner put %d messages on transmission queue XQ", d)
		}
		if d := syncDepth(t, r); d != 1 {
			t.Errorf("%d records on %s, want the receiver's own", d, channel.SyncQueue)
		}
		if d := r.depth("DLQ"); d != 3 {
			t.Errorf("%d messages dead-lettered, want 3", d)
		}
	})
	t.Run("empty batch", func(t *testing.T) {
		p := dialHostile(t, r.port, 1)
		p.w.EndBatch(p.ack.LastBatch+1, 0)
		p.w.Flush()
		f, err := p.r.Read()
		if err != nil || f.Type != channel.FrameClose {
			t.Fatalf("answer to an empty batch: frame %d, %v; want a CLOSE", f.Type, err)
		}
		if reason, text, _ := channel.DecodeClose(f.Payload); reason != channel.ReasonProtocol || !strings.Contains(text, "empty batch") {
			t.Fatalf("CLOSE %d %q, want a protocol error naming the empty batch", reason, text)
		}
		waitFor(t, "the channel ended", 10*time.Second, func() bool { st, _ := r.chStatus("TO.R"); return st.State != channel.Running })
		if st, _ := r.chStatus("TO.R"); st.LastBatch != p.ack.LastBatch {
			t.Errorf("an empty batch moved the receiver's last batch from %d to %d", p.ack.LastBatch, st.LastBatch)
		}
	})
	t.Run("RQMNAME", func(t *testing.T) {
		r.mqsc("DEFINE CHANNEL(TO.Q) CHLTYPE(RCVR) RQMNAME(GOODQM) AUTHKEY('" + testAuthKey + "')")
		r.mqsc("DEFINE CHANNEL(TO.H) CHLTYPE(RCVR) RQMNAME(HG) AUTHKEY('" + testAuthKey + "')")
		p, f := openPeer(t, r.port, "TO.Q", "EVIL", testAuthKey, 1)
		expectNotAuthorised(t, p, f, "a partner other than RQMNAME")
		if !logsContain(r, "inbound channel refused", "partner=EVIL", "RQMNAME(GOODQM)") {
			t.Error("the RQMNAME refusal is not logged")
		}
		if _, f := openPeer(t, r.port, "TO.Q", "GOODQM", testAuthKey, 1); f.Type != channel.FrameHelloAck {
			t.Fatalf("RQMNAME's queue manager: answered with frame %d", f.Type)
		}
		if _, f := openPeer(t, r.port, "TO.H", "ANYQM", testAuthKey, 1); f.Type != channel.FrameHelloAck {
			t.Fatalf("a queue manager of RQMNAME's group: answered with frame %d", f.Type)
		}
	})
}

// TestChannelAnonymousAdoption: a HELLO that did not authenticate does not
// evict the running instance of its channel (adoption is for the
// authenticated partner reconnecting).
func TestChannelAnonymousAdoption(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	r := authRemote(t)
	g := sendingSide(t, r)
	g.mqsc("START CHANNEL(TO.R)")
	putSeq(t, g, "QM1", 10)
	waitFor(t, "the channel delivering", 30*time.Second, func() bool { return r.depth("TARGET") == 10 })
	before, ok := r.chStatus("TO.R")
	if !ok || before.State != channel.Running {
		t.Fatalf("receiver entry %+v, %v: want running", before, ok)
	}
	for _, key := range []string{"", "not-the-secret-0123456789"} {
		p, f := openPeer(t, r.port, "TO.R", "EVIL", key, 1)
		after, _ := r.chStatus("TO.R")
		if after.Conn != before.Conn || after.RQMName != before.RQMName {
			t.Errorf("a HELLO without the secret (key %q) took the running channel over: entry %+v, was %+v", key, after, before)
		}
		expectNotAuthorised(t, p, f, "a HELLO without the secret for a running channel")
	}
	if logsContain(r, "adopted by a new instance") {
		t.Error("the running instance was adopted for an anonymous HELLO")
	}
	putRange(t, g, "QM1", 10, 10)
	waitFor(t, "the channel still delivering", 30*time.Second, func() bool { return r.depth("TARGET") == 20 })
	checkSeq(t, r, 20)
}
