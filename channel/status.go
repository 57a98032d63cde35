package channel

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
)

// State is a channel instance's state in the shared status table.
type State uint8

// States, as MQ names them. A channel that has never run, or whose last
// instance ended normally, is inactive.
const (
	Inactive State = iota
	Starting       // start requested (no owner yet) or being started by its owner
	Running
	Retrying // comms failure: any channel initiator restarts it at RetryAt
	Stopping
	Stopped // explicitly stopped: only START CHANNEL runs it again
	numStates
)

var stateNames = [...]string{"INACTIVE", "STARTING", "RUNNING", "RETRYING", "STOPPING", "STOPPED"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(%d)", s)
}

// Status is one entry of the shared channel status table: the state of
// the one instance of a channel, wherever it runs.
type Status struct {
	Name    string
	Type    string // defs.ChlSender or defs.ChlReceiver
	State   State
	StopReq bool // STOP CHANNEL: the owner ends the instance and leaves it stopped
	Force   bool // with StopReq: at once, backing out the batch in flight
	// The lock: the member and the connection of the instance that runs the
	// channel. Owner is -1 and Conn 0 when nobody does. The lock is held
	// while Conn is registered in the admin structure (alive, or dead and
	// not yet recovered), so a dead owner's lock frees itself once its
	// work is recovered. A sender instance has more connections, Lanes,
	// one per further batch in flight (each batch is a unit of work of its
	// own): the lock is held while any of them is registered, so a new
	// instance never starts while a dead one's batch is still held. A claim
	// clears them; an instance that ends with a lane it could not back out
	// leaves that lane here (and Conn 0), holding the lock until the lane's
	// connection is recovered.
	Owner     int
	OwnerInc  uint64
	Conn      lockfree.OwnerTag
	Lanes     [MaxLanes]lockfree.OwnerTag
	Updated   time.Time
	XmitQ     string
	RQMName   string // the partner queue manager
	Address   string // the partner's address
	InDoubt   uint64 // sender: batch sent and not yet confirmed (0: none)
	LastBatch uint64 // last batch committed on both sides
	Retries   uint32 // connection attempts that failed since the last success
	Msgs      uint32 // messages moved by this instance (wraps)
	RetryAt   time.Time
	// ResetReq: RESET CHANNEL on a sender: its next instance tells the
	// partner that the next batch is LastBatch+1, and clears it once the
	// partner agreed.
	ResetReq bool
	// Why the last instance stopped the channel (NoStopReason when it did
	// not, or an operator did), for DISPLAY CHSTATUS.
	Reason StopReason
	// Deleted: DELETE CHANNEL removed the entry. It keeps its slot and
	// name (a probe passes it, see Table), and the table treats it as no
	// entry: Find does not find it, and an Update writes a new entry there.
	Deleted bool
}

// StopReason says why a sender instance stopped its channel rather than
// retry: resynchronisation with the partner cannot succeed without an
// operator's decision.
type StopReason uint8

// Stop reasons (the status entry's byte 51).
const (
	NoStopReason StopReason = iota
	// PartnerLostState: the partner's last committed batch is behind what
	// this side saw it commit (its sync record was lost, with its CF).
	PartnerLostState
	// PartnerAhead: the partner's last committed batch is beyond every
	// batch this side has in doubt (the partner was reset alone, or this
	// side lost its state).
	PartnerAhead
	numStopReasons
)

// Describe is the reason as DISPLAY CHSTATUS and the log show it, with
// the commands that settle it, for channel name.
func (r StopReason) Describe(name string) string {
	switch r {
	case NoStopReason:
		return ""
	case PartnerLostState:
		return fmt.Sprintf("partner lost its state: settle the batches in doubt with RESOLVE CHANNEL(%s) ACTION(COMMIT) (the partner had them) or ACTION(BACKOUT) (send them again), then START CHANNEL(%s)", name, name)
	case PartnerAhead:
		return fmt.Sprintf("sequence mismatch: the partner committed batches this side never sent; settle the batches in doubt with RESOLVE CHANNEL(%s) ACTION(COMMIT|BACKOUT), then RESET CHANNEL(%s) SEQNUM(n) and START CHANNEL(%s)", name, name, name)
	}
	return fmt.Sprintf("stop reason %d", uint8(r))
}

// Status record layout (group.FirstFreeSlot onwards in the admin structure;
// recSize bytes, little-endian; names NUL padded):
//
//	offset  size  constant     field
//	     0    24  recName      channel name (at most 20 characters; all zero: free slot)
//	    24    24  recLanes     the owner's lane connection tags, MaxLanes x u32 (0: none)
//	    48     1  recType      type: 1 SDR, 2 RCVR
//	    49     1  recState     state
//	    50     1  recFlags     flags: bit 0 stop requested, bit 1 force, bit 2 reset requested, bit 3 deleted
//	    51     1  recReason    stop reason (StopReason; 0: none)
//	    52     4  recOwner     owner member slot + 1 (0: none)
//	    56     8  recOwnerInc  owner member incarnation
//	    64     8  recConn      owner connection tag (admin structure)
//	    72     8  recUpdated   last update, Unix ns
//	    80    48  recXmitQ     transmission queue
//	   128    48  recRQM       remote queue manager
//	   176    48  recAddr      remote address
//	   224     8  recInDoubt   in-doubt batch id
//	   232     8  recLast      last committed batch id
//	   240     4  recRetries   retries
//	   244     4  recMsgs      messages
//	   248     8  recRetryAt   next retry, Unix ns
const (
	recName     = 0
	recLanes    = 24
	recType     = 48
	recState    = 49
	recFlags    = 50
	recReason   = 51
	recOwner    = 52
	recOwnerInc = 56
	recConn     = 64
	recUpdated  = 72
	recXmitQ    = 80
	recRQM      = 128
	recAddr     = 176
	recInDoubt  = 224
	recLast     = 232
	recRetries  = 240
	recMsgs     = 244
	recRetryAt  = 248
	recSize     = 256
	nameLen     = 48 // bytes of each name field but the channel's
	chanNameLen = 24 // bytes of recName
)

// Flag bits of the byte at recFlags.
const (
	flagStop    = 1 << 0
	flagForce   = 1 << 1
	flagReset   = 1 << 2
	flagDeleted = 1 << 3
)

// MaxLanes is how many connections beyond the first a status entry names.
const MaxLanes = 6

// lockFor makes c the entry's lock (its owner c's member), with no lanes yet.
func (st *Status) lockFor(c *mq.Conn) {
	m := c.Member()
	st.Owner, st.OwnerInc, st.Conn, st.Lanes = m.Slot, m.Incarnation, c.Tag(), [MaxLanes]lockfree.OwnerTag{}
}

// Unlock leaves the entry with no lock and no owner: for an instance that
// is gone, its connections recovered.
func (st *Status) Unlock() {
	st.Owner, st.Conn, st.Lanes = -1, 0, [MaxLanes]lockfree.OwnerTag{}
}

// ErrTableFull is returned when every status slot holds another channel.
var ErrTableFull = errors.New("channel: status table full")

// ErrUnavailable is returned when the status table cannot be read (only
// ever injected by tests, through the crash point channel.status.unavailable;
// real failures are the admin structure's errors).
var ErrUnavailable = errors.New("channel: status table unavailable")

// cpUnavailable fails reads of a channel's entry (QMGR_CRASHPOINT=
// channel.status.unavailable:n:fail:k), as a broken link to the coupling
// facility would.
var cpUnavailable = crashpoint.New("channel.status.unavailable")

func (st *Status) encode() []byte {
	b := make([]byte, recSize)
	copy(b[recName:recName+chanNameLen], st.Name)
	for i, t := range st.Lanes {
		binary.LittleEndian.PutUint32(b[recLanes+4*i:], uint32(t))
	}
	switch st.Type {
	case defs.ChlSender:
		b[recType] = 1
	case defs.ChlReceiver:
		b[recType] = 2
	}
	b[recState] = byte(st.State)
	if st.StopReq {
		b[recFlags] |= flagStop
	}
	if st.Force {
		b[recFlags] |= flagForce
	}
	if st.ResetReq {
		b[recFlags] |= flagReset
	}
	if st.Deleted {
		b[recFlags] |= flagDeleted
	}
	b[recReason] = byte(st.Reason)
	binary.LittleEndian.PutUint32(b[recOwner:], uint32(st.Owner+1))
	binary.LittleEndian.PutUint64(b[recOwnerInc:], st.OwnerInc)
	binary.LittleEndian.PutUint64(b[recConn:], uint64(st.Conn))
	if !st.Updated.IsZero() {
		binary.LittleEndian.PutUint64(b[recUpdated:], uint64(st.Updated.UnixNano()))
	}
	copy(b[recXmitQ:recXmitQ+nameLen], st.XmitQ)
	copy(b[recRQM:recRQM+nameLen], st.RQMName)
	copy(b[recAddr:recAddr+nameLen], st.Address)
	binary.LittleEndian.PutUint64(b[recInDoubt:], st.InDoubt)
	binary.LittleEndian.PutUint64(b[recLast:], st.LastBatch)
	binary.LittleEndian.PutUint32(b[recRetries:], st.Retries)
	binary.LittleEndian.PutUint32(b[recMsgs:], st.Msgs)
	if !st.RetryAt.IsZero() {
		binary.LittleEndian.PutUint64(b[recRetryAt:], uint64(st.RetryAt.UnixNano()))
	}
	return b
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func unixTime(v uint64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(v))
}

func decodeStatus(b []byte) Status {
	st := Status{Name: cstr(b[recName : recName+chanNameLen])}
	for i := range st.Lanes {
		st.Lanes[i] = lockfree.OwnerTag(binary.LittleEndian.Uint32(b[recLanes+4*i:]))
	}
	switch b[recType] {
	case 1:
		st.Type = defs.ChlSender
	case 2:
		st.Type = defs.ChlReceiver
	}
	st.State = State(b[recState])
	if st.State >= numStates {
		st.State = Inactive
	}
	st.StopReq = b[recFlags]&flagStop != 0
	st.Force = b[recFlags]&flagForce != 0
	st.ResetReq = b[recFlags]&flagReset != 0
	st.Deleted = b[recFlags]&flagDeleted != 0
	st.Reason = StopReason(b[recReason])
	if st.Reason >= numStopReasons {
		st.Reason = NoStopReason
	}
	st.Owner = int(binary.LittleEndian.Uint32(b[recOwner:])) - 1
	st.OwnerInc = binary.LittleEndian.Uint64(b[recOwnerInc:])
	st.Conn = lockfree.OwnerTag(binary.LittleEndian.Uint64(b[recConn:]))
	st.Updated = unixTime(binary.LittleEndian.Uint64(b[recUpdated:]))
	st.XmitQ = cstr(b[recXmitQ : recXmitQ+nameLen])
	st.RQMName = cstr(b[recRQM : recRQM+nameLen])
	st.Address = cstr(b[recAddr : recAddr+nameLen])
	st.InDoubt = binary.LittleEndian.Uint64(b[recInDoubt:])
	st.LastBatch = binary.LittleEndian.Uint64(b[recLast:])
	st.Retries = binary.LittleEndian.Uint32(b[recRetries:])
	st.Msgs = binary.LittleEndian.Uint32(b[recMsgs:])
	st.RetryAt = unixTime(binary.LittleEndian.Uint64(b[recRetryAt:]))
	return st
}

// Table is the shared channel status table: slots group.FirstFreeSlot
// onwards of the admin structure. A channel's entry is found by probing
// from a slot chosen by the hash of its name; slots are never freed (an
// ended instance leaves its entry inactive, and DELETE CHANNEL marks it
// deleted, keeping its name), so a probe never misses an entry behind a
// hole, and two processes inserting the same channel race for the same
// slot and one compare-and-swap wins. A deleted entry is no entry to
// Find, All and Poll; an Update of its channel writes a new entry in its
// slot (the channel defined again).
type Table struct {
	admin *lockfree.Structure
	first int
	n     int

	pollMu   sync.Mutex
	used     []int // slots Poll has seen holding an entry (entries are never removed)
	lastFull time.Time
}

// FullScanInterval is how often Poll reads every slot of the table; in
// between it reads only the slots it has seen in use.
const FullScanInterval = 100 * time.Millisecond

// Poll returns every entry, as All, for a caller that asks every few
// milliseconds (a channel initiator): it reads every slot at most every
// FullScanInterval and otherwise only the slots it has seen in use, which
// stay in use. Entries are new only when a channel first starts or
// receives, so a new one is seen within FullScanInterval; a known one
// (whose lock frees when its instance dies) at once. A full scan of the
// table's slots costs a cache miss each, every poll of every channel
// initiator: a few percent of a core for nothing.
func (t *Table) Poll() ([]Status, error) {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()
	if time.Since(t.lastFull) >= FullScanInterval {
		all, used, err := t.scan()
		if err != nil {
			return all, err
		}
		t.used, t.lastFull = used, time.Now()
		return all, nil
	}
	raw := make([]byte, recSize)
	out := make([]Status, 0, len(t.used))
	for _, slot := range t.used {
		if _, err := t.admin.ReadStatus(slot, raw); err != nil {
			return out, fmt.Errorf("channel: status table: %w", err)
		}
		if st := decodeStatus(raw); !st.Deleted {
			out = append(out, st)
		}
	}
	return out, nil
}

// NewTable is the status table of group g.
func NewTable(g *group.Group) *Table {
	a := g.Admin()
	return &Table{admin: a, first: group.FirstFreeSlot, n: a.StatusSlots() - group.FirstFreeSlot}
}

func (t *Table) home(name string) int { return int(xxhash.Sum64String(name) % uint64(t.n)) }

// Find returns channel name's entry; ok is false when it has none.
func (t *Table) Find(name string) (st Status, ok bool, err error) {
	_, st, _, ok, err = t.find(name)
	return st, ok, err
}

// find returns the slot of name's entry (ok) or of the free slot where it
// would go, with the record's bytes.
func (t *Table) find(name string) (slot int, st Status, raw []byte, ok bool, err error) {
	if cpUnavailable.Fail() {
		return 0, st, nil, false, ErrUnavailable
	}
	if len(name) > defs.MaxChannelName {
		return 0, st, nil, false, fmt.Errorf("channel: status table: channel name %q longer than %d", name, defs.MaxChannelName)
	}
	h := t.home(name)
	raw = make([]byte, recSize)
	for i := 0; i < t.n; i++ {
		slot = t.first + (h+i)%t.n
		if _, err := t.admin.ReadStatus(slot, raw); err != nil {
			return 0, st, nil, false, fmt.Errorf("channel: status table: %w", err)
		}
		n := cstr(raw[:chanNameLen])
		if n == "" {
			return slot, Status{Name: name, Owner: -1}, raw, false, nil
		}
		if n == name {
			if st := decodeStatus(raw); !st.Deleted {
				return slot, st, raw, true, nil
			}
			return slot, Status{Name: name, Owner: -1}, raw, false, nil
		}
	}
	return 0, st, nil, false, fmt.Errorf("%w: no slot for channel %s", ErrTableFull, name)
}

// Update applies f to channel name's entry (a new entry, Owner -1 and
// exists false, when it has none or it was deleted) by compare-and-swap of the whole entry
// until it sticks; f returns false to leave it unchanged. It returns the
// entry as it was left and whether f's change was made.
func (t *Table) Update(o *lockfree.Owner, name string, f func(st *Status, exists bool) bool) (Status, bool, error) {
	for {
		slot, cur, raw, ok, err := t.find(name)
		if err != nil {
			return cur, false, err
		}
		next := cur
		if !f(&next, ok) {
			return cur, false, nil
		}
		next.Name = name
		next.Updated = time.Now()
		err = o.CompareAndSwapStatus(slot, raw, next.encode())
		if err == nil {
			return next, true, nil
		}
		if !errors.Is(err, lockfree.ErrStatusChanged) {
			return cur, false, fmt.Errorf("channel: status table: %w", err)
		}
	}
}

// All returns every entry.
func (t *Table) All() ([]Status, error) {
	all, _, err := t.scan()
	return all, err
}

// scan reads every slot: the entries, and the slots that hold them.
func (t *Table) scan() ([]Status, []int, error) {
	raw := make([]byte, recSize)
	var out []Status
	var used []int
	for i := 0; i < t.n; i++ {
		// Free slots (name all zero) are passed by their first word.
		if zero, err := t.admin.StatusZero(t.first + i); err != nil {
			return out, used, fmt.Errorf("channel: status table: %w", err)
		} else if zero {
			continue
		}
		if _, err := t.admin.ReadStatus(t.first+i, raw); err != nil {
			return out, used, fmt.Errorf("channel: status table: %w", err)
		}
		if raw[0] != 0 && raw[recFlags]&flagDeleted == 0 {
			out = append(out, decodeStatus(raw))
			used = append(used, t.first+i)
		}
	}
	return out, used, nil
}

// Locked reports whether st's lock is held: its connection, or one of
// its lanes, is still registered (alive, or dead and not yet recovered).
func (t *Table) Locked(st Status) bool {
	if st.Conn != 0 && t.registered(st.Conn) {
		return true
	}
	for _, l := range st.Lanes {
		if l != 0 && t.registered(l) {
			return true
		}
	}
	return false
}

func (t *Table) registered(tag lockfree.OwnerTag) bool {
	cur, ok := t.admin.SlotTag(tag.Slot())
	return ok && cur == tag
}
