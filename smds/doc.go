// Package smds implements shared message data sets (issue 19): files on
// disk that hold the bodies of messages too large for, or crowding, a CF
// structure, so that the CF entry of such a message holds only a small
// reference (Ref) to its body. The design, and what integrating it into
// the put and get paths of packages lockfree and mq must change, is in
// docs/design/smds.md.
//
// # Data sets and space maps
//
// Each member owns one data set per CF structure that offloads
// (<structure>.<member>.smds in a data directory): a header page, then
// extents of ExtentBlocks blocks of BlockSize bytes, added as the data set
// fills (fallocate first, then a CAS of the extent count). A body is
// stored in a run: contiguous blocks of one extent, starting with a
// 64-byte run header (data set id, head block, gen, Seq, length, body
// checksum, header checksum) followed by the body. One write (pwritev)
// puts both; one read (preadv) gets both.
//
// Which blocks are free is in the space map (<structure>.<member>.smap),
// a small file every process maps MAP_SHARED, kept beside the CF
// structures (in their tmpfs directory) because it describes what the
// CF's entries refer to and lives and dies with them. It holds a header
// (geometry, the data set's id, the CF epoch it belongs to, the extent
// count, the allocation sequence, a sweep hand), owner slots, and one
// 8-byte state word per block: gen(24) | kind(8) | value(32), where kind
// is free, alloc(owner) (claimed by an allocator), head(blocks) (first
// block of a used run), tail(head) (other block of a used run) or
// freeing(owner). Every layout is the table beside its offset constants
// in layout.go.
//
// # Allocation, freeing and repair
//
// Any registered process allocates (the member and its bindings-mode
// applications) and any process frees (whoever got and committed the
// message, even when the owning member is dead): no lock, every step a
// CAS on a state word that names who is doing it, and each owner first
// records in its slot's descriptor which run it works on. Put claims free
// blocks in order (free -> alloc(tag)), writes the run, marks the tails
// and then the head used; the caller publishes the reference in the CF
// and calls Published, which clears the descriptor. Free marks the head
// freeing(tag), frees the tails from last to first, then the head (its gen
// moves on). Repair of a dead owner resolves its descriptor: a claim is
// undone, a used run not yet published is kept or freed as the caller's
// Resolver (the CF) says, a free is finished. So a process SIGKILLed
// anywhere leaves nothing leaked, nothing doubly used, and no reference to
// unwritten data (a reference exists only after the run was written and
// marked used). Check proves it against the CF's references.
//
// When the space map is missing or belongs to another CF epoch (the CF
// structure was recovered), Open fails with ErrNeedRebuild and the owner
// rebuilds the map from the references the CF holds (Rebuild), checking
// each run's header on disk.
//
// # Reads and the cache
//
// Read checks the run header against the reference and the body against
// its checksum: a damaged run gives ErrDamaged, a freed and reused one
// ErrStale, a truncated file ErrTruncated, each naming the file and the
// offset. View returns the body from a read-only mapping without a copy.
// A Cache (ristretto) keeps recently read bodies, keyed by data set, run,
// Seq and checksum, so a run freed and reused is never served stale.
//
// # Crash points
//
// smds.alloc.claimed (after each block claimed), smds.alloc.written,
// smds.alloc.marking (after each tail marked), smds.alloc.used,
// smds.free.marked, smds.free.tail (after each tail freed),
// smds.grow.allocated and smds.repair.claimed (see package crashpoint).
package smds
