package qm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/amqp/access"
	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/buildinfo"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/mqsc"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/recovery/logbuf"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/shm"
	"github.com/qmgr/qmgr/vfs"
)

// Crash points of member recovery (see package crashpoint).
var (
	cpRecoverClaimed = crashpoint.New("qm.recover.claimed")
	cpRecoverConn    = crashpoint.New("qm.recover.conn")
	// The start of a dead connection's recovery, before anything is
	// fenced (tests make it slow: a member busy elsewhere).
	cpRecoverConnStart = crashpoint.New("qm.recover.conn.start")
	// A structure's recovery, after each message put back from the logs.
	cpReplayPut = crashpoint.New("qm.recover.replay")
	// An orderly stop, before the member closes its log and its owners
	// (tests make it slow: a log that takes seconds to sync).
	cpStopClosing = crashpoint.New("qm.stop.closing")
	// The end of Start: the member is active in the CF (a stop may be
	// asked for from here on) and Start has not returned yet.
	cpStartActive = crashpoint.New("qm.start.active")
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
	// Name is the member's name (required): 1 to 48 of A-Z a-z 0-9 . _ %,
	// not starting with a dot (it also names the member's files).
	Name string
	// UnitsByHand: the member starts no replica of a recovery unit and
	// leaves starting entries alone, for replicas started by hand
	// (unit.RunWith in tests, which claim their positions themselves); it
	// still makes the death transition of a registered replica whose
	// connection is recovered.
	UnitsByHand bool
	// UnitHeartbeatTimeout is how long a replica of a recovery unit that
	// this member started may go without publishing its progress record
	// (every replica publishes it at least every poll, 100 ms, while it
	// runs) before the member counts it hung and kills it (SIGKILL); its
	// death then goes as any other. A replica that has not registered
	// counts from its start. Default 10s; at least 1s.
	UnitHeartbeatTimeout time.Duration
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
	// Version names the member's binary in its peer record (DISPLAY GROUP
	// VERSION) and its log; default the build information's
	// (buildinfo.Read().Short()). Cut to group.MaxVersionLen bytes.
	Version string
	// ChinitCommand runs the member's channel initiator (argv; the qmgr
	// binary's "chinit" command); nil for none.
	ChinitCommand []string
	// AMQP is the member's AMQP listener (amqp.go): off (the default)
	// unless it has a port.
	AMQP AMQPConfig
	// AMQPCommand runs the member's AMQP listener (argv; the qmgr binary's
	// "amqp-listener" command, with AMQP's addresses); nil for none. It
	// must be set exactly when AMQP has a port.
	AMQPCommand []string
	// LogSegmentSize is the size of the recovery log's segment files;
	// default 64 MiB (rlog.DefaultSegmentSize).
	LogSegmentSize int64
	// LogFS is the file layer of the recovery log; nil for the operating
	// system's (tests put a failing disk here).
	LogFS vfs.FS
	// LogArchiveDir, when set, receives the log segments no recovery needs
	// (in a subdirectory per member) instead of their being deleted.
	LogArchiveDir string
	// UOWWarnAge is how long a connection's unit of work may stay open
	// before the member logs it as long-running (once per unit of work);
	// default 1m; Never (or any negative duration) for never.
	UOWWarnAge time.Duration
	// UOWMaxAge is how long a connection's unit of work may stay open
	// before the member backs it out and breaks the connection (2009), as
	// MQ does with long-running units of work: an open unit of work holds
	// its messages and pins every backup's replay point, so the log cannot
	// shrink; default 10m; Never (or any negative duration) for never.
	UOWMaxAge time.Duration
	// StructureWait bounds how long a starting member waits for an
	// application structure that another live member is creating or
	// recovering (its recovery replays the logs, which takes as long as
	// they are long); default 10m. A member that gives up exits with an
	// error naming the structure and its recoverer. A structure whose
	// recoverer died is not waited for: the member recovers it.
	StructureWait time.Duration
	// LogRings and LogRingSize size the log buffer through which the
	// member's connections hand it their log records: how many
	// connections can log at once (default group.MaxConnections: every
	// connection the member can have, each with a persistent unit of work
	// open) and each one's ring (default 32 KiB; a record larger than
	// half of it travels in pieces). A buffer of another geometry left by
	// an earlier run is replaced at start.
	LogRings, LogRingSize int
}

// Never, as UOWWarnAge or UOWMaxAge, turns that check off (so does any
// negative duration).
const Never time.Duration = -1

// withDefaults is c with the defaults documented on its fields applied.
// The group's own defaults are applied by group.Open, from c.Group.
func (c Config) withDefaults() Config {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 200 * time.Millisecond
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 10 * time.Second
	}
	if c.UnitHeartbeatTimeout == 0 {
		c.UnitHeartbeatTimeout = 10 * time.Second
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = 5 * time.Second
	}
	if c.StopGrace == 0 {
		c.StopGrace = 2 * time.Second
	}
	if c.UOWWarnAge == 0 {
		c.UOWWarnAge = time.Minute
	}
	if c.UOWMaxAge == 0 {
		c.UOWMaxAge = 10 * time.Minute
	}
	if c.StructureWait == 0 {
		c.StructureWait = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Version == "" {
		c.Version = buildinfo.Read().Short()
	}
	if c.LogSegmentSize == 0 {
		c.LogSegmentSize = rlog.DefaultSegmentSize
	}
	if c.LogRings == 0 {
		c.LogRings = group.MaxConnections
	}
	if c.LogRingSize == 0 {
		c.LogRingSize = 32 << 10
	}
	c.AMQP = c.AMQP.WithDefaults()
	return c
}

// Validate checks the configuration as Start will use it (with its
// defaults applied); it changes nothing.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Group.Validate(); err != nil {
		return err
	}
	if !validMemberName(c.Name) {
		return fmt.Errorf("%w: member name %q (1 to 48 of A-Z a-z 0-9 . _ %%, not starting with a dot)", ErrConfig, c.Name)
	}
	switch {
	case c.Port < 0 || c.Port > 65535 || c.GenericPort < 0 || c.GenericPort > 65535:
		return fmt.Errorf("%w: port out of range", ErrConfig)
	case c.StructureWait < 0:
		return fmt.Errorf("%w: structure wait %v", ErrConfig, c.StructureWait)
	case c.HeartbeatInterval < 0:
		return fmt.Errorf("%w: heartbeat interval %v is negative", ErrConfig, c.HeartbeatInterval)
	case c.UnitHeartbeatTimeout < time.Second:
		return fmt.Errorf("%w: unit heartbeat timeout %v is below 1s", ErrConfig, c.UnitHeartbeatTimeout)
	case c.HeartbeatTimeout < 5*c.HeartbeatInterval:
		return fmt.Errorf("%w: heartbeat timeout %v must be at least five heartbeat intervals (%v)", ErrConfig, c.HeartbeatTimeout, c.HeartbeatInterval)
	}
	if err := rlog.CheckSegmentSize(c.LogSegmentSize); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if err := c.validateAMQP(); err != nil {
		return err
	}
	if err := logbuf.CheckGeometry(c.LogRings, c.LogRingSize); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// validMemberName reports whether s can name a member: a valid MQ object
// name (defs.ValidName) that can also name the member's log buffer file
// (shm.ValidName: no '/', no leading dot).
func validMemberName(s string) bool { return defs.ValidName(s) && shm.ValidName(s) }

// Member is a running queue manager of the group.
//
// Its goroutines: the run loop (Run: watches peers and connections, fences
// the hung, starts recoveries but never waits for one), the heartbeat
// (stores the member's heartbeat every HeartbeatInterval from the moment
// its slot is claimed until it stops, whatever else the member is doing),
// one goroutine per recovery in flight, the command server, and the expiry
// scan.
type Member struct {
	cfg  Config
	log  *slog.Logger
	g    *group.Group
	repo *defs.Repo
	self procid.ID

	// The member's child processes (child.go), supervised from when the
	// member is active.
	chinit, amqp *childService
	// units supervises the replicas of recovery units (units.go).
	units unitSupervisor
	// stragglers: live connections of finished members, and when they
	// were first seen (run loop only).
	stragglers map[lockfree.OwnerTag]time.Time
	// foreignSeen: connections of another pid namespace already reported
	// (run loop only).
	foreignSeen map[lockfree.OwnerTag]bool

	slot int    // peer slot
	inc  uint64 // incarnation

	// own is the member's owner in the admin structure, for status-slot
	// updates (peer records, leases, counters). An Owner is used by one
	// goroutine at a time: ownMu serialises its users, each of which holds
	// it only for a bounded compare-and-swap update.
	ownMu sync.Mutex
	own   *lockfree.Owner

	// cmdMu serialises admin work: commands, the expiry scan, and the use of
	// the member's owners in application structures (apps), which only
	// admin work uses. Lock order: cmdMu, then ownMu, then mu.
	cmdMu sync.Mutex
	// cmdProgress, when set, receives the progress of the command running
	// (ExecProgress): work done and the total (0: not known). Written and
	// read under cmdMu.
	cmdProgress func(done, total int64)

	mu   sync.Mutex // guards apps, cmdConns, leftFailed, retryRecover
	apps map[string]*lockfree.Owner
	// leftFailed: structures found failed with RECAUTO(NO): not created
	// again until RECOVER CFSTRUCT.
	leftFailed map[string]bool
	// retryRecover: structures whose automatic recovery failed, and when
	// checkStructures tries again (under mu).
	retryRecover map[string]time.Time
	cmdL         net.Listener
	cmdConns     map[net.Conn]struct{}
	stopping     atomic.Bool // set once by shutdown; commands are refused from then on

	watch *procid.Watcher

	// The recovery log, and the consumer of the buffer through which
	// connections hand it records (log.go); set by Start, closed last by
	// shutdown.
	rlog  *rlog.Log
	lcons *logbuf.Consumer
	// The run loop's own: what it watches, and the heartbeats it last saw.
	peerW     map[int]peerKey
	connW     map[int]connKey
	seen      map[int]hbSeen
	lastTick  time.Time
	ticks     int
	scanning  atomic.Bool // an expiry scan is running
	backingUp atomic.Bool // the automatic backup check is running
	released  string      // the newest backups the log was last released against (releaseLogs)

	// Long-running units of work (uow.go): when the run loop first saw
	// each open, the connections already logged as having one (run loop
	// only), and how many were backed out.
	longUOWs      map[uowKey]time.Time
	longWarned    map[lockfree.OwnerTag]bool
	longBackedOut atomic.Int64
	// cmdTrust says who may use the command socket (cmdsock.go);
	// cmdRefused counts the connections refused (DISPLAY QMGR CMDREFUSED).
	cmdTrust   Trust
	cmdRefused atomic.Int64

	// stats: what the member counted (stats.go); logForStats: its log,
	// set once by startLog and kept after the log is closed (whose Stats
	// still answer), for Stats, which any goroutine may call.
	stats       *memberStats
	logForStats atomic.Pointer[rlog.Log]
	// recorded: the recoveries of dead members this member performed
	// (PeerRecoveries).
	recorded recoveryLog
	// closed is set once, under closeMu held to write, when the member
	// releases its group and definitions (close, or a stop that leaves
	// recoveries to the peers); Observe reads it under closeMu held to
	// read, so an outside reader never touches an unmapped structure.
	closeMu sync.RWMutex
	closed  bool

	// Recoveries in flight, by what they recover (at most one each).
	busyMu sync.Mutex
	busy   map[string]bool

	hbStop, hbDone chan struct{}
	stop, done     chan struct{}
	once           sync.Once
}

// Start brings a member up: it claims its peer slot, recovers whatever dead
// members left behind, and becomes active. Run then serves until Stop.
func Start(cfg Config) (*Member, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, log: cfg.Logger.With("qmgr", cfg.Name), self: procid.Self(), apps: map[string]*lockfree.Owner{}, leftFailed: map[string]bool{}, retryRecover: map[string]time.Time{},
		cmdConns: map[net.Conn]struct{}{}, peerW: map[int]peerKey{}, connW: map[int]connKey{}, seen: map[int]hbSeen{}, foreignSeen: map[lockfree.OwnerTag]bool{},
		busy: map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{}), stats: newMemberStats()}
	m.units.kick = make(chan struct{}, 1)
	m.chinit = newChildService("channel initiator", cfg.ChinitCommand, m.log, m.stopping.Load)
	m.amqp = newChildService("AMQP listener", cfg.AMQPCommand, m.log, m.stopping.Load)
	bi := buildinfo.Read()
	// An in-service rebuild of a data set's space map by this process
	// waits as long for a stopped application as a recovery does
	// (fence.go).
	mq.SetDataSetStallLimit(cfg.HeartbeatTimeout)
	m.log.Info("member starting", "event", "member_starting", "version", cfg.Version, "go", bi.Go, "revision", bi.Revision, "modified", bi.Modified, "pid", m.self.Pid)
	var err error
	if m.g, err = group.Open(cfg.Group, true); err != nil {
		return nil, err
	}
	fail := func(err error) (*Member, error) {
		m.stopHeartbeat()
		if m.inc > 0 {
			// Give the slot back: nothing was served yet.
			m.updatePeer(func(p *group.Peer) bool {
				if p.Process != m.self {
					return false
				}
				p.State, p.Process = group.PeerStopped, procid.ID{}
				return true
			})
		}
		m.close()
		return nil, err
	}
	if m.repo, err = defs.Open(m.g.Config().DataDir, true); err != nil {
		return fail(err)
	}
	if m.watch, err = procid.NewWatcher(); err != nil {
		return fail(err)
	}
	if err := m.checkPidNamespace(); err != nil {
		return fail(err)
	}
	// A short-lived owner claims the peer slot (and recovers a previous
	// incarnation); the member's own owner is then labelled with the slot
	// and incarnation it got.
	tmp, err := m.g.Admin().Register()
	if err != nil {
		return fail(err)
	}
	m.own = tmp
	slot, err := m.claimSlot()
	if err == nil {
		m.slot = slot
		var own *lockfree.Owner
		if own, err = m.g.Admin().RegisterLabel(group.ConnLabel(slot, m.inc)); err == nil {
			m.ownMu.Lock()
			m.own = own
			m.ownMu.Unlock()
		}
	}
	tmp.Close()
	if m.own == tmp {
		m.own = nil
	}
	if err != nil {
		return fail(err)
	}
	// From here on the heartbeat runs, whatever Start still has to do.
	m.hbStop, m.hbDone = make(chan struct{}), make(chan struct{})
	go m.heartbeat()
	if err := m.startLog(); err != nil {
		return fail(err)
	}
	// Every defined structure in service: created and recovered from the
	// logs if its file is missing (an empty CF directory), recovered again
	// if it failed or its recoverer died, waited for while another member
	// recovers it.
	m.cmdMu.Lock()
	err = m.ensureDefaults()
	m.cmdMu.Unlock()
	if err != nil {
		return fail(err)
	}
	// Start alone or not, first recover whatever dead members left behind.
	m.recoverDead()
	m.cmdMu.Lock()
	err = m.reconcileQueues("")
	if err == nil {
		err = m.ensureSystemQueues()
	}
	m.cmdMu.Unlock()
	if err != nil {
		return fail(err)
	}
	// The command socket exists before the member says it is active, so
	// whoever sees it active can send it commands (they wait in the
	// listen queue until it serves them).
	if m.cmdL, err = m.openCommands(); err != nil {
		return fail(err)
	}
	if _, err := m.updatePeer(func(p *group.Peer) bool {
		if p.Process != m.self {
			return false
		}
		p.State, p.Heartbeat = group.PeerActive, time.Now().UnixNano()
		return true
	}); err != nil {
		m.cmdL.Close()
		return fail(err)
	}
	go m.serveCommands(m.cmdL)
	m.chinit.run()
	m.amqp.run()
	m.log.Info("member active", "event", "member_active", "group", m.g.Config().Name, "slot", slot, "incarnation", m.inc, "pid", m.self.Pid,
		"version", m.cfg.Version, "cf", m.g.Config().CFDir, "data", m.g.Config().DataDir)
	cpStartActive.Hit()
	return m, nil
}

// Name is the member's name; Group its group.
func (m *Member) Name() string         { return m.cfg.Name }
func (m *Member) Group() *group.Group  { return m.g }
func (m *Member) Repo() *defs.Repo     { return m.repo }
func (m *Member) Logger() *slog.Logger { return m.log }

// withOwn runs f with the member's admin owner (see ownMu).
func (m *Member) withOwn(f func(o *lockfree.Owner) error) error {
	m.ownMu.Lock()
	defer m.ownMu.Unlock()
	if m.own == nil {
		return ErrStopped
	}
	return f(m.own)
}

// updatePeer changes the member's own peer record.
func (m *Member) updatePeer(f func(p *group.Peer) bool) (bool, error) {
	return m.updatePeerSlot(m.slot, f)
}

// updatePeerSlot changes peer record slot.
func (m *Member) updatePeerSlot(slot int, f func(p *group.Peer) bool) (changed bool, err error) {
	err = m.withOwn(func(o *lockfree.Owner) error {
		changed, err = m.g.UpdatePeer(o, slot, f)
		return err
	})
	return changed, err
}

// heartbeat stores the member's heartbeat until stopHeartbeat. It runs on
// its own so that nothing the member waits for (a recovery, a command)
// delays it: a member whose heartbeat stops is taken for hung and killed.
func (m *Member) heartbeat() {
	defer close(m.hbDone)
	t := time.NewTicker(m.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-m.hbStop:
			return
		case <-t.C:
		}
		m.updatePeer(func(p *group.Peer) bool {
			if p.Process != m.self {
				return false
			}
			p.Heartbeat = time.Now().UnixNano()
			return true
		})
	}
}

func (m *Member) stopHeartbeat() {
	if m.hbStop != nil {
		close(m.hbStop)
		<-m.hbDone
		m.hbStop = nil
	}
}

// claimSlot takes the member's peer slot: its old one (a previous
// incarnation that stopped or died) or a free one.
func (m *Member) claimSlot() (int, error) {
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
			m.recoverMember(p)
			continue
		}
		slot := p.Slot
		if !found {
			if slot = m.freeSlot(); slot < 0 {
				return 0, fmt.Errorf("%w: all %d member slots of group %s are in use", group.ErrNoPeerSlot, group.PeerSlots, m.g.Config().Name)
			}
		}
		ok, err := m.updatePeerSlot(slot, func(cur *group.Peer) bool {
			if cur.State != group.PeerEmpty && (cur.Name != m.cfg.Name || cur.State.Running() || cur.State == group.PeerRecovering) {
				return false
			}
			*cur = group.Peer{Slot: slot, Name: m.cfg.Name, State: group.PeerStarting, Process: m.self,
				Incarnation: cur.Incarnation + 1, Heartbeat: time.Now().UnixNano(), Started: time.Now().UnixNano(),
				Port: m.cfg.Port, GenericPort: m.cfg.GenericPort, PidNS: procid.SelfNS(), Version: m.cfg.Version}
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
				m.updatePeerSlot(slot, func(cur *group.Peer) bool { *cur = group.Peer{}; return true })
				return 0, fmt.Errorf("%w: %s is process %d", ErrRunning, m.cfg.Name, q.Process.Pid)
			}
		}
		p, _ = m.g.Peer(slot)
		m.inc = p.Incarnation
		return slot, nil
	}
	return 0, fmt.Errorf("qm: could not claim a member slot for %s within 30s (is a survivor still recovering its previous incarnation?)", m.cfg.Name)
}

// checkPidNamespace refuses to start beside a live member of another pid
// namespace (group.CheckPidNS): this member could not tell whether it
// lives, would take it for dead and recover its work from under it. It
// runs before the member registers anything. A record of another
// namespace whose heartbeat does not move for HeartbeatTimeout is stale
// (its member died there: a container that restarted) and is recovered
// like any dead member's.
func (m *Member) checkPidNamespace() error {
	peers, err := m.g.Peers()
	if err != nil {
		return err
	}
	var foreign []group.Peer
	for _, p := range peers {
		if (p.State.Running() || p.State == group.PeerRecovering) && group.CheckPidNS(p) != nil {
			foreign = append(foreign, p)
		}
	}
	deadline := time.Now().Add(m.cfg.HeartbeatTimeout)
	for len(foreign) > 0 {
		for _, p := range foreign {
			cur, err := m.g.Peer(p.Slot)
			if err == nil && cur.Incarnation == p.Incarnation && (cur.Heartbeat != p.Heartbeat || cur.State != p.State) {
				return group.CheckPidNS(cur) // it lives
			}
		}
		if time.Now().After(deadline) {
			for _, p := range foreign {
				m.log.Warn("record of a member of another pid namespace whose heartbeat stopped: taken for dead", "peer", p.Name, "pid", p.Process.Pid, "pid_namespace", p.PidNS)
			}
			return nil
		}
		time.Sleep(m.cfg.HeartbeatInterval)
	}
	return nil
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

// ensureSystemQueues defines the group's system queues the first time: the
// shared channel sync queue.
func (m *Member) ensureSystemQueues() error {
	exists := false
	m.repo.View(func(tx *defs.Tx) error {
		_, err := tx.Queue(channel.SyncQueue)
		exists = err == nil
		return nil
	})
	if exists {
		return nil
	}
	deadline := time.Now().Add(m.cfg.StructureWait)
	for {
		_, err := mqsc.Run(m, "DEFINE QLOCAL("+channel.SyncQueue+") INDXTYPE(CORRELID) MAXDEPTH(999999999) DESCR('shared channel sync queue') NOREPLACE")
		if err == nil || errors.Is(err, mqsc.ErrExists) {
			return nil
		}
		if !transientStructureErr(err) || time.Now().After(deadline) {
			return fmt.Errorf("define %s: %w", channel.SyncQueue, err)
		}
		// Its structure failed or is being recovered since ensureDefaults
		// made it ready: ready again, then define.
		if err := m.readyAll(deadline); err != nil {
			return fmt.Errorf("define %s: %w", channel.SyncQueue, err)
		}
	}
}

// transientStructureErr reports whether err is a structure out of
// service for the moment (failed, being recovered, or its file being
// replaced), which a recovery ends.
func transientStructureErr(err error) bool {
	return errors.Is(err, lockfree.ErrStructureFailed) || errors.Is(err, group.ErrStructureBusy) ||
		errors.Is(err, shm.ErrNotFound) || errors.Is(err, shm.ErrFault) || errors.Is(err, shm.ErrTruncated)
}

// ensureDefaults defines the default application structure the first time
// the group starts, and the default AMQP user guest the first time a
// member of this version starts (never again: an administrator may delete
// it), and makes every defined structure ready (readyAll).
func (m *Member) ensureDefaults() error {
	err := m.repo.Update(func(tx *defs.Tx) error {
		if _, err := tx.Struct(shm.DefaultApplicationStructure); errors.Is(err, defs.ErrNotFound) {
			def := defs.CFStruct{Name: shm.DefaultApplicationStructure, SizeMB: int(m.g.Config().AppSize >> 20), Descr: "default application structure"}
			if _, err := tx.Save(defs.TypeCFStruct, def.Name, def, defs.Create); err != nil {
				return err
			}
		}
		made, err := tx.EnsureGuest(func() (string, error) { return access.GuestHash, nil })
		if made {
			m.log.Info("default AMQP user created: guest, password guest, from loopback addresses only; delete it or SET AMQPUSER('guest') PASSWORD(...) to change it")
		}
		return err
	})
	if err != nil {
		return err
	}
	return m.readyAll(time.Now().Add(m.cfg.StructureWait))
}

// readyAll makes every defined structure ready (readyStructure).
func (m *Member) readyAll(deadline time.Time) error {
	var structs []defs.CFStruct
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; structs, err = tx.Structs("*"); return err }); err != nil {
		return err
	}
	for _, c := range structs {
		if _, err := m.readyStructure(c, deadline); err != nil {
			return err
		}
	}
	return nil
}

// structure attaches application structure c and registers the member's
// owner in it. With create, a structure whose file is missing is created
// and recovered from the logs (createStructure) unless another member is
// doing that now (group.ErrStructureBusy). It does not wait for a
// structure out of service to come back: readyStructure does. Callers
// hold cmdMu.
func (m *Member) structure(c defs.CFStruct, create bool) (*lockfree.Structure, error) {
	s, err := m.attachStructure(c, create)
	if err != nil {
		return nil, err
	}
	if _, err := m.registerIn(c.Name, s); err != nil {
		return nil, err
	}
	return s, nil
}

// attachStructure is structure without the registration of the member's
// owner (but for a structure it creates: it fills it through that owner).
func (m *Member) attachStructure(c defs.CFStruct, create bool) (*lockfree.Structure, error) {
	failed := fmt.Errorf("structure %s failed (RECAUTO(NO): RECOVER CFSTRUCT(%s) recovers it): %w: %w", c.Name, c.Name, ErrLeftFailed, lockfree.ErrStructureFailed)
	if c.NoRecAuto && m.leftFailedNow(c.Name) {
		return nil, failed
	}
	s, err := m.g.StructureSized(c.Name, false, 0)
	if create && errors.Is(err, shm.ErrNotFound) {
		return m.createStructure(c)
	}
	return s, err
}

// registerIn returns the member's owner in structure s (named name),
// registering it under the member's admin slot the first time.
func (m *Member) registerIn(name string, s *lockfree.Structure) (*lockfree.Owner, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.apps[name]; ok && o.Structure() != s {
		delete(m.apps, name) // an owner in a failed structure's old mapping
	}
	if o, ok := m.apps[name]; ok {
		return o, nil
	}
	o, err := s.RegisterSlotLabel(m.own.Tag().Slot(), m.own.Label())
	if err != nil {
		return nil, fmt.Errorf("member slot %d in structure %s: %w", m.own.Tag().Slot(), name, err)
	}
	m.apps[name] = o
	return o, nil
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
// Only the queues of structure only when it is not "" (a recovery: it
// must not touch another structure, whose recovery lock another member may
// hold).
func (m *Member) reconcileQueues(only string) error {
	var qs []defs.Queue
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; qs, err = tx.Queues("*"); return err }); err != nil {
		return err
	}
	for _, q := range qs {
		if only != "" && q.CFStruct != only {
			continue
		}
		o, s, err := m.ownerIn(q.CFStruct)
		if errors.Is(err, ErrLeftFailed) {
			continue // RECOVER CFSTRUCT makes its queues
		}
		if err != nil {
			return fmt.Errorf("queue %s: %w", q.Name, err)
		}
		if _, err := s.LookupQueue(q.Name); err == nil {
			continue
		}
		if !s.InService() && !o.Recoverer() {
			continue // another member is recovering it: it creates the queues
		}
		if _, err := o.CreateQueue(q.Name, mqsc.CFAttrs(q)); err != nil && !errors.Is(err, lockfree.ErrQueueExists) {
			return fmt.Errorf("queue %s: %w", q.Name, err)
		}
		m.log.Info("created missing queue in the CF", "queue", q.Name, "structure", q.CFStruct)
	}
	return nil
}

// SignalStop sends SIGTERM to the member named name (for `qmgr stop`),
// through a pidfd of the process its peer record names (procid.Signal): a
// member that ended meanwhile is not running, and whatever process has its
// pid since is left alone.
func SignalStop(g *group.Group, name string) (group.Peer, error) {
	p, found, err := g.FindPeer(name)
	if err != nil {
		return p, err
	}
	if !found || !p.State.Running() {
		return p, fmt.Errorf("%w: %s is not running", ErrStopped, name)
	}
	if err := procid.Signal(p.Process, syscall.SIGTERM); err != nil {
		if errors.Is(err, procid.ErrGone) {
			return p, fmt.Errorf("%w: %s is not running (its process %d ended)", ErrStopped, name, p.Process.Pid)
		}
		return p, err
	}
	return p, nil
}
