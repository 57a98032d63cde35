package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

// TestClientHandshakeTimesOut: a sender's TLS handshake with something
// that accepts the connection and never answers ends at its timeout (it
// waited for STOP CHANNEL before).
func TestClientHandshakeTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(time.Minute) // silent
		}
	}()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	done := make(chan error, 1)
	go func() {
		_, err := clientHandshake(context.Background(), nc, &tls.Config{InsecureSkipVerify: true}, 200*time.Millisecond)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("handshake with a silent peer: %v, want its deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the handshake with a silent peer did not end")
	}
}
