package qm

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
)

// Run serves until ctx ends or Stop is called, then stops in order.
func (m *Member) Run(ctx context.Context) error {
	defer close(m.done)
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	lastExpiry := time.Now()
	deaths := make(chan []any, 1)
	go m.waitDeaths(deaths)
	go m.superviseUnits()
	m.tick()
	var lastBackupCheck, lastUOWCheck time.Time
	for {
		select {
		case <-ctx.Done():
			m.once.Do(func() { close(m.stop) }) // ends waitDeaths too
			return m.shutdown()
		case <-m.stop:
			return m.shutdown()
		case keys := <-deaths:
			for _, k := range keys {
				m.handleDeath(k)
			}
		case <-t.C:
			m.tick()
			if time.Since(lastExpiry) >= m.cfg.ExpiryInterval {
				lastExpiry = time.Now()
				m.goExpiryScan()
			}
			if time.Since(lastBackupCheck) >= backupCheckInterval && !testHookNoStructureChecks.Load() {
				lastBackupCheck = time.Now()
				m.checkStructures()
				m.goAutoBackup()
			}
			if time.Since(lastUOWCheck) >= uowCheckInterval {
				lastUOWCheck = time.Now()
				m.checkLongUOWs()
			}
		}
	}
}

// testHookNoStructureChecks stops the periodic structure checks,
// automatic backups and orphan sweeps (which attach every structure) of
// every member of the process (tests only: a member that has not yet
// noticed a structure's file is gone).
var testHookNoStructureChecks atomic.Bool

// Stop asks Run to stop in order and waits for it.
func (m *Member) Stop() {
	m.once.Do(func() { close(m.stop) })
	<-m.done
}

// waitDeaths forwards the watcher's reports to the run loop.
func (m *Member) waitDeaths(out chan<- []any) {
	for {
		keys, err := m.watch.Wait(time.Second)
		if err != nil {
			return
		}
		if len(keys) > 0 {
			select {
			case out <- keys:
			case <-m.stop:
				return
			}
		}
	}
}

// peerKey is a watched member: its slot and the process (and incarnation)
// that held it when the watch began.
type peerKey struct {
	slot int
	inc  uint64
	id   procid.ID
}

// connKey is a watched connection of this member: its admin owner tag and
// the process that registered it.
type connKey struct {
	tag lockfree.OwnerTag
	id  procid.ID
}

// hbSeen is the last heartbeat the run loop saw from a peer, and when (by
// this member's monotonic clock) it last changed.
type hbSeen struct {
	key     peerKey
	hb      int64
	changed time.Time
}

func (m *Member) handleDeath(k any) {
	switch k := k.(type) {
	case peerKey:
		if m.peerW[k.slot] == k {
			delete(m.peerW, k.slot)
		}
		p, err := m.g.Peer(k.slot)
		if err == nil && p.Incarnation == k.inc && p.Process == k.id {
			m.goRecoverMember(p)
		}
	case connKey:
		if m.connW[k.tag.Slot()] == k {
			delete(m.connW, k.tag.Slot())
		}
		m.goRecoverConn(k.tag, k.id, false)
	}
}

// tick runs every HeartbeatInterval: watch the peers and connections,
// recover the dead, fence the hung, sweep orphans.
func (m *Member) tick() {
	now := time.Now()
	if !m.lastTick.IsZero() && now.Sub(m.lastTick) > m.cfg.HeartbeatTimeout/2 {
		// This member itself did not run for a while (stopped, or starved):
		// the heartbeats it saw are too old to judge anyone by.
		m.log.Warn("member tick was late; forgetting the peer heartbeats seen", "late", now.Sub(m.lastTick).Round(time.Millisecond))
		clear(m.seen)
	}
	m.lastTick = now
	peers, err := m.g.Peers()
	if err != nil {
		m.log.Error("read peer table", "err", err)
		return
	}
	current := map[int]bool{}
	for _, p := range peers {
		if p.Slot == m.slot {
			continue
		}
		switch {
		case p.State.Running() && p.Process.Pid > 0:
			key := peerKey{slot: p.Slot, inc: p.Incarnation, id: p.Process}
			current[p.Slot] = true
			if old, ok := m.peerW[p.Slot]; !ok || old != key {
				if ok {
					m.watch.Unwatch(old)
				}
				if err := m.watch.Watch(key, p.Process); err != nil {
					m.log.Error("watch peer", "peer", p.Name, "err", err)
				} else {
					m.peerW[p.Slot] = key
				}
			}
			m.judgeHeartbeat(p, key, now)
		case p.State == group.PeerFailed, p.State == group.PeerRecovering && !procid.Alive(p.Recoverer):
			m.goRecoverMember(p)
		}
	}
	for slot, key := range m.peerW {
		if !current[slot] {
			m.watch.Unwatch(key)
			delete(m.peerW, slot)
		}
	}
	for slot := range m.seen {
		if !current[slot] {
			delete(m.seen, slot)
		}
	}
	m.watchConnections()
	if m.ticks++; m.ticks%sweepEvery == 0 && !testHookNoStructureChecks.Load() {
		m.sweepOrphans()
	}
}

// sweepEvery is how many ticks apart the orphan sweep runs (orphans are
// rare, and the sweep looks at every owner of every structure).
const sweepEvery = 10

// judgeHeartbeat fences a peer whose heartbeat has not changed for
// HeartbeatTimeout of this member's own (monotonic) time while its process
// lives: it is hung, and is killed so that it cannot touch the CF again;
// its death is then handled like any other. Clocks of different members
// are never compared.
func (m *Member) judgeHeartbeat(p group.Peer, key peerKey, now time.Time) {
	s, ok := m.seen[p.Slot]
	if !ok || s.key != key || s.hb != p.Heartbeat {
		m.seen[p.Slot] = hbSeen{key: key, hb: p.Heartbeat, changed: now}
		return
	}
	if age := now.Sub(s.changed); age > m.cfg.HeartbeatTimeout && p.ProcessAlive() {
		m.log.Warn("peer hung, killing it", "event", "peer_killed", "peer", p.Name, "pid", p.Process.Pid, "heartbeat_age", age.Round(time.Millisecond),
			"heartbeat_timeout", m.cfg.HeartbeatTimeout)
		if err := procid.Signal(p.Process, syscall.SIGKILL); err != nil && !errors.Is(err, procid.ErrGone) {
			m.log.Error("kill hung peer", "peer", p.Name, "pid", p.Process.Pid, "err", err)
		}
		delete(m.seen, p.Slot)
	}
}

// watchConnections watches this member's connections and recovers
// stragglers: connections of members that stopped or were recovered (or of
// an earlier incarnation of a member). The connections of a dead member
// not yet recovered are left to recoverMember, whose compare-and-swap gives
// them to exactly one survivor.
// stragglerGrace is how long a live connection of a stopped member may
// stay registered before it is revoked.
const stragglerGrace = 2 * time.Second

func (m *Member) watchConnections() {
	// Owners first, then the peer table: a member (or an application)
	// registers its owner only after its member's slot was claimed, so a
	// peer table read after the owners never shows the member of a fresh
	// owner as gone.
	admin := m.g.Admin()
	owners := admin.Owners()
	peers, err := m.g.Peers()
	if err != nil {
		return
	}
	var byslot [group.PeerSlots]group.Peer
	for _, p := range peers {
		byslot[p.Slot] = p
	}
	// finished reports whether the connections labelled (peer, inc) have
	// nobody else to recover them.
	finished := func(peer int, inc uint64) bool {
		p := byslot[peer]
		if p.State == group.PeerEmpty || p.State == group.PeerStopped || p.State == group.PeerRecovered {
			return true
		}
		return !group.SameIncarnation(inc, p.Incarnation) && p.State != group.PeerRecovering && p.State != group.PeerFailed
	}
	mine := map[int]bool{}
	seen := map[lockfree.OwnerTag]bool{}
	if m.stragglers == nil {
		m.stragglers = map[lockfree.OwnerTag]time.Time{}
	}
	ownTag := m.ownTag()
	for _, info := range owners {
		slot := info.Tag.Slot()
		if !info.Registered {
			switch {
			case info.State == "active" && !info.Alive:
				// Died registering (no label yet): nothing of it is anywhere else.
				m.goRepairAdmin(info.Tag)
			case info.State == "repairing" && info.Process == m.self:
				// A recovery of ours that could not finish: again (one
				// that is running holds the busy key).
				m.goRecoverConn(info.Tag, procid.ID{}, true)
			case info.State == "repairing" && !info.Alive:
				// Its repairer died.
				if peer, inc, ok := group.LabelPeer(info.Label); ok && (finished(peer, inc) || peer == m.slot && group.SameIncarnation(inc, m.inc)) {
					m.goRecoverConn(info.Tag, procid.ID{}, true)
				}
			}
			continue
		}
		peer, inc, ok := group.LabelPeer(info.Label)
		if self := procid.SelfNS(); info.PidNS != 0 && self != 0 && info.PidNS != self {
			// Registered from another pid namespace (connect refuses that;
			// an older binary): its pid names nothing here, so it is
			// neither watched nor taken for dead.
			if !m.foreignSeen[info.Tag] {
				m.foreignSeen[info.Tag] = true
				m.log.Error("connection from another pid namespace: not watched, not recovered", "slot", slot, "pid", info.Process.Pid, "pid_namespace", info.PidNS)
			}
			continue
		}
		switch {
		case !ok:
			if !info.Alive {
				// An owner with no connection label (a starting member's
				// short-lived owner, a tool's): it holds nothing outside
				// the admin structure, and nobody else repairs it.
				m.goRepairAdmin(info.Tag)
			}
		case peer == m.slot && group.SameIncarnation(inc, m.inc):
			if info.Tag == ownTag {
				continue
			}
			mine[slot] = true
			key := connKey{tag: info.Tag, id: info.Process}
			if old, ok := m.connW[slot]; !ok || old != key {
				if ok {
					m.watch.Unwatch(old)
				}
				if err := m.watch.Watch(key, info.Process); err != nil {
					m.log.Error("watch connection", "slot", slot, "err", err)
				} else {
					m.connW[slot] = key
				}
			}
		case finished(peer, inc):
			if info.Alive {
				// A live connection of a member that stopped: the member's
				// own owners stay registered until its process ends, a moment
				// after it published "stopped", and are not revocable. Give
				// it stragglerGrace before revoking.
				seen[info.Tag] = true
				first, ok := m.stragglers[info.Tag]
				if !ok {
					m.stragglers[info.Tag] = time.Now()
					continue
				}
				if time.Since(first) < stragglerGrace {
					continue
				}
			}
			m.goRecoverConn(info.Tag, info.Process, true)
		}
	}
	for t := range m.stragglers {
		if !seen[t] {
			delete(m.stragglers, t)
		}
	}
	for slot, key := range m.connW {
		if !mine[slot] {
			m.watch.Unwatch(key)
			delete(m.connW, slot)
		}
	}
}

func (m *Member) ownTag() lockfree.OwnerTag {
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	if m.own == nil {
		return 0
	}
	return m.own.Tag()
}

// goExpiryScan starts an expiry scan unless one is running.
func (m *Member) goExpiryScan() { goUnlessRunning(&m.scanning, m.expiryScan) }

// goUnlessRunning runs f on a goroutine of its own unless the one running
// flags it did is still running.
func goUnlessRunning(running *atomic.Bool, f func()) {
	if !running.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer running.Store(false)
		f()
	}()
}

// expiryScan removes expired messages, by the holder of the expiry lease.
func (m *Member) expiryScan() {
	var held bool
	m.withOwn(func(o *lockfree.Owner) error {
		var err error
		held, err = m.g.AcquireLease(o, group.LeaseExpiry, m.slot, 3*m.cfg.ExpiryInterval)
		return err
	})
	if !held {
		return
	}
	m.cmdMu.Lock()
	defer m.cmdMu.Unlock()
	if m.stopping.Load() {
		return
	}
	qs, err := m.queueDefs()
	if err != nil {
		return
	}
	total := 0
	for _, q := range qs {
		o, s, err := m.ownerIn(q.CFStruct)
		if err != nil {
			continue
		}
		id, err := s.LookupQueue(q.Name)
		if err != nil {
			continue
		}
		n, _ := o.RemoveExpired(id)
		total += n
	}
	if total > 0 {
		m.log.Info("removed expired messages", "count", total)
	}
}

// closeLogAndApps logs what connections published and closes the log
// (which draws LRSNs through the admin owner, closed later), then closes
// the member's owners in application structures.
func (m *Member) closeLogAndApps() {
	m.stopLog()
	m.mu.Lock()
	for _, o := range m.apps {
		o.Close()
	}
	m.apps = map[string]*lockfree.Owner{}
	m.mu.Unlock()
}

// shutdown is the orderly stop: no new work, connections given the grace
// period to end and then broken, units of work backed out, deregistered.
func (m *Member) shutdown() error {
	m.log.Info("stopping")
	m.updatePeer(func(p *group.Peer) bool {
		if p.Process != m.self {
			return false
		}
		p.State = group.PeerStopping
		return true
	})
	// No new admin work: refuse commands, close the socket and the
	// connections to it, and wait for a command that is running.
	m.stopping.Store(true)
	// The child processes first, together: the channel initiator's
	// channels go to the other members at once (SHARED(RESTART)); the
	// AMQP listener closes its clients' connections (they reconnect to
	// a survivor through the generic port) and ends their units of work.
	var children sync.WaitGroup
	for _, c := range []*childService{m.chinit, m.amqp} {
		children.Go(func() { c.close(syscall.SIGTERM, m.cfg.StopGrace+5*time.Second) })
	}
	children.Go(m.stopUnitKids)
	children.Wait()
	if m.cmdL != nil {
		m.cmdL.Close()
		os.Remove(SocketPath(m.g.Config(), m.cfg.Name))
	}
	m.mu.Lock()
	for c := range m.cmdConns {
		c.Close()
	}
	m.mu.Unlock()
	m.cmdMu.Lock()
	m.cmdMu.Unlock()

	ownTag := m.ownTag()
	deadline := time.Now().Add(m.cfg.StopGrace)
	for {
		left := 0
		for _, info := range m.g.Admin().Owners() {
			peer, inc, ok := group.LabelPeer(info.Label)
			if !ok || peer != m.slot || !group.SameIncarnation(inc, m.inc) || info.Tag == ownTag || !info.Registered {
				continue
			}
			if time.Now().After(deadline) || !info.Alive {
				m.goRecoverConn(info.Tag, info.Process, true)
			} else {
				left++
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Recoveries in flight (ours, or of dead peers) get another grace
	// period; one that is still waiting then (for an application stopped in
	// the middle of an operation) is left to the peers: they take over a
	// repair whose repairer is gone.
	clean := m.waitRecoveries(m.cfg.StopGrace)
	if !clean {
		m.log.Warn("stopping with recoveries still in flight; peers will finish them", "recoveries", m.inFlight())
	}
	m.withOwn(func(o *lockfree.Owner) error { return m.g.ReleaseLease(o, group.LeaseExpiry, m.slot) })
	m.withOwn(func(o *lockfree.Owner) error { return m.g.ReleaseLease(o, group.LeaseBackup, m.slot) })
	if clean {
		// The log and the owners in application structures are closed
		// while the member is still "stopping", its heartbeat running:
		// peers leave a stopping member that lives alone, however long
		// its log takes to sync. Once it says "stopped", its owners are
		// stragglers that peers revoke.
		cpStopClosing.Hit()
		m.closeLogAndApps()
	}
	m.stopHeartbeat()
	m.updatePeer(func(p *group.Peer) bool {
		if p.Process != m.self {
			return false
		}
		p.State, p.Process = group.PeerStopped, procid.ID{}
		return true
	})
	if clean {
		m.close() // the admin owner, at once after the record it updated
	} else {
		// Recoveries still use the structures: leave them mapped (the
		// process is about to exit), release the rest.
		m.markClosed()
		m.watch.Close()
		m.repo.Close()
	}
	m.log.Info("stopped")
	return nil
}

func (m *Member) close() {
	m.markClosed()
	m.closeLogAndApps()
	m.ownMu.Lock()
	if m.own != nil {
		m.own.Close()
		m.own = nil
	}
	m.ownMu.Unlock()
	if m.watch != nil {
		m.watch.Close()
	}
	if m.repo != nil {
		m.repo.Close()
	}
	if m.g != nil {
		m.g.Close()
	}
}
