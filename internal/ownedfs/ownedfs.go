package ownedfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Modes of what qmgr creates: the owner and the group may read and write,
// others nothing.
const (
	DirMode  fs.FileMode = 0o770
	FileMode fs.FileMode = 0o660
)

// Sentinel errors; every refusal is an *Error wrapping one of them.
var (
	ErrSymlink      = errors.New("ownedfs: a symbolic link")
	ErrNotOwned     = errors.New("ownedfs: owned by another user and group")
	ErrOpenToOthers = errors.New("ownedfs: open to other users")
	ErrWrongType    = errors.New("ownedfs: not of the expected type")
)

// Error is a refusal: what was found at Path.
type Error struct {
	Op   string // "create", "open", "check"
	Path string
	Want string // "directory" or "file"
	Uid  uint32 // owner
	Gid  uint32 // group
	Mode uint32 // st_mode: the type and permission bits
	Err  error  // one of the sentinels
}

func (e *Error) Error() string {
	owner := "uid " + strconv.FormatUint(uint64(e.Uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(e.Uid), 10)); err == nil {
		owner += " (" + u.Username + ")"
	}
	return fmt.Sprintf("%v: refusing to %s %s %s: owner %s, gid %d, mode %s %04o; qmgr uses only what its user (uid %d) or group (gid %d) owns, of mode at most %04o, and no symbolic link (remove it, or give it to the group's user and group with no access for others)",
		e.Err, e.Op, e.Want, e.Path, owner, e.Gid, typeName(e.Mode), e.Mode&0o7777, os.Geteuid(), os.Getegid(), wantMode(e.Want))
}

// Unwrap returns the sentinel.
func (e *Error) Unwrap() error { return e.Err }

// Is makes a refusal match fs.ErrPermission too: callers that map a
// permission error to "not authorised" treat both alike.
func (e *Error) Is(target error) bool { return target == fs.ErrPermission }

func wantMode(want string) fs.FileMode {
	if want == "directory" {
		return DirMode
	}
	return FileMode
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "file"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFIFO:
		return "fifo"
	}
	return "special file"
}

// MkdirAll makes dir and its missing parents (mode DirMode, whatever the
// umask), or checks the existing dir (see the package doc); an existing
// parent is used as it is.
func MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	err := unix.Mkdir(dir, uint32(DirMode))
	if errors.Is(err, unix.ENOENT) && filepath.Dir(dir) != dir {
		if perr := MkdirAll(filepath.Dir(dir)); perr != nil {
			return perr
		}
		err = unix.Mkdir(dir, uint32(DirMode))
	}
	created := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	f, err := openNoFollow(dir, unix.O_RDONLY|unix.O_DIRECTORY, "directory")
	if err != nil {
		return err
	}
	defer f.Close()
	if created {
		return fchmod(f, DirMode)
	}
	return accept(f, "open", "directory")
}

// Create makes a new file (O_EXCL: it fails with fs.ErrExist when the
// name is taken, by a file or a symbolic link) of mode FileMode, opened
// with flag (O_RDWR, O_WRONLY...).
func Create(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, FileMode)
	if err != nil {
		return nil, err
	}
	if err := fchmod(f, FileMode); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// Open opens an existing file with flag (O_RDONLY, O_RDWR...; not
// O_CREATE) after checking it (see the package doc).
func Open(path string, flag int) (*os.File, error) {
	f, err := openNoFollow(path, flag&^os.O_CREATE, "file")
	if err != nil {
		return nil, err
	}
	if err := accept(f, "open", "file"); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// OpenOrCreate opens path, creating it (mode FileMode) when it does not
// exist, and reports whether it did.
func OpenOrCreate(path string, flag int) (*os.File, bool, error) {
	for {
		f, err := Create(path, flag)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		f, err = Open(path, flag)
		if !errors.Is(err, fs.ErrNotExist) { // removed in between: again
			return f, false, err
		}
	}
}

// OpenDir opens an existing directory without following a symbolic link
// and checks it without changing it: of the effective user or group, and
// not writable by others (others may read and search one qmgr did not
// make: they cannot plant anything in it). The caller closes it.
func OpenDir(dir string) (*os.File, error) {
	f, err := openNoFollow(filepath.Clean(dir), unix.O_RDONLY|unix.O_DIRECTORY, "directory")
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if err := check(&st, "check", dir, "directory"); err != nil && !(errors.Is(err, ErrOpenToOthers) && st.Mode&0o002 == 0) {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Verify checks an open file or directory as Open does, without changing
// it: a file of the effective user's that others may read is refused too.
func Verify(f *os.File, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	want := "file"
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		want = "directory"
	}
	return check(&st, "check", path, want)
}

// openNoFollow opens path without following a symbolic link at its end;
// one there is refused with the link's owner and mode.
func openNoFollow(path string, flag int, want string) (*os.File, error) {
	// O_NONBLOCK: a FIFO planted at path is opened (and then refused by
	// its type) at once, instead of waiting for a writer or reader; it
	// changes nothing for a regular file or a directory.
	f, err := os.OpenFile(path, flag|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err == nil {
		return f, nil
	}
	var st unix.Stat_t
	// ELOOP: a symbolic link; ENOTDIR: not a directory; ENXIO: a FIFO
	// with no reader opened to write, or a socket.
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENXIO) {
		if lerr := unix.Lstat(path, &st); lerr == nil {
			e := &Error{Op: "open", Path: path, Want: want, Uid: st.Uid, Gid: st.Gid, Mode: st.Mode, Err: ErrWrongType}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				e.Err = ErrSymlink
			}
			return nil, e
		}
	}
	return nil, err
}

// accept checks what f opened and tightens one of the effective user's
// own that others may read but not write.
func accept(f *os.File, op, want string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	err := check(&st, op, f.Name(), want)
	if errors.Is(err, ErrOpenToOthers) && int(st.Uid) == os.Geteuid() && st.Mode&0o002 == 0 {
		return fchmod(f, fs.FileMode(st.Mode&0o7770))
	}
	return err
}

// check applies the rules of the package doc to st.
func check(st *unix.Stat_t, op, path, want string) error {
	e := &Error{Op: op, Path: path, Want: want, Uid: st.Uid, Gid: st.Gid, Mode: st.Mode}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case isDir != (want == "directory") || !isDir && st.Mode&unix.S_IFMT != unix.S_IFREG:
		e.Err = ErrWrongType
	case int(st.Uid) != os.Geteuid() && int(st.Gid) != os.Getegid():
		e.Err = ErrNotOwned
	case st.Mode&0o007 != 0:
		e.Err = ErrOpenToOthers
	default:
		return nil
	}
	return e
}

// fchmod sets mode on f (the umask does not apply to fchmod).
func fchmod(f *os.File, mode fs.FileMode) error {
	if err := unix.Fchmod(int(f.Fd()), uint32(mode)); err != nil {
		return &fs.PathError{Op: "chmod", Path: f.Name(), Err: err}
	}
	return nil
}
