package reuseport

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// TestSharedPort: two shared listeners hold one port; a private listener
// cannot join them, and a second private listener on a private port is
// refused.
func TestSharedPort(t *testing.T) {
	a, err := Listen("127.0.0.1", 0, true)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	port := a.Addr().(*net.TCPAddr).Port
	b, err := Listen("127.0.0.1", port, true)
	if err != nil {
		t.Fatalf("second shared listener on port %d: %v", port, err)
	}
	defer b.Close()
	if l, err := Listen("127.0.0.1", port, false); err == nil {
		l.Close()
		t.Fatalf("a private listener joined the shared port %d", port)
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("private listener on a shared port: %v, want EADDRINUSE", err)
	}

	p, err := Listen("127.0.0.1", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pport := p.Addr().(*net.TCPAddr).Port
	if l, err := Listen("127.0.0.1", pport, true); err == nil {
		l.Close()
		t.Fatalf("a shared listener joined the private port %d", pport)
	}
	// Both shared listeners accept: connections reach the port.
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
