package channel

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// spinPair is a spinConn (spinning up to max) and the other end of its
// TCP connection.
func spinPair(t *testing.T, max time.Duration) (*spinConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		got <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-got
	if peer == nil {
		t.Fatal("accept failed")
	}
	sc, ok := newSpinConn(c, max).(*spinConn)
	if !ok {
		t.Fatal("a TCP connection was not wrapped")
	}
	t.Cleanup(func() { sc.Close(); peer.Close() })
	return sc, peer
}

func TestSpinConnReads(t *testing.T) {
	c, peer := spinPair(t, time.Millisecond)
	// Data there before the read, and data that comes while it waits
	// (spinning, then parked).
	peer.Write([]byte("ab"))
	time.Sleep(10 * time.Millisecond)
	buf := make([]byte, 8)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "ab" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		peer.Write([]byte("cd"))
	}()
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "cd" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	peer.Close()
	if _, err := c.Read(buf); err != io.EOF {
		t.Fatalf("after the peer closed: %v, want EOF", err)
	}
}

// A wait longer than the spin turns spinning off; a short wait turns it
// back on.
func TestSpinConnSpinsOnlyWhileWaitsAreShort(t *testing.T) {
	c, peer := spinPair(t, time.Millisecond)
	buf := make([]byte, 8)
	go func() {
		time.Sleep(50 * time.Millisecond) // 50 times the spin
		peer.Write([]byte("x"))
	}()
	if _, err := c.Read(buf); err != nil {
		t.Fatal(err)
	}
	if c.spin {
		t.Fatal("still spinning after a 50ms wait with a 1ms spin")
	}

	long, lpeer := spinPair(t, time.Minute)
	long.spin = false
	go func() {
		time.Sleep(time.Millisecond)
		lpeer.Write([]byte("y"))
	}()
	if _, err := long.Read(buf); err != nil {
		t.Fatal(err)
	}
	if !long.spin {
		t.Fatal("not spinning after a wait far shorter than the spin")
	}
}

func TestSpinConnDeadlineAndClose(t *testing.T) {
	c, _ := spinPair(t, time.Millisecond)
	buf := make([]byte, 8)
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	c.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond) // parked by now
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("read after Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
}

// Not spinning: a negative wait, or a connection that is not TCP.
func TestSpinConnOff(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if newSpinConn(a, time.Millisecond) != a {
		t.Fatal("a pipe was wrapped")
	}
	c, _ := spinPair(t, time.Millisecond)
	if newSpinConn(c.TCPConn, -1) != net.Conn(c.TCPConn) {
		t.Fatal("wrapped with a negative spin")
	}
}
