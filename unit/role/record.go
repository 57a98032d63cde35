package role

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

var le = binary.LittleEndian

// UnitState is the state of the whole unit.
type UnitState uint8

// Unit states.
const (
	Running  UnitState = 1
	Stopping UnitState = 2
	Stopped  UnitState = 3
	Resting  UnitState = 4 // stopped with a resting snapshot
)

// Logging is the logging mode (LOGGING attribute).
type Logging uint8

// Logging modes.
const (
	Late        Logging = 1
	Early       Logging = 2
	Independent Logging = 3
)

// PosState is the state of a position entry.
type PosState uint8

// Position states.
const (
	Vacant   PosState = 0
	Starting PosState = 1 // claimed by a member, process being started
	Joining  PosState = 2 // registered, receiving a snapshot
	Active   PosState = 3 // following the log (or primary)
	Exiting  PosState = 4 // leaving on its own (STOP SERVICE, fail-stop)
)

func (s PosState) String() string {
	switch s {
	case Vacant:
		return "VACANT"
	case Starting:
		return "STARTING"
	case Joining:
		return "JOINING"
	case Active:
		return "ACTIVE"
	case Exiting:
		return "EXITING"
	}
	return fmt.Sprintf("PosState(%d)", uint8(s))
}

// ExitReason is why a position's last replica left.
type ExitReason uint8

// Exit reasons.
const (
	ExitNone       ExitReason = 0
	ExitDied       ExitReason = 1 // its process died (noticed by the recoverer or the sweep)
	ExitMemberDied ExitReason = 2 // starting, its member died before it registered
	ExitFailStop   ExitReason = 3 // it left on its own (fail-stop)
	ExitDiverged   ExitReason = 4 // it failed stop because it diverged from the primary (its progress record's flag)
)

// The divergence policy (design 5.6): DivergeLimit divergences of a
// unit's replicas within DivergeWindow minutes mark it DIVERGED: its
// members start no secondary for it (it runs unreplicated) until START
// SERVICE clears the mark.
const (
	DivergeLimit  = 3
	DivergeWindow = 10 // minutes
	divergedBit   = 0x80
)

// Position is one entry of the role record.
type Position struct {
	State       PosState
	Donor       uint8 // joining: donor position, None: none
	Peer        uint8 // member peer slot
	Reason      ExitReason
	Tag         uint32 // W connection tag
	Incarnation uint64 // member incarnation
	Pid         uint32
	Restarts    uint32
	StartTime   uint64
	Since       uint64 // starting: claim id; else Unix ns
	SnapLSN     uint64
}

// Role is the role record of a unit.
type Role struct {
	State    UnitState
	Fanout   bool
	Logging  Logging
	Replicas uint8
	Epoch    uint64
	Gen      uint64
	Primary  uint8   // None: none
	Sender   uint8   // None: none
	Chain    []uint8 // active secondaries in logging order (fan-out: join order)
	// Divergences counts the divergences of the window that began at the
	// minute DivWindow (Unix minutes mod 256); Diverged: DivergeLimit of
	// them came within DivergeWindow minutes (the unit runs unreplicated).
	Divergences uint8
	DivWindow   uint8
	Diverged    bool
	Name        string
	Updated     int64
	Pos         [MaxReplicas]Position
}

const roleMagic = "RURL"

// New returns the record DEFINE SERVICE writes: stopped (CONTROL(MANUAL))
// or running, no replica, generation 0.
func New(name string, replicas int, fanout bool, logging Logging, running bool) (*Role, error) {
	r := &Role{State: Stopped, Fanout: fanout, Logging: logging, Replicas: uint8(replicas), Primary: None, Sender: None, Name: name}
	if running {
		r.State = Running
	}
	if replicas < 1 || replicas > MaxReplicas {
		return nil, fmt.Errorf("%w: %d replicas, want 1..%d", ErrInvalid, replicas, MaxReplicas)
	}
	for k := range r.Pos {
		r.Pos[k].Donor = None
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return r, nil
}

// Clone returns a deep copy.
func (r *Role) Clone() *Role {
	c := *r
	c.Chain = append([]uint8(nil), r.Chain...)
	if len(c.Chain) == 0 {
		c.Chain = nil
	}
	return &c
}

// Encode returns the record's RecordSize bytes. It checks the record's
// invariants first: no record that breaks them is ever written.
func (r *Role) Encode() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	b := make([]byte, RecordSize)
	copy(b[rlMagic:], roleMagic)
	b[rlVersion] = Version
	b[rlState] = byte(r.State)
	cfg := byte(r.Logging) << 1
	if r.Fanout {
		cfg |= 1
	}
	b[rlConfig] = cfg
	b[rlReplicas] = r.Replicas
	le.PutUint64(b[rlEpoch:], r.Epoch)
	le.PutUint64(b[rlGen:], r.Gen)
	b[rlPrimary] = r.Primary
	b[rlSender] = r.Sender
	for i := 0; i < chainLen; i++ {
		b[rlChain+i] = None
	}
	copy(b[rlChain:], r.Chain)
	b[rlDiverge] = r.Divergences
	if r.Diverged {
		b[rlDiverge] |= divergedBit
	}
	b[rlDivWindow] = r.DivWindow
	copy(b[rlName:rlName+nameLen], r.Name)
	le.PutUint64(b[rlUpdated:], uint64(r.Updated))
	for k := range r.Pos {
		p := &r.Pos[k]
		e := b[rlPositions+k*posSize : rlPositions+(k+1)*posSize]
		e[peState] = byte(p.State)
		e[peDonor] = p.Donor
		e[pePeer] = p.Peer
		e[peReason] = byte(p.Reason)
		le.PutUint32(e[peTag:], p.Tag)
		le.PutUint64(e[peIncarnation:], p.Incarnation)
		le.PutUint32(e[pePid:], p.Pid)
		le.PutUint32(e[peRestarts:], p.Restarts)
		le.PutUint64(e[peStartTime:], p.StartTime)
		le.PutUint64(e[peSince:], p.Since)
		le.PutUint64(e[peSnapLSN:], p.SnapLSN)
	}
	return b, nil
}

func zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Decode parses a role record read from a status slot. It never panics,
// whatever the bytes, and accepts only records that keep the invariants.
func Decode(b []byte) (*Role, error) {
	if len(b) != RecordSize {
		return nil, fmt.Errorf("%w: role record of %d bytes, want %d", ErrTruncated, len(b), RecordSize)
	}
	if string(b[rlMagic:rlMagic+4]) != roleMagic {
		return nil, fmt.Errorf("%w: role record magic %q", ErrBadMagic, b[rlMagic:rlMagic+4])
	}
	if b[rlVersion] != Version {
		return nil, fmt.Errorf("%w: role record version %d, this binary reads %d", ErrVersion, b[rlVersion], Version)
	}
	if b[rlDiverge]&^(divergedBit|3) != 0 {
		return nil, fmt.Errorf("%w: role record: divergence byte %#x", ErrCorrupt, b[rlDiverge])
	}
	cfg := b[rlConfig]
	if cfg&^7 != 0 {
		return nil, fmt.Errorf("%w: role record: config %#x", ErrCorrupt, cfg)
	}
	r := &Role{
		State:    UnitState(b[rlState]),
		Fanout:   cfg&1 != 0,
		Logging:  Logging(cfg >> 1),
		Replicas: b[rlReplicas],
		Epoch:    le.Uint64(b[rlEpoch:]),
		Gen:      le.Uint64(b[rlGen:]),
		Primary:  b[rlPrimary],
		Sender:   b[rlSender],
		Updated:  int64(le.Uint64(b[rlUpdated:])),

		Divergences: b[rlDiverge] &^ divergedBit,
		Diverged:    b[rlDiverge]&divergedBit != 0,
		DivWindow:   b[rlDivWindow],
	}
	chain := b[rlChain : rlChain+chainLen]
	n := bytes.IndexByte(chain, None)
	if n < 0 {
		n = chainLen
	}
	for _, c := range chain[n:] {
		if c != None {
			return nil, fmt.Errorf("%w: role record: chain % x not None-terminated", ErrCorrupt, chain)
		}
	}
	if n > 0 {
		r.Chain = append([]uint8(nil), chain[:n]...)
	}
	name := b[rlName : rlName+nameLen]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		if !zero(name[i:]) {
			return nil, fmt.Errorf("%w: role record: name not NUL padded", ErrCorrupt)
		}
		name = name[:i]
	}
	r.Name = string(name)
	for k := range r.Pos {
		e := b[rlPositions+k*posSize : rlPositions+(k+1)*posSize]
		r.Pos[k] = Position{
			State:       PosState(e[peState]),
			Donor:       e[peDonor],
			Peer:        e[pePeer],
			Reason:      ExitReason(e[peReason]),
			Tag:         le.Uint32(e[peTag:]),
			Incarnation: le.Uint64(e[peIncarnation:]),
			Pid:         le.Uint32(e[pePid:]),
			Restarts:    le.Uint32(e[peRestarts:]),
			StartTime:   le.Uint64(e[peStartTime:]),
			Since:       le.Uint64(e[peSince:]),
			SnapLSN:     le.Uint64(e[peSnapLSN:]),
		}
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	return r, nil
}

// validName: 1..24 characters of queue-name characters (defs.ValidName's
// set: A-Z a-z 0-9 . / _ % -).
func validName(s string) bool {
	if len(s) == 0 || len(s) > nameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '.', c == '_', c == '%', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// Check returns an error (wrapping ErrCorrupt) when the record breaks an
// invariant:
//   - the unit's fields are in range, its name valid;
//   - R positions in use, those beyond R vacant;
//   - a primary exactly when a position is active, and it is active;
//   - the sender is the primary or an active secondary, and there is one
//     exactly when there is a primary (CHAIN: the sender is usually the
//     last of the chain, but secondaries restored since it became sender
//     follow it until one takes over by hand-over);
//   - the chain holds each active secondary once and nothing else;
//   - a joiner's donor is None or an active position;
//   - only a starting entry has a claim but no process; a vacant entry
//     holds nothing but its restart count and exit reason.
func (r *Role) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: role record %q: %s", ErrCorrupt, r.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case !validName(r.Name):
		return bad("name")
	case r.State < Running || r.State > Resting:
		return bad("state %d", r.State)
	case r.Logging < Late || r.Logging > Independent:
		return bad("logging %d", r.Logging)
	case r.Replicas < 1 || r.Replicas > MaxReplicas:
		return bad("%d replicas", r.Replicas)
	case len(r.Chain) > chainLen:
		return bad("chain of %d", len(r.Chain))
	case r.Divergences > DivergeLimit:
		return bad("%d divergences", r.Divergences)
	}
	active := 0
	for k := range r.Pos {
		p := &r.Pos[k]
		if p.State > Exiting {
			return bad("position %d state %d", k, p.State)
		}
		if p.Reason > ExitDiverged {
			return bad("position %d exit reason %d", k, p.Reason)
		}
		if k >= int(r.Replicas) && p.State != Vacant {
			return bad("position %d is %v beyond R=%d", k, p.State, r.Replicas)
		}
		switch p.State {
		case Vacant:
			if p.Tag != 0 || p.Pid != 0 || p.Incarnation != 0 || p.StartTime != 0 || p.Since != 0 || p.SnapLSN != 0 || p.Donor != None || p.Peer != 0 {
				return bad("vacant position %d holds a replica's fields", k)
			}
		case Starting:
			if p.Since == 0 || p.Tag != 0 || p.Pid != 0 || p.Donor != None {
				return bad("starting position %d: claim %d tag %d pid %d", k, p.Since, p.Tag, p.Pid)
			}
		default:
			if p.Tag == 0 || p.Pid == 0 {
				return bad("%v position %d without tag or pid", p.State, k)
			}
		}
		if p.State != Joining && p.Donor != None {
			return bad("%v position %d has a donor", p.State, k)
		}
		if p.State == Active {
			active++
		}
	}
	isActive := func(k uint8) bool { return k < MaxReplicas && r.Pos[k].State == Active }
	if active == 0 {
		if r.Primary != None || r.Sender != None || len(r.Chain) != 0 {
			return bad("no active position but primary %d, sender %d, chain %v", r.Primary, r.Sender, r.Chain)
		}
	} else {
		if !isActive(r.Primary) {
			return bad("primary %d not active", r.Primary)
		}
		if !isActive(r.Sender) {
			return bad("sender %d not active", r.Sender)
		}
	}
	seen := [MaxReplicas]bool{}
	for _, c := range r.Chain {
		if !isActive(c) || c == r.Primary || seen[c] {
			return bad("chain %v: %d not an active secondary once", r.Chain, c)
		}
		seen[c] = true
	}
	if active > 0 && len(r.Chain) != active-1 {
		return bad("chain %v, %d active secondaries", r.Chain, active-1)
	}
	for k := range r.Pos {
		p := &r.Pos[k]
		if p.State == Joining && p.Donor != None && !isActive(p.Donor) {
			return bad("joiner %d's donor %d not active", k, p.Donor)
		}
	}
	return nil
}

// ActiveSecondaries returns the active positions other than the primary,
// in position order.
func (r *Role) ActiveSecondaries() []uint8 {
	var s []uint8
	for k := range r.Pos {
		if r.Pos[k].State == Active && uint8(k) != r.Primary {
			s = append(s, uint8(k))
		}
	}
	return s
}
