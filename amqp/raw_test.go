package amqp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// rawClient speaks the protocol byte by byte, for what a client library
// never sends.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	fr *FrameReader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	fr := NewFrameReader(nc)
	fr.SetMax(1 << 20)
	return &rawClient{t: t, nc: nc, fr: fr}
}

func (r *rawClient) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawClient) send(channel uint16, m Method) {
	r.t.Helper()
	b, err := AppendMethodFrame(nil, channel, m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

// recv reads the next method, skipping heartbeats.
func (r *rawClient) recv() (uint16, Method) {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if f.Type == FrameHeartbeat {
			continue
		}
		m, err := DecodeMethod(f.Payload)
		if err != nil {
			r.t.Fatal(err)
		}
		return f.Channel, m
	}
}

// login sends the protocol header and logs in as guest, and returns the
// server's connection.tune.
func (r *rawClient) login() *ConnectionTune {
	r.t.Helper()
	r.write(ProtocolHeader[:])
	r.recv() // connection.start
	r.send(0, &ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	_, tune := r.recv()
	tm, ok := tune.(*ConnectionTune)
	if !ok {
		r.t.Fatalf("got %s, want connection.tune", tune.Name())
	}
	return tm
}

// open runs the handshake as guest and opens channel 1.
func (r *rawClient) open() {
	r.t.Helper()
	tm := r.login()
	r.send(0, &ConnectionTuneOk{ChannelMax: tm.ChannelMax, FrameMax: tm.FrameMax})
	r.send(0, &ConnectionOpen{VirtualHost: "/"})
	if _, m := r.recv(); m.Name() != "connection.open-ok" {
		r.t.Fatalf("open: %s", m.Name())
	}
	r.send(1, &ChannelOpen{})
	if _, m := r.recv(); m.Name() != "channel.open-ok" {
		r.t.Fatalf("channel open: %s", m.Name())
	}
}

// expectClose reads until connection.close and checks its code, answers
// close-ok, and checks that the server then closes the socket.
func (r *rawClient) expectClose(code uint16) {
	r.t.Helper()
	ch, m := r.recv()
	c, ok := m.(*ConnectionClose)
	if !ok || ch != 0 || c.ReplyCode != code {
		r.t.Fatalf("got %s %+v on channel %d, want connection.close %d", m.Name(), m, ch, code)
	}
	r.send(0, &ConnectionCloseOk{})
	r.expectEOF()
}

func (r *rawClient) expectEOF() {
	r.t.Helper()
	if _, err := io.ReadAll(r.nc); err != nil {
		r.t.Fatalf("the server did not close the socket: %v", err)
	}
}

func TestBadInputClosesWithTheRightCode(t *testing.T) {
	addr := serve(t, Config{}, &testBroker{})
	frame := func(typ uint8, ch uint16, payload []byte) []byte {
		b := appendFrameHeader(nil, typ, ch, len(payload))
		return append(append(b, payload...), FrameEnd)
	}
	for _, c := range []struct {
		name string
		bad  func(r *rawClient)
		code uint16
	}{
		{"method on an unopened channel", func(r *rawClient) { r.send(9, &QueueDeclare{Queue: "q"}) }, ReplyChannelError},
		{"channel over channel_max", func(r *rawClient) { r.send(4000, &ChannelOpen{}) }, ReplyChannelError},
		{"channel opened twice", func(r *rawClient) { r.send(1, &ChannelOpen{}) }, ReplyChannelError},
		{"body without a publish", func(r *rawClient) { r.write(frame(FrameBody, 1, []byte("x"))) }, ReplyUnexpectedFrame},
		{"header without a publish", func(r *rawClient) { r.write(frame(FrameHeader, 1, make([]byte, 14))) }, ReplyUnexpectedFrame},
		{"method inside a content", func(r *rawClient) {
			r.send(1, &BasicPublish{RoutingKey: "q"})
			r.send(1, &BasicQos{})
		}, ReplyUnexpectedFrame},
		{"body longer than its header", func(r *rawClient) {
			r.send(1, &BasicPublish{RoutingKey: "q"})
			h, _ := AppendHeaderFrame(nil, 1, &ContentHeader{ClassID: 60, BodySize: 2})
			r.write(h)
			r.write(frame(FrameBody, 1, []byte("xyz")))
		}, ReplyFrameError},
		{"frame over frame_max", func(r *rawClient) { // refused at its header
			r.write(appendFrameHeader(nil, FrameBody, 1, DefaultFrameMax))
		}, ReplyFrameError},
		{"bad frame end", func(r *rawClient) { r.write([]byte{FrameHeartbeat, 0, 0, 0, 0, 0, 0, 0xAB}) }, ReplyFrameError},
		{"unknown frame type", func(r *rawClient) { r.write(frame(7, 0, nil)) }, ReplyFrameError},
		{"heartbeat on a channel", func(r *rawClient) { r.write(frame(FrameHeartbeat, 1, nil)) }, ReplyFrameError},
		{"malformed method", func(r *rawClient) { r.write(frame(FrameMethod, 1, []byte{0, 50, 0, 10, 0})) }, ReplySyntaxError},
		{"unknown method", func(r *rawClient) { r.write(frame(FrameMethod, 1, []byte{0, 50, 0, 99})) }, ReplyNotImplemented},
		{"connection method on a channel", func(r *rawClient) { r.send(1, &ConnectionTuneOk{}) }, ReplyCommandInvalid},
		{"start-ok after open", func(r *rawClient) { r.send(0, &ConnectionStartOk{}) }, ReplyCommandInvalid},
		{"close-ok of an open channel", func(r *rawClient) { r.send(1, &ChannelCloseOk{}) }, ReplyCommandInvalid},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := dialRaw(t, addr)
			r.open()
			c.bad(r)
			r.expectClose(c.code)
		})
	}
}

func TestOversizedContentClosesTheChannelOnly(t *testing.T) {
	addr := serve(t, Config{MaxMessageSize: 10}, &testBroker{})
	r := dialRaw(t, addr)
	r.open()
	r.send(1, &BasicPublish{RoutingKey: "q"})
	h, _ := AppendHeaderFrame(nil, 1, &ContentHeader{ClassID: 60, BodySize: 11})
	r.write(h)
	r.write(AppendBodyFrames(nil, 1, FrameMinSize, make([]byte, 11)))
	ch, m := r.recv()
	if c, ok := m.(*ChannelClose); !ok || ch != 1 || c.ReplyCode != ReplyPreconditionFailed {
		t.Fatalf("got %s %+v on %d, want channel.close 406", m.Name(), m, ch)
	}
	r.send(1, &ChannelCloseOk{})
	// The channel number is free again and the connection works.
	r.send(1, &ChannelOpen{})
	if _, m := r.recv(); m.Name() != "channel.open-ok" {
		t.Fatalf("reopen: %s", m.Name())
	}
}

func TestHandshakeRefusals(t *testing.T) {
	addr := serve(t, Config{HandshakeTimeout: 300 * time.Millisecond}, &testBroker{})
	t.Run("wrong protocol header", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.write([]byte("AMQP\x01\x01\x00\x09"))
		got, _ := io.ReadAll(r.nc)
		if !bytes.Equal(got, ProtocolHeader[:]) {
			t.Fatalf("answer % x, want the supported header then a close", got)
		}
	})
	t.Run("silent client", func(t *testing.T) {
		r := dialRaw(t, addr)
		t0 := time.Now()
		got, err := io.ReadAll(r.nc)
		if err != nil || len(got) != 0 || time.Since(t0) > 20*time.Second {
			t.Fatalf("silent client: read %q, %v after %v", got, err, time.Since(t0))
		}
	})
	t.Run("frame_max under the minimum", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.login()
		r.send(0, &ConnectionTuneOk{FrameMax: 100})
		r.expectClose(ReplyNotAllowed)
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		r := dialRaw(t, addr)
		r.write(ProtocolHeader[:])
		r.recv()
		r.send(0, &ConnectionStartOk{Mechanism: "EXTERNAL", Locale: "en_US"})
		r.expectClose(ReplyAccessRefused)
	})
}

func TestMissedHeartbeatsDisconnect(t *testing.T) {
	addr := serve(t, Config{}, &testBroker{})
	r := dialRaw(t, addr)
	r.login()
	r.send(0, &ConnectionTuneOk{Heartbeat: 1})
	r.send(0, &ConnectionOpen{VirtualHost: "/"})
	r.recv()
	// Silent from here: the server sends heartbeats, then hangs up after
	// two intervals without a frame from us.
	t0 := time.Now()
	var beats int
	for {
		f, err := r.fr.ReadFrame()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if f.Type == FrameHeartbeat {
			beats++
		}
	}
	if d := time.Since(t0); d < 2*time.Second || beats == 0 {
		t.Fatalf("disconnected after %v having sent %d heartbeats", d, beats)
	}
}

// TestPendingContentBounded: contents that arrive unfinished on many
// channels at once count together against MaxPendingContent; beyond it the
// connection ends with RESOURCE_ERROR instead of the server growing.
func TestPendingContentBounded(t *testing.T) {
	addr := serve(t, Config{MaxMessageSize: 3000, MaxPendingContent: 5000}, &testBroker{})
	r := dialRaw(t, addr)
	r.open()
	for ch := uint16(2); ch <= 3; ch++ {
		r.send(ch, &ChannelOpen{})
		if _, m := r.recv(); m.Name() != "channel.open-ok" {
			t.Fatalf("open %d: %s", ch, m.Name())
		}
	}
	for ch := uint16(1); ch <= 3; ch++ {
		r.send(ch, &BasicPublish{RoutingKey: "q"})
		h, _ := AppendHeaderFrame(nil, ch, &ContentHeader{ClassID: 60, BodySize: 3000})
		r.write(h)
		r.write(AppendBodyFrames(nil, ch, FrameMinSize, make([]byte, 2000))) // 2000 of 3000 each: 6000 in all
	}
	r.expectClose(ReplyResourceError)
}
