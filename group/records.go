package group

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
)

// PeerState is a member's state in the peer table.
type PeerState uint8

// Member states.
const (
	PeerEmpty      PeerState = iota // never used
	PeerStarting                    // claimed by a starting process
	PeerActive                      // serving
	PeerStopping                    // ending in order
	PeerFailed                      // died (or hung and was killed); not yet recovered
	PeerRecovering                  // a survivor is recovering its work
	PeerRecovered                   // died and its work was recovered
	PeerStopped                     // stopped in order
)

var peerStateNames = [...]string{"empty", "starting", "active", "stopping", "failed", "recovering", "recovered", "stopped"}

func (s PeerState) String() string {
	if int(s) < len(peerStateNames) {
		return peerStateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// Running reports whether a member in this state has (or should have) a
// live process.
func (s PeerState) Running() bool { return s == PeerStarting || s == PeerActive || s == PeerStopping }

// Peer is one member's record.
type Peer struct {
	Slot        int
	Name        string
	State       PeerState
	Process     procid.ID
	Incarnation uint64
	Heartbeat   int64 // Unix ns
	Started     int64 // Unix ns
	Recoverer   procid.ID
	Port        int
	GenericPort int
	// PidNS is the pid namespace of the member's process (procid.SelfNS;
	// 0 in records of older members): its pid, and the recoverer's, mean
	// something only in that namespace.
	PidNS uint64
	// Version names the binary the member runs (buildinfo.Info.Short, at
	// most MaxVersionLen bytes; longer is cut): "" in records of members
	// older than the field (DISPLAY GROUP VERSION).
	Version string
}

// MaxVersionLen is the room for Peer.Version in a peer record.
const MaxVersionLen = 64

// CheckPidNS fails with ErrPidNamespace when the member runs in another
// pid namespace than the calling process: the caller cannot tell whether
// it lives (its pid names another process here, or none), so it must
// neither take it for dead nor work beside it.
func CheckPidNS(p Peer) error {
	if self := procid.SelfNS(); p.PidNS != 0 && self != 0 && p.PidNS != self {
		return fmt.Errorf("%w: member %s (pid %d) runs in pid namespace %d, this process in %d: every member and application of a group must share one pid namespace (run them in one container, or with the host's: --pid=host)",
			ErrPidNamespace, p.Name, p.Process.Pid, p.PidNS, self)
	}
	return nil
}

// ProcessAlive reports whether the member's process runs.
func (p Peer) ProcessAlive() bool { return p.Process.Pid > 0 && procid.Alive(p.Process) }

// Peer record (a status slot of the admin structure; recordSize bytes,
// little-endian; changed only by whole-record compare-and-swap):
//
//	offset  size  constant        field
//	     0    48  prName          name, NUL padded
//	    48     1  prState         state (PeerState)
//	    49     7  -               zero
//	    56     8  prPid           pid
//	    64     8  prStart         process start time (procid)
//	    72     8  prIncarnation   incarnation (counts starts of this member name)
//	    80     8  prHeartbeat     heartbeat, Unix ns (the member stores it every HeartbeatInterval)
//	    88     8  prStarted       started, Unix ns
//	    96     8  prRecPid        recoverer pid (state recovering)
//	   104     8  prRecStart      recoverer start time
//	   112     4  prPort          local port
//	   116     4  prGenericPort   generic port
//	   120     8  prPidNS         pid namespace of the member's process (inode of /proc/self/ns/pid; 0 from older members)
//	   128    64  prVersion       the member's binary (buildinfo Short), NUL padded (all zero from older members)
//	   192    64  -               zero
//
// Fields are added in the zero tail without a layout version: an older
// decoder ignores them, an older encoder writes zeros, which read as "not
// known" (PidNS 0, Version ""). So a record rewritten by an older member
// (a recoverer changing a dead member's state) loses them: DISPLAY GROUP
// then shows no version for that member, never a wrong one.
const (
	prName        = 0
	prState       = 48
	prPid         = 56
	prStart       = 64
	prIncarnation = 72
	prHeartbeat   = 80
	prStarted     = 88
	prRecPid      = 96
	prRecStart    = 104
	prPort        = 112
	prGenericPort = 116
	prPidNS       = 120
	prVersion     = 128
	prUsed        = prPidNS + 8 // bytes a decoder needs (records of older members end there)
	maxPeerName   = prState - prName
)

// Encode renders the record (recordSize bytes).
func (p Peer) Encode() []byte {
	b := make([]byte, recordSize)
	copy(b[prName:prName+maxPeerName], p.Name)
	b[prState] = byte(p.State)
	le := binary.LittleEndian
	le.PutUint64(b[prPid:], uint64(p.Process.Pid))
	le.PutUint64(b[prStart:], p.Process.Start)
	le.PutUint64(b[prIncarnation:], p.Incarnation)
	le.PutUint64(b[prHeartbeat:], uint64(p.Heartbeat))
	le.PutUint64(b[prStarted:], uint64(p.Started))
	le.PutUint64(b[prRecPid:], uint64(p.Recoverer.Pid))
	le.PutUint64(b[prRecStart:], p.Recoverer.Start)
	le.PutUint32(b[prPort:], uint32(p.Port))
	le.PutUint32(b[prGenericPort:], uint32(p.GenericPort))
	le.PutUint64(b[prPidNS:], p.PidNS)
	copy(b[prVersion:prVersion+MaxVersionLen], p.Version)
	return b
}

// DecodePeer parses a peer record. It never panics; a record that cannot be
// one is ErrBadRecord.
func DecodePeer(b []byte) (Peer, error) {
	var p Peer
	if len(b) < prUsed {
		return p, fmt.Errorf("%w: peer record of %d bytes", ErrBadRecord, len(b))
	}
	name := b[prName : prName+maxPeerName]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	p.Name = string(name)
	p.State = PeerState(b[prState])
	if int(p.State) >= len(peerStateNames) {
		return p, fmt.Errorf("%w: peer state %d", ErrBadRecord, b[prState])
	}
	le := binary.LittleEndian
	pid := le.Uint64(b[prPid:])
	rpid := le.Uint64(b[prRecPid:])
	if pid > 1<<31 || rpid > 1<<31 {
		return p, fmt.Errorf("%w: pid out of range", ErrBadRecord)
	}
	p.Process = procid.ID{Pid: int(pid), Start: le.Uint64(b[prStart:])}
	p.Incarnation = le.Uint64(b[prIncarnation:])
	p.Heartbeat = int64(le.Uint64(b[prHeartbeat:]))
	p.Started = int64(le.Uint64(b[prStarted:]))
	p.Recoverer = procid.ID{Pid: int(rpid), Start: le.Uint64(b[prRecStart:])}
	p.Port = int(le.Uint32(b[prPort:]))
	p.GenericPort = int(le.Uint32(b[prGenericPort:]))
	p.PidNS = le.Uint64(b[prPidNS:])
	if len(b) >= prVersion+MaxVersionLen {
		v := b[prVersion : prVersion+MaxVersionLen]
		if i := bytes.IndexByte(v, 0); i >= 0 {
			v = v[:i]
		}
		p.Version = strings.ToValidUTF8(string(v), "?")
	}
	if p.State != PeerEmpty && (p.Name == "" || len(p.Name) > maxPeerName) {
		return p, fmt.Errorf("%w: peer in state %v without a name", ErrBadRecord, p.State)
	}
	return p, nil
}

// Peer reads peer slot slot.
func (g *Group) Peer(slot int) (Peer, error) {
	if slot < 0 || slot >= PeerSlots {
		return Peer{}, fmt.Errorf("%w: peer slot %d", ErrConfig, slot)
	}
	b := make([]byte, recordSize)
	if _, err := g.admin.ReadStatus(slot, b); err != nil {
		return Peer{}, err
	}
	p, err := DecodePeer(b)
	p.Slot = slot
	return p, err
}

// Peers returns every used peer slot.
func (g *Group) Peers() ([]Peer, error) {
	var out []Peer
	for i := 0; i < PeerSlots; i++ {
		p, err := g.Peer(i)
		if err != nil {
			return out, err
		}
		if p.State != PeerEmpty {
			out = append(out, p)
		}
	}
	return out, nil
}

// FindPeer returns the slot of the member named name, or -1.
func (g *Group) FindPeer(name string) (Peer, bool, error) {
	ps, err := g.Peers()
	for _, p := range ps {
		if p.Name == name {
			return p, true, err
		}
	}
	return Peer{}, false, err
}

// UpdatePeer applies f to peer slot slot by compare-and-swap until it
// sticks; f returns false to leave the record unchanged (and UpdatePeer
// then returns false).
func (g *Group) UpdatePeer(o *lockfree.Owner, slot int, f func(p *Peer) bool) (bool, error) {
	changed := false
	err := o.UpdateStatus(slot, func(cur []byte) []byte {
		p, err := DecodePeer(cur)
		if err != nil {
			p = Peer{} // a malformed record is rewritten from scratch
		}
		p.Slot = slot
		if !f(&p) {
			changed = false
			return nil
		}
		changed = true
		return p.Encode()
	})
	return changed, err
}

// Lease is a lease record.
type Lease struct {
	Holder  int // peer slot, -1 when free
	Process procid.ID
	Expires int64
	Gen     uint64
}

// Lease record (a status slot; recordSize bytes, little-endian):
//
//	offset  size  constant    field
//	     0     8  lsHolder    holder peer slot + 1 (0: free)
//	     8     8  lsPid       holder pid
//	    16     8  lsStart     holder start time (procid)
//	    24     8  lsExpires   expiry, Unix ns (the holder renews it)
//	    32     8  lsGen       generation (incremented on every change of holder)
//	    40   216  -           zero
const (
	lsHolder  = 0
	lsPid     = 8
	lsStart   = 16
	lsExpires = 24
	lsGen     = 32
)

func (l Lease) encode() []byte {
	b := make([]byte, recordSize)
	le := binary.LittleEndian
	le.PutUint64(b[lsHolder:], uint64(l.Holder+1))
	le.PutUint64(b[lsPid:], uint64(l.Process.Pid))
	le.PutUint64(b[lsStart:], l.Process.Start)
	le.PutUint64(b[lsExpires:], uint64(l.Expires))
	le.PutUint64(b[lsGen:], l.Gen)
	return b
}

func decodeLease(b []byte) Lease {
	le := binary.LittleEndian
	return Lease{Holder: int(le.Uint64(b[lsHolder:])) - 1, Process: procid.ID{Pid: int(le.Uint64(b[lsPid:])), Start: le.Uint64(b[lsStart:])},
		Expires: int64(le.Uint64(b[lsExpires:])), Gen: le.Uint64(b[lsGen:])}
}

// LeaseHolder reads a lease.
func (g *Group) LeaseHolder(lease int) (Lease, error) {
	b := make([]byte, recordSize)
	if _, err := g.admin.ReadStatus(lease, b); err != nil {
		return Lease{}, err
	}
	return decodeLease(b), nil
}

// AcquireLease takes or renews lease for the member in peer slot peer: it
// succeeds when the lease is free, expired, held by a process that is gone,
// or already this member's. The holder renews before ttl runs out.
func (g *Group) AcquireLease(o *lockfree.Owner, lease, peer int, ttl time.Duration) (bool, error) {
	self := procid.Self()
	held := false
	err := o.UpdateStatus(lease, func(cur []byte) []byte {
		l := decodeLease(cur)
		now := time.Now().UnixNano()
		mine := l.Holder == peer && l.Process == self
		free := l.Holder < 0 || l.Expires < now || !procid.Alive(l.Process)
		if !mine && !free {
			held = false
			return nil
		}
		if !mine {
			l.Gen++
		}
		l.Holder, l.Process, l.Expires = peer, self, now+int64(ttl)
		held = true
		return l.encode()
	})
	return held, err
}

// ReleaseLease gives a lease up if this member holds it.
func (g *Group) ReleaseLease(o *lockfree.Owner, lease, peer int) error {
	self := procid.Self()
	return o.UpdateStatus(lease, func(cur []byte) []byte {
		l := decodeLease(cur)
		if l.Holder != peer || l.Process != self {
			return nil
		}
		l.Holder, l.Process, l.Expires = -1, procid.ID{}, 0
		l.Gen++
		return l.encode()
	})
}

// Counter record (a status slot; recordSize bytes, little-endian):
//
//	offset  size  constant  field
//	     0     8  ctrValue  value
//	     8   248  -         zero
const ctrValue = 0

// Counter reads a counter.
func (g *Group) Counter(c int) (uint64, error) {
	b := make([]byte, recordSize)
	if _, err := g.admin.ReadStatus(c, b); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[ctrValue:]), nil
}

// AddCounter adds delta to a counter and returns the new value.
func (g *Group) AddCounter(o *lockfree.Owner, c int, delta uint64) (uint64, error) {
	var v uint64
	err := o.UpdateStatus(c, func(cur []byte) []byte {
		v = binary.LittleEndian.Uint64(cur[ctrValue:]) + delta
		binary.LittleEndian.PutUint64(cur[ctrValue:], v)
		return cur
	})
	return v, err
}

// LRSN is the group's log record sequence, kept in the admin structure's
// CounterLRSN: every member's recovery log draws its LRSNs here, so that
// all the logs merge in one order. It implements rlog.LRSNSource.
type LRSN struct {
	g *Group
	o *lockfree.Owner // the member's own admin owner, which updates the counter
}

// LRSN returns the group's log record sequence, updated through o.
func (g *Group) LRSN(o *lockfree.Owner) *LRSN { return &LRSN{g: g, o: o} }

// Next reserves n consecutive LRSNs and returns the first.
func (l *LRSN) Next(n uint64) (uint64, error) {
	v, err := l.g.AddCounter(l.o, CounterLRSN, n)
	if err != nil {
		return 0, fmt.Errorf("group: LRSN counter: %w", err)
	}
	return v - n + 1, nil
}

// AtLeast raises the counter to v if it is below: a member whose log holds
// LRSNs from before the CF was recreated keeps its new records after them.
func (l *LRSN) AtLeast(v uint64) error {
	err := l.o.UpdateStatus(CounterLRSN, func(cur []byte) []byte {
		if binary.LittleEndian.Uint64(cur[ctrValue:]) >= v {
			return nil
		}
		binary.LittleEndian.PutUint64(cur[ctrValue:], v)
		return cur
	})
	if err != nil {
		return fmt.Errorf("group: LRSN counter: %w", err)
	}
	return nil
}
