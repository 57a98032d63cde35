package channel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/internal/reuseport"
	"github.com/qmgr/qmgr/mq"
)

// Config configures a channel initiator.
type Config struct {
	Group group.Config
	// QMgr is the member the channel initiator belongs to (required).
	QMgr string
	// Port is the member's own inbound port (its local portal); 0 for none.
	Port int
	// GenericPort is the port every member of the group listens on
	// (SO_REUSEPORT: the generic portal); 0 for none.
	GenericPort int
	// Inbound is where both ports listen and what they admit.
	Inbound Inbound
	// PollInterval is how often the status table is scanned for channels to
	// start (requested, retrying, triggered, or left by a dead instance);
	// default 10ms.
	PollInterval time.Duration
	// SpinWait is how long a channel's read waits on its socket, spinning
	// (reading without blocking), before it parks the goroutine: while
	// messages flow, the wait for the next batch or CONFIRM is tens of
	// microseconds, and parking and waking cost more than that (see
	// spinConn). A channel spins only while its recent waits were this
	// short, so an idle or slow channel costs nothing. Default
	// DefaultSpinWait; NoSpin (or any negative duration): never spin.
	SpinWait time.Duration
	// MaxHeartbeat caps the heartbeat interval a channel agrees (the larger
	// of the two sides' HBINT, as with MQ), so that a silent partner is
	// noticed: a receiver ends an instance whose partner sent nothing for
	// twice the agreed interval plus SilenceGrace, backing out its batch.
	// Whole seconds, 1s to 999999s; default DefaultMaxHeartbeat.
	MaxHeartbeat time.Duration
	// SilenceGrace is what a partner's silence may last beyond twice the
	// heartbeat interval (scheduling, a slow network); default
	// DefaultSilenceGrace, at most an hour.
	SilenceGrace time.Duration
	// WriteFigures: the initiator writes its per channel figures for its
	// member's metrics to stats/chinit-<member>.json in the group's data
	// directory every second (package channel/chanstats), and removes the
	// file when it stops. Default false (qmgr chinit sets it).
	WriteFigures bool
	// Logger receives the log; default slog.Default().
	Logger *slog.Logger
}

// NoSpin, as Config.SpinWait, has a channel's reads park at once (0 is
// the default, DefaultSpinWait).
const NoSpin time.Duration = -1

// Defaults of Config.
const (
	DefaultSpinWait     = 100 * time.Microsecond
	DefaultMaxHeartbeat = 300 * time.Second // MQ's default HBINT
	DefaultSilenceGrace = time.Minute
)

// withDefaults is c with the defaults documented on its fields applied.
// The group's own defaults are applied when Run attaches it (Run then
// uses the attached group's configuration).
func (c Config) withDefaults() Config {
	c.Inbound = c.Inbound.withDefaults()
	if c.PollInterval == 0 {
		c.PollInterval = 10 * time.Millisecond
	}
	if c.SpinWait == 0 {
		c.SpinWait = DefaultSpinWait
	}
	if c.MaxHeartbeat == 0 {
		c.MaxHeartbeat = DefaultMaxHeartbeat
	}
	if c.SilenceGrace == 0 {
		c.SilenceGrace = DefaultSilenceGrace
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration as Run will use it (with its defaults
// applied); it changes nothing.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Group.Validate(); err != nil {
		return err
	}
	if !defs.ValidName(c.QMgr) {
		return fmt.Errorf("%w: member name %q", ErrConfig, c.QMgr)
	}
	if c.Port < 0 || c.Port > 65535 || c.GenericPort < 0 || c.GenericPort > 65535 {
		return fmt.Errorf("%w: port out of range", ErrConfig)
	}
	if err := c.Inbound.Validate(); err != nil {
		return err
	}
	switch {
	case c.PollInterval < time.Millisecond || c.PollInterval > time.Minute:
		return fmt.Errorf("%w: poll interval %v not in 1ms..1m", ErrConfig, c.PollInterval)
	case c.SpinWait > 10*time.Millisecond:
		return fmt.Errorf("%w: spin wait %v over 10ms", ErrConfig, c.SpinWait)
	case c.MaxHeartbeat < time.Second || c.MaxHeartbeat > 999_999*time.Second || c.MaxHeartbeat%time.Second != 0:
		return fmt.Errorf("%w: maximum heartbeat interval %v not whole seconds in 1s..999999s", ErrConfig, c.MaxHeartbeat)
	case c.SilenceGrace < 0 || c.SilenceGrace > time.Hour:
		return fmt.Errorf("%w: silence grace %v not in 0..1h", ErrConfig, c.SilenceGrace)
	}
	return nil
}

// ErrConfig is returned for an invalid configuration.
var ErrConfig = errors.New("channel: invalid configuration")

// OnStop says what becomes of the shared channels a stopping channel
// initiator runs (STOP CHINIT SHARED(...)).
type OnStop int

const (
	// Restart leaves them to be started at once by another member.
	Restart OnStop = iota
	// Stop leaves them stopped.
	Stop
)

// Chinit is a channel initiator: it runs sender channels and accepts
// receiver channels for one member.
type Chinit struct {
	cfg   Config
	log   *slog.Logger
	g     *group.Group
	table *Table

	mu   sync.Mutex // main and the status table's compare-and-swap
	main *mq.Conn

	agentsMu sync.Mutex
	agents   map[string]*agent // by channel name
	seen     map[string]time.Time

	defsMu  sync.Mutex
	defsVer uint64
	chans   map[string]defs.Channel
	queues  map[string]defs.Queue

	refused refusals // inbound connections refused before their HELLO
	counts  counters // per channel figures (chanstats)

	ctx    context.Context
	cancel context.CancelFunc
	onStop OnStop
	wg     sync.WaitGroup

	// refusals counts inbound connections refused before their partner
	// authenticated (see refused).
	refusals atomic.Uint64
}

// agent is one running channel instance.
type agent struct {
	name   string
	cancel context.CancelFunc
	conn   *mq.Conn
}

// Run runs a channel initiator until ctx ends (then its channels are left
// per onStop()) or its connection to the member breaks (the member died:
// the survivors take its channels over).
func Run(ctx context.Context, cfg Config, onStop func() OnStop) error {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	main, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: cfg.QMgr, DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		return fmt.Errorf("channel initiator: %w", err)
	}
	g := mqconn.Of(main).Group
	cfg.Group = g.Config() // with the group's defaults: its name goes in HELLO
	ci := &Chinit{cfg: cfg, log: cfg.Logger.With("chinit", cfg.QMgr), g: g, main: main,
		agents: map[string]*agent{}, seen: map[string]time.Time{}}
	ci.table = NewTable(ci.g)
	ci.ctx, ci.cancel = context.WithCancel(context.Background())
	defer main.Disconnect()
	if cfg.WriteFigures {
		defer ci.writeFigures(context.Background())()
	}
	// Map the application structures now: mapping one populates its page
	// tables, which takes a while for a large one, and a channel instance
	// taking over from a dead member must not wait for it.
	if _, err := ci.g.Structures(); err != nil {
		ci.log.Warn("attach the application structures", "err", err)
	}
	var ls []net.Listener
	for _, p := range []struct {
		port  int
		reuse bool
	}{{cfg.Port, false}, {cfg.GenericPort, true}} {
		if p.port == 0 {
			continue
		}
		l, err := reuseport.Listen(cfg.Inbound.Bind, p.port, p.reuse)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return fmt.Errorf("channel initiator: listen on port %d: %w", p.port, err)
		}
		ls = append(ls, l)
		ci.wg.Add(1)
		go ci.accept(l)
	}
	ci.log.Info("channel initiator started", "port", cfg.Port, "generic_port", cfg.GenericPort, "bind", cfg.Inbound.Bind,
		"max_inbound", cfg.Inbound.MaxConns, "hello_timeout", cfg.Inbound.HelloTimeout)
	t := time.NewTicker(cfg.PollInterval)
	defer t.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			if err := ci.poll(); err != nil {
				if mq.ReasonOf(err) == mq.RCConnectionBroken {
					runErr = fmt.Errorf("channel initiator: connection to %s broken: %w", cfg.QMgr, err)
					break loop
				}
				ci.log.Warn("status table scan", "err", err)
			}
		}
	}
	if onStop != nil {
		ci.onStop = onStop()
	}
	for _, l := range ls {
		l.Close()
	}
	ci.cancel()
	ci.wg.Wait()
	ci.log.Info("channel initiator stopped")
	return runErr
}

// update changes a channel's status entry with the channel initiator's
// admin owner.
func (ci *Chinit) update(name string, f func(st *Status, exists bool) bool) (Status, bool, error) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return ci.table.Update(mqconn.Of(ci.main).Admin, name, f)
}

// refreshDefs reloads channel and queue definitions when they changed.
func (ci *Chinit) refreshDefs() error {
	v, err := ci.g.Counter(group.CounterDefs)
	if err != nil {
		return err
	}
	ci.defsMu.Lock()
	defer ci.defsMu.Unlock()
	if ci.chans != nil && v == ci.defsVer {
		return nil
	}
	chans, queues := map[string]defs.Channel{}, map[string]defs.Queue{}
	err = mqconn.Of(ci.main).Defs.View(func(tx *defs.Tx) error {
		cs, err := tx.Channels("*")
		for _, c := range cs {
			chans[c.Name] = c
		}
		if err != nil {
			return err
		}
		qs, err := tx.Queues("*")
		for _, q := range qs {
			queues[q.Name] = q
		}
		return err
	})
	if err != nil {
		return err
	}
	ci.chans, ci.queues, ci.defsVer = chans, queues, v
	return nil
}

func (ci *Chinit) channelDef(name string) (defs.Channel, bool) {
	ci.defsMu.Lock()
	defer ci.defsMu.Unlock()
	c, ok := ci.chans[name]
	return c, ok
}

func (ci *Chinit) running() int {
	ci.agentsMu.Lock()
	defer ci.agentsMu.Unlock()
	return len(ci.agents)
}

// poll scans the status table and the triggered transmission queues for
// sender channels to start, and clears the entries of receivers whose
// instance is gone (so the remote sender can reconnect anywhere).
func (ci *Chinit) poll() error {
	if err := ci.main.Ping(); err != nil {
		return err
	}
	if err := ci.refreshDefs(); err != nil {
		return err
	}
	all, err := ci.table.Poll()
	if err != nil {
		return err
	}
	now := time.Now()
	want := map[string]bool{}
	for _, st := range all {
		if ci.table.Locked(st) {
			continue
		}
		switch {
		case st.Type == defs.ChlReceiver && (st.State == Running || st.State == Starting || st.State == Stopping):
			// Its instance died and was recovered: delete it (inactive).
			ci.update(st.Name, func(cur *Status, _ bool) bool {
				if ci.table.Locked(*cur) || cur.State == Inactive || cur.State == Stopped || cur.Type != defs.ChlReceiver {
					return false
				}
				cur.State = Inactive
				cur.Unlock()
				return true
			})
		case st.Type != defs.ChlSender:
		case st.State == Starting, st.State == Running, st.State == Stopping:
			want[st.Name] = true // requested, or its instance died: recover it
		case st.State == Retrying && !now.Before(st.RetryAt):
			want[st.Name] = true
		}
	}
	// Triggers: a transmission queue with TRIGGER and messages, whose
	// channel does not run.
	ci.defsMu.Lock()
	for _, q := range ci.queues {
		if !q.Trigger || q.Usage != "XMITQ" {
			continue
		}
		name := q.TrigData
		if name == "" {
			for _, c := range ci.chans {
				if c.Type == defs.ChlSender && c.XmitQ == q.Name {
					name = c.Name
					break
				}
			}
		}
		if c, ok := ci.chans[name]; !ok || c.Type != defs.ChlSender || want[name] {
			continue
		}
		if st, ok, _ := ci.table.Find(name); ok && st.State != Inactive {
			continue
		}
		if s, err := ci.g.Structure(q.CFStruct, false); err == nil {
			if id, err := s.LookupQueue(q.Name); err == nil && s.Depth(id) > 0 {
				want[name] = true
			}
		}
	}
	ci.defsMu.Unlock()
	// The least busy channel initiator claims first: each waits a little
	// longer per channel it runs.
	delay := time.Duration(ci.running()) * 2 * time.Millisecond
	for name := range want {
		first, ok := ci.seen[name]
		if !ok {
			ci.seen[name] = now
			first = now
		}
		if now.Sub(first) < delay {
			continue
		}
		ci.startSender(name)
	}
	for name := range ci.seen {
		if !want[name] {
			delete(ci.seen, name)
		}
	}
	return nil
}

// startSender claims sender channel name and runs it, unless it runs or
// cannot start.
func (ci *Chinit) startSender(name string) {
	def, ok := ci.channelDef(name)
	if !ok || def.Type != defs.ChlSender {
		return
	}
	ci.agentsMu.Lock()
	_, busy := ci.agents[name]
	ci.agentsMu.Unlock()
	if busy {
		return
	}
	conn, err := ci.connect()
	if err != nil {
		ci.log.Warn("connect for a channel", "channel", name, "err", err)
		return
	}
	now := time.Now()
	var prev Status // the entry as the claim found it
	st, won, err := ci.update(name, func(st *Status, exists bool) bool {
		prev = *st
		if ci.table.Locked(*st) {
			return false
		}
		switch st.State {
		case Starting, Running, Stopping:
		case Retrying:
			if now.Before(st.RetryAt) {
				return false
			}
		case Inactive: // a trigger
		default:
			return false
		}
		st.Type, st.State, st.StopReq, st.Force = def.Type, Starting, false, false
		st.lockFor(conn)
		st.XmitQ = def.XmitQ
		return true
	})
	if err != nil || !won {
		conn.Disconnect()
		return
	}
	if prev.Conn != 0 && (prev.State == Starting || prev.State == Running || prev.State == Stopping) {
		// Its instance's connection is gone (recovered): a member or
		// channel initiator died while running it. (START CHANNEL, and
		// an initiator stopping that leaves the channel to the others,
		// leave it STARTING with no lock: no instance died.)
		ci.log.Warn("channel taken over from a dead instance", "event", "channel_takeover", "channel", name, "from", ci.peerName(prev.Owner),
			"previous_state", prev.State.String(), "in_doubt_batch", prev.InDoubt, "last_batch", prev.LastBatch,
			"since_last_update", now.Sub(prev.Updated).Round(time.Millisecond))
		ci.counts.of(name).takeovers.Add(1)
	}
	ctx, cancel := context.WithCancel(ci.ctx)
	a := &agent{name: name, cancel: cancel, conn: conn}
	ci.agentsMu.Lock()
	ci.agents[name] = a
	ci.agentsMu.Unlock()
	ci.wg.Add(1)
	go func() {
		defer ci.wg.Done()
		defer func() {
			ci.agentsMu.Lock()
			delete(ci.agents, name)
			ci.agentsMu.Unlock()
			conn.Disconnect()
		}()
		s := &sender{ci: ci, def: def, conn: conn, ctx: ctx, st: st, counts: ci.counts.of(name)}
		s.run()
	}()
}

// maxHBInt is the longest heartbeat interval a channel agrees, s.
func (ci *Chinit) maxHBInt() uint32 { return uint32(ci.cfg.MaxHeartbeat / time.Second) }

// connect is a connection for one channel instance: a sibling of the
// main one (same member, structures mapped once).
func (ci *Chinit) connect() (*mq.Conn, error) {
	ci.mu.Lock()
	defer ci.mu.Unlock()
	return ci.main.Sibling()
}
