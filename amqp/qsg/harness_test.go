package qsg_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/qsg"
	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
)

// The members are this test binary acting as qmgr; the broker runs in the
// test process (as it runs in a member's listener process) and serves a
// loopback listener that amqp091-go, an unmodified client, connects to.
func TestMain(m *testing.M) {
	testproc.Register("qmgr", func(args []string) int { return cli.Main(args, os.Stdout, os.Stderr) })
	testproc.Main(m)
}

// env is a one-member group with a broker serving AMQP on loopback.
type env struct {
	t      *testing.T
	g      *groupproc.Group
	broker *qsg.Broker
	ln     net.Listener
	url    string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn // the server's sides, closed at the end
}

func newEnv(t *testing.T) *env { return newEnvWith(t, func(*qsg.Config) {}) }

// newEnvWith is newEnv with the broker's configuration changed by opt.
func newEnvWith(t *testing.T, opt func(*qsg.Config)) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	cfg := group.Config{Name: "AQ", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 64 << 20}
	g, err := groupproc.New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	g.Command = func(args ...string) *exec.Cmd {
		c := exec.Command(os.Args[0], args...)
		c.Env = append(os.Environ(), testproc.RoleEnv("qmgr"))
		return c
	}
	g.StartFlags = []string{"--heartbeat", "20ms", "--no-chinit"}
	e := &env{t: t, g: g}
	t.Cleanup(func() {
		e.close()
		g.KillAll()
		if t.Failed() {
			g.DumpLogs(t.Logf, 20000)
		}
	})
	if _, err := g.Start("QM1"); err != nil {
		t.Fatal(err)
	}
	bc := qsg.Config{Connect: mq.ConnectOptions{Group: cfg.Name, DataDir: cfg.DataDir, CFDir: cfg.CFDir, QMgr: "QM1"},
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	opt(&bc)
	e.broker, err = qsg.New(bc)
	if err != nil {
		t.Fatal(err)
	}
	e.ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "amqp://guest:guest@" + e.ln.Addr().String() + "/"
	e.wg.Add(1)
	go e.serve()
	return e
}

// serve accepts connections until the listener closes.
func (e *env) serve() {
	defer e.wg.Done()
	log := slog.New(slog.NewTextHandler(testWriter{e.t}, nil))
	for {
		nc, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.mu.Lock()
		e.conns = append(e.conns, nc)
		e.mu.Unlock()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			amqp.Serve(nc, amqp.Config{Heartbeat: 10 * time.Second}, e.broker, log)
		}()
	}
}

func (e *env) close() {
	if e.ln != nil {
		e.ln.Close()
	}
	e.mu.Lock()
	for _, nc := range e.conns {
		nc.Close()
	}
	e.mu.Unlock()
	if e.broker != nil {
		e.broker.Close() // waits for every session to end
		// Every channel's and consumer's group connection was given back.
		if n := e.broker.GroupConns(); n != 0 {
			e.t.Errorf("%d group connections still held after every client connection ended", n)
		}
		e.broker = nil
	}
	e.wg.Wait()
}

// dial connects a client.
func (e *env) dial() *rmq.Connection {
	e.t.Helper()
	c, err := rmq.Dial(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	// Close, but not waiting for ever: a server holding the connection's
	// reader (flow control) would not answer until the harness closes its
	// side. (Not CloseDeadline: amqp091-go then shuts down while frames may
	// still come, and panics on a connection.blocked after its shutdown.)
	e.t.Cleanup(func() {
		done := make(chan struct{})
		go func() { c.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	return c
}

// channel opens a channel on a new connection.
func (e *env) channel() *rmq.Channel {
	e.t.Helper()
	ch, err := e.dial().Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	return ch
}

// mqsc runs a command through the member.
func (e *env) mqsc(cmd string) string {
	e.t.Helper()
	out, err := e.g.MQSC("QM1", cmd)
	if err != nil {
		e.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return out
}

// testWriter sends the broker's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// next receives a delivery or fails after a while.
func next(t *testing.T, ds <-chan rmq.Delivery) rmq.Delivery {
	t.Helper()
	select {
	case d, ok := <-ds:
		if !ok {
			t.Fatal("deliveries channel closed")
		}
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20s")
	}
	return rmq.Delivery{}
}

// none checks that no delivery arrives for a short while.
func none(t *testing.T, ds <-chan rmq.Delivery, within time.Duration) {
	t.Helper()
	select {
	case d := <-ds:
		t.Fatalf("unexpected delivery %q (tag %d)", d.Body, d.DeliveryTag)
	case <-time.After(within):
	}
}

// code is an AMQP error's reply code, 0 when err is none.
func code(err error) int {
	var e *rmq.Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err == nil || errors.Is(err, io.EOF) {
		return 0
	}
	return -1
}

// rawConn speaks AMQP with the package's codec, for a client that stops
// reading at a chosen frame (amqp091-go reads and buffers everything).
type rawConn struct {
	t  *testing.T
	nc net.Conn
	fr *amqp.FrameReader
}

func dialRawAMQP(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(60 * time.Second))
	r := &rawConn{t: t, nc: nc, fr: amqp.NewFrameReader(nc)}
	r.fr.SetMax(4 << 20)
	r.write(amqp.ProtocolHeader[:])
	r.recv() // connection.start
	r.send(0, &amqp.ConnectionStartOk{Mechanism: "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	tune, ok := r.recv().(*amqp.ConnectionTune)
	if !ok {
		t.Fatal("no connection.tune")
	}
	r.send(0, &amqp.ConnectionTuneOk{ChannelMax: tune.ChannelMax, FrameMax: tune.FrameMax})
	r.send(0, &amqp.ConnectionOpen{VirtualHost: "/"})
	r.expect("connection.open-ok")
	r.send(1, &amqp.ChannelOpen{})
	r.expect("channel.open-ok")
	return r
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawConn) send(ch uint16, m amqp.Method) {
	r.t.Helper()
	b, err := amqp.AppendMethodFrame(nil, ch, m)
	if err != nil {
		r.t.Fatal(err)
	}
	r.write(b)
}

// recv reads the next method, skipping heartbeats and contents.
func (r *rawConn) recv() amqp.Method {
	r.t.Helper()
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		if f.Type != amqp.FrameMethod {
			continue
		}
		m, err := amqp.DecodeMethod(f.Payload)
		if err != nil {
			r.t.Fatal(err)
		}
		return m
	}
}

// expect reads methods until one named name (deliveries skipped).
func (r *rawConn) expect(name string) amqp.Method {
	r.t.Helper()
	for {
		if m := r.recv(); m.Name() == name {
			return m
		}
	}
}

// TestReview2TxCommitOkBeforeAckCarriedOut: a consumer's delivery is acked
// in a transaction and tx.commit-ok comes back; then the member the broker
// is attached through is SIGKILLed. The acked message must be gone (a
// committed transaction is durable; the issue: "a transaction is one unit
// of work"). Here txMethod commits the channel's unit of work and only
// posts the acks to the consumer's goroutine (settleTaken), which carries
// them out later, after commit-ok (gathered in c.acked, or not at all
// while the goroutine is busy writing deliveries): the member's death
