package smds

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	mmap "github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/ownedfs"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// Options name a data set and, for Create, shape it.
type Options struct {
	Dir       string // directory of the data set file (required)
	MapDir    string // directory of the space map file; default Dir (a member passes its CF directory: the map lives and dies with the CF)
	Structure string // CF structure name (required)
	Member    string // owning member name (required)
	Number    uint16 // the data set's number, put in every Ref (the owning member's number in the structure)
	Epoch     uint64 // the CF structure's epoch (creation time): a space map of another epoch is stale (ErrNeedRebuild); 0 accepts any
	Cache     *Cache // read cache shared by the data sets of this process; nil: none

	// StallLimit bounds, for Create, Rebuild and RebuildFrom, how long
	// replacing a space map waits for a live process between claiming
	// blocks in the old map and writing them (section 6a of
	// docs/design/smds.md): past it they fail with a *StalledError naming
	// the process. 0: wait as long as the process lives.
	StallLimit time.Duration

	// Create and Rebuild only; zero takes the default.
	BlockSize    int // bytes per block: DefaultBlockSize
	ExtentBlocks int // blocks per extent: DefaultExtentBlocks
	MaxExtents   int // most extents: DefaultMaxExtents
	Owners       int // owner slots of the space map: DefaultOwners

	// Create only: references that a structure still holds to a data set
	// file of this name that is gone (lost, removed). The new map starts
	// the head block of each at the gen after the reference's (as Rebuild
	// does for the references it rejects), so a run allocated there has
	// another gen: freeing such a reference (its message moved as lost)
	// is ErrStale, never a free of a new run at the same head.
	Lost []Ref
}

func (o Options) paths() (ds, sm string, err error) {
	if o.Dir == "" || !validName(o.Structure) || !validName(o.Member) {
		return "", "", fmt.Errorf("%w: directory %q, structure %q, member %q", ErrParams, o.Dir, o.Structure, o.Member)
	}
	md := o.MapDir
	if md == "" {
		md = o.Dir
	}
	base := o.Structure + "." + o.Member
	return filepath.Join(o.Dir, base+".smds"), filepath.Join(md, base+".smap"), nil
}

// DataSet is one open shared message data set and its space map. Reads
// (Read, View) are safe for concurrent use; allocation and freeing go
// through an Owner (Register).
type DataSet struct {
	path, mapPath string
	g             Geometry
	p             mapParams
	l             mapLayout
	num           uint16
	f             *os.File // the data set, O_RDWR
	mf            *os.File
	mm            mmap.MMap
	mem           shm.Mem
	cache         *Cache
	self          procid.ID

	pads sync.Pool // *[]byte of BlockSize: what reads put the padding between a body and its run header in

	mu     sync.Mutex
	ext    []mmap.MMap // read-only mappings of extents, made on first View
	closed atomic.Bool
}

var cpGrowAllocated = crashpoint.New("smds.grow.allocated")

// Create makes a new data set of one extent and its space map. It fails
// with ErrExist when the data set file exists.
func Create(o Options) (*DataSet, error) {
	dsPath, smPath, err := o.paths()
	if err != nil {
		return nil, err
	}
	g := Geometry{BlockSize: o.BlockSize, ExtentBlocks: o.ExtentBlocks, MaxExtents: o.MaxExtents,
		Created: time.Now().UnixNano(), Structure: o.Structure, Member: o.Member}
	if g.BlockSize == 0 {
		g.BlockSize = DefaultBlockSize
	}
	if g.ExtentBlocks == 0 {
		g.ExtentBlocks = DefaultExtentBlocks
	}
	if g.MaxExtents == 0 {
		g.MaxExtents = DefaultMaxExtents
	}
	if err := g.validate(); err != nil {
		return nil, err
	}
	var idb [8]byte
	for g.ID == 0 {
		_, _ = rand.Read(idb[:])
		g.ID = binary.LittleEndian.Uint64(idb[:])
	}
	if _, err := os.Lstat(dsPath); err == nil {
		return nil, newErr("create", dsPath, -1, ErrExist, "remove it or open it")
	}
	for _, d := range []string{filepath.Dir(dsPath), filepath.Dir(smPath)} {
		if err := ownedfs.MkdirAll(d); err != nil {
			return nil, osErr("create", d, err)
		}
	}
	tmp, f, err := tempFile(dsPath)
	if err != nil {
		return nil, err
	}
	fail := func(e error) (*DataSet, error) { f.Close(); os.Remove(tmp); return nil, e }
	if _, err := f.WriteAt(encodeDSHeader(g), 0); err != nil {
		return fail(osErr("create", tmp, err))
	}
	if err := allocate(f, dsHeaderSize+g.extentBytes()); err != nil {
		return fail(wrapErr("create", dsPath, -1, ErrNoSpace, err))
	}
	if err := f.Sync(); err != nil {
		return fail(osErr("create", tmp, err))
	}
	if err := os.Link(tmp, dsPath); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fail(newErr("create", dsPath, -1, ErrExist, "created concurrently"))
		}
		return fail(osErr("create", dsPath, err))
	}
	os.Remove(tmp)
	f.Close()
	syncDir(filepath.Dir(dsPath))
	p := mapParams{Geometry: g, Owners: o.Owners, Epoch: o.Epoch}
	if p.Owners == 0 {
		p.Owners = DefaultOwners
	}
	if p.Owners > maxOwners {
		return nil, fmt.Errorf("%w: %d owner slots", ErrParams, p.Owners)
	}
	if err := writeMap(smPath, p, 1, uint64(time.Now().UnixNano()), nil, o.Lost, o.StallLimit); err != nil {
		return nil, err
	}
	return Open(o)
}

// Open opens an existing data set and its space map. A missing space map,
// or one of another epoch or data set, fails with ErrNeedRebuild: the
// caller rebuilds it from the CF's references (Rebuild).
func Open(o Options) (*DataSet, error) {
	dsPath, smPath, err := o.paths()
	if err != nil {
		return nil, err
	}
	d, err := openDataSet(dsPath, o)
	if err != nil {
		return nil, err
	}
	if err := d.attachMap(smPath, o.Epoch); err != nil {
		d.f.Close()
		return nil, err
	}
	if err := d.checkSize("open"); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func openDataSet(dsPath string, o Options) (*DataSet, error) {
	f, err := ownedfs.Open(dsPath, os.O_RDWR)
	if err != nil {
		return nil, osErr("open", dsPath, err)
	}
	hdr := make([]byte, dsHeaderSize)
	n, rerr := readDSHeader(f, hdr)
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		// A disk error, not a file cut short: the caller must not take
		// the file for unusable (mq moves such a file aside, its bodies
		// lost).
		f.Close()
		return nil, wrapErr("open", dsPath, 0, ErrIO, rerr)
	}
	g, err := decodeDSHeader(hdr[:n])
	if err != nil {
		f.Close()
		return nil, &Error{Op: "open", Path: dsPath, Offset: 0, Err: sentinelOf(err), Msg: err.Error()}
	}
	if g.Structure != o.Structure || g.Member != o.Member {
		f.Close()
		return nil, newErr("open", dsPath, 0, ErrCorrupt, "header names structure %s member %s", g.Structure, g.Member)
	}
	d := &DataSet{path: dsPath, g: g, num: o.Number, f: f, cache: o.Cache, self: procid.Self()}
	d.pads.New = func() any { b := make([]byte, g.BlockSize); return &b }
	return d, nil
}

// readDSHeader reads a data set file's header page (a variable: tests
// make it fail as a disk does).
var readDSHeader = func(f *os.File, b []byte) (int, error) { return f.ReadAt(b, 0) }

// sentinelOf is the sentinel of this package an error of a decoder wraps.
func sentinelOf(err error) error {
	for _, s := range []error{ErrTruncated, ErrBadMagic, ErrVersion, ErrCorrupt, ErrDamaged} {
		if errors.Is(err, s) {
			return s
		}
	}
	return ErrCorrupt
}

func (d *DataSet) attachMap(smPath string, epoch uint64) error {
	mf, err := ownedfs.Open(smPath, os.O_RDWR)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return wrapErr("open", smPath, -1, ErrNeedRebuild, err)
		}
		return osErr("open", smPath, err)
	}
	hdr := make([]byte, mhChecksum+8)
	n, _ := mf.ReadAt(hdr, 0)
	p, err := decodeMapHeader(hdr[:n])
	if err != nil {
		mf.Close()
		return &Error{Op: "open", Path: smPath, Offset: 0, Err: ErrNeedRebuild, Msg: err.Error(), cause: err}
	}
	g := d.g
	if p.ID != g.ID || p.BlockSize != g.BlockSize || p.ExtentBlocks != g.ExtentBlocks || p.MaxExtents != g.MaxExtents {
		mf.Close()
		return newErr("open", smPath, 0, ErrNeedRebuild, "space map of data set %x (%d-byte blocks), data set %x is %x (%d-byte blocks)",
			p.ID, p.BlockSize, d.path, g.ID, g.BlockSize)
	}
	if epoch != 0 && p.Epoch != epoch {
		mf.Close()
		return newErr("open", smPath, 0, ErrNeedRebuild, "space map of epoch %d, the structure's is %d", p.Epoch, epoch)
	}
	l := computeMapLayout(p)
	st, err := mf.Stat()
	if err != nil {
		mf.Close()
		return osErr("open", smPath, err)
	}
	if uint64(st.Size()) < l.size {
		mf.Close()
		return newErr("open", smPath, -1, ErrNeedRebuild, "space map is %d bytes, its header needs %d", st.Size(), l.size)
	}
	mm, err := mmap.MapRegion(mf, int(l.size), mmap.RDWR, 0, 0)
	if err != nil {
		mf.Close()
		return wrapErr("open", smPath, -1, ErrFault, err)
	}
	p.Structure, p.Member = g.Structure, g.Member
	d.mapPath, d.p, d.l, d.mf, d.mm, d.mem = smPath, p, l, mf, mm, shm.MemOf(mm)
	if d.Retired() {
		// Being replaced (a rebuild retired it and has not renamed the new
		// map into place yet, or died before it did): never allocate from
		// it. The caller rebuilds, or waits for the rebuilder's lock.
		d.mm.Unmap()
		mf.Close()
		return newErr("open", smPath, mhRetired, ErrNeedRebuild, "space map retired: a rebuild is replacing it")
	}
	return nil
}

// Retired reports whether the data set's space map was retired: a rebuild
// replaced it (or is replacing it) with a new map at its path, which this
// handle does not see. Puts through it fail with ErrRetired; reopen the
// data set. A map that faults (truncated under its mapping) counts as
// retired.
func (d *DataSet) Retired() bool {
	var v uint64
	if err := guard(func() error { v = d.load(mhRetired); return nil }); err != nil {
		return true
	}
	return v != 0
}

// checkSize fails with ErrTruncated when the data set file is shorter
// than the extents the space map says are in use.
func (d *DataSet) checkSize(op string) error {
	st, err := d.f.Stat()
	if err != nil {
		return osErr(op, d.path, err)
	}
	want := dsHeaderSize + int64(d.extents())*d.g.extentBytes()
	if st.Size() < want {
		return newErr(op, d.path, st.Size(), ErrTruncated, "file is %d bytes, its %d extents need %d", st.Size(), d.extents(), want)
	}
	return nil
}

// Close unmaps and closes the data set. Its Owners must be closed first.
func (d *DataSet) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var err error
	for _, m := range d.ext {
		if m != nil {
			m.Unmap()
		}
	}
	if d.mm != nil {
		err = d.mm.Unmap()
	}
	if d.mf != nil {
		d.mf.Close()
	}
	if cerr := d.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Path is the data set file; MapPath the space map file.
func (d *DataSet) Path() string    { return d.path }
func (d *DataSet) MapPath() string { return d.mapPath }

// Geometry is the data set's identity and shape.
func (d *DataSet) Geometry() Geometry { return d.g }

// MaxBody is the longest body the data set can hold.
func (d *DataSet) MaxBody() int { return d.g.maxBody() }

// Number is the data set number put in references.
func (d *DataSet) Number() uint16 { return d.num }

func (d *DataSet) u64(off uint64) *uint64     { return d.mem.U64(off) }
func (d *DataSet) load(off uint64) uint64     { return atomic.LoadUint64(d.u64(off)) }
func (d *DataSet) store(off uint64, v uint64) { atomic.StoreUint64(d.u64(off), v) }
func (d *DataSet) cas(off uint64, old, new uint64) bool {
	return atomic.CompareAndSwapUint64(d.u64(off), old, new)
}
func (d *DataSet) wordOff(b uint32) uint64 { return d.l.words + uint64(b)*8 }
func (d *DataSet) word(b uint32) uint64    { return d.load(d.wordOff(b)) }
func (d *DataSet) ownerOff(slot int) uint64 {
	return d.l.owners + uint64(slot)*ownerSize
}

// extents is the number of extents in use, bounded by the geometry (a
// damaged word never makes a walk leave the map).
func (d *DataSet) extents() int {
	return int(min(d.load(mhExtents), uint64(d.g.MaxExtents)))
}

// grow adds an extent after ext (the count the caller saw): the file is
// extended first, then the count moves by CAS, so a reader never sees an
// extent the file does not hold. Several allocators may grow at once; one
// CAS wins and the others see the new count.
func (d *DataSet) grow(ext int) error {
	if ext >= d.g.MaxExtents {
		return newErr("allocate", d.path, -1, ErrFull, "%d extents of %d bytes in use, the most it may have", ext, d.g.extentBytes())
	}
	if err := allocate(d.f, dsHeaderSize+int64(ext+1)*d.g.extentBytes()); err != nil {
		return wrapErr("grow", d.path, dsHeaderSize+int64(ext)*d.g.extentBytes(), ErrNoSpace, err)
	}
	cpGrowAllocated.Hit()
	d.cas(mhExtents, uint64(ext), uint64(ext+1))
	return nil
}

// allocate makes f at least size bytes long with its blocks allocated
// (fallocate, so a full disk fails here and not at a later write).
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		st, serr := f.Stat()
		if serr != nil {
			return serr
		}
		if st.Size() < size {
			return f.Truncate(size)
		}
		return nil
	}
	return err
}

// tempFile creates a temporary file beside path (mode ownedfs.FileMode).
func tempFile(path string) (string, *os.File, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.%s.tmp", filepath.Base(path), os.Getpid(), hex.EncodeToString(rnd[:])))
	f, err := ownedfs.Create(tmp, os.O_RDWR)
	if err != nil {
		return "", nil, osErr("create", tmp, err)
	}
	return tmp, f, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeMap builds a complete space map for p with ext extents in use,
// the allocation sequence starting at seq and the runs of refs (already
// checked: in range, disjoint) marked used, under a temporary name, then
// renames it over path in one step. The head block of each of lost (runs
// that references still name but that are not held: Rebuild's rejected),
// when in the map (even beyond the extents in use: a truncated data set
// grown again) and in no run of refs, is left free at the gen after the
// reference's: a run allocated there later has another gen, so freeing
// the lost reference (its message moved off its queue) is ErrStale and
// never frees the new run, and reading it is ErrStale too.
//
// The map at path, if any, is retired first (retireMap: no process
// writes through it once this returns). When it is a map of the same data
// set and geometry (its header's checksum aside: a damaged header is what
// a rebuild replaces), every block of its extents in use starts in the new
// map at the gen after the one it has there (free blocks, and the tails
// of refs' runs; heads take their reference's gen), so that a reference to
// a run of the old map that the new one does not hold (its CF entry was
// being removed when the references were read: its free comes later,
// through the new map) names a gen the new map never gives that block
// again: freeing it is ErrStale, never a free of a new run at the same
// head (gens wrap at 2^24 frees of one block). limit bounds the wait of
// the retirement (retireMap): past it, a *StalledError.
func writeMap(path string, p mapParams, ext int, seq uint64, refs, lost []Ref, limit time.Duration) error {
	if _, err := retireMap(path, false, limit); err != nil {
		return err
	}
	prev := openPrevMap(path, p)
	defer prev.close()
	l := computeMapLayout(p)
	tmp, f, err := tempFile(path)
	if err != nil {
		return err
	}
	fail := func(e error) error { f.Close(); os.Remove(tmp); return e }
	if err := f.Truncate(int64(l.size)); err != nil {
		return fail(osErr("create", tmp, err))
	}
	m, err := mmap.MapRegion(f, int(l.size), mmap.RDWR, 0, 0)
	if err != nil {
		return fail(wrapErr("create", path, -1, ErrNoSpace, err))
	}
	mem := shm.MemOf(m)
	err = guard(func() error {
		copy(m, encodeMapHeader(p))
		atomic.StoreUint64(mem.U64(mhExtents), uint64(ext))
		atomic.StoreUint64(mem.U64(mhSeq), seq)
		if err := prev.carry(func(b uint32, gen uint32) {
			atomic.StoreUint64(mem.U64(l.words+uint64(b)*8), mkWord(gen+1, bkFree, 0))
		}); err != nil {
			return err
		}
		for _, r := range refs {
			n := p.blocksFor(int(r.Len))
			for i := 1; i < n; i++ {
				off := l.words + uint64(r.Head+uint32(i))*8
				atomic.StoreUint64(mem.U64(off), mkWord(wGen(atomic.LoadUint64(mem.U64(off))), bkTail, r.Head))
			}
			atomic.StoreUint64(mem.U64(l.words+uint64(r.Head)*8), mkWord(r.Gen, bkHead, uint32(n)))
		}
		for _, r := range lost {
			if r.Gen > genMask || uint64(r.Head) >= p.totalBlocks() { // beyond the extents in use too: a grow keeps the words
				continue
			}
			off := l.words + uint64(r.Head)*8
			if w := atomic.LoadUint64(mem.U64(off)); wKind(w) == bkFree && wGen(w) < (r.Gen+1)&genMask {
				atomic.StoreUint64(mem.U64(off), mkWord((r.Gen+1)&genMask, bkFree, 0))
			}
		}
		return nil
	})
	m.Unmap()
	if err != nil {
		return fail(wrapErr("create", path, -1, ErrNoSpace, err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(osErr("create", path, err))
	}
	f.Close()
	return nil
}

// prevMap is the block words of the map a writeMap replaces, mapped
// read-only (nil: none usable).
type prevMap struct {
	mm     mmap.MMap
	mem    shm.Mem
	words  uint64 // offset of block 0's word
	blocks uint32 // blocks of its extents in use
}

// openPrevMap maps the words of the space map at path when it describes
// the data set p does (same id and geometry, layout version 1 or this
// one: the words did not change) and is long enough; nil otherwise.
func openPrevMap(path string, p mapParams) *prevMap {
	f, err := ownedfs.Open(path, os.O_RDONLY)
	if err != nil {
		return nil
	}
	defer f.Close()
	hdr := make([]byte, mhChecksum+8)
	if n, _ := f.ReadAt(hdr, 0); n < len(hdr) || string(hdr[mhMagic:mhMagic+8]) != mapMagic {
		return nil
	}
	le := binary.LittleEndian
	v := le.Uint32(hdr[mhVersion:])
	owners := int(le.Uint32(hdr[mhOwners:]))
	if (v != 1 && v != MapLayoutVersion) || le.Uint64(hdr[mhDataSet:]) != p.ID || int(le.Uint32(hdr[mhBlockSize:])) != p.BlockSize ||
		int(le.Uint32(hdr[mhExtentBlocks:])) != p.ExtentBlocks || int(le.Uint32(hdr[mhMaxExtents:])) != p.MaxExtents || owners < 1 || owners > maxOwners {
		return nil
	}
	op := mapParams{Geometry: p.Geometry, Owners: owners}
	l := computeMapLayout(op)
	if st, err := f.Stat(); err != nil || uint64(st.Size()) < l.size {
		return nil
	}
	mm, err := mmap.MapRegion(f, int(l.size), mmap.RDONLY, 0, 0)
	if err != nil {
		return nil
	}
	pm := &prevMap{mm: mm, mem: shm.MemOf(mm), words: l.words}
	if err := guard(func() error {
		ext := min(atomic.LoadUint64(pm.mem.U64(mhExtents)), uint64(p.MaxExtents))
		pm.blocks = uint32(ext * uint64(p.ExtentBlocks))
		return nil
	}); err != nil {
		mm.Unmap()
		return nil
	}
	return pm
}

// carry calls set with every block of the previous map's extents in use
// and its gen there.
func (pm *prevMap) carry(set func(b, gen uint32)) error {
	if pm == nil {
		return nil
	}
	return guard(func() error {
		for b := uint32(0); b < pm.blocks; b++ {
			set(b, wGen(atomic.LoadUint64(pm.mem.U64(pm.words+uint64(b)*8))))
		}
		return nil
	})
}

func (pm *prevMap) close() {
	if pm != nil {
		pm.mm.Unmap()
	}
}

// retireWait is how long retireMap sleeps between two looks at the
// allocations in flight in a map it retired.
const retireWait = time.Millisecond

// retireMap fences the space map at path, which a new map is about to
// replace (docs/design/smds.md, section 6a): it sets the map's retired
// word, then waits until no live process's owner is between claiming
// blocks in it and writing them (descriptor alloc, claimed). With
// inFlight it then returns the descriptors of the live owners whose runs
// are written and used in the old map but maybe not yet published in the
// CF (alloc, used): an in-service rebuild keeps those runs used, since
// their references may get into the CF after it read the references
// (callers read them after retireMap returns: a put whose descriptor was
// cleared before that published its reference before). After it
// returns, nobody writes a body through the old map: a Put that had not
// checked the fence yet sees it and fails with ErrRetired without
// writing, one that had is written (its run is free in the new map, which
// is built from the CF's references: nobody refers to it). A process
// that died in its claim writes no more. A live one stopped in its claim
// (SIGSTOP, a write stuck on a dead disk) holds the replacement until it
// goes on: the replacement cannot tell it from one about to write. So
// with a limit (> 0) retireMap waits at most that long for it and then
// fails with a *StalledError naming its process, the map left retired:
// the caller may kill the process (only a stopped one: killing one that
// runs would kill a process about to go on) and call again, which takes
// the retirement up where it was (the retired word is set once; a dead
// process's claim holds nothing).
//
// No map at path, a file too short for a header or without the map
// magic: nothing to fence (no process maps a map there). The owner slots
// are found with the header's owner count even when the rest of the
// header is damaged (the checksum covers it, but a damaged header is
// what a rebuild replaces): bounded by the file's size.
func retireMap(path string, inFlight bool, limit time.Duration) ([]desc, error) {
	f, err := ownedfs.Open(path, os.O_RDWR)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, osErr("retire", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, osErr("retire", path, err)
	}
	hdr := make([]byte, mhChecksum+8)
	if n, _ := f.ReadAt(hdr, 0); n < len(hdr) || st.Size() < mapHeaderSize || string(hdr[mhMagic:mhMagic+8]) != mapMagic {
		return nil, nil
	}
	owners := uint64(binary.LittleEndian.Uint32(hdr[mhOwners:]))
	owners = min(owners, maxOwners, (uint64(st.Size())-mapHeaderSize)/ownerSize)
	size := mapHeaderSize + owners*ownerSize
	mm, err := mmap.MapRegion(f, int(size), mmap.RDWR, 0, 0)
	if err != nil {
		return nil, wrapErr("retire", path, -1, ErrFault, err)
	}
	defer mm.Unmap()
	old := &DataSet{mapPath: path, mem: shm.MemOf(mm), l: mapLayout{owners: mapHeaderSize}, p: mapParams{Owners: int(owners)}}
	le := binary.LittleEndian
	other := le.Uint32(hdr[mhVersion:]) != MapLayoutVersion && xxhash.Sum64(hdr[:mhChecksum]) == le.Uint64(hdr[mhChecksum:])
	var used []desc
	err = guard(func() error {
		if other {
			// A sound map of another layout version (1: before the
			// retired word): its processes never load the fence, so
			// replacing it while one lives puts a second allocator of the
			// same blocks in place. Refused until they end.
			for slot := 0; slot < int(owners); slot++ {
				if w, id := old.slotProcess(slot); osState(w) != osFree && processAlive(id) {
					return newErr("retire", path, mhVersion, ErrVersion,
						"space map of layout version %d is in use by live process %d, which does not check the retired word (version %d): end it before the map is rebuilt",
						le.Uint32(hdr[mhVersion:]), id.Pid, MapLayoutVersion)
				}
			}
		}
		old.cas(mhRetired, 0, uint64(max(time.Now().UnixNano(), 1)))
		t0 := time.Now()
		for {
			busy := -1 // a slot whose live process is in its claim
			var id procid.ID
			for slot := 0; slot < int(owners) && busy < 0; slot++ {
				off := old.ownerOff(slot)
				op := old.load(off + owOp)
				if uint8(op) != opAlloc || uint8(op>>8) != phClaimed {
					continue
				}
				var w uint64
				if w, id = old.slotProcess(slot); osState(w) != osFree && processAlive(id) {
					busy = slot
				}
			}
			if busy < 0 {
				break
			}
			if waited := time.Since(t0); limit > 0 && waited > limit {
				return &StalledError{Path: path, Process: id, Slot: busy, Waited: waited}
			}
			time.Sleep(retireWait)
		}
		for slot := 0; slot < int(owners) && inFlight; slot++ {
			off := old.ownerOff(slot)
			dd := old.readDesc(off)
			if dd.op != opAlloc || dd.phase != phUsed {
				continue
			}
			if w, id := old.slotProcess(slot); osState(w) != osFree && processAlive(id) {
				used = append(used, dd)
			}
		}
		return nil
	})
	return used, err
}

// RebuildResult says what Rebuild did with each reference it was given.
type RebuildResult struct {
	Kept     int           // references whose runs the new map holds used
	Rejected map[int]error // by index in refs: the reference's run is damaged, missing (a truncated data set), out of range or used by an earlier reference
	InFlight int           // RebuildFrom: runs of puts in flight through the old map (written, maybe not yet published) kept used besides the references
}

// Rebuild builds a new space map for the existing data set from refs, the
// references every CF entry of the data set holds (after a CF structure
// was recovered, or when the map is missing or stale), and opens the data
// set with it. Each reference's run header is read back and checked; a
// reference whose run is damaged, lost with the end of a truncated file,
// or overlaps an earlier one is rejected (its message is reported lost)
// and its space is not held. Everything else is free.
//
// Rebuilds of one data set must not run at once (callers serialise them:
// mq takes a lock file). Before the new map is renamed into place the old
// one is retired (retireMap): Puts of processes that still map it fail
// with ErrRetired instead of writing into blocks the new map may give to
// another message, and Rebuild waits for the Puts that passed the fence
// to finish writing. Such processes reopen the data set. Frees through a
// retired map change only that map: a run the new map holds and a process
// frees through the old map is leaked in the new one (the checker reports
// it), never given twice. A process stopped between its claim and its
// write holds that wait: with o.StallLimit, Rebuild gives up after it
// with a *StalledError (the old map stays retired; call again once the
// process is gone or goes on).
func Rebuild(o Options, refs []Ref) (*DataSet, RebuildResult, error) {
	return rebuild(o, func() ([]Ref, error) { return refs, nil }, false)
}

// RebuildFrom is Rebuild for a map replaced while its structure is in
// service (processes may be in the middle of puts through the old map):
// it retires the old map first and waits for the puts that passed its
// fence to be written, then calls refs for the references the CF holds
// (Rejected indexes what it returned), and keeps used, besides them, the
// runs that live processes' puts wrote through the old map and may not
// have published yet (their references may get into the CF after refs
// read it; one that never does is a leak the checker reports, never space
// given twice). docs/design/smds.md, section 6a.
func RebuildFrom(o Options, refs func() ([]Ref, error)) (*DataSet, RebuildResult, error) {
	return rebuild(o, refs, true)
}

func rebuild(o Options, getRefs func() ([]Ref, error), inFlight bool) (*DataSet, RebuildResult, error) {
	res := RebuildResult{Rejected: map[int]error{}}
	dsPath, smPath, err := o.paths()
	if err != nil {
		return nil, res, err
	}
	d, err := openDataSet(dsPath, o)
	if err != nil {
		return nil, res, err
	}
	defer d.f.Close()
	g := d.g
	var flying []desc
	if inFlight {
		// Before the file's size is taken: a put in flight may have grown
		// it for its run.
		if flying, err = retireMap(smPath, true, o.StallLimit); err != nil {
			return nil, res, err
		}
	}
	st, err := d.f.Stat()
	if err != nil {
		return nil, res, osErr("rebuild", dsPath, err)
	}
	ext := int(max(0, st.Size()-dsHeaderSize) / g.extentBytes())
	ext = min(max(ext, 1), g.MaxExtents)
	if st.Size() < dsHeaderSize+g.extentBytes() {
		if err := allocate(d.f, dsHeaderSize+g.extentBytes()); err != nil {
			return nil, res, wrapErr("rebuild", dsPath, -1, ErrNoSpace, err)
		}
	}
	refs, err := getRefs()
	if err != nil {
		return nil, res, err
	}
	used := map[uint32]int{} // block -> index of the reference holding it
	var kept []Ref
	seq := uint64(time.Now().UnixNano())
	var hdr [runHdrSize]byte
	for i, r := range refs {
		n := g.blocksFor(int(r.Len))
		e := int(r.Head) / g.ExtentBlocks
		if r.Gen > genMask || e >= ext || int(r.Head)%g.ExtentBlocks+n > g.ExtentBlocks {
			res.Rejected[i] = newErr("rebuild", dsPath, g.blockOff(r.Head), ErrCorrupt, "reference %v outside the data set's %d extents", r, ext)
			continue
		}
		clash := -1
		for b := r.Head; b < r.Head+uint32(n); b++ {
			if j, ok := used[b]; ok {
				clash = j
				break
			}
		}
		if clash >= 0 {
			res.Rejected[i] = newErr("rebuild", dsPath, g.blockOff(r.Head), ErrCorrupt, "reference %v overlaps reference %v", r, refs[clash])
			continue
		}
		off := g.trailerOff(r.Head, int(r.Len))
		if k, err := d.f.ReadAt(hdr[:], off); k < runHdrSize {
			res.Rejected[i] = newErr("rebuild", dsPath, off, ErrTruncated, "run header unreadable: %v", err)
			continue
		}
		if err := d.checkHeader(hdr[:], r, off, "rebuild"); err != nil {
			res.Rejected[i] = err
			continue
		}
		for b := r.Head; b < r.Head+uint32(n); b++ {
			used[b] = i
		}
		kept = append(kept, r)
		seq = max(seq, r.Seq+1)
	}
	// Runs of puts in flight: kept when their run header is the
	// descriptor's and no reference holds their blocks (one that does is
	// the same run, published since: kept already).
	for _, dd := range flying {
		r := dd.ref(o.Number)
		n := g.blocksFor(int(r.Len))
		if dd.blocks != uint32(n) || r.Gen > genMask || int(r.Head)/g.ExtentBlocks >= ext || int(r.Head)%g.ExtentBlocks+n > g.ExtentBlocks {
			continue
		}
		clash := false
		for b := r.Head; b < r.Head+uint32(n) && !clash; b++ {
			_, clash = used[b]
		}
		off := g.trailerOff(r.Head, int(r.Len))
		if k, _ := d.f.ReadAt(hdr[:], off); clash || k < runHdrSize || d.checkHeader(hdr[:], r, off, "rebuild") != nil {
			continue
		}
		for b := r.Head; b < r.Head+uint32(n); b++ {
			used[b] = -1
		}
		kept = append(kept, r)
		seq = max(seq, r.Seq+1)
		res.InFlight++
	}
	p := mapParams{Geometry: g, Owners: o.Owners, Epoch: o.Epoch}
	if p.Owners == 0 {
		p.Owners = DefaultOwners
	}
	var lost []Ref
	for i := range res.Rejected {
		lost = append(lost, refs[i])
	}
	if err := writeMap(smPath, p, ext, seq, kept, lost, o.StallLimit); err != nil {
		return nil, res, err
	}
	res.Kept = len(kept) - res.InFlight
	nd, err := Open(o)
	return nd, res, err
}

// checkHeader checks the run header read at off against the reference.
func (d *DataSet) checkHeader(b []byte, r Ref, off int64, op string) error {
	h, err := decodeRunHeader(b)
	if err != nil {
		return &Error{Op: op, Path: d.path, Offset: off, Err: sentinelOf(err), Msg: fmt.Sprintf("%v (reference %v)", err, r)}
	}
	if h.DataSet != d.g.ID {
		return newErr(op, d.path, off, ErrDamaged, "run header of data set %x, this is %x (reference %v)", h.DataSet, d.g.ID, r)
	}
	if h.Head != r.Head || h.Gen != r.Gen || h.Seq != r.Seq || h.Len != uint64(r.Len) || h.Sum != r.Sum {
		return newErr(op, d.path, off, ErrStale, "the run holds block %d gen %d seq %d len %d now, the reference is %v", h.Head, h.Gen, h.Seq, h.Len, r)
	}
	return nil
}

// guard runs f with memory faults on the mappings (a space map or data
// set truncated under them) turned into ErrFault.
func guard(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			re, ok := r.(runtime.Error)
			a, okAddr := r.(interface{ Addr() uintptr })
			if !ok || !okAddr {
				panic(r)
			}
			err = fmt.Errorf("%w at address %#x: %v (the file was truncated or removed while mapped)", ErrFault, a.Addr(), re)
		}
	}()
	return f()
}

func osErr(op, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return wrapErr(op, path, -1, ErrNotFound, err)
	case errors.Is(err, unix.ENOSPC):
		return wrapErr(op, path, -1, ErrNoSpace, err)
	}
	return wrapErr(op, path, -1, ErrIO, err)
}
