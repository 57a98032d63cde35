package qsg

import (
	"errors"
	"fmt"
	"log/slog"

	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/procid"
)

// ErrConfig: a Config that Validate refuses.
var ErrConfig = errors.New("qsg: invalid configuration")

// Config says which group and member the broker works through.
type Config struct {
	// Connect names the group, its directories and the member (QMgr) whose
	// clients this broker serves. QMgr is required.
	Connect mq.ConnectOptions
	// Log receives connection and error events (default slog.Default()).
	Log *slog.Logger
	// FlowInterval is how often the use of the queues' structures is
	// looked at for flow control (default 250ms).
	FlowInterval time.Duration
	// MaxConns bounds the group connections (of group.MaxConnections for
	// the whole group) this broker's AMQP clients hold at once: an AMQP
	// connection's channels that publish or get share one, and each
	// transactional channel and each consumer holds one (default 256).
	MaxConns int
	// MaxConnsPerConnection bounds those one AMQP connection holds
	// (default 128). Over either bound, the AMQP connection is closed with
	// RESOURCE_ERROR.
	MaxConnsPerConnection int
	// ReapInterval is how often exclusive queues of gone connections and
	// expired queues (x-expires) are looked for (default 1s).
	ReapInterval time.Duration
	// HighWater is the use of a structure's entries or elements (0..1) at
	// which publishers are blocked (default 0.8); LowWater the use under
	// which they are unblocked again (default 0.7).
	HighWater, LowWater float64
}

// Defaults of Config.
const (
	DefaultFlowInterval          = 250 * time.Millisecond
	DefaultReapInterval          = time.Second
	DefaultMaxConns              = 256
	DefaultMaxConnsPerConnection = 128
	DefaultHighWater             = 0.8
	DefaultLowWater              = 0.7
)

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.FlowInterval == 0 {
		c.FlowInterval = DefaultFlowInterval
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerConnection == 0 {
		c.MaxConnsPerConnection = DefaultMaxConnsPerConnection
	}
	if c.ReapInterval == 0 {
		c.ReapInterval = DefaultReapInterval
	}
	if c.HighWater == 0 {
		c.HighWater = DefaultHighWater
	}
	if c.LowWater == 0 {
		c.LowWater = DefaultLowWater
	}
	return c
}

// Validate checks c (after WithDefaults).
func (c Config) Validate() error {
	switch {
	case c.Connect.QMgr == "":
		return fmt.Errorf("%w: the member to serve through is required", ErrConfig)
	case c.MaxConns < 1 || c.MaxConns > group.MaxConnections || c.MaxConnsPerConnection < 1:
		return fmt.Errorf("%w: MaxConns %d (1 to %d), MaxConnsPerConnection %d", ErrConfig, c.MaxConns, group.MaxConnections, c.MaxConnsPerConnection)
	case c.FlowInterval < 0 || c.ReapInterval < 0:
		return fmt.Errorf("%w: FlowInterval %v, ReapInterval %v", ErrConfig, c.FlowInterval, c.ReapInterval)
	case !(c.LowWater > 0 && c.LowWater < c.HighWater && c.HighWater <= 1):
		return fmt.Errorf("%w: water marks %v (low) and %v (high): want 0 < low < high <= 1", ErrConfig, c.LowWater, c.HighWater)
	}
	return nil
}

// Broker is the group's AMQP broker for one member's listener.
type Broker struct {
	cfg  Config
	root *mq.Conn // the broker's own connection: channels' connections are its siblings
	// parts are root's group handle, admin owner and definitions; the admin
	// owner and OwnerIn are used only under adminMu.
	parts   mqconn.Parts
	adminMu sync.Mutex
	siblMu  sync.Mutex // root.Sibling is not safe for concurrent use
	routes  routes
	// consumers are the broker's consumers by queue.
	consumers consumerSet
	// sessions numbers connections, for exclusive queues' owner names.
	sessions atomic.Uint64
	// mqConns counts the mq connections of the broker's sessions (connect).
	mqConns atomic.Int64
	// count are the figures of Stats (stats.go).
	count counters
	// auth checks logins and permissions (package amqp/access).
	auth authenticator
	flow *flow
	// closed is closed by Close: the flow watcher ends, held publishes let go.
	closed      chan struct{}
	watcherDone chan struct{}
	reaperDone  chan struct{}
	live        sync.WaitGroup // sessions not closed yet
	self        procid.ID      // this process, in the names of sessions
	idle        idleness       // x-expires queues' idle times as seen here
}

var _ amqp.Broker = (*Broker)(nil)

// New connects the broker to the group through cfg's member.
func New(cfg Config) (*Broker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	root, err := mq.Connect(cfg.Connect)
	if err != nil {
		return nil, fmt.Errorf("qsg: %w", err)
	}
	b := &Broker{cfg: cfg, root: root, parts: mqconn.Of(root), flow: newFlow(),
		closed: make(chan struct{}), watcherDone: make(chan struct{}), reaperDone: make(chan struct{}), self: procid.Self()}
	b.auth = newAuthenticator(b.parts.Defs)
	go b.every(cfg.FlowInterval, b.checkFlow, b.watcherDone)
	go b.every(cfg.ReapInterval, b.reap, b.reaperDone)
	return b, nil
}

// Close ends the broker: publishes held by flow control let go, and once
// every connection it serves has ended (the caller closes their sockets)
// it disconnects from the group.
func (b *Broker) Close() error {
	close(b.closed)
	<-b.watcherDone
	<-b.reaperDone
	b.live.Wait()
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	return b.root.Disconnect()
}

// errConnLimit: an mq connection over a limit of MaxConns or
// MaxConnsPerConnection.
var errConnLimit = errors.New("qsg: connection limit")

// connect is a new mq connection through the broker's member for session
// s (a channel's or a consumer's), within the broker's and the session's
// limits: the group has MaxConnections connection slots in all, which
// one client opening channels and consumers must not exhaust.
func (b *Broker) connect(s *session) (*mq.Conn, error) {
	if n := b.mqConns.Add(1); n > int64(b.cfg.MaxConns) {
		b.mqConns.Add(-1)
		return nil, fmt.Errorf("%w: this member's AMQP clients hold %d group connections (MaxConns)", errConnLimit, b.cfg.MaxConns)
	}
	if n := s.mqConns.Add(1); n > int64(b.cfg.MaxConnsPerConnection) {
		s.mqConns.Add(-1)
		b.mqConns.Add(-1)
		return nil, fmt.Errorf("%w: this AMQP connection holds %d group connections (one for its channels that publish or get, one per transactional channel, one per consumer; MaxConnsPerConnection)", errConnLimit, b.cfg.MaxConnsPerConnection)
	}
	b.siblMu.Lock()
	c, err := b.root.Sibling()
	b.siblMu.Unlock()
	if err != nil {
		b.disconnected(s)
	}
	return c, err
}

// disconnect ends an mq connection connect made for s.
func (b *Broker) disconnect(s *session, c *mq.Conn) {
	c.Disconnect()
	b.disconnected(s)
}

func (b *Broker) disconnected(s *session) {
	s.mqConns.Add(-1)
	b.mqConns.Add(-1)
}

// defsChanged tells every process the definitions changed. The caller
// holds adminMu.
func (b *Broker) defsChanged() error {
	_, err := b.parts.Group.AddCounter(b.parts.Admin, group.CounterDefs, 1)
	return err
}

// GroupConns is how many group connections the broker's clients hold now
// (channels' and consumers' mq connections).
func (b *Broker) GroupConns() int64 { return b.mqConns.Load() }
