package lockfree

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
	"github.com/qmgr/qmgr/shm"
)

// LayoutVersion is the version of the data-area layout below. It is stored in
// the shm header; bump it whenever any offset or encoding here changes.
const LayoutVersion = 9

// Fixed sizes. Every record is a multiple of the 64-byte cache line so that
// words written by different processes on hot paths never share a line.
const (
	line         = 64
	ctlPageSize  = 4096
	ownerSize    = 256
	cellSize     = 64
	entrySize    = 256
	InlineMax    = entrySize - enInline
	segSlots     = 64
	segHdrSize   = 64
	segSize      = segHdrSize + segSlots*8
	statusHdr    = 64 // a status slot's control line; the copies follow
	Priorities   = 10
	sublogSize   = 2 * line
	queueFixed   = 4 * line // attributes (2 lines), priority mask, futex word
	maxOwners    = 1 << 16
	maxQueues    = 1 << 16
	maxEntries   = 1<<32 - 2
	genBits      = 24
	genMask      = 1<<genBits - 1
	idBytes      = 24 // message and correlation id
	MaxNameLen   = 48
	formatBytes  = 8
	maxElemSize  = 1 << 20
	minElemSize  = 64
	maxStatusRec = 1 << 16
)

// The word offsets below say, for every word more than one process touches,
// who writes it, who reads it and what ordering it relies on. All shared
// words are 8-byte aligned and accessed with sync/atomic (sequentially
// consistent) unless marked "owned": a word only its owner writes, stored
// with a plain store (storeOwned) and published by the owner's next atomic
// store or read-modify-write (not ordered before its later loads: see
// storeOwned), or read by a repairer only after the owner died.

// Control page (offset 0 of the data area; ctlPageSize bytes):
//
//	offset  size  constant       field
//	     0     8  ctlMagic       magic "QMGRLF01"
//	     8    36  ctlParams      parameters, u32 each: Owners Queues Entries Elements ElementSize Segments IndexSlots StatusSlots StatusSize
//	    44     4  -              zero
//	    48     8  ctlChecksum    xxhash64 of [0,48)
//	    56   968  -              unused
//	  1024     8  ctlEntryHand   entry sweep hand
//	  1032    56  -              unused (one line per hand)
//	  1088     8  ctlElemHand    element sweep hand
//	  1096    56  -              unused
//	  1152     8  ctlSegHand     segment sweep hand
//	  1160    56  -              unused
//	  1216     8  ctlAdminToken  admin token: owner tag or 0 (queue create and delete)
//	  1224    56  -              unused
//	  1280     8  ctlFailed      service word: 0 in service, 1 failed, 2 recovering
//	  1288    56  -              unused
//	  1344     8  ctlLogged      bytes of recovery log written about the structure's messages
//	  1352    56  -              unused
//	  1408     8  ctlRecPid      recoverer's pid
//	  1416     8  ctlRecStart    recoverer's start time (procid)
//	  1424  2672  -              unused
const (
	ctlMagic     = 0                   // [8]byte "QMGRLF01"; written once by the creator before the structure is linked into place
	ctlParams    = 8                   // 9 x u32: Owners Queues Entries Elements ElementSize Segments IndexSlots StatusSlots StatusSize; as ctlMagic
	ctlChecksum  = 48                  // xxhash64 of [0,48); as ctlMagic
	ctlEntryHand = 1 * 1024            // sweep hand of the entry pool: fetch-add by allocating owners, stored by owners giving a batch back; a hint only, any value is safe
	ctlElemHand  = ctlEntryHand + line // sweep hand of the element pool; as ctlEntryHand
	ctlSegHand   = ctlElemHand + line  // sweep hand of the segment pool; as ctlEntryHand
	// ctlAdminToken: owner tag holding the admin token (queue create and
	// delete) or 0. CAS 0 -> tag by the taker, tag -> 0 by the holder, or
	// tag -> taker by whoever sees the holder's process is gone; Repair
	// clears it for a dead owner. Read by the checker.
	ctlAdminToken = ctlSegHand + line
	// ctlFailed: 0 in service; failFailed: a member found the structure's
	// file gone or damaged; failRecovering: the structure is being
	// recovered (set by Create for a recovery, before anyone attaches).
	// While it is not 0 every operation but the recoverer's fails with
	// ErrStructureFailed. CAS 0 -> failFailed by whoever notices, store 0
	// by the recoverer when the structure is whole; loaded by every
	// operation.
	ctlFailed = ctlAdminToken + line
	// ctlLogged: bytes of recovery log records written about this
	// structure's messages since it was created: fetch-add by every
	// connection that logs a put or get (package mq), read by the member
	// that schedules backups. A hint: it only sizes a recovery estimate.
	ctlLogged = ctlFailed + line
	// ctlRecPid, ctlRecStart: the process recovering a structure created
	// with CreateOptions.Recovering (its creator: pid and procid start
	// time). Stored once by Create's Init, before the file is linked into
	// place, and never changed: a structure whose recoverer died is
	// replaced by a new file, not taken over in place. Read by whoever
	// finds the structure recovering (is its recoverer alive?) and by
	// displays; meaningless while ctlFailed is not failRecovering.
	ctlRecPid   = ctlLogged + line
	ctlRecStart = ctlRecPid + 8
)

// The control page's header: magic, parameters and their checksum.
const (
	layoutMagic = "QMGRLF01"
	paramsLen   = ctlChecksum + 8 // bytes of the header (encodeParams)
)

// Owner slot fields. A slot is written by its owner while it is active, by
// its repairer while it is repairing; anyone reads it to check liveness or
// to repair. The layout (ownerSize bytes, 8-byte words; TestLayoutTables
// checks this table against the constants below, so they cannot drift):
//
//	offset  size  constant     field
//	     0     8  ownState     state: incarnation(16) << 48 | state(8) << 40 | pid or repairer pid(32); states 0 free, 1 active, 2 repairing
//	     8     8  ownPid       pid of the registered process
//	    16     8  ownStart     that process's start time (procid)
//	    24     8  ownReg       registration time, Unix ns
//	    32     8  ownRepStart  repairer's start time
//	    40     8  ownRepPid    repairer's pid
//	    48     8  ownLabel     label given at registration
//	    56     8  ownOpSeq     operation counter, odd while an operation is in flight
//	    64     8  ownUOW       unit of work: seq(32) << 32 | state(8); states 0 idle, 1 active, 2 committing
//	    72     8  ownTook      1 once the owner took anything (Repair sweeps only then)
//	    80     8  ownCommit    persistence key whose record may be logged; bit 63: a lone operation decided
//	    88     8  ownUOWSince  when the unit of work became active, Unix ns (coarse clock)
//	    96     8  ownPidNS     pid namespace of the registered process
//	   104     8  ownLone      lone operation: entry ref ((entry+1) << 32 | gen), 0 none
//	   112     8  ownLoneKey   lone operation's decision key
//	   120     8  ownCommits   units of work committed by the slot's owners
//	   128     8  ownDesc      message descriptor: op word (kind | buffer << 8)
//	   136    24  ownDescBuf0  message descriptor buffer 0: a, b, c (see "Descriptor buffer")
//	   160    24  ownDescBuf1  message descriptor buffer 1
//	   184     8  ownBackouts  units of work backed out by the slot's owners
//	   192     8  ownSegDesc   segment descriptor: op
//	   200     8  ownSegDescA  segment descriptor: a
//	   208     8  ownSegDescB  segment descriptor: b
//	   216     8  ownEpoch     times the slot was freed
//	   224    32  -            unused
const (
	// ownState: inc(16)<<48 | state(8)<<40 | pid(32). CAS by a registering
	// process (free -> active, claims the slot with its pid), by a repairer
	// (active or repairing by a dead pid -> repairing by its pid) and by
	// Close or Repair (-> free). Read by liveness checks, RepairDead and
	// the checker.
	ownState    = 0
	ownPid      = 8   // pid of the registered process: stored after the claim; readers use it only when it matches the pid in ownState
	ownStart    = 16  // that process's start time (procid): stored before ownPid, so a reader that sees a matching pid sees its start time
	ownReg      = 24  // registration time, Unix ns (owned; informational and message id generation)
	ownRepStart = 32  // start time of the repairing process: stored by the winner of the repair claim, before ownRepPid
	ownRepPid   = 40  // pid of the repairing process: stored after ownRepStart; readers trust ownRepStart only when this matches the pid in ownState
	ownLabel    = 48  // opaque label given at registration (the member a connection belongs to): stored before ownPid, trusted like ownStart
	ownOpSeq    = 56  // operation counter of a revocable owner, odd while an operation is in flight: atomic stores by the owner, read by a revoker
	ownUOW      = 64  // uow seq(32)<<32 | uow state(8): atomic stores by the owner (committing is stored before any entry of the commit changes); read by Repair to decide roll forward or back
	ownTook     = 72  // 1 once the owner took anything (entries, elements or segments from a pool, or a message by a claim): atomic store by the owner before the first such CAS, 0 at registration; read by Repair, which sweeps the entries, elements and segments only for an owner that took some
	ownCommit   = 80  // persistence key of the unit of work once its commit record may be in the recovery log (0: none): atomic store by the owner in a fenced operation (MarkCommitLogged) before it hands the record over, cleared by EndDecision and at registration; read by a recoverer after fencing the owner (CommitLogged), which must record the unit of work as aborted before backing it out
	ownUOWSince = 88  // Unix ns (coarse clock) when the unit of work became active: stored by the owner before the uow word says active; read by displays and the member's long-running unit of work check, only while the uow word says active
	ownPidNS    = 96  // pid namespace of the registered process (procid.SelfNS): stored before ownPid, trusted like ownStart; its pid means nothing in another namespace
	ownLone     = 104 // entry ref of the owner's lone operation (PutLone, MarkLone), 0 none: atomic stores by the owner in an operation, before the decision its key names can be recorded (elsewhere), cleared when it ends and at registration; read by Repair, which rolls it forward when the recoverer passes its key as decided
	ownLoneKey  = 112 // the lone operation's decision key: stored with ownLone, before it; read by Repair with it
	// ownCommits, ownBackouts: units of work the slot's owners committed
	// and backed out (Commit, Backout with a unit of work open; not those
	// a repairer ends): owned stores by the owner after the unit of work
	// ended, on lines it writes then anyway (ownUOW's, the descriptor's);
	// never reset, so their sum over the slots only grows. Read by
	// UOWCounts (statistics).
	ownCommits  = 120
	ownBackouts = 184
	ownDesc     = 128 // message descriptor's op word: atomic store by the owner, publishes a buffer (and names it); read by Repair
	ownDescBuf0 = 136 // message descriptor buffer 0 (a, b, c): owned stores by the owner while op names the other buffer; read by Repair
	ownDescBuf1 = 160 // message descriptor buffer 1: as ownDescBuf0
	ownSegDesc  = 192 // segment descriptor's op: atomic stores by the owner, cleared before a and b change and set last; read by Repair and the checker
	ownSegDescA = 200 // segment descriptor's a: atomic store by the owner while op is clear; read with op
	ownSegDescB = 208 // segment descriptor's b: as ownSegDescA
	// ownEpoch counts the times the slot was freed: bumped by whoever frees
	// it, before the state CAS to free (Close: CAS from its own epoch, so a
	// late Close of a revoked owner changes nothing; Repair, which holds the
	// slot: atomic add); read by a
	// registrant after its claim (its epoch) and by every operation of its
	// owner (checkAlive). The 16-bit incarnation in the state word comes
	// round again after 65,535 registrations; the epoch does not, so an
	// owner revoked while idle never takes a later registrant's slot for
	// its own.
	ownEpoch = 216
)

// Descriptor buffer fields (relative to ownDescBuf0 or ownDescBuf1; the
// meaning of a, b and c depends on the op, see the op constants):
//
//	offset  size  constant  field
//	     0     8  dbA       a
//	     8     8  dbB       b
//	    16     8  dbC       c
const (
	dbA         = 0
	dbB         = 8
	dbC         = 16
	descBufSize = 24
)

// Cell fields (owner o, queue q at cells + (o*Queues + q)*cellSize; int64
// each, written only by owner o or its repairer; read by depth sums and
// the checker). A cell is one cache line, so the message counters cost a
// put or a get no line it does not write already (its depth word):
//
//	offset  size  constant    field
//	     0     8  clDepth     depth contribution: owned stores, except a put to a queue whose MaxDepth is below the entry count stores its increment atomically before it sums the others' cells (reserveDepth)
//	     8     8  clUncom     uncommitted count
//	    16     8  clOpenIn    handles open for input (IPPROCS)
//	    24     8  clOpenOut   handles open for output (OPPROCS)
//	    32     8  clPuts      messages this owner made available on the queue (a put outside syncpoint, a committed put)
//	    40     8  clPutBytes  their body bytes
//	    48     8  clGets      messages this owner removed by a get for good (outside syncpoint, a committed get, a released view)
//	    56     8  clGetBytes  their body bytes
const (
	clDepth   = 0
	clUncom   = 8
	clOpenIn  = 16
	clOpenOut = 24
	// clPuts, clPutBytes, clGets, clGetBytes: monotonic counters, owned
	// stores by the owner after the CAS that makes the put available or
	// the get final (countMsg); never reset (the slot's next owner goes on
	// from them; a queue created in the slot records their sums as its
	// base, qBasePuts). Read by QueueInfo (statistics: a sum read while
	// owners count may be a message behind; an owner that dies between
	// its CAS and its count leaves that message uncounted).
	clPuts     = 32
	clPutBytes = 40
	clGets     = 48
	clGetBytes = 56
)

// Queue record fields (queueSize bytes: a fixed part of queueFixed bytes,
// then the two bitmaps of bitmapSize bytes each, then Priorities sublogs
// of sublogSize bytes, priority 0 first; see sublogOff):
//
//	offset  size  constant   field
//	     0     8  qState     state: incarnation(16) << 48 | state(8) << 40 | owner tag(32); states 0 free, 1 creating, 2 active, 3 deleting
//	     8     8  qMaxDepth  max depth
//	    16     8  qMaxMsgL   max message length
//	    24     8  qFlags     flags: 1 msgid index, 2 correlid index, 4 some key not indexed
//	    32     8  qCreated   created, Unix ns
//	    40     8  qNameLen   name length
//	    48    48  qName      name
//	    96     8  qBasePuts      sum of the cells' clPuts when the queue was created
//	   104     8  qBasePutBytes  sum of clPutBytes then
//	   112     8  qBaseGets      sum of clGets then
//	   120     8  qBaseGetBytes  sum of clGetBytes then
//	   128     8  qPrioMask  priorities used (bit mask)
//	   136     8  qBackouts      messages given back with their backout count raised
//	   144     8  qBackoutBytes  their body bytes
//	   152     8  qExpired       expired messages removed
//	   160     8  qExpiredBytes  their body bytes
//	   168    24  -          unused
//	   192     4  qFutex     futex word (u32 wake sequence)
//	   196     4  qBrowseWait  1 once a browse has waited on the queue (u32; 0 at create)
//	   200    56  -          unused
//	   256     *  qBitmaps   waiter bitmap (one bit per owner slot), then touched bitmap (owners whose cells count for this queue)
const (
	// qState: inc(16)<<48 | state(8)<<40 | owner tag(32). Changed by CAS
	// under the admin token (create, delete) and by Repair for a dead
	// creator or deleter; read by every operation (is the queue active).
	qState    = 0
	qMaxDepth = 8  // stored under the admin token or by an attribute change; read by every put (before reserving depth)
	qMaxMsgL  = 16 // as qMaxDepth
	qFlags    = 24 // index flags: stored on create and attribute changes; OR of "some key not indexed" by puts; read by puts and gets by id
	qCreated  = 32 // written once on create, before the state becomes active
	qNameLen  = 40 // as qCreated
	qName     = 48 // [48]; as qCreated
	// qBasePuts, qBasePutBytes, qBaseGets, qBaseGetBytes: the sums of the
	// owners' cell counters (clPuts...) when the queue was created, which
	// QueueInfo subtracts (cells outlive the queue that had the slot
	// before). Stored by the creator while the queue is creating, before
	// the state becomes active; read by QueueInfo.
	qBasePuts     = 96
	qBasePutBytes = 104
	qBaseGets     = 112
	qBaseGetBytes = 120
	// qPrioMask: priorities ever used on the queue. Atomic OR by producers
	// before their first link at a priority (never missing for a non-empty
	// sublog), cleared on delete; read by every get.
	qPrioMask = 2 * line
	// qBackouts, qBackoutBytes, qExpired, qExpiredBytes: counters of the
	// rare paths, shared by every owner: atomic add by the owner that
	// gave a message back with its backout count raised (backoutHeldFrom)
	// or removed an expired one (expire), after its CAS; zeroed by the
	// creator before the queue is active; read by QueueInfo. Statistics,
	// like the cell counters.
	qBackouts     = 2*line + 8
	qBackoutBytes = 2*line + 16
	qExpired      = 2*line + 24
	qExpiredBytes = 2*line + 32
	// qFutex: u32 wake sequence. Atomic add by a producer that made a message
	// visible while some waiter bit is set, then FUTEX_WAKE; a waiter reads it
	// after setting its bit and before its last look, and sleeps on it.
	qFutex = 3 * line
	// qBrowseWait: u32, 0 when the queue is created; atomic store of 1 by a
	// browse that is about to wait (before it sets its waiter bit), never
	// cleared while the queue lives; read by producers after they saw a
	// waiter bit (wake). Set, every wake of the queue wakes every waiter
	// instead of as many as messages became visible: a browsed message
	// is for every browser, not for one (a recovery unit's secondaries
	// all browse its log). Written before the waiter bit, so a producer
	// that sees the bit sees the mark (sequentially consistent atomics).
	// A stale mark costs spare wake-ups, never a lost one.
	qBrowseWait = 3*line + 4
	// qBitmaps: the waiter bitmap (one bit per owner slot; atomic OR/AND by
	// the waiting owner, AND by Repair; read by producers after making a
	// message visible), then the touched bitmap (atomic OR by an owner before
	// it first changes its cells of this queue; read by depth sums).
	qBitmaps = 4 * line
)

// Sublog fields (relative to the sublog; sublogSize bytes). The tail
// line is written by producers, the head line by consumers:
//
//	offset  size  constant    field
//	     0     8  slTailPos   tail position
//	     8     8  slTailSeg   tail segment ref
//	    16     8  slAvailSeq  availSeq
//	    24    40  -           unused
//	    64     8  slHeadPos   head position
//	    72     8  slHeadSeg   head segment ref
//	    80     8  slJanitor   janitor token (owner tag)
//	    88    40  -           unused
const (
	slTailPos  = 0         // next position to fill: CAS by the producer that filled it or by anyone who finds that slot full; never passes an empty slot; read by scanners
	slTailSeg  = 8         // segment holding tailPos, may lag one segment: CAS by producers and helpers (and Repair when missing); read by producers
	slAvailSeq = 16        // atomic add before and after entries become available again (commit, backout, repair); read by getters to validate their scan caches
	slHeadPos  = line      // positions below are dead: CAS forward by scanners that found them dead; read by everyone
	slHeadSeg  = line + 8  // first segment: CAS 0 -> first by the producer creating it, otherwise only by the janitor token holder; read by scanners and producers
	slJanitor  = line + 16 // owner tag holding the janitor token (frees and unlinks segments): CAS without waiting; cleared by Repair for a dead holder
)

// Entry fields. The state word is the only word others change; every other
// field is written (owned) by the owner of an alloc entry before the CAS
// that links or publishes it, and is then immutable until the entry is
// freed (the gen changes), except the backout count, written by the owner
// of a held entry before the CAS that releases it. An entry is entrySize
// bytes:
//
//	offset  size  constant    field
//	     0     8  enCtl       state word
//	     8     8  enPos       position in its sublog
//	    16     8  enPutter    putter: owner tag << 32 | unit-of-work seq
//	    24     8  enQueue     queue(16) | priority(8) << 16 | flags(8) << 24 | body length << 32 (flags: 1 persistent, 2 offloaded)
//	    32     8  enPutTime   put time, Unix ns
//	    40     8  enExpiry    expiry, Unix ns (0: none)
//	    48     8  enBackout   backout count(32) | properties length << 32
//	    56     8  enDataRef   first element + 1 (0: inline)(32) | variable part length << 32
//	    64    24  enMsgID     message id
//	    88    24  enCorrelID  correlation id
//	   112     8  enFormat    format
//	   120     8  enReplyLen  reply-to queue name length (u8), reply-to qmgr name length (u8), 6 bytes zero
//	   128     8  enKey       persistence key (Message.Key)
//	   136   120  enInline    inline variable part (InlineMax bytes)
const (
	enCtl      = 0  // state word (gen | state | owner tag): CAS for every transition, stores by the sole owner of an alloc or dead entry
	enPos      = 8  // position in its sublog (stored before the slot CAS that links the entry)
	enPutter   = 16 // owner tag << 32 | unit of work: read by getters for the ordering rule
	enQueue    = 24 // u16 queue, u8 priority, u8 flags (efPersistent, efOffloaded), u32 body length (offloaded: in its data set)
	enPutTime  = 32
	enExpiry   = 40 // read by getters (expired messages are removed, never returned)
	enBackout  = 48 // u32 backout count, u32 properties length
	enDataRef  = 56 // u32 first element + 1 (0: inline), u32 variable-part length
	enMsgID    = 64 // read by gets by id and the index
	enCorrelID = 88
	enFormat   = 112
	enReplyLen = 120 // u8 reply-to queue name length, u8 reply-to qmgr name length
	enKey      = 128 // persistence key of a persistent message (0: none), set by the persistence layer
	enInline   = 136 // the variable part when it fits (InlineMax bytes), else unused
)

// Segment fields (segSize bytes). An empty slot or next field holds the
// empty mark 1 << 31 | the segment's gen (a nil reference: its high half
// is zero):
//
//	offset  size  constant  field
//	     0     8  sgWord    state word
//	     8     8  sgBase    base position (a multiple of segSlots)
//	    16     8  sgNext    next segment ref, or the empty mark
//	    24    40  -         unused
//	    64   512  sgSlots   segSlots slots of entry refs ((index+1) << 32 | gen)
const (
	sgWord  = 0          // state word (gen | kind | value): CAS by the sweep (free -> owned), stores by its owner, CAS linked -> free by the janitor that unlinked it
	sgBase  = 8          // first position: stored by the owner before the segment is linked; immutable while linked
	sgNext  = 16         // next segment ref or this segment's empty mark: CAS mark -> ref by the producer linking the next segment, ref -> ref by the janitor unlinking it
	sgSlots = segHdrSize // 64 slots: CAS empty mark -> entry ref by producers; read by scanners
)

// Status slot fields (statusRec bytes: statusHdr, then two copies of the
// record of StatusSize bytes, each rounded up to a line; see status.go):
//
//	offset  size  constant  field
//	     0     8  stCtl     control word: version(31) << 33 | current copy(1) << 32 | reserving owner tag(32)
//	     8     4  stWake    futex word of WaitStatus: bumped by a publisher that found stSleep set, and by WakeStatus
//	    12     4  stSleep   non-zero: a WaitStatus may sleep on stWake
//	    16    48  -         unused
//	    64     *  stCopies  copy 0, then copy 1 at 64 + StatusSize rounded up to 64
const (
	stCtl    = 0         // CAS by writers (reserve, publish), cleared by Repair for a dead reserver; read by readers before and after they copy
	stWake   = 8         // atomic add by a publisher after its publish CAS (when it swapped stSleep from non-zero) and by WakeStatus; read by waiters before they look at stCtl, then slept on
	stSleep  = 12        // atomic store 1 by a waiter after it read stWake and before it reads stCtl; atomic swap to 0 by a publisher after its publish CAS (a dead waiter's 1 costs one spare wake)
	stCopies = statusHdr // the copy the control word does not name is written by its reserver; the current one is read by anyone
)

// Generated message id (idBytes bytes, big-endian), given to a message put
// without one; unique while owner registration times and pids are:
//
//	offset  size  constant  field
//	     0     8  miReg     the owner's registration time (ownReg)
//	     8     4  miTag     the owner tag
//	    12     8  miSeq     the owner's message sequence number
//	    20     4  miPid     the putting process's pid
const (
	miReg = 0
	miTag = 8
	miSeq = 12
	miPid = 20
)

// Index key (indexKeySize bytes, hashed with xxhash64 to place a message
// id or correlation id in the index; the hash decides slots in the
// mapping, so this layout is part of LayoutVersion):
//
//	offset  size  constant  field
//	     0     4  ikQueue   queue slot (little-endian)
//	     4     1  ikKind    kindMsgID or kindCorrelID
//	     5    24  ikID      the id
const (
	ikQueue      = 0
	ikKind       = 4
	ikID         = 5
	indexKeySize = ikID + idBytes
)

// Params sizes a structure. Zero fields take the defaults documented on
// each field; ParamsForSize derives the counts from a byte budget.
type Params struct {
	Owners      int // owner (connection) slots; default 256; at most 65536
	Queues      int // queue slots; default 512, as many as an IBM MQ CF application structure holds
	Entries     int // message entries; default derived from the size
	Elements    int // data elements for bodies that do not fit inline; default derived from the size
	ElementSize int // bytes per data element; default 256; multiple of 64
	Segments    int // list segments of 64 positions; default Entries/8 + 2*Queues
	IndexSlots  int // message/correlation id index slots; default 2*Entries rounded to a power of two
	StatusSlots int // compare-and-swap status records; default 64
	StatusSize  int // bytes per status record; default 256; multiple of 8, at least 16
}

func (p Params) withDefaults() Params {
	if p.Owners == 0 {
		p.Owners = 256
	}
	if p.Queues == 0 {
		p.Queues = 512
	}
	if p.ElementSize == 0 {
		p.ElementSize = 256
	}
	if p.Entries == 0 {
		p.Entries = 4096
	}
	if p.Elements == 0 {
		p.Elements = p.Entries
	}
	if p.Segments == 0 {
		p.Segments = p.Entries/8 + 2*p.Queues
	}
	if p.IndexSlots == 0 {
		n := 64
		for n < 2*p.Entries {
			n <<= 1
		}
		p.IndexSlots = n
	}
	if p.StatusSlots == 0 {
		p.StatusSlots = 64
	}
	if p.StatusSize == 0 {
		p.StatusSize = 256
	}
	return p
}

// Validate checks the parameters after defaults are applied.
func (p Params) Validate() error {
	p = p.withDefaults()
	switch {
	case p.Owners < 1 || p.Owners > maxOwners:
		return fmt.Errorf("%w: owners %d not in 1..%d", ErrParams, p.Owners, maxOwners)
	case p.Queues < 1 || p.Queues > maxQueues:
		return fmt.Errorf("%w: queues %d not in 1..%d", ErrParams, p.Queues, maxQueues)
	case p.Entries < 1 || p.Entries > maxEntries:
		return fmt.Errorf("%w: entries %d", ErrParams, p.Entries)
	case p.Elements < 1 || p.Elements > maxEntries:
		return fmt.Errorf("%w: elements %d", ErrParams, p.Elements)
	case p.ElementSize < minElemSize || p.ElementSize > maxElemSize || p.ElementSize%64 != 0:
		return fmt.Errorf("%w: element size %d not a multiple of 64 in %d..%d", ErrParams, p.ElementSize, minElemSize, maxElemSize)
	case p.Segments < 2 || p.Segments > maxEntries:
		return fmt.Errorf("%w: segments %d", ErrParams, p.Segments)
	case p.IndexSlots < 64 || p.IndexSlots&(p.IndexSlots-1) != 0 || p.IndexSlots > 1<<32:
		return fmt.Errorf("%w: index slots %d not a power of two >= 64", ErrParams, p.IndexSlots)
	case p.StatusSlots < 0 || p.StatusSlots > 1<<20:
		return fmt.Errorf("%w: status slots %d", ErrParams, p.StatusSlots)
	case p.StatusSize < 16 || p.StatusSize > maxStatusRec || p.StatusSize%8 != 0:
		return fmt.Errorf("%w: status size %d not a multiple of 8 in 16..%d", ErrParams, p.StatusSize, maxStatusRec)
	}
	return nil
}

// ParamsForSize fills Entries and Elements, where they are zero, so that the
// structure fits in size bytes (the whole file, shm header included): the
// room left after the fixed regions is split so there is one data element
// per entry. Segments and IndexSlots, where zero, follow from Entries.
func ParamsForSize(size uint64, p Params) (Params, error) {
	in := p
	derive := func(entries, elements int) Params {
		q := in
		if in.Entries == 0 {
			q.Entries = entries
		}
		if in.Elements == 0 {
			q.Elements = elements
		}
		return q.withDefaults()
	}
	fixed := derive(1, 1).Size()
	if fixed >= size {
		return p, fmt.Errorf("%w: %d bytes cannot hold %d owners and %d queues (need more than %d)",
			ErrParams, size, p.withDefaults().Owners, p.withDefaults().Queues, fixed)
	}
	q := derive(1, 1)
	var per uint64
	if in.Entries == 0 {
		per += entrySize + segSize/8 + 16 // entry, its share of a segment, two index slots
	}
	if in.Elements == 0 {
		per += 8 + 4 + uint64(q.ElementSize)
	}
	n := 1
	if per > 0 {
		n = int((size - fixed) / per)
	}
	if n > maxEntries {
		n = maxEntries
	}
	for n > 1 && derive(n, n).Size() > size {
		n -= n/64 + 1
	}
	if n < 1 {
		n = 1
	}
	p = derive(n, n)
	if p.Size() > size {
		return p, fmt.Errorf("%w: %d bytes are too few for the given counts (need %d)", ErrParams, size, p.Size())
	}
	return p, p.Validate()
}

// layout holds the byte offset of every region of the data area.
type layout struct {
	p                                       Params
	owners, queues, cells, entries          uint64
	elemWords, elemNext, segs, index, stats uint64
	elemData, total                         uint64
	queueSize, bitmapSize, statusRec        uint64
}

func roundUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func computeLayout(p Params) layout {
	l := layout{p: p}
	l.bitmapSize = roundUp(uint64(p.Owners+63)/64*8, line)
	l.queueSize = queueFixed + 2*l.bitmapSize + Priorities*sublogSize
	l.statusRec = statusHdr + 2*roundUp(uint64(p.StatusSize), line)
	off := uint64(ctlPageSize)
	next := func(n uint64) uint64 {
		o := off
		off = roundUp(off+n, 4096)
		return o
	}
	l.owners = next(uint64(p.Owners) * ownerSize)
	l.queues = next(uint64(p.Queues) * l.queueSize)
	l.cells = next(uint64(p.Owners) * uint64(p.Queues) * cellSize)
	l.entries = next(uint64(p.Entries) * entrySize)
	l.elemWords = next(uint64(p.Elements) * 8)
	l.elemNext = next(uint64(p.Elements) * 4)
	l.segs = next(uint64(p.Segments) * segSize)
	l.index = next(uint64(p.IndexSlots) * 8)
	l.stats = next(uint64(p.StatusSlots) * l.statusRec)
	l.elemData = next(uint64(p.Elements) * uint64(p.ElementSize))
	l.total = off
	return l
}

// Size is the number of bytes (shm header included) a structure with these
// parameters needs.
func (p Params) Size() uint64 { return computeLayout(p.withDefaults()).total + shm.HeaderSize }

func encodeParams(p Params) []byte {
	b := make([]byte, paramsLen)
	copy(b, layoutMagic)
	for i, v := range []int{p.Owners, p.Queues, p.Entries, p.Elements, p.ElementSize, p.Segments, p.IndexSlots, p.StatusSlots, p.StatusSize} {
		binary.LittleEndian.PutUint32(b[ctlParams+4*i:], uint32(v))
	}
	binary.LittleEndian.PutUint64(b[ctlChecksum:], xxhash.Sum64(b[:ctlChecksum]))
	return b
}

func decodeParams(b []byte) (Params, error) {
	var p Params
	if len(b) < paramsLen || string(b[:8]) != layoutMagic {
		return p, fmt.Errorf("%w: control page magic", ErrCorrupt)
	}
	if xxhash.Sum64(b[:ctlChecksum]) != binary.LittleEndian.Uint64(b[ctlChecksum:]) {
		return p, fmt.Errorf("%w: control page checksum", ErrCorrupt)
	}
	v := func(i int) int { return int(binary.LittleEndian.Uint32(b[ctlParams+4*i:])) }
	p = Params{Owners: v(0), Queues: v(1), Entries: v(2), Elements: v(3), ElementSize: v(4), Segments: v(5), IndexSlots: v(6), StatusSlots: v(7), StatusSize: v(8)}
	if p.Entries == 0 || p.Elements == 0 || p.Segments == 0 || p.IndexSlots == 0 || p.StatusSize == 0 || p.Owners == 0 || p.Queues == 0 {
		return p, fmt.Errorf("%w: zero parameter in control page", ErrCorrupt)
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return p, nil
}
