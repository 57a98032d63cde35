package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/internal/ownedfs"
)

// Sentinel errors of Mem (OS returns the operating system's errors, which
// errors.Is matches against fs.ErrNotExist, fs.ErrExist and
// syscall.ENOSPC the same way).
var (
	ErrNotExist = fmt.Errorf("vfs: %w", os.ErrNotExist)
	ErrExist    = fmt.Errorf("vfs: %w", os.ErrExist)
	ErrNoSpace  = fmt.Errorf("vfs: no space left on device: %w", unix.ENOSPC)
	ErrClosed   = errors.New("vfs: file closed")
	ErrInjected = errors.New("vfs: injected fault")
	ErrDown     = errors.New("vfs: crashed (Mem.Restart brings it back)")
	// ErrNotSupported: the file system cannot reserve space (Allocate).
	ErrNotSupported = fmt.Errorf("vfs: space reservation not supported: %w", unix.EOPNOTSUPP)
)

// FS is a file system: a tree of directories holding files.
type FS interface {
	// Create makes a new, empty file; it fails (errors.Is os.ErrExist)
	// when one exists.
	Create(name string) (File, error)
	// Open opens an existing file for reading and writing.
	Open(name string) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	// List returns the names (not paths) of the files in dir, sorted; a
	// directory that does not exist has none.
	List(dir string) ([]string, error)
	// ListDirs returns the names of the directories in dir, sorted; a
	// directory that does not exist has none.
	ListDirs(dir string) ([]string, error)
	MkdirAll(dir string) error
	// SyncDir makes the creations, renames and removals in dir so far
	// survive a crash (directories created in dir included).
	SyncDir(dir string) error
	// IsDir reports whether a directory exists at name (false and no
	// error when nothing does).
	IsDir(name string) (bool, error)
}

// SyncParent makes the creation, rename or removal of name survive a
// crash: it syncs the directory holding it. Syncing a file does not make
// its name durable, nor does syncing a new directory make the directory's
// own name durable; every caller that needs a name to outlive a power cut
// (log segments, backups, the directories holding them) goes through
// here or MkdirDurable.
func SyncParent(fsys FS, name string) error {
	return fsys.SyncDir(filepath.Dir(filepath.Clean(name)))
}

// MkdirDurable creates dir and the missing directories above it, and
// makes each one it created survive a crash (SyncParent, from the top
// down). Directories that existed are left alone.
func MkdirDurable(fsys FS, dir string) error {
	return MkdirDurableWith(fsys, dir, fsys.MkdirAll)
}

// MkdirDurableWith is MkdirDurable creating the directories with mkdir,
// which creates dir and its missing parents (with the modes it wants).
func MkdirDurableWith(fsys FS, dir string, mkdir func(dir string) error) error {
	var created []string // missing now, the deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		ok, err := fsys.IsDir(d)
		if err != nil {
			return fmt.Errorf("vfs: create %s: %w", dir, err)
		}
		if ok || d == filepath.Dir(d) {
			break
		}
		created = append(created, d)
	}
	if err := mkdir(dir); err != nil {
		return err
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := SyncParent(fsys, created[i]); err != nil {
			return fmt.Errorf("vfs: create %s: %w", dir, err)
		}
	}
	return nil
}

// File is an open file. Reads and writes are positional, so one File may
// serve a writer and readers at once.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes everything written so far survive a crash (fdatasync).
	Sync() error
	Truncate(size int64) error
	// Allocate reserves the disk space of [off, off+n), growing the file
	// to off+n when it is shorter (fallocate(2) mode 0): writes there
	// cannot fail for want of space. It fails with an error matching
	// ErrNotSupported where the file system cannot reserve space.
	Allocate(off, n int64) error
	Size() (int64, error)
	Close() error
}

// OS returns the operating system's file system. It creates directories
// 0770 and files 0660 whatever the umask, never follows a symbolic link
// at the end of a path, and refuses a directory or file another user
// planted (package ownedfs).
func OS() FS { return osFS{} }

type osFS struct{}

func (osFS) Create(name string) (File, error) {
	f, err := ownedfs.Create(name, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := ownedfs.Open(name, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string) error            { return ownedfs.MkdirAll(dir) }

func (osFS) List(dir string) ([]string, error) {
	return listOS(dir, func(e os.DirEntry) bool { return e.Type().IsRegular() })
}

func (osFS) ListDirs(dir string) ([]string, error) {
	return listOS(dir, os.DirEntry.IsDir)
}

// listOS lists the entries of dir that keep says to, sorted.
func listOS(dir string, keep func(os.DirEntry) bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if keep(e) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) IsDir(name string) (bool, error) {
	st, err := os.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.IsDir(), nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("vfs: sync directory %s: %w", dir, err)
	}
	return nil
}

type osFile struct{ f *os.File }

func (o osFile) ReadAt(p []byte, off int64) (int, error)  { return o.f.ReadAt(p, off) }
func (o osFile) WriteAt(p []byte, off int64) (int, error) { return o.f.WriteAt(p, off) }
func (o osFile) Truncate(size int64) error                { return o.f.Truncate(size) }
func (o osFile) Close() error                             { return o.f.Close() }

func (o osFile) Sync() error {
	for {
		err := unix.Fdatasync(int(o.f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("vfs: fdatasync %s: %w", o.f.Name(), err)
		}
		return nil
	}
}

func (o osFile) Allocate(off, n int64) error {
	for {
		err := unix.Fallocate(int(o.f.Fd()), 0, off, n)
		switch {
		case err == nil:
			return nil
		case err == unix.EINTR:
			continue
		case err == unix.EOPNOTSUPP:
			return fmt.Errorf("%w: %s", ErrNotSupported, o.f.Name())
		}
		return fmt.Errorf("vfs: fallocate %s: %w", o.f.Name(), err)
	}
}

func (o osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
