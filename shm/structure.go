package shm

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	mmap "github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/internal/ownedfs"
)

// Sizes, the header's magic, and the modes of what Create makes.
const (
	PageSize   = 4096
	HeaderSize = PageSize // the header occupies the whole first page
	MaxNameLen = 48
	Magic      = "QMGRCF1\x00"
	FileMode   = ownedfs.FileMode // structure files: owner and group only (0660)
	DirMode    = ownedfs.DirMode  // structure directory: owner and group only (0770)
)

// Header (page 0, HeaderSize bytes, little-endian; written once by the
// creator before the file is linked into place, read by every Attach):
//
//	offset  size  constant     field
//	     0     8  offMagic     magic "QMGRCF1\x00"
//	     8     4  offVersion   layout version of everything after the header
//	    12     4  offKind      kind (Kind): 1 admin, 2 application, 3 log buffer
//	    16     8  offSize      total file size in bytes (a multiple of 4096)
//	    24     8  offCreated   creation time, Unix ns
//	    32     4  offDataOff   offset of the data area (4096)
//	    36     4  -            zero
//	    40    48  offName      structure name, NUL padded (1..48 bytes of A-Z a-z 0-9 . _ %)
//	    88    32  -            zero
//	   120     8  offChecksum  xxhash64 of bytes [0,120)
//	   128  3968  -            zero
const (
	offMagic    = 0
	offVersion  = 8
	offKind     = 12
	offSize     = 16
	offCreated  = 24
	offDataOff  = 32
	offName     = 40
	offChecksum = 120
	headerUsed  = offChecksum + 8 // bytes a decoder needs
)

// Kind says what a structure holds.
type Kind uint32

// Structure kinds.
const (
	KindAdmin       Kind = 1 // group-wide state: peers, connections, channel status, leases
	KindApplication Kind = 2 // queues and messages
	KindLogBuffer   Kind = 3 // a member's log hand-off rings (package recovery/logbuf)
)

func (k Kind) String() string {
	switch k {
	case KindAdmin:
		return "admin"
	case KindApplication:
		return "application"
	case KindLogBuffer:
		return "log buffer"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Structure names every group has: one admin structure and at least one
// application structure.
const (
	AdminStructure              = "ADMIN"
	DefaultApplicationStructure = "APPL1"
)

// DefaultDir is where the structures of a group live unless told otherwise.
func DefaultDir(group string) string { return filepath.Join("/dev/shm", "qmgr-"+group) }

// Header is the decoded structure header.
type Header struct {
	Version uint32
	Kind    Kind
	Size    uint64
	Created time.Time
	DataOff uint64
	Name    string
}

// ValidName reports whether s can name a structure: 1 to 48 characters of
// A-Z a-z 0-9 . _ %, not starting with a dot (dot files are temporaries).
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '%':
		default:
			return false
		}
	}
	return true
}

// encodeHeader renders h into a HeaderSize page, checksum included.
func encodeHeader(h Header) []byte {
	b := make([]byte, HeaderSize)
	copy(b[offMagic:], Magic)
	binary.LittleEndian.PutUint32(b[offVersion:], h.Version)
	binary.LittleEndian.PutUint32(b[offKind:], uint32(h.Kind))
	binary.LittleEndian.PutUint64(b[offSize:], h.Size)
	binary.LittleEndian.PutUint64(b[offCreated:], uint64(h.Created.UnixNano()))
	binary.LittleEndian.PutUint32(b[offDataOff:], uint32(h.DataOff))
	copy(b[offName:offName+MaxNameLen], h.Name)
	binary.LittleEndian.PutUint64(b[offChecksum:], xxhash.Sum64(b[:offChecksum]))
	return b
}

// DecodeHeader parses and checks a header page. It never panics, whatever the
// bytes; the error wraps ErrTruncated, ErrBadMagic, ErrCorrupt or ErrVersion.
// want is the layout version the caller understands (0 accepts any).
func DecodeHeader(b []byte, want uint32) (Header, error) {
	var h Header
	if len(b) < headerUsed {
		return h, &Error{Op: "decode", Err: ErrTruncated, Msg: fmt.Sprintf("%d bytes, a header needs %d", len(b), HeaderSize),
			Hint: "the file is not a complete structure; remove it and let the group recreate it"}
	}
	if string(b[offMagic:offMagic+8]) != Magic {
		return h, &Error{Op: "decode", Err: ErrBadMagic, Msg: fmt.Sprintf("magic %q", b[offMagic:offMagic+8]),
			Hint: "this file is not a qmgr CF structure; check --cf-dir"}
	}
	if sum := xxhash.Sum64(b[:offChecksum]); sum != binary.LittleEndian.Uint64(b[offChecksum:]) {
		return h, &Error{Op: "decode", Err: ErrCorrupt, Msg: "header checksum mismatch",
			Hint: "the header was overwritten; remove the file and recover the structure"}
	}
	h.Version = binary.LittleEndian.Uint32(b[offVersion:])
	h.Kind = Kind(binary.LittleEndian.Uint32(b[offKind:]))
	h.Size = binary.LittleEndian.Uint64(b[offSize:])
	h.Created = time.Unix(0, int64(binary.LittleEndian.Uint64(b[offCreated:])))
	h.DataOff = uint64(binary.LittleEndian.Uint32(b[offDataOff:]))
	name := b[offName : offName+MaxNameLen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	h.Name = string(name)
	if !ValidName(h.Name) {
		return h, &Error{Op: "decode", Err: ErrCorrupt, Msg: fmt.Sprintf("bad structure name %q", h.Name), Hint: "remove the file and recover the structure"}
	}
	if h.Kind != KindAdmin && h.Kind != KindApplication && h.Kind != KindLogBuffer {
		return h, &Error{Op: "decode", Err: ErrCorrupt, Msg: fmt.Sprintf("unknown kind %d", h.Kind), Hint: "remove the file and recover the structure"}
	}
	if h.DataOff != HeaderSize || h.Size < HeaderSize+PageSize || h.Size%PageSize != 0 || h.Size > 1<<46 {
		return h, &Error{Op: "decode", Err: ErrCorrupt, Msg: fmt.Sprintf("size %d, data offset %d", h.Size, h.DataOff), Hint: "remove the file and recover the structure"}
	}
	if want != 0 && h.Version != want {
		return h, &Error{Op: "decode", Err: ErrVersion, Msg: fmt.Sprintf("file has layout version %d, this binary uses %d", h.Version, want),
			Hint: "stop every member of the group and start them with one binary, or remove the structure files so they are recreated"}
	}
	return h, nil
}

// Mapping is one attached structure.
type Mapping struct {
	path   string
	hdr    Header
	f      *os.File
	m      mmap.MMap
	mu     sync.Mutex
	closed bool
}

// Path is the structure file.
func (s *Mapping) Path() string { return s.path }

// Header is the header read at attach.
func (s *Mapping) Header() Header { return s.hdr }

// Mem is the data area (everything after the header page).
func (s *Mapping) Mem() Mem { return MemOf(s.m).Sub(s.hdr.DataOff, s.hdr.Size-s.hdr.DataOff) }

// Linked is the cheap part of Check, one fstat: it fails with ErrTruncated
// or ErrNotFound when the mapped file became shorter than the mapping or
// was removed. A structure recovery removes the failed file before it
// creates the new one, so an operation that must not reach a structure
// being rebuilt checks this on its way (the periodic Check finds the
// rest).
func (s *Mapping) Linked() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.linkedLocked()
	return err
}

// linkedLocked fstats the mapped file and fails as Linked says; s.mu held.
func (s *Mapping) linkedLocked() (unix.Stat_t, error) {
	var st unix.Stat_t
	if s.closed {
		return st, &Error{Op: "check", Path: s.path, Err: ErrClosed}
	}
	if err := unix.Fstat(int(s.f.Fd()), &st); err != nil {
		return st, &Error{Op: "check", Path: s.path, Err: ErrFault, Msg: err.Error()}
	}
	if uint64(st.Size) < s.hdr.Size {
		return st, &Error{Op: "check", Path: s.path, Err: ErrTruncated, Msg: fmt.Sprintf("file is %d bytes, mapped %d", st.Size, s.hdr.Size),
			Hint: "the structure has failed; recover it"}
	}
	if st.Nlink == 0 {
		return st, &Error{Op: "check", Path: s.path, Err: ErrNotFound, Msg: "file was removed while mapped", Hint: "the structure has failed; recover it"}
	}
	return st, nil
}

// Check revalidates the file behind the mapping: it fails with ErrTruncated
// when the file became shorter than the mapping (touching the lost pages would
// fault), with ErrNotFound when the file was removed, renamed away or
// replaced (its name no longer names the mapped file), and with
// ErrPermission when the mapped file changed owner or was opened to other
// users. Each is a failed structure.
func (s *Mapping) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.linkedLocked()
	if err != nil {
		return err
	}
	if err := ownedfs.Verify(s.f, s.path); err != nil {
		return osError("check", s.path, err)
	}
	var named unix.Stat_t
	if err := unix.Lstat(s.path, &named); err != nil {
		return &Error{Op: "check", Path: s.path, Err: ErrNotFound, Msg: "file was renamed away while mapped: " + err.Error(), Hint: "the structure has failed; recover it"}
	}
	if named.Dev != st.Dev || named.Ino != st.Ino {
		return &Error{Op: "check", Path: s.path, Err: ErrNotFound, Msg: fmt.Sprintf("file was replaced while mapped: the name is inode %d, the mapping inode %d", named.Ino, st.Ino),
			Hint: "the structure has failed; recover it"}
	}
	return nil
}

// Close detaches the structure. The Mem views must not be used afterwards.
func (s *Mapping) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.m.Unmap()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// CreateOptions says what to create.
type CreateOptions struct {
	Dir     string // directory of the group's structures (required)
	Name    string // structure name (required, see ValidName)
	Kind    Kind   // admin or application (required)
	Size    uint64 // total file size; rounded up to a page; at least 2 pages
	Version uint32 // layout version of the data area (required, non-zero)
	// Init initialises the data area of a new structure before anyone else
	// can see it. It runs at most once per Create call and only by the process
	// whose file becomes the structure's (others may run it on a file that
	// then loses the race and is discarded).
	Init func(m Mem) error
}

// Validate checks the options.
func (o *CreateOptions) Validate() error {
	if o.Dir == "" {
		return &Error{Op: "create", Err: ErrBadName, Msg: "no directory given"}
	}
	if !ValidName(o.Name) {
		return &Error{Op: "create", Path: filepath.Join(o.Dir, o.Name), Err: ErrBadName,
			Msg: fmt.Sprintf("%q", o.Name), Hint: "use 1 to 48 characters of A-Z a-z 0-9 . _ %, not starting with a dot"}
	}
	if o.Kind != KindAdmin && o.Kind != KindApplication && o.Kind != KindLogBuffer {
		return &Error{Op: "create", Path: filepath.Join(o.Dir, o.Name), Err: ErrBadSize, Msg: fmt.Sprintf("unknown kind %d", o.Kind)}
	}
	if o.Version == 0 {
		return &Error{Op: "create", Path: filepath.Join(o.Dir, o.Name), Err: ErrBadSize, Msg: "layout version 0"}
	}
	if o.Size < 2*PageSize || o.Size > 1<<46 {
		return &Error{Op: "create", Path: filepath.Join(o.Dir, o.Name), Err: ErrBadSize,
			Msg: fmt.Sprintf("%d bytes", o.Size), Hint: "give a size between 8 KiB and 64 TiB"}
	}
	return nil
}

// Create creates the structure, or attaches it when it already exists, and
// reports which happened. Several processes may call Create for one
// structure at once: exactly one initialises it and the others attach the
// result. An existing structure is attached whatever its size; a version
// mismatch is an error.
func Create(o CreateOptions) (*Mapping, bool, error) {
	o.Size = (o.Size + PageSize - 1) &^ (PageSize - 1)
	if err := o.Validate(); err != nil {
		return nil, false, err
	}
	path := filepath.Join(o.Dir, o.Name)
	if err := ownedfs.MkdirAll(o.Dir); err != nil {
		return nil, false, osError("create", o.Dir, err)
	}
	if s, err := Attach(o.Dir, o.Name, o.Version); err == nil {
		return s, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	s, tmp, err := build(o)
	if err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp, path); err != nil {
		s.Close()
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			a, aerr := Attach(o.Dir, o.Name, o.Version)
			return a, false, aerr
		}
		return nil, false, osError("create", path, err)
	}
	os.Remove(tmp)
	return s, true, nil
}

// Recreate creates the structure in place of the file of its name, if
// there is one, in one step (rename(2)): a process that opens the name
// finds the old file or the new one, complete. Processes that have the
// old file mapped keep it. Only the structure's single owner may call it
// (a member replacing its damaged log buffer); it is not a way to win a
// creation race.
func Recreate(o CreateOptions) (*Mapping, error) {
	o.Size = (o.Size + PageSize - 1) &^ (PageSize - 1)
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if err := ownedfs.MkdirAll(o.Dir); err != nil {
		return nil, osError("recreate", o.Dir, err)
	}
	s, tmp, err := build(o)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		s.Close()
		os.Remove(tmp)
		return nil, osError("recreate", s.path, err)
	}
	return s, nil
}

// build makes a complete, initialised structure file (mode FileMode)
// under a temporary name in o.Dir, which the caller checked, and maps it;
// the caller gives it its final name.
func build(o CreateOptions) (*Mapping, string, error) {
	path := filepath.Join(o.Dir, o.Name)
	cleanStaleTemps(o.Dir, o.Name)

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(o.Dir, fmt.Sprintf(".%s.%d.%s.tmp", o.Name, os.Getpid(), hex.EncodeToString(rnd[:])))
	f, err := ownedfs.Create(tmp, os.O_RDWR) // 0660 whatever the umask: group members must be able to attach
	if err != nil {
		return nil, "", osError("create", tmp, err)
	}
	discard := func() { f.Close(); os.Remove(tmp) }
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(o.Size)); err != nil {
		discard()
		if errors.Is(err, unix.ENOSPC) {
			return nil, "", &Error{Op: "create", Path: path, Err: ErrNoSpace, Msg: fmt.Sprintf("%d bytes", o.Size),
				Hint: "free space in the CF directory's file system (df -h " + o.Dir + ") or create a smaller structure"}
		}
		if !errors.Is(err, unix.EOPNOTSUPP) {
			return nil, "", osError("create", tmp, err)
		}
		if err := f.Truncate(int64(o.Size)); err != nil {
			return nil, "", osError("create", tmp, err)
		}
	}
	hdr := Header{Version: o.Version, Kind: o.Kind, Size: o.Size, Created: time.Now(), DataOff: HeaderSize, Name: o.Name}
	m, err := mapFile(f, o.Size)
	if err != nil {
		discard()
		return nil, "", &Error{Op: "create", Path: path, Err: ErrNoSpace, Msg: err.Error(), Hint: "free memory or space in " + o.Dir}
	}
	s := &Mapping{path: path, hdr: hdr, f: f, m: m}
	if o.Init != nil {
		if err := Guard(func() error { return o.Init(s.Mem()) }); err != nil {
			s.Close()
			os.Remove(tmp)
			return nil, "", fmt.Errorf("create %s: initialise: %w", path, err)
		}
	}
	// The header goes in last: until the caller names the file nobody can
	// open it, and from then on it is complete.
	copy(m[:HeaderSize], encodeHeader(hdr))
	return s, tmp, nil
}

// Attach maps an existing structure after validating its header. version is
// the layout version the caller understands (0 accepts any). The file is
// opened without following a symbolic link and must be the user's or the
// group's, with no access for others (package ownedfs): anything else
// fails with ErrPermission.
func Attach(dir, name string, version uint32) (*Mapping, error) {
	if !ValidName(name) {
		return nil, &Error{Op: "attach", Path: filepath.Join(dir, name), Err: ErrBadName, Msg: fmt.Sprintf("%q", name)}
	}
	path := filepath.Join(dir, name)
	// The directory first: a stranger's symbolic link in its place (the
	// group's directory in /dev/shm is predictable) would lead an
	// application into another group's structures of the same owner.
	d, err := ownedfs.OpenDir(dir)
	if err != nil {
		return nil, osError("attach", dir, err)
	}
	d.Close()
	f, err := ownedfs.Open(path, os.O_RDWR)
	if err != nil {
		return nil, osError("attach", path, err)
	}
	fail := func(e error) (*Mapping, error) {
		f.Close()
		if se, ok := e.(*Error); ok {
			se.Op, se.Path = "attach", path
		}
		return nil, e
	}
	st, err := f.Stat()
	if err != nil {
		return fail(osError("attach", path, err))
	}
	if !st.Mode().IsRegular() {
		return fail(&Error{Err: ErrBadMagic, Msg: "not a regular file"})
	}
	page := make([]byte, HeaderSize)
	n, err := f.ReadAt(page, 0)
	if n < headerUsed {
		msg := fmt.Sprintf("file is %d bytes, shorter than a header", st.Size())
		if err != nil && n == 0 && st.Size() > 0 {
			msg += ": " + err.Error()
		}
		return fail(&Error{Err: ErrTruncated, Msg: msg, Hint: "remove the file and let the group recreate or recover the structure"})
	}
	h, err := DecodeHeader(page[:n], version)
	if err != nil {
		return fail(err)
	}
	if h.Name != name {
		return fail(&Error{Err: ErrCorrupt, Msg: fmt.Sprintf("header names structure %q", h.Name), Hint: "the file was renamed or copied; remove it"})
	}
	if uint64(st.Size()) < h.Size {
		return fail(&Error{Err: ErrTruncated, Msg: fmt.Sprintf("file is %d bytes, header says %d", st.Size(), h.Size),
			Hint: "the structure has failed; remove the file and recover the structure"})
	}
	m, err := mapFile(f, h.Size)
	if err != nil {
		return fail(&Error{Err: ErrTruncated, Msg: err.Error(), Hint: "the structure has failed; remove the file and recover the structure"})
	}
	return &Mapping{path: path, hdr: h, f: f, m: m}, nil
}

// mapFile maps size bytes of f shared and prefaults the page tables so the
// data path never faults. A file that is shorter than size fails here with
// an error instead of a SIGBUS later.
func mapFile(f *os.File, size uint64) (mmap.MMap, error) {
	m, err := mmap.MapRegion(f, int(size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	if err := unix.Madvise(m, unix.MADV_POPULATE_WRITE); err != nil && !errors.Is(err, unix.EINVAL) {
		m.Unmap()
		return nil, fmt.Errorf("populate: %w", err)
	}
	return m, nil
}

// Remove deletes a structure file. Processes that have it mapped keep their
// mapping; new attaches fail with ErrNotFound.
func Remove(dir, name string) error {
	if !ValidName(name) {
		return &Error{Op: "remove", Path: filepath.Join(dir, name), Err: ErrBadName}
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		return osError("remove", filepath.Join(dir, name), err)
	}
	return nil
}

// List returns the names of the structures in dir, sorted.
//
// The space maps of shared message data sets (package smds), which live
// beside the structures because they share their lifetime, are not
// structures: names ending in SpaceMapSuffix are left out.
func List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, osError("list", dir, err)
	}
	var out []string
	for _, e := range ents {
		if ValidName(e.Name()) && e.Type().IsRegular() && !strings.HasSuffix(e.Name(), SpaceMapSuffix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// SpaceMapSuffix ends the file names of the space maps of shared message
// data sets (<structure>.<member>.smap, package smds) in a CF directory.
const SpaceMapSuffix = ".smap"

// cleanStaleTemps removes temporaries of name left by creators that died.
func cleanStaleTemps(dir, name string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	prefix := "." + name + "."
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ".tmp") {
			continue
		}
		rest := strings.TrimPrefix(n, prefix)
		pidStr, _, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

func osError(op, path string, err error) error {
	var refused *ownedfs.Error
	switch {
	case errors.As(err, &refused):
		return &Error{Op: op, Path: path, Err: ErrPermission, Msg: err.Error(), cause: err}
	case errors.Is(err, fs.ErrNotExist):
		return &Error{Op: op, Path: path, Err: ErrNotFound, Msg: err.Error(), Hint: "start a member of the group to create it, or check --cf-dir"}
	case errors.Is(err, fs.ErrPermission):
		return &Error{Op: op, Path: path, Err: ErrPermission, Msg: err.Error(),
			Hint: "run as the user that owns the group's files or as a member of its group"}
	case errors.Is(err, unix.ENOSPC):
		return &Error{Op: op, Path: path, Err: ErrNoSpace, Msg: err.Error(), Hint: "free space in the CF directory's file system"}
	}
	return fmt.Errorf("%s %s: %w", op, path, err)
}
