package shm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/qmgr/qmgr/internal/testproc"
)

// The squatting tests: another local user (nobody, uid 65534) creates the
// CF directory or a structure file before the group's members start, or
// plants a symbolic link. A member refuses to use what it finds, with an
// error naming the path, the owner and the mode.

const nobody = 65534

// needRoot skips a test that must act as two users: only root can run a
// child as nobody or give a file to another user.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("acting as another user (nobody) needs root: run the tests as root to check the squatting cases")
	}
}

// squatChild is the child run as nobody: it creates SHM_DIR with mode
// SHM_MODE (0777: anyone may write) and, with SHM_NAME, a structure of
// that name in it through this package, as an attacker with a copy of
// qmgr would.
func squatChild() {
	dir := os.Getenv("SHM_DIR")
	if err := os.Mkdir(dir, 0o700); err != nil {
		fmt.Println("mkdir:", err)
		os.Exit(1)
	}
	if name := os.Getenv("SHM_NAME"); name != "" {
		s, _, err := Create(CreateOptions{Dir: dir, Name: name, Kind: KindAdmin, Size: 64 << 10, Version: testVersion})
		if err != nil {
			fmt.Println("create structure:", err)
			os.Exit(1)
		}
		s.Close()
		os.Chmod(filepath.Join(dir, name), 0o666)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		fmt.Println("chmod:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
	os.Exit(0)
}

// sharedDir returns a directory like /dev/shm (world-writable, sticky)
// inside the test's temporary directory, and a copy of the test binary
// that nobody may run.
func sharedDir(t *testing.T) (shared, bin string) {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shared = filepath.Join(base, "shm")
	if err := os.Mkdir(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	bin = testproc.CopyBinary(t, base)
	return shared, bin
}

// squat runs squatChild as nobody.
func squat(t *testing.T, bin, dir, name string) {
	t.Helper()
	cmd := testproc.CommandBinary(t, bin, "squat")
	cmd.Env = append(cmd.Env, "SHM_DIR="+dir, "SHM_NAME="+name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "ok\n" {
		t.Fatalf("squatter as nobody: %v %s", err, out)
	}
}

// wantRefused checks that err refuses path as not authorised, naming the
// path, the owner and the mode.
func wantRefused(t *testing.T, what string, err error, path string, uid int, mode string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("%s: want %v, got %v", what, ErrPermission, err)
	}
	for _, s := range []string{path, fmt.Sprintf("uid %d", uid), mode} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("%s: error does not name %q: %v", what, s, err)
		}
	}
	t.Logf("%s: %v", what, err)
}

// TestSquattedDirectoryRefused: nobody created the CF directory first,
// writable by anyone; a member does not create its structures in it.
func TestSquattedDirectoryRefused(t *testing.T) {
	needRoot(t)
	shared, bin := sharedDir(t)
	dir := filepath.Join(shared, "qmgr-G")
	squat(t, bin, dir, "")
	s, _, err := Create(CreateOptions{Dir: dir, Name: AdminStructure, Kind: KindAdmin, Size: 64 << 10, Version: testVersion})
	if err == nil {
		s.Close()
	}
	wantRefused(t, "create in a squatted directory", err, dir, nobody, "0777")
	if names, _ := List(dir); len(names) != 0 {
		t.Fatalf("structures created in the squatted directory: %v", names)
	}
}

// TestSquattedStructureRefused: nobody created the CF directory and a
// structure in it; neither a member (Create attaches what exists) nor an
// application (Attach) maps the attacker's structure.
func TestSquattedStructureRefused(t *testing.T) {
	needRoot(t)
	shared, bin := sharedDir(t)
	dir := filepath.Join(shared, "qmgr-G")
	squat(t, bin, dir, AdminStructure)
	path := filepath.Join(dir, AdminStructure)
	s, _, err := Create(CreateOptions{Dir: dir, Name: AdminStructure, Kind: KindAdmin, Size: 64 << 10, Version: testVersion})
	if err == nil {
		s.Close()
	}
	wantRefused(t, "a member creating", err, dir, nobody, "0777")
	a, err := Attach(dir, AdminStructure, testVersion)
	if err == nil {
		a.Close()
	}
	// The application stops at the squatted directory, before the
	// attacker's file in it (path).
	_ = path
	wantRefused(t, "an application attaching", err, dir, nobody, "0777")
}

// TestForeignFileRefused: a structure file in the group's own directory
// that another user owns, or that anyone may write, is refused at attach.
func TestForeignFileRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cf")
	s, _, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	path := filepath.Join(dir, "APPL1")
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	a, err := Attach(dir, "APPL1", testVersion)
	if err == nil {
		a.Close()
	}
	wantRefused(t, "a structure anyone may write", err, path, os.Geteuid(), "0666")
	if os.Geteuid() != 0 {
		return // giving a file to another user needs root
	}
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	a, err = Attach(dir, "APPL1", testVersion)
	if err == nil {
		a.Close()
	}
	wantRefused(t, "a structure of another user", err, path, nobody, "0660")
}

// TestSymlinkedStructureRefused: a symbolic link planted under a
// structure's name is not followed, even to a valid structure.
func TestSymlinkedStructureRefused(t *testing.T) {
	base := t.TempDir()
	elsewhere := filepath.Join(base, "elsewhere")
	s, _, err := Create(CreateOptions{Dir: elsewhere, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	dir := filepath.Join(base, "cf")
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "APPL1")
	if err := os.Symlink(filepath.Join(elsewhere, "APPL1"), path); err != nil {
		t.Fatal(err)
	}
	a, err := Attach(dir, "APPL1", testVersion)
	if err == nil {
		a.Close()
		t.Fatal("attached through a symbolic link")
	}
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("attach through a symbolic link: %v", err)
	}
	c, _, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion})
	if err == nil {
		c.Close()
		t.Fatal("create attached through a symbolic link")
	}
	// The CF directory itself a symbolic link.
	link := filepath.Join(base, "cflink")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	c, _, err = Create(CreateOptions{Dir: link, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion})
	if err == nil {
		c.Close()
		t.Fatal("create in a directory that is a symbolic link")
	}
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), link) {
		t.Fatalf("create in a symbolic link: %v", err)
	}
}

// TestCheckFailsReplacedFile: a structure file renamed away and replaced
// by another under its name is a failed structure for the processes that
// map the old one; so is one given to another user or opened to others.
func TestCheckFailsReplacedFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cf")
	o := CreateOptions{Dir: dir, Name: "APPL1", Kind: KindApplication, Size: 64 << 10, Version: testVersion}
	s, _, err := Create(o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("check of a fresh structure: %v", err)
	}
	path := filepath.Join(dir, "APPL1")
	if err := os.Rename(path, filepath.Join(dir, "stolen")); err != nil {
		t.Fatal(err)
	}
	n, _, err := Create(o) // a complete, valid structure of the same name
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := s.Check(); err == nil || !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("check of a structure whose file was renamed away and replaced: %v", err)
	}
	if err := n.Check(); err != nil {
		t.Fatalf("check of the new file: %v", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := n.Check(); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "0666") {
		t.Fatalf("check of a structure opened to others: %v", err)
	}
	if os.Geteuid() != 0 {
		return
	}
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := n.Check(); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "uid 65534") {
		t.Fatalf("check of a structure given to another user: %v", err)
	}
}
