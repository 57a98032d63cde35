package amqp

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"
)

// testBroker is a broker for the connection's tests: it knows one user,
// declares any queue but "missing", keeps what is published and delivers
// it back to a consumer. The group's broker is tested against real
// members elsewhere; this one tests the protocol machinery alone.
type testBroker struct {
	mu        sync.Mutex
	published []Content
	closed    int // channel handlers closed
	sessions  int // sessions closed
}

func (b *testBroker) Login(user, password string, _ net.Addr) error {
	if user != "guest" || password != "guest" {
		return errors.New("wrong password")
	}
	return nil
}

func (b *testBroker) Session(c *Conn, user, vhost string) (Session, error) {
	if vhost != "/" {
		return nil, ConnectionException(ReplyNotAllowed, nil, "vhost '%s' not found", vhost)
	}
	return &testSession{b: b}, nil
}

type testSession struct{ b *testBroker }

func (s *testSession) OpenChannel(ch *Channel) (ChannelHandler, error) {
	return &testChannel{b: s.b, ch: ch}, nil
}

func (s *testSession) Close() {
	s.b.mu.Lock()
	s.b.sessions++
	s.b.mu.Unlock()
}

type testChannel struct {
	b  *testBroker
	ch *Channel
}

func (t *testChannel) Handle(m Method, content *Content) error {
	switch m := m.(type) {
	case *QueueDeclare:
		if m.Queue == "missing" {
			return ChannelException(ReplyNotFound, m, "no queue '%s' in vhost '/'", m.Queue)
		}
		return t.ch.Send(&QueueDeclareOk{Queue: m.Queue})
	case *BasicPublish:
		t.b.mu.Lock()
		t.b.published = append(t.b.published, *content)
		t.b.mu.Unlock()
		return nil
	case *BasicConsume:
		if err := t.ch.Send(&BasicConsumeOk{ConsumerTag: m.ConsumerTag}); err != nil {
			return err
		}
		t.b.mu.Lock()
		msgs := append([]Content{}, t.b.published...)
		t.b.mu.Unlock()
		for i, c := range msgs {
			// The body in three pieces, to cross frame boundaries anywhere.
			n := len(c.Body)
			d := &BasicDeliver{ConsumerTag: m.ConsumerTag, DeliveryTag: uint64(i + 1), RoutingKey: m.Queue}
			if err := t.ch.SendContent(d, &c.Header, c.Body[:n/3], c.Body[n/3:2*n/3], c.Body[2*n/3:]); err != nil {
				return err
			}
		}
		return nil
	}
	return ConnectionException(ReplyNotImplemented, m, "%s", m.Name())
}

func (t *testChannel) Close() {
	t.b.mu.Lock()
	t.b.closed++
	t.b.mu.Unlock()
}

// serve runs a listener on a free loopback port until the test ends.
func serve(t *testing.T, cfg Config, b Broker) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, nc := range conns { // a test that left a connection open
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); Serve(nc, cfg, b, log) }()
		}
	}()
	return l.Addr().String()
}

func TestClientConnectsAndClosesCleanly(t *testing.T) {
	b := &testBroker{}
	addr := serve(t, Config{}, b)
	conn, err := rmq.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	var chs []*rmq.Channel
	for range 100 {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		chs = append(chs, ch)
	}
	for _, ch := range chs[:50] {
		if err := ch.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return b.closed == 100 && b.sessions == 1 },
		"every channel handler and the session closed")
}

func TestLoginRefused(t *testing.T) {
	addr := serve(t, Config{}, &testBroker{})
	_, err := rmq.Dial("amqp://guest:wrong@" + addr + "/")
	var e *rmq.Error
	if !errors.As(err, &e) || e.Code != ReplyAccessRefused {
		t.Fatalf("dial with a wrong password: %v", err)
	}
	conn, err := rmq.DialConfig("amqp://"+addr+"/", rmq.Config{SASL: []rmq.Authentication{&rmq.AMQPlainAuth{Username: "guest", Password: "guest"}}})
	if err != nil {
		t.Fatalf("AMQPLAIN: %v", err)
	}
	conn.Close()
	_, err = rmq.Dial("amqp://guest:guest@" + addr + "/other")
	if !errors.As(err, &e) || e.Code != ReplyNotAllowed {
		t.Fatalf("unknown vhost: %v", err)
	}
}

func TestChannelExceptionLeavesTheConnectionOpen(t *testing.T) {
	addr := serve(t, Config{}, &testBroker{})
	conn, err := rmq.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	_, err = ch.QueueDeclare("missing", false, false, false, false, nil)
	var e *rmq.Error
	if !errors.As(err, &e) || e.Code != ReplyNotFound || !strings.HasPrefix(e.Reason, "NOT_FOUND - ") {
		t.Fatalf("declare of a missing queue: %v", err)
	}
	if !ch.IsClosed() {
		t.Fatal("the channel is still open after its exception")
	}
	ch2, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if q, err := ch2.QueueDeclare("q", false, false, false, false, nil); err != nil || q.Name != "q" {
		t.Fatalf("declare on a new channel: %v %v", q, err)
	}
}

// TestContentCrossesFrames publishes a large message with every property
// through small frames and has it delivered back, its body sent in pieces
// that do not line up with the frames.
func TestContentCrossesFrames(t *testing.T) {
	b := &testBroker{}
	addr := serve(t, Config{FrameMax: FrameMinSize}, b)
	conn, err := rmq.DialConfig("amqp://guest:guest@"+addr+"/", rmq.Config{FrameSize: FrameMinSize})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	body := bytes.Repeat([]byte("0123456789abcdef"), 100_001) // 1.6 MB
	pub := rmq.Publishing{
		Headers:     rmq.Table{"s": "v", "i": int32(-5), "l": int64(1 << 40), "b": true, "f": 1.5, "t": time.Unix(1e9, 0).UTC(), "a": []any{"x", int32(2)}, "n": rmq.Table{"k": "v"}, "x": []byte{1, 2}},
		ContentType: "application/octet-stream", ContentEncoding: "identity", DeliveryMode: 2, Priority: 7,
		CorrelationId: "c1", ReplyTo: "r", Expiration: "60000", MessageId: "m1", Timestamp: time.Unix(1.7e9, 0).UTC(),
		Type: "t", UserId: "guest", AppId: "app", Body: body,
	}
	if err := ch.Publish("", "q", false, false, pub); err != nil {
		t.Fatal(err)
	}
	d, err := ch.Consume("q", "ctag", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got rmq.Delivery
	select {
	case got = <-d:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	if !bytes.Equal(got.Body, body) {
		t.Fatalf("body of %d bytes came back as %d bytes", len(body), len(got.Body))
	}
	if got.ContentType != pub.ContentType || got.ContentEncoding != pub.ContentEncoding || got.DeliveryMode != 2 ||
		got.Priority != 7 || got.CorrelationId != "c1" || got.ReplyTo != "r" || got.Expiration != "60000" ||
		got.MessageId != "m1" || !got.Timestamp.Equal(pub.Timestamp) || got.Type != "t" || got.UserId != "guest" || got.AppId != "app" {
		t.Fatalf("properties changed:\nsent %+v\ngot  %+v", pub, got)
	}
	for k, v := range pub.Headers {
		if w, g := fmtValue(v), fmtValue(got.Headers[k]); w != g {
			t.Errorf("header %s: sent %s, got %s", k, w, g)
		}
	}
}

func fmtValue(v any) string {
	var b bytes.Buffer
	e := encoder{}
	e.field(v, 1)
	b.Write(e.b)
	return b.String()
}

func TestHeartbeatsKeepAnIdleConnection(t *testing.T) {
	addr := serve(t, Config{Heartbeat: time.Second}, &testBroker{})
	conn, err := rmq.DialConfig("amqp://guest:guest@"+addr+"/", rmq.Config{Heartbeat: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	closed := conn.NotifyClose(make(chan *rmq.Error, 1))
	select {
	case e := <-closed:
		t.Fatalf("idle connection closed: %v", e)
	case <-time.After(3500 * time.Millisecond):
	}
	if _, err := conn.Channel(); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
