// Package lockfree builds the coupling facility's data structures inside a
// CF structure mapping (package shm): queue lists, the pools of message
// entries and data elements, the message/correlation id index, status slots
// changed only by whole-record compare-and-swap, cross-process wait and
// wake, owners with Repair, and a checker.
//
// # Rules
//
// No Go pointer is stored in the mapping: references are indexes (plus one,
// so zero means none) with a generation number. Every shared word is read
// and written with sync/atomic (sequentially consistent) and is 8-byte
// aligned; records are multiples of 64 bytes so words written by different
// processes on hot paths do not share cache lines. The data path (put, get,
// browse, commit, backout, allocate, free) takes no lock: every step is a
// single CAS or a store to something the caller alone owns.
//
// Every multi-step operation is tagged with its owner (an owner slot and its
// incarnation, an OwnerTag): a thing in flight carries its owner's tag in the
// same word as its state, and an owner about to change a second word (its
// depth counter, a backout count) first writes a descriptor in its own slot.
// Repair(owner) therefore finishes or undoes, from the mapping alone,
// whatever a process killed at any instruction left half done. The only
// reservations anyone waits on (a status slot being rewritten, the admin
// token for queue create and delete) name their holder, and a waiter clears
// them as soon as it sees the holder's process is gone.
//
// Every index read from the mapping (a reference, a queue or priority in
// an entry or a descriptor, a slot in a bitmap) is checked before it
// becomes an offset, and every walk along a chain (segments, data
// elements) is bounded: damaged bytes give ErrCorrupt, never a fault, a
// write into another region, or a loop. A Repair that meets damage takes
// an application structure out of service as failed (Fail), so that its
// members rebuild it, instead of acting on it; it leaves the admin
// structure in service and the damaged slot out of use.
//
// # Design choices
//
// Pools are clock sweeps over state words rather than Treiber stacks: a
// process killed between popping a free-list head and recording what it
// popped would leak the element with no trace of who had it, while a CAS
// free -> owned(tag) records the owner in the same step. Per-owner caches
// keep the shared sweep hand off the per-message path. What a cache holds
// stays marked as cached in its state word, and an owner claims it by CAS
// before use: an allocator whose sweep finds the pool low takes from other
// owners' caches by the same kind of CAS, so idle owners (connections
// waiting for their applications) never strand the pool (see pool.go).
//
// Queue depth is not one shared counter but a cell per owner and queue,
// written only by its owner: a shared counter updated next to an entry
// state change cannot be repaired after a kill between the two, a
// single-writer cell plus the descriptor's before-value can. Depth is the
// sum over the owners that ever touched the queue (a bitmap), read on puts
// to queues whose MaxDepth is below the structure's entry count, and by
// displays. The queue's message counters (puts, gets and their bytes, for
// metrics: QueueInfo.Counts) live in the same cell, on the cache line the
// put or get writes anyway; the rare ones (backouts, expiries) are atomic
// adds on the queue record. Each owner slot also counts the units of work
// its owners committed and backed out (UOWCounts).
//
// Queue lists are per-priority position logs (see sublog.go): an entry is
// linked at a position by one CAS and stays there until consumed, so a
// backout puts it back where it was and a scanner can skip what it has
// already seen.
//
// A view got outside syncpoint (state view) ends in one of three ways:
// Release removes its message, Return gives it back unchanged (a get that
// did not happen), Requeue gives it back with its backout count raised, as
// a backout, Close and a repair do; a give-back writes a descriptor first,
// so a repair after a kill at any step raises the count exactly once.
// Adopt moves a view into its owner's unit of work instead (one CAS,
// view -> held, then the uncommitted count and the unit-of-work word, as
// a get under syncpoint after its claim): Commit removes it, Backout and
// a repair of a unit of work not committing give it back like a view.
//
// A waiting getter sleeps on its queue's futex word with the bit of its
// owner slot (slot mod 32, FUTEX_WAIT_BITSET): a put wakes any waiter,
// and an Interrupter (GetOptions.Interrupt) bumps the word and wakes only
// its getter's bit, so interrupting one getter does not wake the others.
//
// Getters scan from the head. A process-local cache of "nothing available
// below position P as of availSeq S" makes repeated gets on a queue with
// many held or uncommitted messages cheap; commit, backout and repair bump
// availSeq. A getter that would take a message of a unit of work it skipped
// an invisible message of earlier in the same scan starts again, so a
// producer's messages are got in the order they were put.
//
// # Byte layout of the data area
//
// All integers little-endian (native on the supported platforms); offsets
// are from the start of the data area (the shm header page precedes it).
// Regions start on 4096-byte boundaries in this order:
//
//	control page    4096 bytes
//	owners          Owners x 256
//	queues          Queues x queueSize (= 256 + 2*bitmap + 10*128, bitmap = Owners/8 rounded up to 64)
//	cells           Owners x Queues x 64
//	entries         Entries x 256
//	element words   Elements x 8
//	element links   Elements x 4
//	segments        Segments x 576
//	index           IndexSlots x 8
//	status slots    StatusSlots x (64 + 2 x StatusSize rounded up to 64)
//	element data    Elements x ElementSize
//
// The control page (magic, parameters, checksum, sweep hands, admin
// token, service word, recoverer) is the table beside its offset constants
// in layout.go. Every record below is likewise a table directly above its
// named offset constants in layout.go (TestLayoutTables checks each table
// against its constants and its record's size, so they cannot drift).
//
// State words of entries, elements and segments share one encoding:
//
//	gen(24) << 40 | kind(8) << 32 | value(32)
//
// gen changes whenever the thing is freed after use, so a stale reference
// (index, gen) fails validation. Gens are 24 bits and per-owner caches reuse
// an entry as soon as it is freed, so a gen can come round again within
// seconds; wherever a reference to an entry is trusted, the entry's own
// record of where it is linked (queue, priority, position) must match too.
// Entry kinds: 0 free, 1 alloc(owner) (being filled), 2 putu(owner)
// (linked, uncommitted put), 3 avail, 4 held(owner) (got under syncpoint),
// 5 dead(owner) (being freed), 6 view(owner) (held outside any unit of work
// by a zero-copy view; Close and Repair put it back), 7 cached(owner) (in
// the owner's cache; the owner claims it cached -> alloc by CAS, and any
// owner may take it by CAS when the pool is low). Element kinds: 0 free,
// 1 owned(owner) (in its cache, as cached entries; claimed owned -> msg by
// CAS), 2 msg(entry index). Segment kinds: 0 free, 1 owned(owner) (in its
// cache, as elements), 2 linked(queue << 8 | priority) (claimed owned ->
// linked by CAS, with the segment descriptor naming it, before it is
// filled and put in the chain).
//
// Owner slot (256 bytes; written by its owner, or by its repairer after it
// died; read by anyone checking liveness or repairing): the table "Owner
// slot fields" in layout.go. The message descriptor's op word is stored
// last and names the buffer (table "Descriptor buffer fields"); the
// segment descriptor's op is cleared first and set last; the epoch is
// bumped by whoever frees the slot, before the free, so an owner whose
// slot's epoch is no longer the one it registered under was revoked,
// whatever the incarnation says (it wraps at 16 bits).
//
// Queue record: the table "Queue record fields" (a fixed part of 256
// bytes, then the waiter and touched bitmaps), then 10 sublogs of 128
// bytes, priority 0 first (table "Sublog fields").
//
// Cell (owner o, queue q) at cells + (o*Queues + q)*64: table "Cell
// fields" (depth contribution, uncommitted count, handles open for input,
// handles open for output, then the message counters; int64 each, one
// cache line). Written only by owner o (or its
// repairer). A put to a queue whose MaxDepth is below the structure's
// entry count stores its depth increment atomically before it sums the
// others' cells (see reserveDepth); every other write is a plain store.
//
// Entry (256 bytes): table "Entry fields".
//
// The variable part is reply-to queue name, reply-to queue manager name,
// properties, body, in that order; for an offloaded message (flag
// efOffloaded, layout version 9) the OffloadRefSize-byte reference to its
// body in a shared message data set (package smds) comes first and the
// body is not in the CF (docs/design/smds.md, section 7); inline when it fits in 120 bytes,
// otherwise chained over data elements (next links in the element link
// array, index+1, 0 ends).
//
// Segment (576 bytes): table "Segment fields"; 64 slots of entry refs
// ((index+1) << 32 | gen). An empty slot or next field holds the empty
// mark 1 << 31 | the segment's gen (a nil reference: its high half is
// zero).
//
// Index slot: (entry index+1) << 32 | gen << 8 | top byte of the key hash.
//
// Status slot: table "Status slot fields" (a control word, then two
// copies of the record).
package lockfree
