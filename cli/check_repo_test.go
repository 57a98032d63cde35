package cli

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/shm"
)

// TestCheckRepositoryBusyOrBroken: qmgr check reads the group's
// definitions (for the recovery units' records) and nothing more. A
// member holding the repository's write lock (any definition change)
// must not hold up or fail the check, and a repository that cannot be
// opened is one problem reported, not a check of no structure at all.
func TestCheckRepositoryBusyOrBroken(t *testing.T) {
	dir := t.TempDir()
	cfg := group.Config{Name: "CR", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AdminSize: 8 << 20}
	g, err := group.Open(cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	repo, err := defs.Open(cfg.DataDir, true)
	if err != nil {
		t.Fatal(err)
	}
	repo.Close()
	check := func() (int, string, time.Duration) {
		var out, errOut bytes.Buffer
		t0 := time.Now()
		code := MainIO([]string{"check", "--group", "CR", "--data", cfg.DataDir, "--cf-dir", cfg.CFDir}, nil, &out, &errOut)
		return code, out.String() + errOut.String(), time.Since(t0)
	}
	if code, out, _ := check(); code != 0 || !strings.Contains(out, shm.AdminStructure+": ") {
		t.Fatalf("check of a quiet group: exit %d\n%s", code, out)
	}

	// A writer holds the repository's write lock (as a member's
	// definition change does, for as long as it takes).
	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.DataDir, defs.FileName)+"?_pragma=busy_timeout(100)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	code, out, took := check()
	if code != 0 || took > 5*time.Second {
		t.Fatalf("check while a member holds the definitions' write lock: exit %d after %v\n%s", code, took.Round(time.Millisecond), out)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}

	// A repository that cannot be read: the structures are checked all
	// the same, and the repository is one problem.
	conn.Close()
	db.Close()
	for _, f := range []string{defs.FileName, defs.FileName + "-wal", defs.FileName + "-shm"} {
		os.Remove(filepath.Join(cfg.DataDir, f))
	}
	if err := os.WriteFile(filepath.Join(cfg.DataDir, defs.FileName), bytes.Repeat([]byte("not a database "), 512), 0o660); err != nil {
		t.Fatal(err)
	}
	code, out, _ = check()
	if code == 0 || !strings.Contains(out, shm.AdminStructure+": ") || !strings.Contains(out, "definitions") {
		t.Fatalf("check with a damaged repository: exit %d, want the structures checked and the repository reported:\n%s", code, out)
	}
}
