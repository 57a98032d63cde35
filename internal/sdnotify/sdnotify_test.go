package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// fakeSocket is a unix datagram socket standing in for systemd's; it
// returns the next datagram received.
func fakeSocket(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func() string {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 4096)
		n, err := c.Read(b)
		if err != nil {
			t.Fatalf("fake notify socket: %v", err)
		}
		return string(b[:n])
	}
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	next := fakeSocket(t, path)
	t.Setenv(EnvSocket, path)
	if ok, err := Notify(Ready + "\nSTATUS=member QM1 active"); !ok || err != nil {
		t.Fatalf("Notify: %v %v", ok, err)
	}
	if got := next(); got != "READY=1\nSTATUS=member QM1 active" {
		t.Fatalf("received %q", got)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "qmgr-sdnotify-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	next := fakeSocket(t, "\x00"+name)
	t.Setenv(EnvSocket, "@"+name)
	if ok, err := Notify(Stopping); !ok || err != nil {
		t.Fatalf("Notify: %v %v", ok, err)
	}
	if got := next(); got != Stopping {
		t.Fatalf("received %q", got)
	}
}

func TestNotifyWithoutSocket(t *testing.T) {
	t.Setenv(EnvSocket, "")
	if ok, err := Notify(Ready); ok || err != nil {
		t.Fatalf("without %s: %v %v, want false, nil", EnvSocket, ok, err)
	}
	t.Setenv(EnvSocket, filepath.Join(t.TempDir(), "nobody-listens"))
	if ok, err := Notify(Ready); !ok || err == nil {
		t.Fatalf("to a socket nobody listens on: %v %v, want true and an error", ok, err)
	}
}
