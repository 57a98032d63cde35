package vfs

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// Op names an operation a Fault hook is asked about.
type Op int

const (
	OpCreate Op = iota
	OpOpen
	OpRemove
	OpRename
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpSyncDir
	OpAllocate
)

var opNames = [...]string{"create", "open", "remove", "rename", "read", "write", "sync", "truncate", "syncdir", "allocate"}

func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// ErrSyncedAnyway, returned by a Fault hook for OpSync (wrapped or
// not), makes the sync report that error after making the data durable:
// a failed fdatasync leaves the data on disk or not, and tests need both.
var ErrSyncedAnyway = errors.New("vfs: sync failed (but the data reached the disk)")

// Fault is asked before every operation of a Mem. For OpWrite, n is the
// length of the buffer: returning (k, err) with k < n and a non-nil err
// writes the first k bytes and fails (a short write). For every other
// operation a non-nil error fails it before it does anything. Returning
// (n, nil) lets the operation through. The hook runs with the Mem locked:
// it must not call the Mem.
type Fault func(op Op, name string, off int64, n int) (int, error)

// SectorSize is the unit a torn write keeps or loses.
const SectorSize = 512

// Mem is a file system in memory that models what a crash keeps. The zero
// value is not usable; call NewMem.
type Mem struct {
	mu       sync.Mutex
	dirs     map[string]*memDir
	gen      uint64 // bumped by Crash: handles from before it are dead
	down     bool   // crashed and not restarted: every operation fails
	capacity int64
	used     int64
	fault    Fault
	rng      *rand.Rand
}

type memDir struct {
	cur, durable map[string]*inode
	// named: the directory's own name in its parent survives a crash
	// (its parent was synced since it was created; the root always).
	named bool
}

type inode struct {
	data   []byte // what reads see
	synced []byte // what survives a crash
	dirty  map[int64]bool
	// alloc: the bytes that take space (written or allocated), counted
	// against the capacity; syncedAlloc: those that survive a crash.
	alloc, syncedAlloc spans
}

// NewMem returns an empty Mem whose torn writes are drawn from seed.
func NewMem(seed uint64) *Mem {
	return &Mem{dirs: map[string]*memDir{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// SetFault installs (or, with nil, removes) the fault hook.
func (m *Mem) SetFault(f Fault) {
	m.mu.Lock()
	m.fault = f
	m.mu.Unlock()
}

// SetCapacity limits the bytes all files may have allocated together (0:
// no limit). Space is allocated by writes and by Allocate; a file grown
// by Truncate is sparse (its new part takes no space until written). A
// write that needs more space than is left writes what fits and fails
// with ErrNoSpace; an Allocate that needs more fails whole. Lowering the
// capacity below what is allocated frees nothing: later allocations fail
// until files are removed or the capacity is raised again.
func (m *Mem) SetCapacity(n int64) {
	m.mu.Lock()
	m.capacity = n
	m.mu.Unlock()
}

// Crash forgets everything not synced, as a power cut would. With torn,
// each unsynced sector written since its file's last Sync survives or not
// at random. Every File opened before the crash fails from now on, and so
// does every operation until Restart: the program that was running is
// dead, and nothing it still tries reaches the disk.
func (m *Mem) Crash(torn bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = true
	m.gen++
	m.forgetUnnamedDirs()
	seen := map[*inode]bool{}
	for _, d := range m.dirs {
		d.cur = clone(d.durable)
		for _, in := range d.cur {
			if seen[in] {
				continue
			}
			seen[in] = true
			data := append([]byte(nil), in.synced...)
			if torn {
				secs := make([]int64, 0, len(in.dirty))
				for s := range in.dirty {
					secs = append(secs, s)
				}
				sort.Slice(secs, func(i, j int) bool { return secs[i] < secs[j] })
				for _, s := range secs {
					if m.rng.IntN(2) == 0 {
						continue
					}
					off := s * SectorSize
					end := min(off+SectorSize, int64(len(in.data)))
					if off >= end {
						continue
					}
					if int64(len(data)) < end {
						data = append(data, make([]byte, end-int64(len(data)))...)
					}
					copy(data[off:end], in.data[off:end])
				}
			}
			in.data = data
			in.synced = append([]byte(nil), data...)
			in.alloc = append(spans(nil), in.syncedAlloc...)
			if torn {
				for s := range in.dirty {
					in.alloc = in.alloc.add(s*SectorSize, (s+1)*SectorSize)
				}
			}
			in.alloc = in.alloc.cut(int64(len(data)))
			in.syncedAlloc = append(spans(nil), in.alloc...)
			in.dirty = nil
		}
	}
	m.used = 0
	for in := range seen {
		m.used += in.alloc.total()
	}
}

// Used is the space all files take now (see SetCapacity).
func (m *Mem) Used() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used
}

// forgetUnnamedDirs drops, as a crash does, every directory whose name
// never reached the disk, with everything below it.
func (m *Mem) forgetUnnamedDirs() {
	paths := make([]string, 0, len(m.dirs))
	for p := range m.dirs {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) < len(paths[j]) })
	for _, p := range paths {
		parent := filepath.Dir(p)
		_, parentKept := m.dirs[parent]
		if !m.dirs[p].named || parent != p && !parentKept {
			delete(m.dirs, p)
		}
	}
}

func clone(src map[string]*inode) map[string]*inode {
	dst := make(map[string]*inode, len(src))
	for k, v := range src {
		dst[k] = v
	}
	return dst
}

// Restart brings the disk back after a Crash, for the next run of the
// program.
func (m *Mem) Restart() {
	m.mu.Lock()
	m.down = false
	m.mu.Unlock()
}

func (m *Mem) ask(op Op, name string, off int64, n int) (int, error) {
	if m.down {
		return 0, fmt.Errorf("vfs: %s %s: %w", op, name, ErrDown)
	}
	if m.fault == nil {
		return n, nil
	}
	k, err := m.fault(op, name, off, n)
	if err != nil {
		return min(max(k, 0), n), fmt.Errorf("vfs: %s %s: %w", op, name, err)
	}
	return n, nil
}

func (m *Mem) dir(name string) (*memDir, string, error) {
	d, ok := m.dirs[filepath.Dir(filepath.Clean(name))]
	if !ok {
		return nil, "", fmt.Errorf("vfs: %s: directory: %w", name, ErrNotExist)
	}
	return d, filepath.Base(name), nil
}

func (m *Mem) MkdirAll(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return fmt.Errorf("vfs: mkdir %s: %w", dir, ErrDown)
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, ok := m.dirs[d]; !ok {
			m.dirs[d] = &memDir{cur: map[string]*inode{}, durable: map[string]*inode{}, named: d == filepath.Dir(d)}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (m *Mem) Create(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ask(OpCreate, name, 0, 0); err != nil {
		return nil, err
	}
	d, base, err := m.dir(name)
	if err != nil {
		return nil, err
	}
	if _, ok := d.cur[base]; ok {
		return nil, fmt.Errorf("vfs: create %s: %w", name, ErrExist)
	}
	in := &inode{}
	d.cur[base] = in
	return &memFile{m: m, in: in, name: name, gen: m.gen}, nil
}

func (m *Mem) Open(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ask(OpOpen, name, 0, 0); err != nil {
		return nil, err
	}
	d, base, err := m.dir(name)
	if err != nil {
		return nil, err
	}
	in, ok := d.cur[base]
	if !ok {
		return nil, fmt.Errorf("vfs: open %s: %w", name, ErrNotExist)
	}
	return &memFile{m: m, in: in, name: name, gen: m.gen}, nil
}

func (m *Mem) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ask(OpRemove, name, 0, 0); err != nil {
		return err
	}
	d, base, err := m.dir(name)
	if err != nil {
		return err
	}
	in, ok := d.cur[base]
	if !ok {
		return fmt.Errorf("vfs: remove %s: %w", name, ErrNotExist)
	}
	delete(d.cur, base)
	m.used -= in.alloc.total()
	in.alloc = nil
	return nil
}

func (m *Mem) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ask(OpRename, oldname, 0, 0); err != nil {
		return err
	}
	od, ob, err := m.dir(oldname)
	if err != nil {
		return err
	}
	nd, nb, err := m.dir(newname)
	if err != nil {
		return err
	}
	in, ok := od.cur[ob]
	if !ok {
		return fmt.Errorf("vfs: rename %s: %w", oldname, ErrNotExist)
	}
	if old, ok := nd.cur[nb]; ok && old != in {
		m.used -= old.alloc.total()
		old.alloc = nil
	}
	delete(od.cur, ob)
	nd.cur[nb] = in
	return nil
}

func (m *Mem) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("vfs: list %s: %w", dir, ErrDown)
	}
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return nil, nil
	}
	names := make([]string, 0, len(d.cur))
	for n := range d.cur {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// ListDirs lists the directories directly in dir that hold or held a file
// or were made by MkdirAll.
func (m *Mem) ListDirs(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return nil, fmt.Errorf("vfs: list %s: %w", dir, ErrDown)
	}
	prefix := filepath.Clean(dir) + "/"
	seen := map[string]bool{}
	for d := range m.dirs {
		if rest, ok := strings.CutPrefix(d, prefix); ok && rest != "" {
			seen[strings.SplitN(rest, "/", 2)[0]] = true
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func (m *Mem) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.ask(OpSyncDir, dir, 0, 0); err != nil {
		return err
	}
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return fmt.Errorf("vfs: sync directory %s: %w", dir, ErrNotExist)
	}
	d.durable = clone(d.cur)
	for p, sub := range m.dirs {
		if p != filepath.Clean(dir) && filepath.Dir(p) == filepath.Clean(dir) {
			sub.named = true
		}
	}
	return nil
}

func (m *Mem) IsDir(name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return false, fmt.Errorf("vfs: stat %s: %w", name, ErrDown)
	}
	_, ok := m.dirs[filepath.Clean(name)]
	return ok, nil
}

type memFile struct {
	m      *Mem
	in     *inode
	name   string
	gen    uint64
	closed bool
}

func (f *memFile) live() error {
	if f.closed || f.gen != f.m.gen {
		return fmt.Errorf("vfs: %s: %w", f.name, ErrClosed)
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.live(); err != nil {
		return 0, err
	}
	if _, err := f.m.ask(OpRead, f.name, off, len(p)); err != nil {
		return 0, err
	}
	if off >= int64(len(f.in.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.in.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.live(); err != nil {
		return 0, err
	}
	n, ferr := f.m.ask(OpWrite, f.name, off, len(p))
	end := off + int64(n)
	if need := f.in.alloc.missing(off, end); f.m.capacity > 0 && f.m.used+need > f.m.capacity {
		n = int(f.in.alloc.fit(off, end, max(0, f.m.capacity-f.m.used)))
		end = off + int64(n)
		if ferr == nil {
			ferr = fmt.Errorf("vfs: write %s at %d: %w", f.name, off, ErrNoSpace)
		}
	}
	f.m.used += f.in.alloc.missing(off, end)
	f.in.alloc = f.in.alloc.add(off, end)
	if end > int64(len(f.in.data)) {
		f.in.data = append(f.in.data, make([]byte, end-int64(len(f.in.data)))...)
	}
	copy(f.in.data[off:end], p[:n])
	if f.in.dirty == nil {
		f.in.dirty = map[int64]bool{}
	}
	for s := off / SectorSize; s*SectorSize < end; s++ {
		f.in.dirty[s] = true
	}
	return n, ferr
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.live(); err != nil {
		return err
	}
	if _, err := f.m.ask(OpSync, f.name, 0, 0); err != nil {
		if !errors.Is(err, ErrSyncedAnyway) {
			return err
		}
		// The sync reports a failure, yet the data reached the disk.
		defer f.sync()
		return err
	}
	f.sync()
	return nil
}

// sync makes the file's data survive a crash (Mem locked).
func (f *memFile) sync() {
	f.in.synced = append(f.in.synced[:0], f.in.data...)
	f.in.syncedAlloc = append(spans(nil), f.in.alloc...)
	f.in.dirty = nil
}

// Allocate reserves the space of [off, off+n), growing the file to
// off+n when it is shorter (with zeros), as fallocate(2) does: writes
// there never run out of space. It fails whole, with ErrNoSpace, when
// the capacity does not hold it.
func (f *memFile) Allocate(off, n int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.live(); err != nil {
		return err
	}
	if _, err := f.m.ask(OpAllocate, f.name, off, int(n)); err != nil {
		return err
	}
	need := f.in.alloc.missing(off, off+n)
	if f.m.capacity > 0 && f.m.used+need > f.m.capacity {
		return fmt.Errorf("vfs: allocate %d bytes of %s at %d: %w", n, f.name, off, ErrNoSpace)
	}
	f.m.used += need
	f.in.alloc = f.in.alloc.add(off, off+n)
	if cur := int64(len(f.in.data)); off+n > cur {
		f.in.data = append(f.in.data, make([]byte, off+n-cur)...)
		f.markDirty(cur, off+n)
	}
	return nil
}

// markDirty records that the sectors of [from, to) changed since the
// last Sync.
func (f *memFile) markDirty(from, to int64) {
	if f.in.dirty == nil {
		f.in.dirty = map[int64]bool{}
	}
	for s := from / SectorSize; s*SectorSize < to; s++ {
		f.in.dirty[s] = true
	}
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.live(); err != nil {
		return err
	}
	if _, err := f.m.ask(OpTruncate, f.name, size, 0); err != nil {
		return err
	}
	cur := int64(len(f.in.data))
	if size > cur {
		// A sparse extension: no space until written.
		f.in.data = append(f.in.data, make([]byte, size-cur)...)
	} else {
		f.in.data = f.in.data[:size]
		f.m.used -= f.in.alloc.total()
		f.in.alloc = f.in.alloc.cut(size)
		f.m.used += f.in.alloc.total()
	}
	// A truncation reaches the disk with the next Sync; until then a crash
	// keeps the old length, which the dirty sectors model well enough.
	if f.in.dirty == nil {
		f.in.dirty = map[int64]bool{}
	}
	for s := min(size, cur) / SectorSize; s*SectorSize < max(size, cur); s++ {
		f.in.dirty[s] = true
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.live(); err != nil {
		return 0, err
	}
	return int64(len(f.in.data)), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	f.closed = true
	return nil
}
