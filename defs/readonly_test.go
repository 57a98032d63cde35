package defs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenReadOnly: a read-only repository reads what a member wrote,
// refuses every write and leaves the file as it was; a missing one is
// ErrNotFound.
func TestOpenReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReadOnly(dir); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no repository: %v, want ErrNotFound", err)
	}
	rw, err := Open(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if err := rw.Update(func(tx *Tx) error {
		_, err := tx.Save(TypeQLocal, "Q1", map[string]string{"name": "Q1"}, Create)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := ro.View(func(tx *Tx) error { var q map[string]string; _, _, err := tx.Load(TypeQLocal, "Q1", &q); return err }); err != nil {
		t.Fatalf("read Q1: %v", err)
	}
	if err := ro.Update(func(tx *Tx) error {
		_, err := tx.Save(TypeQLocal, "Q2", map[string]string{"name": "Q2"}, Create)
		return err
	}); err == nil {
		t.Fatal("a read-only repository took a write")
	}
	st2, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil || st2.ModTime() != st.ModTime() || st2.Size() != st.Size() {
		t.Fatalf("the repository file changed: %v %v -> %v", err, st, st2)
	}
}
