package smds

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// LayoutVersion is the version of the data set file, run header and
// reference layouts below (what lives on disk and in the CF). Bump it
// whenever any of them changes.
const LayoutVersion = 1

// MapLayoutVersion is the version of the space map layout (its header,
// owner slots and block words): the map lives in tmpfs beside the CF and
// is rebuilt from the CF's references, so a map of another version is
// rebuilt (Open: ErrNeedRebuild) and the data set file is kept. Bump it
// whenever the space map layout changes. 2: the retired word (mhRetired).
const MapLayoutVersion = 2

// Sizes and limits.
const (
	pageSize            = 4096
	line                = 64
	MinBlockSize        = 4096
	MaxBlockSize        = 1 << 20
	DefaultBlockSize    = 4096
	DefaultExtentBlocks = 32768 // 128 MiB extents with 4 KiB blocks: a body of 64 MiB fits (a run lies in one extent)
	DefaultMaxExtents   = 512   // 64 GiB with the defaults
	DefaultOwners       = 256
	maxOwners           = 1 << 16
	maxTotalBlocks      = 1 << 31 // block indexes fit a word's 32-bit value with room to spare
	maxNameLen          = 48
	dsHeaderSize        = pageSize
	mapHeaderSize       = pageSize
	ownerSize           = 2 * line
	runHdrSize          = 64
	RefSize             = 32 // bytes of an encoded reference (Ref.Encode)
	genBits             = 24
	genMask             = 1<<genBits - 1
)

// Data set file header (page 0 of the data set file, dsHeaderSize bytes,
// little-endian). Written once by the creator before the file is linked
// into place, never changed; read by every Open (and Rebuild):
//
//	offset  size  constant         field
//	     0     8  dshMagic         magic "QMGRSMD1"
//	     8     4  dshVersion       LayoutVersion
//	    12     4  dshBlockSize     block size in bytes (power of two, 4096..1 MiB)
//	    16     4  dshExtentBlocks  blocks per extent
//	    20     4  dshMaxExtents    most extents the data set may grow to
//	    24     8  dshID            data set id (random, never 0): names the data set in run headers and space maps
//	    32     8  dshCreated       creation time, Unix ns
//	    40    48  dshStructure     CF structure name, NUL padded
//	    88    48  dshMember        owning member (queue manager) name, NUL padded
//	   136     8  dshChecksum      xxhash64 of bytes [0,136)
//	   144  3952  -                zero
const (
	dshMagic        = 0
	dshVersion      = 8
	dshBlockSize    = 12
	dshExtentBlocks = 16
	dshMaxExtents   = 20
	dshID           = 24
	dshCreated      = 32
	dshStructure    = 40
	dshMember       = 88
	dshChecksum     = 136
	dshUsed         = dshChecksum + 8 // bytes a decoder needs
)

const (
	dsMagic  = "QMGRSMD1"
	mapMagic = "QMGRSMP1"
	runMagic = "QMGRSMB1"
)

// Geometry is what a data set's header fixes: its identity and the shape
// of its space.
type Geometry struct {
	ID           uint64
	BlockSize    int
	ExtentBlocks int
	MaxExtents   int
	Created      int64
	Structure    string
	Member       string
}

// extentBytes is the size of one extent.
func (g Geometry) extentBytes() int64 { return int64(g.BlockSize) * int64(g.ExtentBlocks) }

// totalBlocks is the number of blocks of a data set grown to MaxExtents.
func (g Geometry) totalBlocks() uint64 { return uint64(g.ExtentBlocks) * uint64(g.MaxExtents) }

// blockOff is the file offset of block b.
func (g Geometry) blockOff(b uint32) int64 { return dsHeaderSize + int64(b)*int64(g.BlockSize) }

// blocksFor is the number of blocks a run holding a body of n bytes takes
// (its header included).
func (g Geometry) blocksFor(n int) int { return (runHdrSize + n + g.BlockSize - 1) / g.BlockSize }

// trailerOff is the file offset of the run header of the run at head
// holding a body of n bytes: the last runHdrSize bytes of its last block.
func (g Geometry) trailerOff(head uint32, n int) int64 {
	return g.blockOff(head) + int64(g.blocksFor(n))*int64(g.BlockSize) - runHdrSize
}

// maxBody is the longest body a run can hold: a run lies in one extent.
func (g Geometry) maxBody() int { return g.ExtentBlocks*g.BlockSize - runHdrSize }

func (g Geometry) validate() error {
	switch {
	case g.BlockSize < MinBlockSize || g.BlockSize > MaxBlockSize || g.BlockSize&(g.BlockSize-1) != 0:
		return fmt.Errorf("%w: block size %d not a power of two in %d..%d", ErrParams, g.BlockSize, MinBlockSize, MaxBlockSize)
	case g.ExtentBlocks < 2 || g.ExtentBlocks > maxTotalBlocks:
		return fmt.Errorf("%w: %d blocks per extent", ErrParams, g.ExtentBlocks)
	case g.MaxExtents < 1 || g.totalBlocks() > maxTotalBlocks:
		return fmt.Errorf("%w: %d extents of %d blocks exceed %d blocks", ErrParams, g.MaxExtents, g.ExtentBlocks, maxTotalBlocks)
	case int64(g.ExtentBlocks)*int64(g.BlockSize)-runHdrSize > 1<<32-1:
		return fmt.Errorf("%w: extent of %d bytes holds bodies longer than 4 GiB", ErrParams, int64(g.ExtentBlocks)*int64(g.BlockSize))
	case !validName(g.Structure) || !validName(g.Member):
		return fmt.Errorf("%w: structure %q or member %q not 1..%d characters of A-Z a-z 0-9 . _ %%", ErrParams, g.Structure, g.Member, maxNameLen)
	}
	return nil
}

// validName: the names that may appear in a file name.
func validName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen || s[0] == '.' {
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

func encodeDSHeader(g Geometry) []byte {
	b := make([]byte, dsHeaderSize)
	copy(b[dshMagic:], dsMagic)
	le := binary.LittleEndian
	le.PutUint32(b[dshVersion:], LayoutVersion)
	le.PutUint32(b[dshBlockSize:], uint32(g.BlockSize))
	le.PutUint32(b[dshExtentBlocks:], uint32(g.ExtentBlocks))
	le.PutUint32(b[dshMaxExtents:], uint32(g.MaxExtents))
	le.PutUint64(b[dshID:], g.ID)
	le.PutUint64(b[dshCreated:], uint64(g.Created))
	copy(b[dshStructure:dshStructure+maxNameLen], g.Structure)
	copy(b[dshMember:dshMember+maxNameLen], g.Member)
	le.PutUint64(b[dshChecksum:], xxhash.Sum64(b[:dshChecksum]))
	return b
}

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// decodeDSHeader parses and checks a data set header. It never panics,
// whatever the bytes.
func decodeDSHeader(b []byte) (Geometry, error) {
	var g Geometry
	if len(b) < dshUsed {
		return g, fmt.Errorf("%w: %d bytes, a header needs %d", ErrTruncated, len(b), dshUsed)
	}
	if string(b[dshMagic:dshMagic+8]) != dsMagic {
		return g, fmt.Errorf("%w: magic %q", ErrBadMagic, b[dshMagic:dshMagic+8])
	}
	le := binary.LittleEndian
	if xxhash.Sum64(b[:dshChecksum]) != le.Uint64(b[dshChecksum:]) {
		return g, fmt.Errorf("%w: data set header checksum mismatch", ErrCorrupt)
	}
	if v := le.Uint32(b[dshVersion:]); v != LayoutVersion {
		return g, fmt.Errorf("%w: data set has layout version %d, this binary uses %d", ErrVersion, v, LayoutVersion)
	}
	g = Geometry{
		ID:           le.Uint64(b[dshID:]),
		BlockSize:    int(le.Uint32(b[dshBlockSize:])),
		ExtentBlocks: int(le.Uint32(b[dshExtentBlocks:])),
		MaxExtents:   int(le.Uint32(b[dshMaxExtents:])),
		Created:      int64(le.Uint64(b[dshCreated:])),
		Structure:    cString(b[dshStructure : dshStructure+maxNameLen]),
		Member:       cString(b[dshMember : dshMember+maxNameLen]),
	}
	if g.ID == 0 {
		return g, fmt.Errorf("%w: data set id 0", ErrCorrupt)
	}
	if err := g.validate(); err != nil {
		return g, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return g, nil
}

// Space map header (page 0 of the space map file, mapHeaderSize bytes).
// The fixed part [0,64) is written once by the map's creator before the
// file is linked into place; the words after the checksum are shared,
// each on its own cache line:
//
//	offset  size  constant         field
//	     0     8  mhMagic          magic "QMGRSMP1"
//	     8     4  mhVersion        MapLayoutVersion
//	    12     4  mhBlockSize      as the data set header
//	    16     4  mhExtentBlocks   as the data set header
//	    20     4  mhMaxExtents     as the data set header
//	    24     4  mhOwners         owner slots
//	    28     4  -                zero
//	    32     8  mhDataSet        id of the data set the map describes
//	    40     8  mhEpoch          epoch given by the map's creator (the CF structure's creation time): a map of another epoch is stale
//	    48     8  mhCreated        creation time, Unix ns
//	    56     8  mhChecksum       xxhash64 of bytes [0,56)
//	    64     8  mhExtents        extents in use
//	    72    56  -                unused
//	   128     8  mhSeq            allocation sequence counter
//	   136    56  -                unused
//	   192     8  mhHand           allocation sweep hand
//	   200    56  -                unused
//	   256     8  mhRetired        0: in service; else retired (Unix ns of the retirement): a map replaces it, allocate from that one
//	   264  3832  -                unused
const (
	mhMagic        = 0
	mhVersion      = 8
	mhBlockSize    = 12
	mhExtentBlocks = 16
	mhMaxExtents   = 20
	mhOwners       = 24
	mhDataSet      = 32
	mhEpoch        = 40
	mhCreated      = 48
	mhChecksum     = 56
	// mhExtents: extents of the data set in use. CAS k -> k+1 by an
	// allocator that found no room, after it extended the file (so a
	// reader never sees an extent the file does not hold); read by every
	// allocation and by the checker. Never shrinks.
	mhExtents = 64
	// mhSeq: the allocation sequence: fetch-add by every allocation (the
	// run's Seq); starts above every Seq the references of a rebuilt map
	// hold and above the creation time in ns, so a Seq is never given to
	// two runs of a data set. Read by nobody else.
	mhSeq = 2 * line
	// mhHand: block where allocators start looking for free space. Stored
	// by an allocator after a claim, loaded at the next; a hint only, any
	// value is safe (it is taken modulo the blocks in use).
	mhHand = 3 * line
	// mhRetired: the fence of a map being replaced (docs/design/smds.md,
	// section 6a). 0 while the map is in service. Stored once, 0 -> the
	// time in ns (CAS, never back to 0), by whoever replaces the map at its
	// path (writeMap: a Rebuild, in service or in a structure's recovery,
	// or a Create over a map left behind) before the new map is renamed
	// into place and before it waits for the allocations in flight.
	// Loaded by every Put after its blocks are claimed (its descriptor
	// says alloc, claimed) and before it writes (sequentially consistent
	// atomics, so either the Put sees the fence or the retirer, which
	// loads the descriptors after its store, sees the Put and waits until
	// it moves on), by Open (a retired map is ErrNeedRebuild: being
	// replaced) and by DataSet.Retired. Freeing does not load it.
	mhRetired = 4 * line
)

// MapRetiredOffset is where the retired word is in a space map file
// (mhRetired, 8 bytes little-endian, 0 while the map is in service): for
// tools and tests that watch a map being replaced through a descriptor of
// its file.
const MapRetiredOffset = mhRetired

// mapParams is what a space map header fixes.
type mapParams struct {
	Geometry
	Owners int
	Epoch  uint64
}

// mapLayout is where things are in a space map file.
type mapLayout struct {
	owners uint64 // offset of owner slot 0
	words  uint64 // offset of block 0's state word
	size   uint64 // file size
}

func computeMapLayout(p mapParams) mapLayout {
	var l mapLayout
	l.owners = mapHeaderSize
	l.words = roundUp(l.owners+uint64(p.Owners)*ownerSize, pageSize)
	l.size = roundUp(l.words+p.totalBlocks()*8, pageSize)
	return l
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func encodeMapHeader(p mapParams) []byte {
	b := make([]byte, mhChecksum+8)
	copy(b[mhMagic:], mapMagic)
	le := binary.LittleEndian
	le.PutUint32(b[mhVersion:], MapLayoutVersion)
	le.PutUint32(b[mhBlockSize:], uint32(p.BlockSize))
	le.PutUint32(b[mhExtentBlocks:], uint32(p.ExtentBlocks))
	le.PutUint32(b[mhMaxExtents:], uint32(p.MaxExtents))
	le.PutUint32(b[mhOwners:], uint32(p.Owners))
	le.PutUint64(b[mhDataSet:], p.ID)
	le.PutUint64(b[mhEpoch:], p.Epoch)
	le.PutUint64(b[mhCreated:], uint64(p.Created))
	le.PutUint64(b[mhChecksum:], xxhash.Sum64(b[:mhChecksum]))
	return b
}

// decodeMapHeader parses and checks the fixed part of a space map
// header. It never panics, whatever the bytes. The names of the returned
// geometry are empty: they live in the data set header.
func decodeMapHeader(b []byte) (mapParams, error) {
	var p mapParams
	if len(b) < mhChecksum+8 {
		return p, fmt.Errorf("%w: %d bytes, a space map header needs %d", ErrTruncated, len(b), mhChecksum+8)
	}
	if string(b[mhMagic:mhMagic+8]) != mapMagic {
		return p, fmt.Errorf("%w: space map magic %q", ErrBadMagic, b[mhMagic:mhMagic+8])
	}
	le := binary.LittleEndian
	if xxhash.Sum64(b[:mhChecksum]) != le.Uint64(b[mhChecksum:]) {
		return p, fmt.Errorf("%w: space map header checksum mismatch", ErrCorrupt)
	}
	if v := le.Uint32(b[mhVersion:]); v != MapLayoutVersion {
		return p, fmt.Errorf("%w: space map has layout version %d, this binary uses %d", ErrVersion, v, MapLayoutVersion)
	}
	p.ID = le.Uint64(b[mhDataSet:])
	p.BlockSize = int(le.Uint32(b[mhBlockSize:]))
	p.ExtentBlocks = int(le.Uint32(b[mhExtentBlocks:]))
	p.MaxExtents = int(le.Uint32(b[mhMaxExtents:]))
	p.Owners = int(le.Uint32(b[mhOwners:]))
	p.Epoch = le.Uint64(b[mhEpoch:])
	p.Created = int64(le.Uint64(b[mhCreated:]))
	g := p.Geometry
	g.Structure, g.Member = "X", "X" // names are checked in the data set header
	if err := g.validate(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if p.Owners < 1 || p.Owners > maxOwners || p.ID == 0 {
		return p, fmt.Errorf("%w: space map with %d owner slots, data set id %d", ErrCorrupt, p.Owners, p.ID)
	}
	return p, nil
}

// Owner slot fields (ownerSize bytes, from mapLayout.owners). A slot is
// written by its owner while it is active, by its repairer once the owner
// died; anyone reads it to check liveness, the checker to learn what is
// in flight:
//
//	offset  size  constant    field
//	     0     8  owState     state word: incarnation(16) << 48 | state(8) << 40 | pid(32)
//	     8     8  owStart     owner's process start time (procid)
//	    16     8  owOp        descriptor op word: op(8) | phase(8) << 8
//	    24     8  owHead      descriptor: head block of the run
//	    32     8  owBlocks    descriptor: blocks of the run
//	    40     8  owGen       descriptor: the head block's gen
//	    48     8  owSeq       descriptor: the run's Seq
//	    56     8  owLen       descriptor: the body length
//	    64     8  owRepStart  repairer's process start time (0: not known yet)
//	    72     8  owSum       descriptor: xxhash64 of the body
//	    80    48  -           unused
const (
	// owState: CAS free -> active(inc+1, pid) by a registrant; active ->
	// repairing(inc, pid of the repairer) by whoever found the owner's
	// process gone; repairing(dead repairer) -> repairing(self) by the
	// next repairer; active or repairing -> free(inc) by the owner's Close
	// or the repairer when done. Loaded by every liveness check and by
	// the owner before each operation (revocation).
	owState = 0
	// owStart: stored by the registrant after its claim and before any
	// operation; read with the pid of the state word by liveness checks
	// (0: not written yet, the pid alone decides).
	owStart = 8
	// owOp and the fields after it are the descriptor: the one operation
	// the owner is in the middle of. The owner (or its repairer) stores
	// the fields, then the op word, so a reader that loads the op word
	// first (sequentially consistent) sees fields at least as new; the op
	// word is cleared when the operation is over. Read by the repairer,
	// the checker, and a retirer of the map (retireMap), which loads the op
	// word after its store of mhRetired: it waits while a live owner's is
	// alloc, claimed (the allocator stored it before its claim and loads
	// mhRetired after: the fence), and RebuildFrom keeps the runs of live
	// owners' alloc, used descriptors.
	owOp       = 16
	owHead     = 24
	owBlocks   = 32
	owGen      = 40
	owSeq      = 48
	owLen      = 56
	owRepStart = 64 // stored by a repairer after its CAS of owState (cleared to 0 before it); read by liveness checks of a repairing slot
	owSum      = 72 // descriptor, as owHead
)

// Descriptor ops and phases (the owOp word).
const (
	opNone  = 0
	opAlloc = 1 // phase claimed: [head, head+blocks) being claimed; phase used: written, being marked used or waiting to be published in the CF
	opFree  = 2 // head being freed: gen and seq name the run

	phClaimed = 1
	phUsed    = 2
)

// Owner slot states (bits 40..47 of owState).
const (
	osFree      = 0
	osActive    = 1
	osRepairing = 2
)

func mkOwnState(inc uint16, st uint8, pid uint32) uint64 {
	return uint64(inc)<<48 | uint64(st)<<40 | uint64(pid)
}
func osInc(w uint64) uint16  { return uint16(w >> 48) }
func osState(w uint64) uint8 { return uint8(w >> 40) }
func osPid(w uint64) uint32  { return uint32(w) }

// Tag names an owner: slot << 16 | incarnation (never 0 for a registered
// owner: incarnations start at 1).
type Tag uint32

func mkTag(slot int, inc uint16) Tag { return Tag(uint32(slot)<<16 | uint32(inc)) }

// Slot is the owner slot the tag names.
func (t Tag) Slot() int { return int(t >> 16) }

// Incarnation is the slot's incarnation the tag names.
func (t Tag) Incarnation() uint16 { return uint16(t) }

func (t Tag) String() string { return fmt.Sprintf("smds-owner(%d#%d)", t.Slot(), t.Incarnation()) }

// Block state words (8 bytes per block, from mapLayout.words; block b's
// at words + 8*b): gen(24) << 40 | kind(8) << 32 | value(32). gen changes
// when a block that held a run is freed, so a stale reference (head, gen)
// fails validation. Written only by CAS from the exact value the writer
// read (sequentially consistent): by allocators (free -> alloc, alloc ->
// tail or head, alloc -> free when another allocator won a block of the
// run), by any freer (head -> freeing, tail -> free, freeing -> free), by
// the repairer of a dead owner (the same transitions for words naming the
// dead owner or its descriptor's run); loaded by allocators' scans,
// freers, readers explaining a mismatch (ErrStale) and the checker. A
// word past the extents in use is never written. Kinds:
const (
	bkFree    = 0 // value 0: free
	bkAlloc   = 1 // value: Tag of the allocator claiming it (claimed, not yet a run)
	bkHead    = 2 // value: blocks of the run: the first block of a used run
	bkTail    = 3 // value: head block: another block of a used run
	bkFreeing = 4 // value: Tag of the owner freeing the run it heads
)

func mkWord(gen uint32, kind uint8, val uint32) uint64 {
	return uint64(gen&genMask)<<40 | uint64(kind)<<32 | uint64(val)
}
func wGen(w uint64) uint32 { return uint32(w>>40) & genMask }
func wKind(w uint64) uint8 { return uint8(w >> 32) }
func wVal(w uint64) uint32 { return uint32(w) }

// Run header (runHdrSize bytes at the end of every run's last block, in
// the data set file, so that the body starts on a block boundary and is
// written and read in whole pages; between the body and the header, zero
// padding. Written by the allocator with the body and the padding in one
// write, before the run is marked used; read back and checked by every
// read from disk):
//
//	offset  size  constant    field
//	     0     8  rhMagic     magic "QMGRSMB1"
//	     8     8  rhDataSet   data set id
//	    16     4  rhHead      head block of the run
//	    20     4  rhGen       the head block's gen
//	    24     8  rhSeq       the run's Seq
//	    32     8  rhLen       body length
//	    40     8  rhSum       xxhash64 of the body
//	    48     8  -           zero
//	    56     8  rhChecksum  xxhash64 of bytes [0,56)
const (
	rhMagic    = 0
	rhDataSet  = 8
	rhHead     = 16
	rhGen      = 20
	rhSeq      = 24
	rhLen      = 32
	rhSum      = 40
	rhChecksum = 56
)

// runHeader is a decoded run header.
type runHeader struct {
	DataSet uint64
	Head    uint32
	Gen     uint32
	Seq     uint64
	Len     uint64
	Sum     uint64
}

func encodeRunHeader(b []byte, h runHeader) {
	clear(b[:runHdrSize])
	copy(b[rhMagic:], runMagic)
	le := binary.LittleEndian
	le.PutUint64(b[rhDataSet:], h.DataSet)
	le.PutUint32(b[rhHead:], h.Head)
	le.PutUint32(b[rhGen:], h.Gen)
	le.PutUint64(b[rhSeq:], h.Seq)
	le.PutUint64(b[rhLen:], h.Len)
	le.PutUint64(b[rhSum:], h.Sum)
	le.PutUint64(b[rhChecksum:], xxhash.Sum64(b[:rhChecksum]))
}

// decodeRunHeader parses and checks a run header. It never panics,
// whatever the bytes.
func decodeRunHeader(b []byte) (runHeader, error) {
	var h runHeader
	if len(b) < runHdrSize {
		return h, fmt.Errorf("%w: %d bytes, a run header needs %d", ErrTruncated, len(b), runHdrSize)
	}
	if string(b[rhMagic:rhMagic+8]) != runMagic {
		return h, fmt.Errorf("%w: run header magic %q", ErrDamaged, b[rhMagic:rhMagic+8])
	}
	le := binary.LittleEndian
	if xxhash.Sum64(b[:rhChecksum]) != le.Uint64(b[rhChecksum:]) {
		return h, fmt.Errorf("%w: run header checksum mismatch", ErrDamaged)
	}
	h = runHeader{DataSet: le.Uint64(b[rhDataSet:]), Head: le.Uint32(b[rhHead:]), Gen: le.Uint32(b[rhGen:]),
		Seq: le.Uint64(b[rhSeq:]), Len: le.Uint64(b[rhLen:]), Sum: le.Uint64(b[rhSum:])}
	return h, nil
}

// Ref is what the CF entry of an offloaded message holds: where its body
// is and how to know it is the right one. DataSet is the caller's number
// for the data set (the owning member's number in the structure); the
// others come from Owner.Put.
type Ref struct {
	DataSet uint16 // the caller's number of the data set
	Head    uint32 // first block of the run
	Len     uint32 // body length in bytes
	Gen     uint32 // the head block's gen when the run was allocated (24 bits)
	Seq     uint64 // allocation sequence number, unique in the data set
	Sum     uint64 // xxhash64 of the body
}

func (r Ref) String() string {
	return fmt.Sprintf("ds%d:block %d gen %d seq %d len %d", r.DataSet, r.Head, r.Gen, r.Seq, r.Len)
}

// Encoded reference (RefSize bytes, little-endian: what a CF entry of an
// offloaded message holds at the start of its variable part):
//
//	offset  size  constant   field
//	     0     2  rfDataSet  data set number
//	     2     2  -          zero
//	     4     4  rfHead     head block
//	     8     4  rfLen      body length
//	    12     4  rfGen      head block's gen (24 bits)
//	    16     8  rfSeq      allocation sequence number
//	    24     8  rfSum      xxhash64 of the body
const (
	rfDataSet = 0
	rfHead    = 4
	rfLen     = 8
	rfGen     = 12
	rfSeq     = 16
	rfSum     = 24
)

// Encode writes r into b (at least RefSize bytes).
func (r Ref) Encode(b []byte) {
	le := binary.LittleEndian
	le.PutUint16(b[rfDataSet:], r.DataSet)
	le.PutUint16(b[rfDataSet+2:], 0)
	le.PutUint32(b[rfHead:], r.Head)
	le.PutUint32(b[rfLen:], r.Len)
	le.PutUint32(b[rfGen:], r.Gen)
	le.PutUint64(b[rfSeq:], r.Seq)
	le.PutUint64(b[rfSum:], r.Sum)
}

// DecodeRef parses an encoded reference read from a CF entry or a log
// record. It never panics; it checks what can be checked without the
// data set (reserved bits zero, a gen of 24 bits, a Seq). Reads check the
// rest against the data set.
func DecodeRef(b []byte) (Ref, error) {
	var r Ref
	if len(b) < RefSize {
		return r, fmt.Errorf("%w: reference of %d bytes, want %d", ErrCorrupt, len(b), RefSize)
	}
	le := binary.LittleEndian
	r = Ref{DataSet: le.Uint16(b[rfDataSet:]), Head: le.Uint32(b[rfHead:]), Len: le.Uint32(b[rfLen:]),
		Gen: le.Uint32(b[rfGen:]), Seq: le.Uint64(b[rfSeq:]), Sum: le.Uint64(b[rfSum:])}
	if le.Uint16(b[rfDataSet+2:]) != 0 || r.Gen > genMask || r.Seq == 0 || r.Head >= maxTotalBlocks {
		return r, fmt.Errorf("%w: reference %v", ErrCorrupt, r)
	}
	return r, nil
}
