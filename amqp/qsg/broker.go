package qsg

import (
	"errors"
	"fmt"
	"log/slog"

	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
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
}

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Validate checks c (after WithDefaults).
func (c Config) Validate() error {
	if c.Connect.QMgr == "" {
		return fmt.Errorf("%w: the member to serve through is required", ErrConfig)
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
	// auth checks logins and permissions (package amqp/access).
	auth authenticator
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
	b := &Broker{cfg: cfg, root: root, parts: mqconn.Of(root)}
	b.auth = newAuthenticator(b.parts.Defs)
	return b, nil
}

// Close disconnects the broker; the connections it serves must have ended.
func (b *Broker) Close() error { return b.root.Disconnect() }

// sibling is a new mq connection through the broker's member.
func (b *Broker) sibling() (*mq.Conn, error) {
	b.siblMu.Lock()
	defer b.siblMu.Unlock()
	return b.root.Sibling()
}

// defsChanged tells every process the definitions changed. The caller
// holds adminMu.
func (b *Broker) defsChanged() error {
	_, err := b.parts.Group.AddCounter(b.parts.Admin, group.CounterDefs, 1)
	return err
}
