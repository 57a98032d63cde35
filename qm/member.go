package qm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/recovery"
	"github.com/qmgr/qmgr/shm"
)

// Crash points of member recovery (see package crashpoint).
var (
	cpRecoverClaimed = crashpoint.New("qm.recover.claimed")
	cpRecoverConn    = crashpoint.New("qm.recover.conn")
)

// Sentinel errors.
var (
	ErrConfig  = errors.New("qm: invalid configuration")
	ErrRunning = errors.New("qm: member already running")
	ErrStopped = errors.New("qm: member stopped")
)

// Config configures a member.
type Config struct {
	Group group.Config
	// Name is the member's name (required): 1 to 48 of A-Z a-z 0-9 . / _ %.
	Name string
	// Port and GenericPort are the member's inbound ports (used by the
	// channel initiator; 0 for none).
	Port, GenericPort int
	// HeartbeatInterval is how often the member stores its heartbeat and
	// looks at its peers; default 200ms.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how old a live peer's heartbeat may get before the
	// peer counts as hung and is killed and recovered; default 10s.
	HeartbeatTimeout time.Duration
	// ExpiryInterval is how often the holder of the expiry lease removes
	// expired messages from every queue; default 5s.
	ExpiryInterval time.Duration
	// StopGrace is how long an orderly stop waits for connections to end
	// before breaking them; default 2s.
	StopGrace time.Duration
	// Logger receives the member's log; default slog.Default().
	Logger *slog.Logger
}

// Validate applies defaults and checks the configuration.
func (c *Config) Validate() error {
	if err := c.Group.Validate(); err != nil {
		return err
	}
	if !defs.ValidName(c.Name) {
		return fmt.Errorf("%w: member name %q (1 to 48 of A-Z a-z 0-9 . / _ %%)", ErrConfig, c.Name)
	}
	if c.Port < 0 || c.Port > 65535 || c.GenericPort < 0 || c.GenericPort > 65535 {
		return fmt.Errorf("%w: port out of range", ErrConfig)
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 200 * time.Millisecond
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = 5 * time.Second
	}
	if c.StopGrace == 0 {
		c.StopGrace = 2 * time.Second
	}
	if c.HeartbeatTimeout < 5*c.HeartbeatInterval {
		return fmt.Errorf("%w: heartbeat timeout %v must be at least five heartbeat intervals (%v)", ErrConfig, c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Member is a running queue manager of the group.
type Member struct {
	cfg  Config
	log  *slog.Logger
	g    *group.Group
	repo *defs.Repo
	self procid.ID

	slot int    // peer slot
	inc  uint64 // incarnation
	own  *lockfree.Owner
	mu   sync.Mutex // guards owners (command server and loop)
	apps map[string]*lockfree.Owner

	watch *recovery.Watcher
	cmdMu sync.Mutex // one admin command at a time
	cmdL  net.Listener
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// Start brings a member up: it claims its peer slot, recovers whatever dead
// members left behind, and becomes active. Run then serves until Stop.
func Start(cfg Config) (*Member, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, log: cfg.Logger.With("qmgr", cfg.Name), self: procid.Self(), apps: map[string]*lockfree.Owner{},
		stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if m.g, err = group.Open(cfg.Group, true); err != nil {
		return nil, err
	}
	fail := func(err error) (*Member, error) {
		m.close()
		return nil, err
	}
	if m.repo, err = defs.Open(m.g.Config().DataDir, true); err != nil {
		return fail(err)
	}
	if m.watch, err = recovery.NewWatcher(); err != nil {
		return fail(err)
	}
	// A short-lived owner to claim the peer slot; the member's own owner is
	// labelled with the slot it gets.
	tmp, err := m.g.Admin().Register()
	if err != nil {
		return fail(err)
	}
	slot, err := m.claimSlot(tmp)
	tmp.Close()
	if err != nil {
		return fail(err)
	}
	m.slot = slot
	if m.own, err = m.g.Admin().RegisterLabel(group.ConnLabel(slot)); err != nil {
		return fail(err)
	}
	if err := m.ensureDefaults(); err != nil {
		return fail(err)
	}
	// Start alone or not, first recover whatever dead members left behind.
	m.recoverDead()
	if err := m.reconcileQueues(); err != nil {
		return fail(err)
	}
	if _, err := m.updatePeer(func(p *group.Peer) bool {
		p.State, p.Heartbeat = group.PeerActive, time.Now().UnixNano()
		return true
	}); err != nil {
		return fail(err)
	}
	if m.cmdL, err = m.openCommands(); err != nil {
		return fail(err)
	}
	go m.serveCommands(m.cmdL)
	m.log.Info("member active", "group", m.g.Config().Name, "slot", slot, "incarnation", m.inc, "pid", m.self.Pid,
		"cf", m.g.Config().CFDir, "data", m.g.Config().DataDir)
	return m, nil
}

// Name is the member's name; Group its group.
func (m *Member) Name() string         { return m.cfg.Name }
func (m *Member) Group() *group.Group  { return m.g }
func (m *Member) Repo() *defs.Repo     { return m.repo }
func (m *Member) Logger() *slog.Logger { return m.log }

func (m *Member) updatePeer(f func(p *group.Peer) bool) (bool, error) {
	return m.g.UpdatePeer(m.own, m.slot, f)
}

// claimSlot takes the member's peer slot: its old one (a previous
// incarnation that stopped or died) or a free one.
func (m *Member) claimSlot(o *lockfree.Owner) (int, error) {
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if attempt > 0 {
			time.Sleep(5 * time.Millisecond) // e.g. a survivor is still recovering our previous incarnation
		}
		p, found, err := m.g.FindPeer(m.cfg.Name)
		if err != nil {
			return 0, err
		}
		if found && p.State.Running() && p.ProcessAlive() {
			return 0, fmt.Errorf("%w: %s is process %d", ErrRunning, m.cfg.Name, p.Process.Pid)
		}
		if found && (p.State.Running() || p.State == group.PeerFailed || p.State == group.PeerRecovering) {
			// Our previous incarnation died: recover it first, as a peer would.
			m.recoverMember(o, p)
			continue
		}
		slot := p.Slot
		if !found {
			if slot = m.freeSlot(); slot < 0 {
				return 0, fmt.Errorf("%w: all %d member slots of group %s are in use", group.ErrNoPeerSlot, group.PeerSlots, m.g.Config().Name)
			}
		}
		ok, err := m.g.UpdatePeer(o, slot, func(cur *group.Peer) bool {
			if cur.State != group.PeerEmpty && (cur.Name != m.cfg.Name || cur.State.Running() || cur.State == group.PeerRecovering) {
				return false
			}
			*cur = group.Peer{Slot: slot, Name: m.cfg.Name, State: group.PeerStarting, Process: m.self,
				Incarnation: cur.Incarnation + 1, Heartbeat: time.Now().UnixNano(), Started: time.Now().UnixNano(),
				Port: m.cfg.Port, GenericPort: m.cfg.GenericPort}
			return true
		})
		if err != nil {
			return 0, err
		}
		if !ok {
			continue
		}
		// Two processes starting the same name at once may claim two free
		// slots: the lower slot wins.
		peers, _ := m.g.Peers()
		for _, q := range peers {
			if q.Slot != slot && q.Name == m.cfg.Name && q.State.Running() && q.ProcessAlive() && q.Slot < slot {
				m.g.UpdatePeer(o, slot, func(cur *group.Peer) bool { *cur = group.Peer{}; return true })
				return 0, fmt.Errorf("%w: %s is process %d", ErrRunning, m.cfg.Name, q.Process.Pid)
			}
		}
		p, _ = m.g.Peer(slot)
		m.inc = p.Incarnation
		return slot, nil
	}
	return 0, fmt.Errorf("qm: could not claim a member slot for %s within 30s (is a survivor still recovering its previous incarnation?)", m.cfg.Name)
}

func (m *Member) freeSlot() int {
	for i := 0; i < group.PeerSlots; i++ {
		if p, err := m.g.Peer(i); err == nil && p.State == group.PeerEmpty {
			return i
		}
	}
	// Reuse the slot of a member that stopped or was recovered long ago.
	for i := 0; i < group.PeerSlots; i++ {
		if p, err := m.g.Peer(i); err == nil && (p.State == group.PeerStopped || p.State == group.PeerRecovered) {
			return i
		}
	}
	return -1
}

// ensureDefaults defines the default application structure the first time
// the group starts, and creates the files of every defined structure.
func (m *Member) ensureDefaults() error {
	var structs []defs.CFStruct
	err := m.repo.Update(func(tx *defs.Tx) error {
		if _, err := tx.Struct(shm.DefaultApplicationStructure); errors.Is(err, defs.ErrNotFound) {
			def := defs.CFStruct{Name: shm.DefaultApplicationStructure, SizeMB: int(m.g.Config().AppSize >> 20), Descr: "default application structure"}
			if _, err := tx.Save(defs.TypeCFStruct, def.Name, def, defs.Create); err != nil {
				return err
			}
		}
		var err error
		structs, err = tx.Structs("*")
		return err
	})
	if err != nil {
		return err
	}
	for _, c := range structs {
		if _, err := m.structure(c, true); err != nil {
			return fmt.Errorf("structure %s: %w", c.Name, err)
		}
	}
	return nil
}

// structure attaches (or creates) an application structure and the
// member's owner in it.
func (m *Member) structure(c defs.CFStruct, create bool) (*lockfree.Structure, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.g.StructureSized(c.Name, create, uint64(c.SizeMB)<<20)
	if err != nil {
		return nil, err
	}
	if _, ok := m.apps[c.Name]; !ok {
		o, err := s.RegisterSlotLabel(m.own.Tag().Slot(), m.own.Label())
		if err != nil {
			return nil, fmt.Errorf("member slot %d in structure %s: %w", m.own.Tag().Slot(), c.Name, err)
		}
		m.apps[c.Name] = o
	}
	return s, nil
}

// ownerIn is the member's owner in structure name.
func (m *Member) ownerIn(name string) (*lockfree.Owner, *lockfree.Structure, error) {
	var c defs.CFStruct
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; c, err = tx.Struct(name); return err }); err != nil {
		return nil, nil, err
	}
	return m.OwnerIn(c)
}

// OwnerIn is the member's owner in structure c (mqsc.Env).
func (m *Member) OwnerIn(c defs.CFStruct) (*lockfree.Owner, *lockfree.Structure, error) {
	s, err := m.structure(c, true)
	if err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.apps[c.Name], s, nil
}

// reconcileQueues makes sure every defined queue exists in its structure
// (a member that died between defining a queue and creating it, or a
// structure recreated empty).
func (m *Member) reconcileQueues() error {
	var qs []defs.Queue
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues("*"); return err }); err != nil {
		return err
	}
	for _, q := range qs {
		o, s, err := m.ownerIn(q.CFStruct)
		if err != nil {
			return fmt.Errorf("queue %s: %w", q.Name, err)
		}
		if _, err := s.LookupQueue(q.Name); err == nil {
			continue
		}
		if _, err := o.CreateQueue(q.Name, CFAttrs(q)); err != nil && !errors.Is(err, lockfree.ErrQueueExists) {
			return fmt.Errorf("queue %s: %w", q.Name, err)
		}
		m.log.Info("created missing queue in the CF", "queue", q.Name, "structure", q.CFStruct)
	}
	return nil
}

// CFAttrs are the attributes the CF enforces for a queue definition.
func CFAttrs(q defs.Queue) lockfree.QueueAttrs {
	a := lockfree.QueueAttrs{MaxDepth: q.MaxDepth, MaxMsgLen: q.MaxMsgL,
		IndexMsgID: q.IndxType == "MSGID", IndexCorrelID: q.IndxType == "CORRELID"}
	if q.MaxDepth == 0 {
		a.MaxDepth = -1 // MAXDEPTH(0): nothing may be put
	}
	if q.MaxMsgL == 0 {
		a.MaxMsgLen = -1
	}
	return a
}

// Run serves until ctx ends or Stop is called, then stops in order.
func (m *Member) Run(ctx context.Context) error {
	defer close(m.done)
	hb := time.NewTicker(m.cfg.HeartbeatInterval)
	defer hb.Stop()
	lastExpiry := time.Now()
	deaths := make(chan []any, 1)
	go m.waitDeaths(deaths)
	m.tick()
	for {
		select {
		case <-ctx.Done():
			return m.shutdown()
		case <-m.stop:
			return m.shutdown()
		case keys := <-deaths:
			for _, k := range keys {
				m.handleDeath(k)
			}
		case <-hb.C:
			m.tick()
			if time.Since(lastExpiry) >= m.cfg.ExpiryInterval {
				lastExpiry = time.Now()
				m.expiryScan()
			}
		}
	}
}

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

type peerKey int // a watched member, by peer slot
type connKey int // a watched connection, by connection slot

func (m *Member) handleDeath(k any) {
	switch k := k.(type) {
	case peerKey:
		p, err := m.g.Peer(int(k))
		if err == nil && p.Slot != m.slot {
			m.recoverMember(m.own, p)
		}
	case connKey:
		m.recoverConn(int(k), false)
	}
}

// tick is the heartbeat: store ours, watch peers and connections, recover
// the dead, fence the hung.
func (m *Member) tick() {
	now := time.Now()
	m.updatePeer(func(p *group.Peer) bool {
		if p.Process != m.self {
			return false
		}
		p.Heartbeat = now.UnixNano()
		return true
	})
	peers, err := m.g.Peers()
	if err != nil {
		m.log.Error("read peer table", "err", err)
		return
	}
	for _, p := range peers {
		if p.Slot == m.slot {
			continue
		}
		switch {
		case p.State.Running() && p.Process.Pid > 0:
			if !m.watch.Watching(peerKey(p.Slot)) {
				m.watch.Watch(peerKey(p.Slot), p.Process)
			}
			if age := now.Sub(time.Unix(0, p.Heartbeat)); age > m.cfg.HeartbeatTimeout && p.ProcessAlive() {
				// Hung: fence it so it cannot touch the CF again, then its
				// death is handled like any other.
				m.log.Warn("peer hung, killing it", "peer", p.Name, "pid", p.Process.Pid, "heartbeat age", age.Round(time.Millisecond))
				syscall.Kill(p.Process.Pid, syscall.SIGKILL)
			}
		case p.State == group.PeerFailed, p.State == group.PeerRecovering && !procid.Alive(p.Recoverer):
			m.recoverMember(m.own, p)
		}
	}
	m.watchConnections()
}

// watchConnections watches this member's connections, and recovers
// stragglers: connections of members whose recovery has finished (one
// registered while its member was being recovered). The connections of a
// dead member not yet recovered are left to recoverMember, whose
// compare-and-swap gives them to exactly one survivor.
func (m *Member) watchConnections() {
	// Owners first, then the peer table: a member (or an application)
	// registers its owner only after its member's slot was claimed, so a
	// peer table read after the owners never shows the member of a fresh
	// owner as gone.
	owners := m.g.Admin().Owners()
	peers, err := m.g.Peers()
	if err != nil {
		return
	}
	finished := map[int]bool{} // slots whose member stopped or was recovered
	for i := 0; i < group.PeerSlots; i++ {
		finished[i] = true
	}
	for _, p := range peers {
		finished[p.Slot] = p.State == group.PeerStopped || p.State == group.PeerRecovered
	}
	for _, info := range owners {
		if !info.Registered {
			continue
		}
		slot := info.Tag.Slot()
		peer, ok := group.LabelPeer(info.Label)
		switch {
		case !ok:
		case peer == m.slot:
			if info.Tag != m.own.Tag() && !m.watch.Watching(connKey(slot)) {
				m.watch.Watch(connKey(slot), info.Process)
			}
		case finished[peer]:
			m.recoverConn(slot, true)
		}
	}
}

// recoverMember recovers a dead member's work, unless another survivor is
// doing it. Exactly one survivor wins the compare-and-swap; if it dies, the
// next tick of another one takes over (a recovering member whose recoverer
// is gone).
func (m *Member) recoverMember(o *lockfree.Owner, p group.Peer) {
	if p.State.Running() && p.ProcessAlive() {
		return
	}
	won, err := m.g.UpdatePeer(o, p.Slot, func(cur *group.Peer) bool {
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
	cpRecoverClaimed.Hit()
	t0 := time.Now()
	m.watch.Unwatch(peerKey(p.Slot))
	n := 0
	for _, info := range m.g.Admin().Owners() {
		if peer, ok := group.LabelPeer(info.Label); ok && peer == p.Slot {
			m.recoverConn(info.Tag.Slot(), true)
			cpRecoverConn.Hit()
			n++
		}
	}
	m.g.UpdatePeer(o, p.Slot, func(cur *group.Peer) bool {
		if cur.State != group.PeerRecovering || cur.Recoverer != m.self {
			return false
		}
		cur.State, cur.Process, cur.Recoverer = group.PeerRecovered, procid.ID{}, procid.ID{}
		return true
	})
	m.log.Warn("recovered a dead member", "peer", p.Name, "pid", p.Process.Pid, "connections", n, "took", time.Since(t0).Round(time.Microsecond))
}

// recoverConn finishes or undoes the work of connection slot slot in every
// structure: repaired if its process is gone, revoked (connection broken)
// if it is alive and revoke is set. The outcome of a unit of work that
// spans structures is read from the admin structure first.
func (m *Member) recoverConn(slot int, revoke bool) {
	admin := m.g.Admin()
	info, ok := admin.Owner(slot)
	if !ok {
		return
	}
	m.watch.Unwatch(connKey(slot))
	out := admin.Decision(info.Tag)
	names, err := m.g.Structures()
	if err != nil {
		m.log.Error("list structures", "err", err)
	}
	fix := func(s *lockfree.Structure, t lockfree.OwnerTag, alive bool) error {
		var err error
		if alive && revoke {
			_, err = s.Revoke(t, out)
		} else {
			_, err = s.RepairWith(t, out, false)
		}
		if errors.Is(err, lockfree.ErrNotOwner) || errors.Is(err, lockfree.ErrOwnerBusy) || errors.Is(err, lockfree.ErrOwnerAlive) {
			return nil
		}
		return err
	}
	for _, n := range names {
		s, err := m.g.Structure(n, false)
		if err != nil {
			continue
		}
		if oi, ok := s.Owner(slot); ok {
			if err := fix(s, oi.Tag, oi.Alive); err != nil {
				m.log.Error("recover connection", "slot", slot, "structure", n, "err", err)
			}
		}
	}
	if err := fix(admin, info.Tag, info.Alive); err != nil {
		m.log.Error("recover connection", "slot", slot, "structure", shm.AdminStructure, "err", err)
		return
	}
	m.log.Info("recovered a connection", "slot", slot, "pid", info.Process.Pid, "outcome", outcomeName(out), "revoked", info.Alive && revoke)
}

func outcomeName(o lockfree.Outcome) string {
	if o == lockfree.OutcomeCommit {
		return "commit"
	}
	return "backout"
}

// recoverDead recovers every member that died and was not recovered.
func (m *Member) recoverDead() {
	peers, _ := m.g.Peers()
	for _, p := range peers {
		if p.Slot != m.slot {
			m.recoverMember(m.own, p)
		}
	}
	// Connections of members that are gone (and owners nobody labelled).
	m.watchConnections()
}

// expiryScan removes expired messages, by the holder of the expiry lease.
func (m *Member) expiryScan() {
	held, err := m.g.AcquireLease(m.own, group.LeaseExpiry, m.slot, 3*m.cfg.ExpiryInterval)
	if err != nil || !held {
		return
	}
	var qs []defs.Queue
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues("*"); return err }); err != nil {
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

// shutdown is the orderly stop: no new work, connections given the grace
// period to end and then broken, units of work backed out, deregistered.
func (m *Member) shutdown() error {
	m.log.Info("stopping")
	m.updatePeer(func(p *group.Peer) bool { p.State = group.PeerStopping; return true })
	if m.cmdL != nil {
		m.cmdL.Close() // no new admin work
		os.Remove(SocketPath(m.g.Config(), m.cfg.Name))
	}
	deadline := time.Now().Add(m.cfg.StopGrace)
	for {
		left := 0
		for _, info := range m.g.Admin().Owners() {
			if peer, ok := group.LabelPeer(info.Label); ok && peer == m.slot && info.Tag != m.own.Tag() {
				if time.Now().After(deadline) || !info.Alive {
					m.recoverConn(info.Tag.Slot(), true)
				} else {
					left++
				}
			}
		}
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.g.ReleaseLease(m.own, group.LeaseExpiry, m.slot)
	m.updatePeer(func(p *group.Peer) bool {
		p.State, p.Process = group.PeerStopped, procid.ID{}
		return true
	})
	m.close()
	m.log.Info("stopped")
	return nil
}

func (m *Member) close() {
	m.mu.Lock()
	for _, o := range m.apps {
		o.Close()
	}
	m.apps = map[string]*lockfree.Owner{}
	m.mu.Unlock()
	if m.own != nil {
		m.own.Close()
	}
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

// SignalStop sends SIGTERM to the member named name (for `qmgr stop`).
func SignalStop(g *group.Group, name string) (group.Peer, error) {
	p, found, err := g.FindPeer(name)
	if err != nil {
		return p, err
	}
	if !found || !p.State.Running() || !p.ProcessAlive() {
		return p, fmt.Errorf("%w: %s is not running", ErrStopped, name)
	}
	proc, err := os.FindProcess(p.Process.Pid)
	if err != nil {
		return p, err
	}
	return p, proc.Signal(syscall.SIGTERM)
}
