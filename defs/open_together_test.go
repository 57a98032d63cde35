package defs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/qmgr/qmgr/internal/testproc"
)

// openerChild creates (or opens) the repository in DEFS_DIR and closes it.
func openerChild() int {
	r, err := Open(os.Getenv("DEFS_DIR"), true)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	r.Close()
	return 0
}

// TestOpenTogether: members started together all create the group's
// repository at once, in processes of their own. None may fail with
// SQLITE_BUSY (CI: "defs: initialise ...: database is locked"): SQLite
// does not call the busy handler where waiting could deadlock (a reader
// promoting itself to writer while another process writes), which the
// schema's creation and the switch to WAL both run into.
func TestOpenTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for round := 0; round < 10; round++ {
		dir := t.TempDir()
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := testproc.Command(t, "opener")
				cmd.Env = append(cmd.Env, "DEFS_DIR="+dir)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("round %d, opener %d: %v %s", round, i, err, out)
				}
			}()
		}
		wg.Wait()
		if t.Failed() {
			return
		}
	}
}

// TestIsBusy: init's retry recognises a real SQLITE_BUSY (a write while
// another connection holds the database exclusively, with no busy
// timeout), and nothing else.
func TestIsBusy(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	hold, err := sql.Open("sqlite", "file:"+r.path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	other, err := sql.Open("sqlite", "file:"+r.path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx := context.Background()
	hc, err := hold.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	if _, err := hc.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	defer hc.ExecContext(ctx, "ROLLBACK")
	_, err = other.Exec("INSERT INTO meta(key, value) VALUES ('x', 'y')")
	if !isBusy(err) {
		t.Fatalf("a write against an exclusive lock: %v, not recognised as SQLITE_BUSY", err)
	}
	if isBusy(errors.New("database is locked")) || isBusy(nil) {
		t.Fatal("isBusy of an error that is not SQLite's")
	}
}
