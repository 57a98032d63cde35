package mq

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDataSetLockRefusesPlanted: the lock that serialises creating and
// rebuilding a data set is opened as every other file qmgr uses
// (internal/ownedfs): a symbolic link planted at its name is refused, not
// followed (which would create a file wherever it points), and so is a
// file of another user that others may write (whoever holds its flock
// would stop every creation and rebuild of the data set).
func TestDataSetLockRefusesPlanted(t *testing.T) {
	cfDir := t.TempDir()
	elsewhere := t.TempDir()
	target := filepath.Join(elsewhere, "created-by-qmgr")
	if err := os.Symlink(target, filepath.Join(cfDir, ".OFF.M0.smlock")); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDataSet(cfDir, "OFF", 0)
	if err == nil {
		unlock()
	}
	if _, serr := os.Lstat(target); serr == nil || err == nil {
		t.Fatalf("a symbolic link planted at the lock's name: lock error %v, and the file it points to exists: %v", err, serr == nil)
	}

	foreign := filepath.Join(cfDir, ".OFF.M1.smlock")
	if err := os.WriteFile(foreign, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(foreign, 0o666); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err = lockDataSet(cfDir, "OFF", 1)
	if err == nil {
		unlock()
		t.Fatal("a lock file others may write was used")
	}

	// The usual case still works, twice (made, then found).
	for i := 0; i < 2; i++ {
		unlock, err := lockDataSet(cfDir, "OFF", 2)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	}
}
