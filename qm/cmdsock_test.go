package qm

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/internal/testproc"
)

func TestTrustAllows(t *testing.T) {
	tr := Trust{Self: 1000, Owner: 1001, Group: 2000}
	for _, c := range []struct {
		uid, gid uint32
		groups   []uint32
		want     bool
	}{
		{0, 0, nil, true},                  // root
		{1000, 5, nil, true},               // the member's own user
		{1001, 5, nil, true},               // the data directory's owner
		{3000, 2000, nil, true},            // primary group is the group
		{3000, 5, []uint32{7, 2000}, true}, // a supplementary group is
		{3000, 5, []uint32{7, 8}, false},   // another user outside the group
		{65534, 65534, nil, false},         // nobody
	} {
		if got := tr.Allows(c.uid, c.gid, c.groups); got != c.want {
			t.Errorf("uid %d gid %d groups %v: allowed %v, want %v", c.uid, c.gid, c.groups, got, c.want)
		}
	}
}

// TestCommandSocketModeFromTheStart: under the loosest umask, the command
// socket is never reachable with a mode wider than 0660: where it is bound
// only its owner can go, and it is 0660 before it is where others look.
// It replaces a socket an earlier incarnation left.
func TestCommandSocketModeFromTheStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "QM1.cmd")
	old, err := net.Listen("unix", path) // an earlier incarnation's
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	defer syscall.Umask(syscall.Umask(0))
	var checked bool
	testAfterBind = func(bound string) {
		checked = true
		for p, want := range map[string]os.FileMode{bound: 0o660, filepath.Dir(bound): 0o700} {
			st, err := os.Lstat(p)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if got := st.Mode().Perm(); got&^want != 0 {
				t.Errorf("%s bound with mode %v, wider than %v", p, got, want)
			}
			if uid := st.Sys().(*syscall.Stat_t).Uid; uid != uint32(os.Geteuid()) {
				t.Errorf("%s owned by uid %d", p, uid)
			}
		}
	}
	defer func() { testAfterBind = nil }()
	l, err := listenPrivate(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !checked {
		t.Fatal("the socket was not checked where it was bound")
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Perm() != 0o660 || st.Mode()&os.ModeSocket == 0 {
		t.Fatalf("%s: %v %v", path, st.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".cmd-*"))
	if len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
	// It is the listener's: a connection reaches it.
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.Close()
}

// testCmdServer (QM_TEST_CMDSERVE=path): a command server of someone
// else's that answers everything with OK.
func testCmdServer(path string) {
	l, err := net.Listen("unix", path)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	os.Chmod(path, 0o666)
	fmt.Println("listening")
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				if _, err := r.ReadString('\n'); err != nil {
					return
				}
				b, _ := json.Marshal(Response{OK: true, Text: "served by a stranger\n"})
				c.Write(append(b, '\n'))
			}
		}()
	}
}

// TestCommandRefusesUntrustedServer: a command socket served by a process
// of another user outside the data directory's group gets no command: one
// in the group's own data directory (it took the path while no member
// listened) is refused by its credentials, and a data directory a
// stranger made (after /tmp was emptied), or one anyone may write to, is
// refused before the client connects (it would make the stranger "the
// group's owner", and the command, secrets included, would go to it).
func TestCommandRefusesUntrustedServer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user (nobody)")
	}
	for _, tc := range []struct {
		name string
		dir  func(t *testing.T, dir string) // makes the data directory
		want error
	}{
		{"in the group's directory", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o770, 0) }, ErrUntrustedPeer},
		{"a directory a stranger made", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o770, 65534) }, ownedfs.ErrNotOwned},
		{"a directory anyone may write to", func(t *testing.T, dir string) { mkdirMode(t, dir, 0o777, 0) }, ownedfs.ErrOpenToOthers},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			os.Chmod(filepath.Dir(top), 0o755)
			os.Chmod(top, 0o755)
			g := group.Config{Name: "TG", DataDir: filepath.Join(top, "data"), CFDir: filepath.Join(top, "cf")}
			tc.dir(t, g.DataDir)
			// The stranger binds its socket where it may, and it is put in
			// place as if it had taken the path.
			strange := filepath.Join(top, "strange")
			mkdirMode(t, strange, 0o777, 65534)
			stop := strangeServer(t, top, filepath.Join(strange, "QM1.cmd"))
			defer stop()
			if err := os.Rename(filepath.Join(strange, "QM1.cmd"), SocketPath(g, "QM1")); err != nil {
				t.Fatal(err)
			}
			resp, err := Command(g, "QM1", "ALTER CHANNEL(X) AUTHKEY('0123456789abcdef-secret')")
			if !errors.Is(err, tc.want) {
				t.Fatalf("a stranger's command socket: %+v %v, want %v", resp, err, tc.want)
			}
			if tc.want == ErrUntrustedPeer && !strings.Contains(err.Error(), "uid=65534") {
				t.Fatalf("the refusal does not name the stranger: %v", err)
			}
		})
	}
}

// mkdirMode makes dir with mode, owned by uid (and its gid).
func mkdirMode(t *testing.T, dir string, mode os.FileMode, uid int) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
}

// strangeServer runs a command server as nobody on path and returns what
// stops it.
func strangeServer(t *testing.T, top, path string) func() {
	t.Helper()
	bin := testproc.CopyBinary(t, top)
	cmd := testproc.CommandBinary(t, bin, "cmdserve")
	cmd.Env = append(cmd.Env, "QM_TEST_CMDSERVE="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "listening\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("stranger's server: %q", line)
	}
	return func() { cmd.Process.Kill(); cmd.Wait() }
}
