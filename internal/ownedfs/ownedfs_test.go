package ownedfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestModesIgnoreUmask: directories (parents too) are 0770 and files 0660
// under the strictest umask.
func TestModesIgnoreUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(base, "a"), dir} {
		if m := mode(t, d); m != DirMode {
			t.Errorf("%s: %04o", d, m)
		}
	}
	f, err := Create(filepath.Join(dir, "f"), os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if m := mode(t, filepath.Join(dir, "f")); m != FileMode {
		t.Errorf("file: %04o", m)
	}
	if _, err := Create(filepath.Join(dir, "f"), os.O_RDWR); !errors.Is(err, fs.ErrExist) {
		t.Errorf("create of an existing file: %v", err)
	}
	f, created, err := OpenOrCreate(filepath.Join(dir, "f"), os.O_RDWR)
	if err != nil || created {
		t.Fatalf("open or create an existing file: %v %v", created, err)
	}
	f.Close()
}

// TestTightensOwnReadableByOthers: a directory or file of the user's own
// that others may read (as older versions made them) loses the bits for
// others; one others may write is refused.
func TestTightensOwnReadableByOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, dir); m != 0o750 {
		t.Errorf("directory tightened to %04o, want 0750", m)
	}
	path := filepath.Join(dir, "seg")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	f, err := Open(path, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(f, path); err != nil {
		t.Errorf("verify after open: %v", err)
	}
	f.Close()
	if m := mode(t, path); m != 0o640 {
		t.Errorf("file tightened to %04o, want 0640", m)
	}
	os.Chmod(path, 0o646)
	if _, err := Open(path, os.O_RDONLY); !errors.Is(err, ErrOpenToOthers) || !errors.Is(err, fs.ErrPermission) {
		t.Errorf("a file anyone may write: %v", err)
	}
	os.Chmod(dir, 0o777)
	err = MkdirAll(dir)
	if !errors.Is(err, ErrOpenToOthers) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "0777") {
		t.Errorf("a directory anyone may write: %v", err)
	}
}

// TestRefusesSymlinksAndWrongTypes: a symbolic link at the end of a path
// is never followed; a file where a directory should be (and the other
// way round) is refused.
func TestRefusesSymlinksAndWrongTypes(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	if err := MkdirAll(real); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(link); !errors.Is(err, ErrSymlink) || !strings.Contains(err.Error(), link) {
		t.Errorf("a directory that is a symbolic link: %v", err)
	}
	f, err := Create(filepath.Join(real, "f"), os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	flink := filepath.Join(real, "flink")
	if err := os.Symlink(filepath.Join(real, "f"), flink); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(flink, os.O_RDWR); !errors.Is(err, ErrSymlink) {
		t.Errorf("open of a symbolic link: %v", err)
	}
	if _, err := Create(flink, os.O_RDWR); !errors.Is(err, fs.ErrExist) {
		t.Errorf("create over a symbolic link: %v", err)
	}
	if _, _, err := OpenOrCreate(flink, os.O_RDWR); !errors.Is(err, ErrSymlink) {
		t.Errorf("open or create a symbolic link: %v", err)
	}
	if _, err := Open(real, os.O_RDONLY); !errors.Is(err, ErrWrongType) {
		t.Errorf("open of a directory as a file: %v", err)
	}
	if err := MkdirAll(filepath.Join(real, "f")); !errors.Is(err, ErrWrongType) {
		t.Errorf("a file where a directory should be: %v", err)
	}
}

// TestRefusesAnotherUsers: what another user (nobody) owns is refused,
// and so is what nobody owns through a group that is not ours.
func TestRefusesAnotherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user (nobody) needs root: run the tests as root to check it")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "d")
	if err := MkdirAll(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	f, err := Create(path, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := Verify(f, path); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "uid 65534") {
		t.Errorf("verify of a file given to nobody: %v", err)
	}
	if _, err := Open(path, os.O_RDWR); !errors.Is(err, ErrNotOwned) {
		t.Errorf("open of nobody's file: %v", err)
	}
	// Nobody's, in our group: a member of the group made it.
	if err := os.Chown(path, 65534, os.Getegid()); err != nil {
		t.Fatal(err)
	}
	if err := Verify(f, path); err != nil {
		t.Errorf("a file of another user of our group: %v", err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(dir); !errors.Is(err, ErrNotOwned) || !strings.Contains(err.Error(), "(nobody)") {
		t.Errorf("nobody's directory: %v", err)
	}
}

// TestRefusesAFIFOWithoutWaiting: a FIFO planted where a file is expected
// is refused at once; opening it must not wait for a writer (which would
// hang whoever opens it, a member's backup or an admin command).
func TestRefusesAFIFOWithoutWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []int{os.O_RDONLY, os.O_WRONLY, os.O_RDWR} {
		done := make(chan error, 1)
		go func() {
			f, err := Open(path, flag)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrWrongType) {
				t.Errorf("open flag %#x: %v, want ErrWrongType", flag, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("open flag %#x of a FIFO still waits after 5 s", flag)
		}
	}
}
