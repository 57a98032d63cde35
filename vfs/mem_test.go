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
	m.MkdirAll("/d")
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
	m.MkdirAll("/d")
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
