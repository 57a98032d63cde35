package listen

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/internal/amqpprobe"
)

// refuseBroker refuses every login: the listener's tests need only the
// connection.start that precedes it.
type refuseBroker struct{}

func (refuseBroker) Login(user, password string, remote net.Addr) error {
	return amqp.ConnectionException(amqp.ReplyAccessRefused, nil, "test broker refuses everyone")
}

func (refuseBroker) Session(c *amqp.Conn, user, vhost string) (amqp.Session, error) {
	return nil, amqp.ConnectionException(amqp.ReplyNotAllowed, nil, "test broker")
}

// logBuf is a log that tests read.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// served is a running Listener: its log, and the stop that cancels Serve
// and waits for it to return.
type served struct {
	l    *Listener
	log  *logBuf
	stop func() error
}

// serve runs l until the test ends (or stop).
func serve(t *testing.T, l *Listener, log *logBuf) *served {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("Serve did not return within 30s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return &served{l: l, log: log, stop: stop}
}

// start listens with cfg and serves.
func start(t *testing.T, cfg Config) *served {
	t.Helper()
	lb := &logBuf{}
	l, err := Listen(cfg, refuseBroker{}, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, l, lb)
}

func dial(t *testing.T, a net.Addr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", a.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBothPortsAnswer: a client of the member's port and one of the
// generic port each get connection.start.
func TestBothPortsAnswer(t *testing.T) {
	s := start(t, Config{Addr: "127.0.0.1:0", GenericAddr: "127.0.0.1:0"})
	for _, a := range []net.Addr{s.l.Addr(), s.l.GenericAddr()} {
		if err := amqpprobe.Start(dial(t, a)); err != nil {
			t.Fatalf("%v: %v", a, err)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestGenericPortShared: two listeners share one generic port.
func TestGenericPortShared(t *testing.T) {
	a := start(t, Config{GenericAddr: "127.0.0.1:0"})
	b := start(t, Config{GenericAddr: a.l.GenericAddr().String()})
	if err := amqpprobe.Start(dial(t, b.l.GenericAddr())); err != nil {
		t.Fatal(err)
	}
	a.stop()
	// Only b holds the port now: every client lands on it.
	for range 4 {
		if err := amqpprobe.Start(dial(t, b.l.GenericAddr())); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMaxConnections: over the cap a connection is closed at once with a
// log line; a connection that ends frees its place.
func TestMaxConnections(t *testing.T) {
	s := start(t, Config{Addr: "127.0.0.1:0", MaxConnections: 2, AMQP: amqp.Config{HandshakeTimeout: time.Minute}})
	a, b := dial(t, s.l.Addr()), dial(t, s.l.Addr())
	for _, c := range []net.Conn{a, b} {
		if err := amqpprobe.Start(c); err != nil {
			t.Fatal(err)
		}
	}
	over := dial(t, s.l.Addr())
	if err := amqpprobe.Closed(over, 10*time.Second); err != nil {
		t.Fatalf("a third connection over MaxConnections 2: %v", err)
	}
	waitFor(t, "the refused connection logged", func() bool {
		return strings.Contains(s.log.String(), "connection refused: the listener holds its most connections")
	})
	a.Close()
	waitFor(t, "the closed connection untracked", func() bool { return s.l.Conns() == 1 })
	if err := amqpprobe.Start(dial(t, s.l.Addr())); err != nil {
		t.Fatalf("a connection after one ended: %v", err)
	}
}

// TestShutdownClosesEverything: when Serve's context ends, the
// listeners and every connection (mid-handshake, silent, TLS-less) are
// closed, Serve returns, and no goroutine is left.
func TestShutdownClosesEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	s := start(t, Config{Addr: "127.0.0.1:0", GenericAddr: "127.0.0.1:0", AMQP: amqp.Config{HandshakeTimeout: time.Hour}})
	var conns []net.Conn
	for i := range 6 {
		a := s.l.Addr()
		if i%2 == 1 {
			a = s.l.GenericAddr()
		}
		c := dial(t, a)
		if i < 4 {
			if err := amqpprobe.Start(c); err != nil {
				t.Fatal(err)
			}
		}
		conns = append(conns, c)
	}
	waitFor(t, "six connections tracked", func() bool { return s.l.Conns() == 6 })
	addrs := []net.Addr{s.l.Addr(), s.l.GenericAddr()}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		if err := amqpprobe.Closed(c, 10*time.Second); err != nil {
			t.Fatalf("connection %d after shutdown: %v", i, err)
		}
	}
	for _, a := range addrs {
		if c, err := net.Dial("tcp", a.String()); err == nil {
			c.Close()
			t.Fatalf("%v still accepts after shutdown", a)
		}
	}
	if n := s.l.Conns(); n != 0 {
		t.Fatalf("%d connections tracked after shutdown", n)
	}
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d", base), func() bool { return runtime.NumGoroutine() <= base })
}

// emfileListener fails its first n accepts with EMFILE.
type emfileListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	fail := l.n > 0
	l.n--
	l.mu.Unlock()
	if fail {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptSurvivesEMFILE: accept failing with EMFILE (out of
// descriptors) is logged and retried; the loop goes on and serves the
// next client.
func TestAcceptSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Addr: "127.0.0.1:0"}.WithDefaults()
	lb := &logBuf{}
	l := newListener(cfg, refuseBroker{}, slog.New(slog.NewTextHandler(lb, nil)), nil, &emfileListener{Listener: ln, n: 5}, nil)
	s := serve(t, l, lb)
	if err := amqpprobe.Start(dial(t, ln.Addr())); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(lb.String(), "accept failed; retrying"); n != 5 || !strings.Contains(lb.String(), "too many open files") {
		t.Fatalf("%d accept failures logged, want 5 naming EMFILE:\n%s", n, lb)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestAcceptSurvivesRealEMFILE: the process really runs out of
// descriptors while a client waits; once some are free again the client
// is served.
func TestAcceptSurvivesRealEMFILE(t *testing.T) {
	s := start(t, Config{Addr: "127.0.0.1:0"})
	// Lower the descriptor limit near what the process has open, so
	// that using it up takes a few hundred files, not the hard limit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = min(lim.Cur, uint64(len(open)+256))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
	}
	defer release()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		held = append(held, f)
	}
	// One descriptor for the client's socket; none for the accept.
	held[len(held)-1].Close()
	held = held[:len(held)-1]
	c, err := net.Dial("tcp", s.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitFor(t, "an accept failing with EMFILE", func() bool { return strings.Contains(s.log.String(), "too many open files") })
	release()
	if err := amqpprobe.Start(c); err != nil {
		t.Fatalf("the client that waited through EMFILE: %v", err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// into dir and returns their paths and the pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qmgr amqp test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "amqp.pem"), filepath.Join(dir, "amqp.key")
	for _, f := range []struct {
		path, typ string
		b         []byte
	}{{certFile, "CERTIFICATE", der}, {keyFile, "EC PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.b}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS: a TLS client gets connection.start; a client that connects
// and sends nothing (no ClientHello) holds no one up and is closed when
// the handshake timeout ends; a plain AMQP client on the TLS port is
// refused.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	s := start(t, Config{Addr: "127.0.0.1:0", TLSCertFile: certFile, TLSKeyFile: keyFile,
		AMQP: amqp.Config{HandshakeTimeout: 500 * time.Millisecond}})
	silent := dial(t, s.l.Addr())
	c, err := tls.Dial("tcp", s.l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := amqpprobe.Start(c); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	if err := amqpprobe.Closed(silent, 10*time.Second); err != nil {
		t.Fatalf("silent client on the TLS port: %v", err)
	}
	waitFor(t, "the TLS handshake timeout logged", func() bool { return strings.Contains(s.log.String(), "TLS handshake failed") })
	if err := amqpprobe.Start(dial(t, s.l.Addr())); err == nil {
		t.Fatal("a plain AMQP client got connection.start on the TLS port")
	}
}

// TestSilentClient: a plain client that connects and sends nothing does
// not hold up the next, and is closed after the handshake timeout.
func TestSilentClient(t *testing.T) {
	s := start(t, Config{Addr: "127.0.0.1:0", AMQP: amqp.Config{HandshakeTimeout: 300 * time.Millisecond}})
	silent := dial(t, s.l.Addr())
	if err := amqpprobe.Start(dial(t, s.l.Addr())); err != nil {
		t.Fatal(err)
	}
	if err := amqpprobe.Closed(silent, 10*time.Second); err != nil {
		t.Fatalf("silent client: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Addr: "127.0.0.1:5672", GenericAddr: "127.0.0.1:5673"}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.MaxConnections != DefaultMaxConnections || good.AMQP.HandshakeTimeout != amqp.DefaultHandshakeTimeout {
		t.Fatalf("defaults: %+v", good)
	}
	for _, c := range []Config{
		{},
		{Addr: "5672"},
		{Addr: "localhost:5672"},
		{Addr: "127.0.0.1:70000"},
		{GenericAddr: "127.0.0.1:x"},
		{Addr: "127.0.0.1:5672", GenericAddr: "127.0.0.1:5672"},
		{Addr: "127.0.0.1:5672", TLSCertFile: "c.pem"},
		{Addr: "127.0.0.1:5672", TLSKeyFile: "k.pem"},
		{Addr: "127.0.0.1:5672", MaxConnections: -1},
		{Addr: "127.0.0.1:5672", AMQP: amqp.Config{FrameMax: 10}},
	} {
		if err := c.WithDefaults().Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
	if _, err := Listen(Config{Addr: "127.0.0.1:0", TLSCertFile: "/nonexistent.pem", TLSKeyFile: "/nonexistent.key"}, refuseBroker{}, nil); err == nil {
		t.Fatal("Listen with a missing certificate: no error")
	}
}

// TestRun: Run refuses an invalid configuration and a port it cannot
// listen on, serves until its context ends, and then returns nil.
func TestRun(t *testing.T) {
	if err := Run(context.Background(), Config{}, refuseBroker{}, nil); !errors.Is(err, ErrConfig) {
		t.Fatalf("Run without an address: %v, want ErrConfig", err)
	}
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := Run(context.Background(), Config{Addr: held.Addr().String()}, refuseBroker{}, nil); err == nil {
		t.Fatal("Run on a port another listener holds: no error")
	}
	addr := held.Addr().String()
	held.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Addr: addr}, refuseBroker{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	waitFor(t, "Run answering on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		return amqpprobe.Start(c) == nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after its context ended: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
