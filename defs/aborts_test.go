package defs

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// TestAbortedUOWs: aborted keys are recorded once and read from a key on;
// a key the database cannot hold is refused.
func TestAbortedUOWs(t *testing.T) {
	r, err := Open(t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, k := range []uint64{7, 9, 7, 1000} {
		if err := r.Update(func(tx *Tx) error { return tx.AbortUOW(k) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Update(func(tx *Tx) error { return tx.AbortUOW(1 << 63) }); err == nil {
		t.Fatal("a key above MaxInt64 was accepted")
	}
	read := func(from uint64) string {
		t.Helper()
		var got map[uint64]bool
		if err := r.View(func(tx *Tx) error { var err error; got, err = tx.AbortedUOWs(from); return err }); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(got)
	}
	if got := read(0); got != "map[7:true 9:true 1000:true]" {
		t.Fatalf("aborted: %s", got)
	}
	if got := read(9); got != "map[9:true 1000:true]" {
		t.Fatalf("aborted from 9: %s", got)
	}
}

// TestSchemaUpgrade: a repository of schema version 1 is upgraded on open
// and keeps its objects.
func TestSchemaUpgrade(t *testing.T) {
	dir := t.TempDir()
	r, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Update(func(tx *Tx) error { _, err := tx.Save(TypeQLocal, "Q", DefaultQueue("Q"), Create); return err }); err != nil {
		t.Fatal(err)
	}
	r.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DROP TABLE aborted_uows; UPDATE meta SET value='1' WHERE key='schema_version'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	r, err = Open(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Update(func(tx *Tx) error { return tx.AbortUOW(5) }); err != nil {
		t.Fatal(err)
	}
	if err := r.View(func(tx *Tx) error { _, err := tx.Queue("Q"); return err }); err != nil {
		t.Fatal(err)
	}
}
