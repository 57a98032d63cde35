package cli

import (
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/sdnotify"
)

// TestStartNotifiesSystemd: a member started by systemd (Type=notify: a
// fake $NOTIFY_SOCKET here) says READY=1 once it is active in the group,
// not before, and STOPPING=1 when SIGTERM asks it to stop.
func TestStartNotifiesSystemd(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	path := filepath.Join(t.TempDir(), "notify")
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	next := func() string {
		sock.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 4096)
		n, err := sock.Read(b)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, g.harness().Log("QM1"))
		}
		return string(b[:n])
	}
	m, err := g.harness().Spawn("QM1", func(c *exec.Cmd) { c.Env = append(c.Env, sdnotify.EnvSocket+"="+path) })
	if err != nil {
		t.Fatal(err)
	}
	if got, want := next(), "READY=1\nSTATUS=member QM1 of group TG active"; got != want {
		t.Fatalf("first notification %q, want %q", got, want)
	}
	if !g.harness().Active("QM1", m.Process.Pid) {
		t.Fatal("READY=1 came before the member was active in the group")
	}
	m.Process.Signal(syscall.SIGTERM)
	if got, want := next(), "STOPPING=1\nSTATUS=member QM1 stopping"; got != want {
		t.Fatalf("after SIGTERM: %q, want %q", got, want)
	}
	if err := m.Wait(); err != nil {
		t.Fatalf("member after SIGTERM: %v", err)
	}
}
