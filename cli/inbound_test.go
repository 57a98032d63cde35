package cli

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
)

// listening starts member name of g with a channel initiator listening on
// a free port (and extra flags), and waits until it listens.
func (g *testGroup) listening(name string, extra ...string) int {
	g.t.Helper()
	port := freePort(g.t)
	g.startWith(name, append([]string{"--port", strconv.Itoa(port)}, extra...)...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(g.dir, name+".log"))
		if strings.Contains(string(b), `msg="channel initiator started" chinit=`+name) {
			return port
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("the channel initiator of %s does not listen:\n%s", name, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitClosed waits (at most a minute) for the other end to close c and
// says how long that took.
func waitClosed(t *testing.T, c net.Conn, what string) time.Duration {
	t.Helper()
	t0 := time.Now()
	c.SetReadDeadline(t0.Add(time.Minute))
	n, err := c.Read(make([]byte, 64))
	if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		t.Fatalf("%s: not closed by the listener: read %d bytes, %v", what, n, err)
	}
	return time.Since(t0)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// stillOpen fails the test if the listener closed c.
func stillOpen(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("%s: closed by the listener: %v", what, err)
	}
}

// qmgrAttr is attribute key of DISPLAY QMGR.
func (g *testGroup) qmgrAttr(key string) string {
	g.t.Helper()
	out := g.mqsc("DISPLAY QMGR " + key)
	i := strings.Index(out, key+"(")
	if i < 0 {
		g.t.Fatalf("DISPLAY QMGR lacks %s:\n%s", key, out)
	}
	rest := out[i+len(key)+1:]
	return rest[:strings.IndexByte(rest, ')')]
}

// TestInboundHelloDeadline: a peer that connects and sends nothing, or
// not a whole HELLO, is dropped once the HELLO deadline passes (not
// before), and counted (DISPLAY QMGR INTIMEOUT).
func TestInboundHelloDeadline(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	const deadline = 500 * time.Millisecond
	port := g.listening("QM1", "--channel-hello-timeout", deadline.String())
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write([]byte{'Q', 'C', channel.ProtoVersion, 1}); err != nil { // half a frame header of this version
		t.Fatal(err)
	}
	if d := waitClosed(t, silent, "a silent peer"); d < deadline-50*time.Millisecond {
		t.Fatalf("a silent peer dropped after %v, before the deadline %v", d, deadline)
	}
	waitClosed(t, slow, "a peer sending half a frame header")
	if got := g.qmgrAttr("INTIMEOUT"); got != "2" {
		t.Fatalf("INTIMEOUT(%s), want 2", got)
	}
}

// TestInboundConnectionCap: connections beyond a listener's cap are
// closed at once and counted (DISPLAY QMGR INREFUSED); those under it are
// kept; a slot frees when its connection ends.
func TestInboundConnectionCap(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	port := g.listening("QM1", "--channel-max-inbound", "2", "--channel-hello-timeout", "10m")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var held []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	over, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	waitClosed(t, over, "a connection over the cap")
	for i, c := range held {
		stillOpen(t, c, fmt.Sprintf("connection %d under the cap", i+1))
	}
	if got := g.qmgrAttr("INREFUSED"); got != "1" {
		t.Fatalf("INREFUSED(%s), want 1", got)
	}
	if _, out, _ := g.run("", "status"); !strings.Contains(out, "inbound connections refused: 1 over a listener's cap, 0 without a HELLO in time, 0 partners not authenticated") {
		t.Fatalf("qmgr status:\n%s", out)
	}
	// A slot frees when its connection ends (the listener notices it
	// closed: the next connection may come first and be refused).
	held[0].Close()
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break // kept
		}
		if i == 100 {
			t.Fatalf("no slot freed after a connection ended: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestListenerBindsLoopbackByDefault: the channel listener is reached
// through loopback only, unless --bind says otherwise.
func TestListenerBindsLoopbackByDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	ip := outsideAddr(t)
	g := newTestGroup(t)
	port := g.listening("QM1")
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("the listener of port %d is reached through %s without --bind", port, ip)
	}
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Fatalf("loopback: %v", err)
	} else {
		c.Close()
	}
	port = g.listening("QM2", "--bind", "0.0.0.0")
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatalf("--bind 0.0.0.0: %v", err)
	}
	c.Close()
}

// outsideAddr is an IPv4 address of this host that is not loopback.
func outsideAddr(t *testing.T) string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	t.Skip("this host has no IPv4 address but loopback")
	return ""
}
