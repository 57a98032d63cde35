package role

import "fmt"

// EventKind names a role transition (design 6.1).
type EventKind uint8

// Events.
const (
	// EvClaim: a member claims a vacant position (Pos, Peer, Incarnation,
	// Claim).
	EvClaim EventKind = iota + 1
	// EvRegister: the process started for a claim registers (Pos, Claim,
	// Tag, Pid, StartTime, Applied for the donor choice, HaveResting).
	EvRegister
	// EvRestored: a joiner has restored its snapshot (Pos, Tag, SnapLSN).
	EvRestored
	// EvHandOver: an active secondary caught up takes the sender role
	// (Pos, Tag, Applied, LSNOut).
	EvHandOver
	// EvDeath: a position's process is gone and its W connection
	// recovered, or a starting entry's member died (Pos, Tag or Claim,
	// Reason, Applied for the promotion).
	EvDeath
	// EvStop, EvStopped, EvStart: STOP SERVICE, the last replica of a
	// stopping unit gone (HaveResting: it left a resting snapshot),
	// START SERVICE.
	EvStop
	EvStopped
	EvStart
)

func (k EventKind) String() string {
	names := [...]string{"?", "claim", "register", "restored", "hand-over", "death", "stop", "stopped", "start"}
	if int(k) < len(names) {
		return names[k]
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is what a process saw that makes a transition. Which fields count
// depends on Kind (see the constants).
type Event struct {
	Kind        EventKind
	Pos         uint8
	Peer        uint8
	Incarnation uint64
	Claim       uint64 // claim id: EvClaim sets it, EvRegister and EvDeath of a starting entry match it
	Tag         uint32 // W connection tag: EvRegister sets it, the others match it
	Pid         uint32
	StartTime   uint64
	Reason      ExitReason
	SnapLSN     uint64
	LSNOut      uint64              // OUT.LSN_out as read
	Applied     [MaxReplicas]uint64 // each position's applied LSN, from its progress record
	HaveResting bool
	Now         int64 // Unix ns
}

// Effect says what a transition did beyond the record, for the caller's
// events and actions.
type Effect uint8

// Effects.
const (
	EffFirstStart     Effect = 1 << iota // the unit's first primary (generation 1)
	EffStateLost                         // no replica survived: generation + 1, the old log is to be moved aside
	EffRestoreResting                    // the new primary restores the resting snapshot
	EffPromoted                          // a new primary
	EffSenderChanged                     // a new sender
	EffDiverged                          // this divergence marked the unit DIVERGED (policy.go)
)

// Next returns the record after ev, computed from r (which it does not
// change). ErrStale: the entry the event is about is no longer what the
// event saw, so another process has made this or a later transition;
// ErrNotAllowed: the event does not apply. The result keeps every
// invariant of Check.
func Next(r *Role, ev Event) (*Role, Effect, error) {
	if ev.Pos >= MaxReplicas && ev.Kind != EvStop && ev.Kind != EvStopped && ev.Kind != EvStart {
		return nil, 0, fmt.Errorf("%w: %v of position %d", ErrNotAllowed, ev.Kind, ev.Pos)
	}
	n := r.Clone()
	var eff Effect
	notAllowed := func(format string, args ...any) (*Role, Effect, error) {
		return nil, 0, fmt.Errorf("%w: unit %s: %v of position %d: %s", ErrNotAllowed, r.Name, ev.Kind, ev.Pos, fmt.Sprintf(format, args...))
	}
	stale := func(format string, args ...any) (*Role, Effect, error) {
		return nil, 0, fmt.Errorf("%w: unit %s: %v of position %d: %s", ErrStale, r.Name, ev.Kind, ev.Pos, fmt.Sprintf(format, args...))
	}
	var p *Position
	if ev.Pos < MaxReplicas {
		p = &n.Pos[ev.Pos]
	}
	switch ev.Kind {
	case EvClaim:
		switch {
		case r.State != Running:
			return notAllowed("unit not running")
		case ev.Pos >= r.Replicas:
			return notAllowed("beyond R=%d", r.Replicas)
		case p.State != Vacant:
			return stale("entry %v", p.State)
		case ev.Claim == 0:
			return notAllowed("claim id 0")
		}
		*p = Position{State: Starting, Donor: None, Peer: ev.Peer, Incarnation: ev.Incarnation, Since: ev.Claim, Restarts: p.Restarts, Reason: p.Reason}

	case EvRegister:
		switch {
		case p.State != Starting || p.Since != ev.Claim:
			return stale("entry %v claim %d, the event's claim %d", p.State, p.Since, ev.Claim)
		case r.State != Running:
			return notAllowed("unit not running")
		case ev.Tag == 0 || ev.Pid == 0:
			return notAllowed("tag %d pid %d", ev.Tag, ev.Pid)
		}
		p.Tag, p.Pid, p.StartTime, p.Since = ev.Tag, ev.Pid, ev.StartTime, uint64(ev.Now)
		if r.Primary == None {
			// Nobody holds the state: this replica starts the unit.
			p.State = Active
			n.Primary, n.Sender, n.Chain = ev.Pos, ev.Pos, nil
			n.Epoch++
			eff |= EffPromoted | EffSenderChanged
			switch {
			case ev.HaveResting:
				eff |= EffRestoreResting
			case r.Gen == 0:
				n.Gen = 1
				eff |= EffFirstStart
			default:
				n.Gen++
				eff |= EffStateLost
			}
		} else {
			p.State = Joining
			p.Donor = chooseDonor(n, ev.Applied)
		}

	case EvRestored:
		switch {
		case p.State != Joining || p.Tag != ev.Tag:
			return stale("entry %v tag %d, the event's tag %d", p.State, p.Tag, ev.Tag)
		case p.Donor == None:
			return notAllowed("its donor is gone: it must fail stop")
		}
		p.State, p.Donor, p.SnapLSN, p.Since = Active, None, ev.SnapLSN, uint64(ev.Now)
		n.Chain = append(n.Chain, ev.Pos)

	case EvHandOver:
		switch {
		case p.State != Active || p.Tag != ev.Tag:
			return stale("entry %v tag %d, the event's tag %d", p.State, p.Tag, ev.Tag)
		case ev.Pos == r.Primary || ev.Pos == r.Sender:
			return notAllowed("already primary or sender")
		case !r.Fanout && r.Chain[len(r.Chain)-1] != ev.Pos:
			return notAllowed("chain: only the last takes over")
		case r.Fanout && r.Sender != r.Primary:
			return notAllowed("fan-out: the sender is a secondary already")
		case ev.Applied[ev.Pos] < ev.LSNOut:
			return notAllowed("applied %d below LSN_out %d: not caught up", ev.Applied[ev.Pos], ev.LSNOut)
		}
		n.Sender = ev.Pos
		n.Epoch++
		eff |= EffSenderChanged

	case EvDeath:
		switch p.State {
		case Vacant:
			return stale("entry vacant")
		case Starting:
			if p.Since != ev.Claim {
				return stale("claim %d, the event's %d", p.Since, ev.Claim)
			}
		default:
			if p.Tag != ev.Tag {
				return stale("tag %d, the event's %d", p.Tag, ev.Tag)
			}
		}
		if ev.Reason == ExitNone || ev.Reason > ExitDiverged {
			return notAllowed("exit reason %d", ev.Reason)
		}
		eff = death(n, ev)
		if ev.Reason == ExitDiverged && countDivergence(n, ev.Now) {
			eff |= EffDiverged
		}

	case EvStop:
		if r.State != Running {
			return notAllowed("unit %d, not running", r.State)
		}
		n.State = Stopping
	case EvStopped:
		if r.State != Stopping {
			return notAllowed("unit %d, not stopping", r.State)
		}
		for k := range n.Pos {
			if n.Pos[k].State != Vacant {
				return notAllowed("position %d still %v", k, n.Pos[k].State)
			}
		}
		n.State = Stopped
		if ev.HaveResting {
			n.State = Resting
		}
	case EvStart:
		if r.State != Stopped && r.State != Resting {
			return notAllowed("unit %d, not stopped", r.State)
		}
		n.State = Running
		n.Divergences, n.DivWindow, n.Diverged = 0, 0, false // an operator acted
	default:
		return notAllowed("unknown event")
	}
	n.Updated = ev.Now
	if err := n.Check(); err != nil {
		// A transition that breaks an invariant is a bug here, not in the
		// caller's bytes: refuse it rather than write it.
		return nil, 0, fmt.Errorf("%w: unit %s: %v of position %d would break an invariant: %v", ErrNotAllowed, r.Name, ev.Kind, ev.Pos, err)
	}
	return n, eff, nil
}

// chooseDonor: a non-sender active secondary with the highest applied
// LSN (ties: the lowest position), else the sender, else the primary.
func chooseDonor(r *Role, applied [MaxReplicas]uint64) uint8 {
	best := uint8(None)
	for _, k := range r.ActiveSecondaries() {
		if k == r.Sender {
			continue
		}
		if best == None || applied[k] > applied[best] {
			best = k
		}
	}
	if best != None {
		return best
	}
	return r.Sender // the primary when it is the sender
}

// death vacates ev.Pos in n and repairs the roles.
func death(n *Role, ev Event) Effect {
	var eff Effect
	k := ev.Pos
	wasPrimary, wasSender := k == n.Primary, k == n.Sender
	// The dead entry's predecessor in logging order (CHAIN sender rule).
	pred := n.Primary
	for i, c := range n.Chain {
		if c == k && i > 0 {
			pred = n.Chain[i-1]
		}
	}
	n.Pos[k] = Position{State: Vacant, Donor: None, Restarts: n.Pos[k].Restarts + 1, Reason: ev.Reason}
	n.Chain = remove(n.Chain, k)
	for j := range n.Pos {
		if n.Pos[j].State == Joining && n.Pos[j].Donor == k {
			n.Pos[j].Donor = None
		}
	}
	if !wasPrimary && !wasSender {
		return 0
	}
	if wasPrimary {
		promoted := uint8(None)
		if len(n.Chain) > 0 {
			if n.Fanout {
				for _, c := range n.ActiveSecondaries() {
					if promoted == None || ev.Applied[c] > ev.Applied[promoted] {
						promoted = c
					}
				}
			} else {
				promoted = n.Chain[0]
			}
		}
		n.Primary = promoted
		n.Chain = remove(n.Chain, promoted)
		eff |= EffPromoted
		if promoted == None {
			n.Sender = None
			n.Chain = nil
			n.Epoch++
			return eff | EffSenderChanged
		}
		if n.Sender == promoted {
			wasSender = true
		}
		if wasSender {
			pred = None // no predecessor left to name: take the rule below
		}
	}
	if wasSender {
		switch {
		case !n.Fanout && pred != None && pred != k && n.Pos[pred].State == Active && pred != n.Primary:
			n.Sender = pred
		case !n.Fanout && len(n.Chain) > 0 && pred == None:
			// The sender was promoted (or was the primary): the chain's
			// first holds everything above LSN_out the longest.
			n.Sender = n.Chain[0]
		case n.Fanout && len(n.Chain) > 0:
			n.Sender = n.ActiveSecondaries()[0]
		default:
			n.Sender = n.Primary
		}
		eff |= EffSenderChanged
	}
	n.Epoch++
	return eff
}

func remove(s []uint8, k uint8) []uint8 {
	var out []uint8
	for _, c := range s {
		if c != k {
			out = append(out, c)
		}
	}
	return out
}
