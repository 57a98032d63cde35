package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/qm"
)

// cmdSockChild dials the command socket at path, sends DISPLAY QMGR and
// prints what came back: "answer: <text>" or "refused: <error>" (the test
// binary as an unrelated local process, CLI_TEST_CMDSOCK).
func cmdSockChild(path string) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		fmt.Printf("refused: dial: %v\n", err)
		os.Exit(0)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, _ := json.Marshal(qm.Request{MQSC: "DISPLAY QMGR"})
	if _, err := c.Write(append(b, '\n')); err != nil {
		fmt.Printf("refused: write: %v\n", err)
		os.Exit(0)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Printf("refused: read: %v\n", err)
		os.Exit(0)
	}
	var resp qm.Response
	if err := json.Unmarshal([]byte(line), &resp); err != nil {
		fmt.Printf("refused: answer %q: %v\n", line, err)
		os.Exit(0)
	}
	fmt.Printf("answer: %s %s\n", resp.Text, resp.Error)
	os.Exit(0)
}

// nobodyBinary is a copy of this test binary that nobody may run, in
// g.dir (whose parents nobody may traverse).
func nobodyBinary(t *testing.T, g *testGroup) string {
	t.Helper()
	for _, d := range []string{filepath.Dir(g.dir), g.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := testproc.CopyBinary(t, g.dir)
	return bin
}

// TestCommandSocketRefusesForeignPeer: a process of another user, not in
// the group of the data directory, is refused by the command server even
// when the file modes would let it connect (an operator's chmod, a
// loose umask), the refusal is counted (DISPLAY QMGR CMDREFUSED), and a
// process of that user that is a member of the data directory's group
// is served.
func TestCommandSocketRefusesForeignPeer(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user (nobody)")
	}
	g := newTestGroup(t)
	g.start("QM1")
	bin := nobodyBinary(t, g)
	sock := qm.SocketPath(g.cfg, "QM1")
	// The modes are no defence here: nobody may reach and connect to the
	// socket; only its credentials can refuse it.
	if err := os.Chmod(g.cfg.DataDir, 0o771); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(g.cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	dataGid := st.Sys().(*syscall.Stat_t).Gid
	run := func(cred *syscall.Credential) string {
		t.Helper()
		c := testproc.CommandBinary(t, bin, "cmdsock")
		c.Env = append(c.Env, "CLI_TEST_CMDSOCK="+sock)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("child as %+v: %v %s", cred, err, out)
		}
		return string(out)
	}
	out := run(&syscall.Credential{Uid: 65534, Gid: 65534})
	if !strings.HasPrefix(out, "refused: ") {
		t.Fatalf("nobody, not in the data directory's group, was served: %s", out)
	}
	if got := g.mqsc("DISPLAY QMGR CMDREFUSED"); !strings.Contains(got, "CMDREFUSED(1)") {
		t.Fatalf("the refusal is not counted: %s", got)
	}
	out = run(&syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{dataGid}})
	if !strings.HasPrefix(out, "answer: ") || !strings.Contains(out, "QMNAME(QM1)") {
		t.Fatalf("nobody in the data directory's group (gid %d) was refused: %s", dataGid, out)
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "QM1.log"))
	if !strings.Contains(string(b), "command connection refused") || !strings.Contains(string(b), "uid=65534") {
		t.Fatalf("the refusal is not logged:\n%s", b)
	}
}
