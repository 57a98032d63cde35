package qm

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

// Recoveries run on their own goroutines, at most one per thing recovered
// (the busy set), so that the run loop, and with it the watching of
// everyone else, never waits for one: a revocation waits for a live
// application to finish the operation it is in, which takes as long as
// that application takes.

// goRecover runs f on its own goroutine unless a recovery under key is
// already running in this member.
func (m *Member) goRecover(key string, f func()) {
	m.busyMu.Lock()
	if m.busy[key] {
		m.busyMu.Unlock()
		return
	}
	m.busy[key] = true
	m.busyMu.Unlock()
	go func() {
		defer func() {
			m.busyMu.Lock()
			delete(m.busy, key)
			m.busyMu.Unlock()
		}()
		f()
	}()
}

// withKey runs f under busy key key, waiting for a recovery holding it to
// end first (recoverMember's per-connection recoveries, which must not run
// beside a retry of the same slot).
func (m *Member) withKey(key string, f func()) {
	for {
		m.busyMu.Lock()
		if !m.busy[key] {
			m.busy[key] = true
			m.busyMu.Unlock()
			break
		}
		m.busyMu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
	defer func() {
		m.busyMu.Lock()
		delete(m.busy, key)
		m.busyMu.Unlock()
	}()
	f()
}

func (m *Member) inFlight() int {
	m.busyMu.Lock()
	defer m.busyMu.Unlock()
	return len(m.busy)
}

// waitRecoveries waits until no recovery is in flight, for at most d; it
// reports whether none is.
func (m *Member) waitRecoveries(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for m.inFlight() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
	return true
}

func (m *Member) goRecoverMember(p group.Peer) {
	m.goRecover(fmt.Sprintf("member %d", p.Slot), func() { m.recoverMember(p) })
}

// connBusyKey is the busy key of the recoveries of t's connection slot:
// one goroutine of this process at a time repairs a slot.
func connBusyKey(t lockfree.OwnerTag) string { return fmt.Sprintf("conn %d", t.Slot()) }

func (m *Member) goRecoverConn(t lockfree.OwnerTag, id procid.ID, revoke bool) {
	m.goRecover(connBusyKey(t), func() { m.recoverConn(t, id, revoke) })
}

// msgFigures is what recoveries did to messages, for their log lines:
// rolled forward (uncommitted puts made visible, held messages consumed)
// and backed out (uncommitted puts removed, held messages put back).
type msgFigures struct{ committed, backedOut int }

// add counts the messages of one repair.
func (f *msgFigures) add(r lockfree.RepairReport) {
	f.committed += r.PutsCommitted + r.GetsRemoved
	f.backedOut += r.PutsRemoved + r.GetsRestored
}

func (m *Member) goRepairAdmin(t lockfree.OwnerTag) {
	m.goRecover(connBusyKey(t), func() {
		if _, err := m.g.Admin().Repair(t); err == nil {
			m.log.Info("repaired a connection that died registering", "slot", t.Slot())
		}
	})
}

// recoverDead recovers every member that died and was not recovered, and
// the connections nobody else will: what a member starting (alone or not)
// does first. It waits for those recoveries, but not for ever: one that
// waits for an application stopped in the middle of an operation goes on
// in the background.
func (m *Member) recoverDead() {
	peers, _ := m.g.Peers()
	for _, p := range peers {
		if p.Slot != m.slot {
			if p.State.Running() && !p.ProcessAlive() || p.State == group.PeerFailed ||
				p.State == group.PeerRecovering && !procid.Alive(p.Recoverer) {
				m.goRecoverMember(p)
			}
		}
	}
	m.waitRecoveries(10 * time.Second)
	m.sweepOrphans()
	m.watchConnections()
	if !m.waitRecoveries(10 * time.Second) {
		m.log.Warn("recoveries still in flight; going on", "recoveries", m.inFlight())
	}
}

// recoverMember recovers a dead member's work, unless another survivor is
// doing it. Exactly one survivor wins the compare-and-swap; if it dies, the
// next tick of another one takes over (a recovering member whose recoverer
// is gone). The member's connections are recovered concurrently.
func (m *Member) recoverMember(p group.Peer) {
	if p.State.Running() && p.ProcessAlive() {
		return
	}
	won, err := m.updatePeerSlot(p.Slot, func(cur *group.Peer) bool {
		if cur.Name != p.Name || cur.Incarnation != p.Incarnation {
			return false
		}
		switch {
		case cur.State.Running() && !cur.ProcessAlive(), cur.State == group.PeerFailed:
		case cur.State == group.PeerRecovering && !procid.Alive(cur.Recoverer):
		default:
			return false
		}
		cur.State, cur.Recoverer = group.PeerRecovering, m.self
		return true
	})
	if err != nil || !won {
		return
	}
	t0 := time.Now() // the member is "recovering" from here on
	cpRecoverClaimed.Hit()
	var wg sync.WaitGroup
	var figMu sync.Mutex
	var figs msgFigures
	n := 0
	for _, info := range m.g.Admin().Owners() {
		peer, inc, ok := group.LabelPeer(info.Label)
		if !ok || peer != p.Slot || !group.SameIncarnation(inc, p.Incarnation) {
			continue // a connection of an earlier incarnation is a straggler: watchConnections
		}
		n++
		wg.Add(1)
		go func(info lockfree.OwnerInfo) {
			defer wg.Done()
			m.withKey(connBusyKey(info.Tag), func() {
				f, _ := m.recoverConn(info.Tag, procid.ID{}, true)
				figMu.Lock()
				figs.committed, figs.backedOut = figs.committed+f.committed, figs.backedOut+f.backedOut
				figMu.Unlock()
			})
			cpRecoverConn.Hit()
		}(info)
	}
	wg.Wait()
	m.updatePeerSlot(p.Slot, func(cur *group.Peer) bool {
		if cur.State != group.PeerRecovering || cur.Recoverer != m.self || cur.Incarnation != p.Incarnation {
			return false
		}
		cur.State, cur.Process, cur.Recoverer = group.PeerRecovered, procid.ID{}, procid.ID{}
		return true
	})
	took := time.Since(t0)
	m.stats.peerRecoveries.Add(1)
	m.stats.peerRecoverySeconds.Observe(took.Seconds())
	m.recorded.add(PeerRecovery{Peer: p.Name, Pid: p.Process.Pid, Incarnation: p.Incarnation, Connections: n, Started: t0, Took: took})
	args := []any{"event", "peer_recovered", "peer", p.Name, "pid", p.Process.Pid, "incarnation", p.Incarnation, "connections", n,
		"messages_committed", figs.committed, "messages_backed_out", figs.backedOut, "took", took.Round(time.Microsecond)}
	if p.State == group.PeerRecovering {
		// The recoverer before this one died half way: a takeover.
		args = append(args, "took_over_from_pid", p.Recoverer.Pid)
	}
	m.log.Warn("recovered a dead member", args...)
}

// PeerRecovery is one recovery of a dead member that this member
// performed (it won the peer record's compare-and-swap).
type PeerRecovery struct {
	Peer        string        `json:"peer"`
	Pid         int           `json:"pid"`
	Incarnation uint64        `json:"incarnation"`
	Connections int           `json:"connections"` // the dead member's connections recovered
	Started     time.Time     `json:"started"`
	Took        time.Duration `json:"took_ns"`
}

// recoveryLog is the last recoveryLogSize peer recoveries a member
// performed, oldest first (only in the member's memory: a restart
// forgets them).
type recoveryLog struct {
	mu   sync.Mutex
	last []PeerRecovery
}

// recoveryLogSize bounds recoveryLog.
const recoveryLogSize = 64

func (l *recoveryLog) add(r PeerRecovery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == recoveryLogSize {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, r)
}

// PeerRecoveries are the recoveries of dead members this member performed
// since it started (the last 64), oldest first.
func (m *Member) PeerRecoveries() []PeerRecovery {
	m.recorded.mu.Lock()
	defer m.recorded.mu.Unlock()
	return append([]PeerRecovery(nil), m.recorded.last...)
}

// recoverConn finishes or undoes the work of the connection whose admin
// owner is t in every structure: repaired if its process is gone, revoked
// (connection broken) if it is alive and revoke is set. id, when set, is
// the process the caller saw registered under t: nothing is done if the
// slot has another one.
//
// The order matters. The admin slot is fenced first: from then on the
// connection can neither record a commit decision nor register in another
// structure (Conn checks its admin slot after registering). Then the
// decision is read, the connection's slot in every application structure
// is repaired or revoked with it, and the admin slot is repaired last, so
// that a recoverer that dies half way leaves the decision for the one that
// takes over.
func (m *Member) recoverConn(t lockfree.OwnerTag, id procid.ID, revoke bool) (msgFigures, bool) {
	var figs msgFigures
	t0 := time.Now()
	cpRecoverConnStart.Hit()
	admin := m.g.Admin()
	info, ok := admin.Owner(t.Slot())
	if !ok || info.Tag != t {
		return figs, false
	}
	if info.State == "active" {
		if id.Pid != 0 && info.Process != id {
			return figs, false
		}
		if info.Alive && !revoke {
			return figs, false
		}
		id = info.Process
	}
	if err := m.waitLogged("fence connection", t, func() error { return m.fence(admin, t) }); err != nil {
		if !errors.Is(err, lockfree.ErrNotOwner) && !errors.Is(err, lockfree.ErrOwnerBusy) {
			m.log.Error("recover connection: fence", "slot", t.Slot(), "err", err)
		}
		return figs, false
	}
	out := lockfree.OutcomeAuto // a unit of work in one structure: as its own record says
	// A put or get outside syncpoint whose record was durable and decided
	// is carried out wherever it was left (RepairDecided); one marked
	// logged but not decided is recorded aborted below and undone.
	lone := admin.LoneDecided(t)
	if admin.Decision(t) == lockfree.OutcomeCommit {
		out = lockfree.OutcomeCommit
	} else if err := m.recordAbort(admin, t); err != nil {
		m.log.Error("recover connection: record the abort of its unit of work; will retry", "slot", t.Slot(), "err", err)
		return figs, false
	}
	// The admin slot, and with it the decision, is repaired only once every
	// structure is: otherwise it stays fenced (repairing by this process)
	// and watchConnections runs the recovery again.
	complete := true
	names, err := m.g.Structures()
	if err != nil {
		m.log.Error("recover connection: list structures", "slot", t.Slot(), "err", err)
		complete = false
	}
	for _, n := range names {
		s, err := m.g.Structure(n, false)
		if err != nil {
			m.log.Error("recover connection: attach", "slot", t.Slot(), "structure", n, "err", err)
			complete = false
			continue
		}
		oi, ok := s.Owner(t.Slot())
		if !ok || oi.State == "active" && oi.Alive && id.Pid != 0 && oi.Process.Pid != id.Pid {
			continue // not this connection's
		}
		err = m.waitLogged("revoke connection in "+n, oi.Tag, func() error {
			var rep lockfree.RepairReport
			var err error
			if oi.State == "active" && oi.Alive {
				rep, err = m.revoke(s, oi.Tag, out, lone)
			} else {
				rep, err = m.repair(s, oi.Tag, out, lone, false)
			}
			figs.add(rep)
			return err
		})
		if err != nil && !errors.Is(err, lockfree.ErrNotOwner) {
			if !errors.Is(err, lockfree.ErrOwnerBusy) {
				m.log.Error("recover connection", "slot", t.Slot(), "structure", n, "err", err)
			}
			complete = false
		} else if _, err := mq.RepairDataSets(m.g, n, s); err != nil {
			// The CF is repaired (it freed the runs of the entries it
			// freed); what the dead process left half done in the
			// structure's data sets is repaired with the CF as the judge.
			// A failure here leaks nothing for good: the next repair of
			// the data set's dead owners (any recovery, any process that
			// opens it) does it.
			m.log.Warn("recover connection: repair its shared message data sets", "slot", t.Slot(), "structure", n, "err", err)
		}
		testHookStructureFixed(n)
	}
	if !complete {
		m.log.Warn("connection not fully recovered; will retry", "slot", t.Slot())
		return figs, false
	}
	m.freeLogRing(t, info.Label)
	if _, err := m.repair(admin, t, out, 0, true); err != nil {
		m.log.Error("recover connection", "slot", t.Slot(), "structure", shm.AdminStructure, "err", err)
		return figs, false
	}
	m.stats.connRecoveries.Add(1)
	// A replica of a recovery unit whose connection this was has died: its
	// unit of work is resolved and its admin slot repaired, so the
	// supervisor can vacate its position and hand its roles on (design
	// 6.1's fencing).
	m.kickUnits()
	m.log.Info("recovered a connection", "event", "connection_recovered", "slot", t.Slot(), "pid", id.Pid, "outcome", outcomeName(out),
		"revoked", info.Alive && revoke, "messages_committed", figs.committed, "messages_backed_out", figs.backedOut,
		"took", time.Since(t0).Round(time.Microsecond))
	return figs, true
}

// recordAbort records, before a connection's unit of work is backed out,
// that it aborted, when its commit record may be in a log (it marked the
// record logged but never decided the commit): a rebuild of the structure
// from the logs must not commit it. The connection is fenced, so the mark
// cannot appear later. A unit of work in a single structure whose commit
// record may be logged is never committed by its own record either: the
// record is durable before the structure's commit starts, and that starts
// after the decision.
func (m *Member) recordAbort(admin *lockfree.Structure, t lockfree.OwnerTag) error {
	key := admin.CommitLogged(t)
	if key == 0 {
		return nil
	}
	if err := m.repo.Update(func(tx *defs.Tx) error { return tx.AbortUOW(key) }); err != nil {
		return err
	}
	m.log.Warn("a unit of work whose commit record may be logged was not decided: recorded as aborted", "slot", t.Slot(), "uow", key)
	return nil
}

// testHookStructureFixed is called after each application structure a
// recovery repaired (tests only).
var testHookStructureFixed = func(string) {}

// waitLogged runs f, which may wait for a live process (a fence waits for
// the operation in flight to end), and logs while it waits.
func (m *Member) waitLogged(what string, t lockfree.OwnerTag, f func() error) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t0 := time.Now()
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				m.log.Warn("still waiting for a connection's process to finish its operation", "what", what, "slot", t.Slot(), "waited", time.Since(t0).Round(time.Second))
			}
		}
	}()
	return f()
}

func outcomeName(o lockfree.Outcome) string {
	switch o {
	case lockfree.OutcomeCommit:
		return "commit"
	case lockfree.OutcomeBackout:
		return "backout"
	}
	return "as recorded"
}

// sweepOrphans repairs owners in application structures that belong to no
// connection: their admin slot is free or held by another process. A
// connection registers in an application structure only while its admin
// slot is its own and checks that slot again afterwards, and a recovery
// repairs the application structures before the admin slot, so an orphan
// is rare: an application killed between registering in a structure and
// that check, or a structure attached while its owners were being
// recovered. Owners whose admin slot is being repaired are left to that
// repair.
func (m *Member) sweepOrphans() {
	names, err := m.g.Structures()
	if err != nil {
		return
	}
	admin := m.g.Admin()
	for _, n := range names {
		s, err := m.g.Structure(n, false)
		if err != nil {
			continue
		}
		for _, oi := range s.Owners() {
			if oi.State == "repairing" && oi.Alive {
				continue // being repaired
			}
			ai, ok := admin.Owner(oi.Tag.Slot()) // read after the structure's owner
			if ok && (ai.State == "repairing" || oi.State == "active" && ai.Process.Pid == oi.Process.Pid) {
				continue
			}
			oi, n := oi, n
			// The same key as the connection's recovery: one goroutine of
			// this process at a time repairs a slot.
			m.goRecover(connBusyKey(oi.Tag), func() {
				var err error
				if oi.State == "active" && oi.Alive {
					_, err = m.revoke(s, oi.Tag, lockfree.OutcomeAuto, 0)
				} else {
					_, err = m.repair(s, oi.Tag, lockfree.OutcomeAuto, 0, false)
				}
				if err == nil {
					m.log.Warn("repaired an owner without a connection", "structure", n, "slot", oi.Tag.Slot(), "pid", oi.Process.Pid)
				}
			})
		}
	}
}

// queueDefs reads every queue definition.
func (m *Member) queueDefs() ([]defs.Queue, error) {
	var qs []defs.Queue
	err := m.repo.View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues("*"); return err })
	return qs, err
}
