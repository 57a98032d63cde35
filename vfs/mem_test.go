package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

func mustCreate(t *testing.T, m *Mem, name string, data []byte, sync bool) File {
	t.Helper()
	f, err := m.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func content(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	n, _ := f.Size()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func TestMemCrashKeepsOnlySynced(t *testing.T) {
	m := NewMem(1)
	if err := MkdirDurable(m, "/d"); err != nil {
		t.Fatal(err)
	}
	synced := mustCreate(t, m, "/d/synced", []byte("durable"), true)
	mustCreate(t, m, "/d/unsynced", []byte("lost"), false)
	m.SyncDir("/d")
	mustCreate(t, m, "/d/late", []byte("name not synced"), true)
	synced.WriteAt([]byte("XX"), 0) // not synced
	m.Crash(false)
	if _, err := m.Open("/d/synced"); !errors.Is(err, ErrDown) {
		t.Fatalf("open on a crashed disk: %v", err)
	}
	m.Restart()
	if got := content(t, m, "/d/synced"); string(got) != "durable" {
		t.Fatalf("synced file after crash: %q", got)
	}
	if got := content(t, m, "/d/unsynced"); len(got) != 0 {
		t.Fatalf("unsynced file after crash: %q", got)
	}
	if _, err := m.Open("/d/late"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file created after the last directory sync: %v", err)
	}
	if _, err := synced.WriteAt([]byte("x"), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("handle from before the crash: %v", err)
	}
	names, _ := m.List("/d")
	if len(names) != 2 {
		t.Fatalf("names after crash: %v", names)
	}
}

func TestMemTornWriteKeepsSomeSectors(t *testing.T) {
	m := NewMem(2)
	MkdirDurable(m, "/d")
	f := mustCreate(t, m, "/d/f", make([]byte, 64*SectorSize), true)
	m.SyncDir("/d")
	f.WriteAt(bytes.Repeat([]byte{1}, 64*SectorSize), 0)
	m.Crash(true)
	m.Restart()
	got := content(t, m, "/d/f")
	kept := 0
	for s := range 64 {
		sec := got[s*SectorSize : (s+1)*SectorSize]
		switch {
		case bytes.Equal(sec, bytes.Repeat([]byte{1}, SectorSize)):
			kept++
		case !bytes.Equal(sec, make([]byte, SectorSize)):
			t.Fatalf("sector %d half written", s)
		}
	}
	if kept == 0 || kept == 64 {
		t.Fatalf("%d of 64 unsynced sectors kept; a torn write keeps some", kept)
	}
}

func TestMemFaultsAndCapacity(t *testing.T) {
	m := NewMem(3)
	m.MkdirAll("/d")
	m.SetCapacity(1000)
	f := mustCreate(t, m, "/d/f", make([]byte, 600), true)
	g, _ := m.Create("/d/g")
	n, err := g.WriteAt(make([]byte, 600), 0)
	if n != 400 || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("write past capacity: %d, %v", n, err)
	}
	m.Remove("/d/g")
	m.SetFault(func(op Op, name string, off int64, n int) (int, error) {
		if op == OpWrite {
			return n / 2, errors.New("short")
		}
		if op == OpSync {
			return 0, errors.New("eio")
		}
		return n, nil
	})
	if n, err := f.WriteAt([]byte("abcd"), 0); n != 2 || err == nil {
		t.Fatalf("short write: %d, %v", n, err)
	}
	if err := f.Sync(); err == nil {
		t.Fatal("sync passed a failing hook")
	}
	m.SetFault(nil)
	if got := content(t, m, "/d/f"); string(got[:4]) != "ab\x00\x00" {
		t.Fatalf("after a short write: %q", got[:4])
	}
}

func TestOS(t *testing.T) {
	fsys := OS()
	dir := t.TempDir()
	if err := fsys.MkdirAll(dir + "/a"); err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Create(dir + "/a/f")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("hello"), 0)
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := fsys.Create(dir + "/a/f"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("create over a file: %v", err)
	}
	if err := fsys.Rename(dir+"/a/f", dir+"/a/g"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir(dir + "/a"); err != nil {
		t.Fatal(err)
	}
	names, _ := fsys.List(dir + "/a")
	if len(names) != 1 || names[0] != "g" || string(content(t, fsys, dir+"/a/g")) != "hello" {
		t.Fatalf("names %v", names)
	}
	if names, err := fsys.List(dir + "/none"); err != nil || names != nil {
		t.Fatalf("listing a missing directory: %v, %v", names, err)
	}
}

// TestMemDirectoryNames: a directory's own name is durable only once the
// directory holding it is synced: a crash before that takes the directory
// away with every file in it, synced or not. MkdirDurable syncs the
// parent of every directory it creates; SyncParent makes a file's new
// name durable.
func TestMemDirectoryNames(t *testing.T) {
	m := NewMem(4)
	if err := m.MkdirAll("/data/log/QM1"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, m, "/data/log/QM1/seg", []byte("records"), true)
	if err := m.SyncDir("/data/log/QM1"); err != nil {
		t.Fatal(err)
	}
	m.Crash(false)
	m.Restart()
	if ok, _ := m.IsDir("/data"); ok {
		t.Fatal("a directory whose parent was never synced survived a crash")
	}
	if _, err := m.Open("/data/log/QM1/seg"); err == nil {
		t.Fatal("a file in a directory whose name was never synced survived a crash")
	}

	if err := MkdirDurable(m, "/data/log/QM1"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, m, "/data/log/QM1/seg", []byte("records"), true)
	if err := SyncParent(m, "/data/log/QM1/seg"); err != nil {
		t.Fatal(err)
	}
	// Created after the parent's sync: not durable.
	if err := m.MkdirAll("/data/backup"); err != nil {
		t.Fatal(err)
	}
	m.Crash(false)
	m.Restart()
	if got := content(t, m, "/data/log/QM1/seg"); string(got) != "records" {
		t.Fatalf("after MkdirDurable and SyncParent: %q", got)
	}
	if ok, _ := m.IsDir("/data/backup"); ok {
		t.Fatal("a directory created after its parent's last sync survived a crash")
	}
	if ok, err := m.IsDir("/data/log/QM1/seg"); ok || err != nil {
		t.Fatalf("IsDir of a file: %v, %v", ok, err)
	}
}

// TestMkdirDurableOS: the helper on the real file system creates every
// missing level and leaves existing ones alone.
func TestMkdirDurableOS(t *testing.T) {
	dir := t.TempDir()
	if err := MkdirDurable(OS(), dir+"/a/b/c"); err != nil {
		t.Fatal(err)
	}
	if ok, err := OS().IsDir(dir + "/a/b/c"); !ok || err != nil {
		t.Fatalf("IsDir: %v, %v", ok, err)
	}
	if err := MkdirDurable(OS(), dir+"/a/b/c"); err != nil {
		t.Fatalf("again: %v", err)
	}
	if ok, err := OS().IsDir(dir + "/none"); ok || err != nil {
		t.Fatalf("IsDir of nothing: %v, %v", ok, err)
	}
}

// TestMemAllocate: space reserved with Allocate is there for writes when
// the disk is full; a file grown with Truncate is sparse, and writing its
// holes needs space; an Allocate that does not fit fails whole; freeing a
// file gives its space back; what a crash keeps is what was synced.
func TestMemAllocate(t *testing.T) {
	m := NewMem(5)
	MkdirDurable(m, "/d")
	m.SetCapacity(10000)
	seg, _ := m.Create("/d/seg")
	if err := seg.Allocate(0, 8000); err != nil {
		t.Fatal(err)
	}
	if sz, _ := seg.Size(); sz != 8000 || m.Used() != 8000 {
		t.Fatalf("size %d, used %d after allocating 8000", sz, m.Used())
	}
	next, _ := m.Create("/d/next")
	if err := next.Allocate(0, 8000); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("allocate past the capacity: %v", err)
	}
	if m.Used() != 8000 {
		t.Fatalf("a failed allocation took space: %d", m.Used())
	}
	sparse, _ := m.Create("/d/sparse")
	if err := sparse.Truncate(8000); err != nil {
		t.Fatalf("a sparse grow needs no space: %v", err)
	}
	if n, err := sparse.WriteAt(make([]byte, 3000), 0); n != 2000 || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("writing the holes of a sparse file on a full disk: %d, %v", n, err)
	}
	// The disk is full now; the reserved segment still takes writes.
	if n, err := seg.WriteAt(bytes.Repeat([]byte{1}, 8000), 0); n != 8000 || err != nil {
		t.Fatalf("write into reserved space on a full disk: %d, %v", n, err)
	}
	if err := seg.Sync(); err != nil {
		t.Fatal(err)
	}
	m.Remove("/d/sparse")
	if err := next.Allocate(0, 2000); err != nil {
		t.Fatalf("allocate after space was freed: %v", err)
	}
	m.SyncDir("/d")
	m.Crash(false)
	m.Restart()
	// next's allocation was never synced: gone with its size.
	if m.Used() != 8000 {
		t.Fatalf("used after crash: %d", m.Used())
	}
	if got := content(t, m, "/d/seg"); len(got) != 8000 || got[7999] != 1 {
		t.Fatalf("reserved and synced segment after crash: %d bytes", len(got))
	}
}

func TestOSAllocate(t *testing.T) {
	f, err := OS().Create(t.TempDir() + "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = f.Allocate(0, 1<<20)
	if errors.Is(err, ErrNotSupported) {
		t.Logf("the test directory's file system cannot reserve space: %v", err)
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if sz, _ := f.Size(); sz != 1<<20 {
		t.Fatalf("size %d after allocating 1 MiB", sz)
	}
}
