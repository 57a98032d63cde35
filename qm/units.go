package qm

import (
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// Recovery units (docs/design/recovery-units.md, section 6): the member's
// part, run by one goroutine per member (superviseUnits) under cmdMu (the
// member's owners in application structures are admin work's).
//
// Deaths. A replica's death is noticed as any application's is, through
// the pidfd watcher and the recovery of its connection: recoverConn kicks
// the supervisor once it has resolved the connection's unit of work and
// repaired its admin slot last. The supervisor then finds every position
// whose W tag no longer holds its admin slot (recovered, by this member
// or any other) and makes its death transition by compare-and-swap of the
// unit's role record (role.Next EvDeath). Two members acting on one death
// cannot both win: the second reads the entry vacant, or naming another
// tag, and does nothing. The same pass, run every unitSweepEvery too, is
// the sweep of design 6.2: a recoverer that died between the repair and
// the CAS leaves the entry to the next pass of any member.
//
// Supervision. For each vacant position of a running unit, the member
// role.Place chooses claims it at once, the others after unitClaimDelay
// (the chosen one may be gone); the claim (vacant -> starting, with this
// member's slot and incarnation and a random claim id) is a CAS, and the
// winner starts STARTCMD with STARTARG as its child (Pdeathsig SIGKILL)
// and the environment of design 2 (QMGR_UNIT_CLAIM the claim id). A
// child that ends before it registers, or that could not be started, has
// its starting entry vacated by its member; a starting entry of a member
// that is gone is vacated by any member. Claims of a position back off
// 100 ms doubling to 5 s.

// maxRoleTries bounds the compare-and-swap retries of one transition: the
// record changes only on role events, so a loop this long means something
// rewrites it endlessly.
const maxRoleTries = 1000

// Crash points of supervision (design 11): a member claimed a position,
// started its replica, made a replica's death transition.
var (
	cpUnitClaimed = crashpoint.New("unit.member.claimed")
	cpUnitSpawned = crashpoint.New("unit.member.spawned")
	cpUnitRoleCAS = crashpoint.New("unit.member.rolecas")
)

// unitApplied is each position's applied LSN, from its progress record
// when that names the position's current tag (else 0).
func unitApplied(s *lockfree.Structure, svc defs.Service, r *role.Role) (a [role.MaxReplicas]uint64) {
	for k := uint8(0); k < role.MaxReplicas; k++ {
		if p := unitProgress(s, svc, k); p != nil && p.Tag == r.Pos[k].Tag {
			a[k] = p.Applied
		}
	}
	return a
}

// unitProgress is position k's progress record, nil when it does not read
// or decode.
func unitProgress(s *lockfree.Structure, svc defs.Service, k uint8) *role.Progress {
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(svc.StatusBase+1+int(k), buf); err != nil {
		return nil
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return nil
	}
	return p
}

// testHookUnitBeforeCAS runs between a transition's computation and its
// compare-and-swap (tests: two members acting on one death at once).
var testHookUnitBeforeCAS = func(svc string, ev role.Event) {}

// Supervision timing.
const (
	unitSweepEvery  = time.Second            // a pass without a kick
	unitClaimDelay  = time.Second            // a member Place did not choose claims after this
	unitBackoffMin  = 100 * time.Millisecond // between claims of one position
	unitBackoffMax  = 5 * time.Second
	unitStableFor   = 10 * time.Second // an active replica this old resets its position's backoff
	unitStopTimeout = 5 * time.Second  // SIGTERM to SIGKILL of a replica when the member stops
)

// unitPos names a position of a unit.
type unitPos struct {
	svc string
	pos uint8
}

// unitKid is a replica process this member started.
type unitKid struct {
	at     unitPos
	claim  uint64
	cmd    *exec.Cmd
	exited chan struct{} // closed once Wait returned

	// The heartbeat last seen in the replica's progress record, and when
	// (this member's clock) it was first seen: judged by the supervisor
	// goroutine only (judgeHeartbeats). beatAt starts at the start.
	beat   int64
	beatAt time.Time
	killed bool // hung, and sent SIGKILL
}

// unitSupervisor is the member's state of supervision. kick is made by
// Start; the maps other than kids belong to the superviseUnits goroutine.
type unitSupervisor struct {
	kick chan struct{} // buffered 1: a pass is wanted (a connection recovered, a child ended)

	mu   sync.Mutex          // guards kids
	kids map[uint64]*unitKid // by claim id

	vacantSince map[unitPos]time.Time
	notBefore   map[unitPos]time.Time
	backoff     map[unitPos]time.Duration

	conn        *mq.Conn  // the supervisor's own connection, for the chunk sweep (nil: none yet)
	chunksSwept time.Time // the last sweep of snapshot chunks
}

// kickUnits asks the supervisor for a pass, without waiting.
func (m *Member) kickUnits() {
	select {
	case m.units.kick <- struct{}{}:
	default:
	}
}

// superviseUnits runs the supervisor until the member stops, then stops
// the replicas it started.
func (m *Member) superviseUnits() {
	m.units.vacantSince = map[unitPos]time.Time{}
	m.units.notBefore = map[unitPos]time.Time{}
	m.units.backoff = map[unitPos]time.Duration{}
	t := time.NewTicker(unitSweepEvery)
	defer t.Stop()
	defer func() {
		if m.units.conn != nil {
			m.units.conn.Disconnect()
		}
	}()
	for {
		select {
		case <-m.stop:
			return
		case <-m.units.kick:
		case <-t.C:
		}
		if m.stopping.Load() {
			return
		}
		m.cmdMu.Lock()
		var err error
		if !m.stopping.Load() {
			err = m.unitsPass()
		}
		m.cmdMu.Unlock()
		if err != nil {
			m.log.Error("supervise recovery units", "err", err)
		}
	}
}

// stopUnitKids stops the replicas this member started: SIGTERM, then
// SIGKILL after unitStopTimeout.
func (m *Member) stopUnitKids() {
	m.units.mu.Lock()
	kids := make([]*unitKid, 0, len(m.units.kids))
	for _, k := range m.units.kids {
		kids = append(kids, k)
	}
	m.units.mu.Unlock()
	for _, k := range kids {
		k.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, k := range kids {
		select {
		case <-k.exited:
		case <-time.After(unitStopTimeout):
			k.cmd.Process.Kill()
			<-k.exited
		}
	}
}

// unitsPass makes the deaths and claims every service needs. Called with
// cmdMu held.
func (m *Member) unitsPass() error {
	var svcs []defs.Service
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; svcs, err = tx.Services("*"); return err }); err != nil {
		return fmt.Errorf("list services: %w", err)
	}
	peers, err := m.g.Peers()
	if err != nil {
		return fmt.Errorf("read the peer table: %w", err)
	}
	var members []uint8
	live := map[uint8]uint64{} // peer slot -> incarnation of the running members
	for _, p := range peers {
		if p.State.Running() && p.Slot < 256 {
			members = append(members, uint8(p.Slot))
			live[uint8(p.Slot)] = p.Incarnation
		}
	}
	var errs []error
	for _, svc := range svcs {
		if err := m.superviseUnit(svc, members, live); err != nil {
			errs = append(errs, fmt.Errorf("SERVICE(%s): %w", svc.Name, err))
		}
	}
	if time.Since(m.units.chunksSwept) >= unitSweepEvery {
		m.units.chunksSwept = time.Now()
		for _, svc := range svcs {
			if err := m.sweepUnitChunks(svc); err != nil {
				errs = append(errs, fmt.Errorf("SERVICE(%s): sweep snapshot chunks: %w", svc.Name, err))
				if m.units.conn != nil {
					m.units.conn.Disconnect()
					m.units.conn = nil
				}
				break
			}
		}
	}
	return errors.Join(errs...)
}

// sweepUnitChunks removes from svc's SNAP queue the chunks of transfers
// no joining entry names (design 6.3): a donor and its joiner that both
// died leave their committed chunks; each removes them when it sees the
// other gone, nobody when both are. The chunks are browsed first and the
// role record read after: a donor puts a chunk only after it saw its
// joiner joining, so a chunk seen whose joiner the later record does not
// show joining under its tag belongs to a transfer that is over. The
// resting snapshot's chunks, and messages that are not chunks, stay.
func (m *Member) sweepUnitChunks(svc defs.Service) error {
	if m.units.conn == nil {
		c, err := m.Connect()
		if err != nil {
			return err
		}
		m.units.conn = c
	}
	q, err := m.units.conn.Open(defs.UnitQueue(svc.Name, defs.UnitSnap), mq.OpenOptions{Input: true, Browse: true})
	if err != nil {
		return err
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		return err
	}
	seen := map[[24]byte]logrec.Transfer{}
	for {
		msg, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		if t, err := logrec.ParseTransfer(msg.CorrelID); err == nil && t.Joiner != logrec.RestingJoiner {
			seen[msg.CorrelID] = t
		}
	}
	if len(seen) == 0 {
		return nil
	}
	o, s, err := m.ownerIn(svc.CFStruct)
	if err != nil {
		return err
	}
	if o == nil {
		return fmt.Errorf("structure %s: the member has no owner in it", svc.CFStruct)
	}
	buf := make([]byte, s.StatusSize())
	if _, err := s.ReadStatus(svc.StatusBase, buf); err != nil {
		return fmt.Errorf("read the role record: %w", err)
	}
	r, err := role.Decode(buf)
	if err != nil {
		return fmt.Errorf("decode the role record: %w", err)
	}
	for cid, t := range seen {
		if t.Joiner < role.MaxReplicas && r.Pos[t.Joiner].State == role.Joining && r.Pos[t.Joiner].Tag == t.JoinerTag {
			continue
		}
		n := 0
		for {
			_, err := q.Get(mq.GetOptions{CorrelID: &cid})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return err
			}
			n++
		}
		m.log.Info("unit snapshot chunks swept", "unit", svc.Name, "joiner", t.Joiner, "joiner_tag", t.JoinerTag, "chunks", n)
	}
	return nil
}

// unitHasResting reports whether svc's SNAP queue holds generation gen's
// complete resting snapshot (its last chunk committed: unit/rest.go).
func (m *Member) unitHasResting(svc defs.Service, gen uint64) (bool, error) {
	if m.units.conn == nil {
		c, err := m.Connect()
		if err != nil {
			return false, err
		}
		m.units.conn = c
	}
	q, err := m.units.conn.Open(defs.UnitQueue(svc.Name, defs.UnitSnap), mq.OpenOptions{Browse: true})
	if err != nil {
		return false, err
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		return false, err
	}
	for {
		msg, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		t, err := logrec.ParseTransfer(msg.CorrelID)
		if err != nil || t.Joiner != logrec.RestingJoiner || uint64(t.Gen) != gen {
			continue
		}
		if c, err := logrec.DecodeChunk(msg.Body); err == nil && c.Last {
			return true, nil
		}
	}
}

// superviseUnit makes one transition at a time on svc's role record until
// none is wanted.
func (m *Member) superviseUnit(svc defs.Service, members []uint8, live map[uint8]uint64) error {
	o, s, err := m.ownerIn(svc.CFStruct)
	if err != nil {
		return fmt.Errorf("structure %s: %w", svc.CFStruct, err)
	}
	if o == nil {
		return fmt.Errorf("structure %s: the member has no owner in it", svc.CFStruct)
	}
	before := make([]byte, s.StatusSize())
	for try := 0; try < maxRoleTries; try++ {
		if _, err := s.ReadStatus(svc.StatusBase, before); err != nil {
			return fmt.Errorf("read the role record: %w", err)
		}
		r, err := role.Decode(before)
		if err != nil {
			return fmt.Errorf("decode the role record: %w", err)
		}
		if try == 0 {
			m.judgeHeartbeats(svc, s, r)
		}
		ev, ok := m.unitEvent(svc, r, members, live)
		if !ok {
			return nil
		}
		var dp *role.Progress // the dead replica's progress record, when it is still its own
		if ev.Kind == role.EvDeath {
			ev.Applied = unitApplied(s, svc, r)
			if p := unitProgress(s, svc, ev.Pos); ev.Tag != 0 && p != nil && p.Tag == ev.Tag {
				dp = p
				if p.Flags&role.FlagDiverged != 0 {
					ev.Reason = role.ExitDiverged // the replica said so before it failed stop
				}
			}
		}
		ev.Now = time.Now().UnixNano()
		n, eff, err := role.Next(r, ev)
		if err != nil {
			return fmt.Errorf("%v of position %d: %w", ev.Kind, ev.Pos, err)
		}
		after, err := n.Encode()
		if err != nil {
			return fmt.Errorf("%v of position %d: %w", ev.Kind, ev.Pos, err)
		}
		testHookUnitBeforeCAS(svc.Name, ev)
		err = o.CompareAndSwapStatus(svc.StatusBase, before, after)
		if errors.Is(err, lockfree.ErrStatusChanged) {
			continue // read it again: another member or a replica changed it
		}
		if err != nil {
			return fmt.Errorf("%v of position %d: %w", ev.Kind, ev.Pos, err)
		}
		at := unitPos{svc.Name, ev.Pos}
		switch ev.Kind {
		case role.EvStopped:
			m.log.Info("unit stopped", "event", "unit_stopped", "unit", svc.Name, "resting", ev.HaveResting, "generation", n.Gen)
			return nil
		case role.EvDeath:
			cpUnitRoleCAS.Hit()
			m.log.Info("unit replica exited", "event", "unit_replica_exited", "unit", svc.Name, "pos", ev.Pos, "pid", r.Pos[ev.Pos].Pid,
				"state", r.Pos[ev.Pos].State.String(), "epoch", n.Epoch, "primary", int(n.Primary), "sender", int(n.Sender))
			if eff&role.EffPromoted != 0 {
				m.log.Info("unit primary promoted", "event", "unit_promoted", "unit", svc.Name, "from", ev.Pos, "to", int(n.Primary), "epoch", n.Epoch)
			}
			if ev.Reason == role.ExitDiverged {
				m.unitDiverged(svc, ev.Pos, dp, n, eff)
			}
		case role.EvClaim:
			cpUnitClaimed.Hit()
			delete(m.units.vacantSince, at)
			b := min(max(2*m.units.backoff[at], unitBackoffMin), unitBackoffMax)
			m.units.backoff[at], m.units.notBefore[at] = b, time.Now().Add(b)
			if err := m.startReplica(svc, ev.Pos, ev.Claim); err != nil {
				// Its starting entry is vacated by the next pass (no child
				// of that claim).
				m.log.Error("start a unit replica", "unit", svc.Name, "pos", ev.Pos, "err", err)
				m.kickUnits()
			}
		}
	}
	return fmt.Errorf("the role record keeps changing")
}

// unitEvent is the transition r needs first, if any: a death (a
// registered replica whose connection is recovered, a starting entry
// whose member is gone or whose child of this member is gone), else a
// claim of a vacant position by this member.
func (m *Member) unitEvent(svc defs.Service, r *role.Role, members []uint8, live map[uint8]uint64) (role.Event, bool) {
	admin := m.g.Admin()
	now := time.Now()
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := r.Pos[k]
		at := unitPos{svc.Name, k}
		switch e.State {
		case role.Vacant:
			continue
		case role.Starting:
			if m.cfg.UnitsByHand {
				continue
			}
			inc, running := live[e.Peer]
			mine := int(e.Peer) == m.slot && e.Incarnation == m.inc
			if mine {
				m.units.mu.Lock()
				_, alive := m.units.kids[e.Since]
				m.units.mu.Unlock()
				if alive {
					continue
				}
			} else if running && inc == e.Incarnation {
				continue // the other member's child may still register
			}
			return role.Event{Kind: role.EvDeath, Pos: k, Claim: e.Since, Reason: role.ExitDied}, true
		default:
			if e.Tag == 0 {
				continue
			}
			if info, ok := admin.Owner(lockfree.OwnerTag(e.Tag).Slot()); ok && uint32(info.Tag) == e.Tag {
				if e.State == role.Active && now.Sub(time.Unix(0, int64(e.Since))) > unitStableFor {
					delete(m.units.backoff, at)
				}
				continue // its connection lives, or is being recovered
			}
			return role.Event{Kind: role.EvDeath, Pos: k, Tag: e.Tag, Reason: role.ExitDied}, true
		}
	}
	if r.State == role.Stopping {
		// STOP SERVICE: the replicas exit once the resting snapshot is
		// written (unit/rest.go) and are not restarted; the last one gone,
		// the unit is stopped, resting if its snapshot is complete.
		for k := range r.Pos {
			if r.Pos[k].State != role.Vacant {
				return role.Event{}, false
			}
		}
		have, err := m.unitHasResting(svc, r.Gen)
		if err != nil {
			m.log.Error("look for a unit's resting snapshot", "unit", svc.Name, "err", err)
			return role.Event{}, false
		}
		return role.Event{Kind: role.EvStopped, HaveResting: have}, true
	}
	if r.State != role.Running || m.stopping.Load() || m.cfg.UnitsByHand || unitUnreplicated(r) {
		return role.Event{}, false
	}
	for k := uint8(0); k < r.Replicas; k++ {
		at := unitPos{svc.Name, k}
		if r.Pos[k].State != role.Vacant {
			delete(m.units.vacantSince, at)
			continue
		}
		since, ok := m.units.vacantSince[at]
		if !ok {
			since = now
			m.units.vacantSince[at] = now
		}
		if now.Before(m.units.notBefore[at]) {
			continue
		}
		peer, ok := role.Place(r, k, members)
		if !ok || int(peer) != m.slot && now.Sub(since) < unitClaimDelay {
			continue
		}
		var b [8]byte
		var claim uint64
		for claim == 0 {
			crand.Read(b[:])
			claim = binary.LittleEndian.Uint64(b[:])
		}
		return role.Event{Kind: role.EvClaim, Pos: k, Peer: uint8(m.slot), Incarnation: m.inc, Claim: claim}, true
	}
	return role.Event{}, false
}

// judgeHeartbeats kills (SIGKILL) each replica of svc this member started
// whose heartbeat has not moved for UnitHeartbeatTimeout (design 6.2): a
// replica stopped (SIGSTOP) or stuck holds its role, its inputs and, as a
// donor or a joiner, a transfer, and nobody else can tell it from a slow
// one; its death then goes as any other (its connection recovered, the
// death transition). A replica counts from its start until its progress
// record names its tag; the heartbeat is compared with the last one seen,
// not with this member's clock.
func (m *Member) judgeHeartbeats(svc defs.Service, s *lockfree.Structure, r *role.Role) {
	now := time.Now()
	var hung []*unitKid
	m.units.mu.Lock()
	for _, k := range m.units.kids {
		if k.at.svc != svc.Name || k.killed || int(k.at.pos) >= role.MaxReplicas {
			continue
		}
		if k.beatAt.IsZero() {
			k.beatAt = now
		}
		e := r.Pos[k.at.pos]
		if e.State != role.Starting && e.State != role.Vacant && e.Pid == uint32(k.cmd.Process.Pid) {
			if p := unitProgress(s, svc, k.at.pos); p != nil && p.Tag == e.Tag && p.Heartbeat != k.beat {
				k.beat, k.beatAt = p.Heartbeat, now
			}
		}
		if now.Sub(k.beatAt) > m.cfg.UnitHeartbeatTimeout {
			k.killed = true
			hung = append(hung, k)
		}
	}
	m.units.mu.Unlock()
	for _, k := range hung {
		m.log.Warn("unit replica hung; killing it", "event", "unit_replica_hung", "unit", svc.Name, "pos", k.at.pos,
			"pid", k.cmd.Process.Pid, "silent", now.Sub(k.beatAt).Round(time.Millisecond), "limit", m.cfg.UnitHeartbeatTimeout)
		k.cmd.Process.Kill() // a child not yet waited for: its pid is still ours
	}
}

// startReplica starts svc's replica for position pos under claim: its
// STARTCMD, STARTARG split on blanks, as a child of the member.
func (m *Member) startReplica(svc defs.Service, pos uint8, claim uint64) error {
	gc := m.g.Config()
	cmd := exec.Command(svc.StartCmd, strings.Fields(svc.StartArg)...)
	cmd.Env = append(os.Environ(), "QMGR_GROUP="+gc.Name, "QMGR_CF_DIR="+gc.CFDir, "QMGR_DATA="+gc.DataDir, "QMGR_QMGR="+m.cfg.Name,
		"QMGR_UNIT="+svc.Name, fmt.Sprintf("QMGR_UNIT_POS=%d", pos), fmt.Sprintf("QMGR_UNIT_CLAIM=%d", claim))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Started and recorded under mu, with stopping checked there: a
	// member stopping (stopping is set before stopUnitKids takes mu) never
	// leaves a replica it started behind.
	m.units.mu.Lock()
	if m.stopping.Load() {
		m.units.mu.Unlock()
		return fmt.Errorf("start %s: the member is stopping", svc.StartCmd)
	}
	if err := cmd.Start(); err != nil {
		m.units.mu.Unlock()
		return fmt.Errorf("start %s: %w", svc.StartCmd, err)
	}
	k := &unitKid{at: unitPos{svc.Name, pos}, claim: claim, cmd: cmd, exited: make(chan struct{})}
	if m.units.kids == nil {
		m.units.kids = map[uint64]*unitKid{}
	}
	m.units.kids[claim] = k
	m.units.mu.Unlock()
	cpUnitSpawned.Hit()
	m.log.Info("unit replica started", "event", "unit_replica_started", "unit", svc.Name, "pos", pos, "pid", cmd.Process.Pid)
	go func() {
		err := cmd.Wait()
		m.units.mu.Lock()
		delete(m.units.kids, claim)
		m.units.mu.Unlock()
		close(k.exited)
		m.log.Info("unit replica process ended", "unit", svc.Name, "pos", pos, "pid", cmd.Process.Pid, "err", err)
		m.kickUnits()
	}()
	return nil
}
