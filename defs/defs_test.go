package defs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/qmgr/qmgr/internal/testproc"
)

func TestMain(m *testing.M) {
	testproc.Register("saver", func([]string) int { return saverChild() })
	testproc.Register("opener", func([]string) int { return openerChild() })
	testproc.Main(m)
}

// saverChild saves 50 queues named after DEFS_ID in the repository in
// DEFS_DIR, one transaction each.
func saverChild() int {
	r, err := Open(os.Getenv("DEFS_DIR"), false)
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("Q.%s.%d", os.Getenv("DEFS_ID"), i)
		if err := r.Update(func(tx *Tx) error {
			_, err := tx.Save(TypeQLocal, name, DefaultQueue(name), Create)
			return err
		}); err != nil {
			fmt.Println("save:", err)
			return 1
		}
	}
	return 0
}

func TestSaveLoadModes(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	q := DefaultQueue("IN")
	q.MaxDepth, q.Descr = 10, "input"
	err = r.Update(func(tx *Tx) error {
		if _, err := tx.Save(TypeQLocal, q.Name, q, Create); err != nil {
			return err
		}
		_, err := tx.Save(TypeQLocal, q.Name, q, Create)
		return err
	})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	// The failed transaction changed nothing.
	r.View(func(tx *Tx) error {
		if _, err := tx.Queue("IN"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("rolled back create is visible: %v", err)
		}
		return nil
	})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.Update(func(tx *Tx) error { _, err := tx.Save(TypeQLocal, q.Name, q, Create); return err }))
	if err := r.Update(func(tx *Tx) error { _, err := tx.Save(TypeQLocal, "NOPE", q, Alter); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("alter of a missing object: %v", err)
	}
	q.MaxDepth = 20
	must(r.Update(func(tx *Tx) error { _, err := tx.Save(TypeQLocal, q.Name, q, Alter); return err }))
	must(r.View(func(tx *Tx) error {
		got, err := tx.Queue("IN")
		if err != nil || got.MaxDepth != 20 || got.Descr != "input" || got.Created.IsZero() || got.Altered.Before(got.Created) {
			t.Fatalf("%+v %v", got, err)
		}
		qs, err := tx.Queues("I*")
		if err != nil || len(qs) != 1 {
			t.Fatalf("%v %v", qs, err)
		}
		m, err := tx.QMgr()
		if err != nil || m.DeadQ != "" {
			t.Fatalf("default qmgr: %+v %v", m, err)
		}
		return nil
	}))
	must(r.Update(func(tx *Tx) error { return tx.Delete(TypeQLocal, "IN") }))
	if err := r.Update(func(tx *Tx) error { return tx.Delete(TypeQLocal, "IN") }); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, FileName))
	if st.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v", st.Mode())
	}
}

func TestValidation(t *testing.T) {
	bad := []Queue{{Name: "bad name"}, func() Queue { q := DefaultQueue("Q"); q.DefPrty = 10; return q }(),
		func() Queue { q := DefaultQueue("Q"); q.IndxType = "GROUPID"; return q }(),
		func() Queue { q := DefaultQueue("Q"); q.MaxDepth = -1; return q }()}
	for _, q := range bad {
		if q.Validate() == nil {
			t.Errorf("%+v accepted", q)
		}
	}
	if err := DefaultQueue("A.B/C_%").Validate(); err != nil {
		t.Fatal(err)
	}
	for s, ok := range map[string]bool{"APPL1": true, "1APPL": false, "A_B": false, "ABCDEFGHIJKLM": false} {
		if ValidStructName(s) != ok {
			t.Errorf("ValidStructName(%s) != %v", s, ok)
		}
	}
	if !Match("A*", "AB") || Match("A*", "BA") || !Match("*", "X") || !Match("X", "X") {
		t.Fatal("match")
	}
}

// TestConcurrentProcesses: several processes write the repository at once.
func TestConcurrentProcesses(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := testproc.Command(t, "saver")
			cmd.Env = append(cmd.Env, "DEFS_DIR="+dir, fmt.Sprintf("DEFS_ID=%d", i))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("child %d: %v %s", i, err, out)
			}
		}(i)
	}
	wg.Wait()
	r.View(func(tx *Tx) error {
		names, err := tx.Names(TypeQLocal, "*")
		if err != nil || len(names) != 200 {
			t.Fatalf("%d names %v", len(names), err)
		}
		return nil
	})
}

// TestSynchronousFull: a commit of the repository must reach the disk
// before it returns (synchronous=FULL in WAL mode syncs the WAL at every
// commit; NORMAL does not, and a power cut loses the last DEFINEs). Every
// connection of both pools must run with it, in WAL mode.
func TestSynchronousFull(t *testing.T) {
	r, err := Open(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, db := range map[string]*sql.DB{"write": r.db, "read": r.rdb} {
		// Hold several connections at once so the pragma is seen on more
		// than the pool's first connection.
		var conns []*sql.Conn
		for range 3 {
			c, err := db.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for i, c := range conns {
			var sync int
			if err := c.QueryRowContext(context.Background(), "PRAGMA synchronous").Scan(&sync); err != nil {
				t.Fatal(err)
			}
			if sync != 2 {
				t.Errorf("%s pool, connection %d: PRAGMA synchronous = %d, want 2 (FULL)", name, i, sync)
			}
			var mode string
			if err := c.QueryRowContext(context.Background(), "PRAGMA journal_mode").Scan(&mode); err != nil {
				t.Fatal(err)
			}
			if mode != "wal" {
				t.Errorf("%s pool, connection %d: journal_mode = %q, want wal", name, i, mode)
			}
		}
		for _, c := range conns {
			c.Close()
		}
	}
}
