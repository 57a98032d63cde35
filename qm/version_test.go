package qm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/testproc"
)

// testMember (role member) runs member QM_TEST_MEMBER of the group in G, D
// and CF, reporting version QM_TEST_VERSION, says "active" and serves until
// killed.
func testMember() {
	m, err := Start(Config{Group: group.Config{Name: os.Getenv("G"), DataDir: os.Getenv("D"), CFDir: os.Getenv("CF"), AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: os.Getenv("QM_TEST_MEMBER"), Version: os.Getenv("QM_TEST_VERSION"), HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		fmt.Println("start:", err)
		return
	}
	fmt.Println("active")
	m.Run(context.Background())
}

// TestDisplayGroupVersions: in a group whose members run different
// binaries (two processes reporting different versions), DISPLAY GROUP
// shows each member's version, and the member's start is logged with it.
func TestDisplayGroupVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	cfg := testConfig(t, "QM1")
	cfg.Version = "v1.0.0-aaaaaaaaaaaa"
	log := logTo(t, &cfg)
	m := startMember(t, cfg)
	startMemberProc(t, cfg, "QM2", "v2.0.0-bbbbbbbbbbbb+dirty")
	r := mustExec(t, m, "DISPLAY GROUP VERSION")
	for _, want := range []string{"QMNAME(QM1)                             VERSION(v1.0.0-aaaaaaaaaaaa)",
		"QMNAME(QM2)                             VERSION(v2.0.0-bbbbbbbbbbbb+dirty)"} {
		if !strings.Contains(r.Text, want) {
			t.Errorf("DISPLAY GROUP VERSION shows no %q:\n%s", want, r.Text)
		}
	}
	if f := eventLine(log(), "member_starting"); f["version"] != "v1.0.0-aaaaaaaaaaaa" || !strings.HasPrefix(f["go"], "go") {
		t.Errorf("no start line with the version in the log:\n%s", log())
	}
}

// startMemberProc starts member name of cfg's group in a process of its
// own (testMember), reporting version, and waits until it is active.
func startMemberProc(t *testing.T, cfg Config, name, version string) {
	t.Helper()
	cmd := testproc.Command(t, "member")
	cmd.Env = append(cmd.Env, "G="+cfg.Group.Name, "D="+cfg.Group.DataDir, "CF="+cfg.Group.CFDir,
		"QM_TEST_MEMBER="+name, "QM_TEST_VERSION="+version)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if l, _ := bufio.NewReader(out).ReadString('\n'); l != "active\n" {
		t.Fatalf("member %s: %q", name, l)
	}
}
