package amqp

import (
	"errors"
	"fmt"
	"time"
)

// ErrConfig: a Config that Validate refuses.
var ErrConfig = errors.New("amqp: invalid configuration")

// Config is a listener's protocol limits. The zero value of a field means
// its default (WithDefaults); Validate refuses what cannot work.
type Config struct {
	// FrameMax is the largest frame offered in connection.tune, header and
	// end included (default 131072, as RabbitMQ). At least FrameMinSize.
	FrameMax uint32
	// ChannelMax is the most channels a connection may open at once
	// (default 2047, as RabbitMQ).
	ChannelMax uint16
	// Heartbeat is the interval offered in connection.tune (default 60s);
	// the client's tune-ok decides, 0 turning heartbeats off. A peer that
	// sends nothing for two intervals is disconnected.
	Heartbeat time.Duration
	// HandshakeTimeout bounds the time from accepting a connection to its
	// connection.open (default 10s): a client that connects and sends
	// nothing is disconnected.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds the wait for a peer's close-ok after the server
	// closes a connection (default 3s).
	CloseTimeout time.Duration
	// MaxMessageSize is the largest body a publish may declare (default
	// 128 MiB, as RabbitMQ); a larger one closes the channel with 406.
	MaxMessageSize uint64
	// MaxPendingContent bounds the bytes of unfinished contents a
	// connection's channels hold together while they arrive (default 256
	// MiB): a client assembling large messages on many channels at once
	// cannot make the server grow without bound; beyond it the connection
	// is closed with RESOURCE_ERROR. At least MaxMessageSize.
	MaxPendingContent uint64
	// Product and Version are sent in connection.start's server
	// properties; so are Node (the member serving the connection: a client
	// can tell which member it reached through the generic port) and
	// Cluster (the group), when set.
	Product, Version, Node, Cluster string
}

// Defaults of Config.
const (
	DefaultFrameMax          = 131072
	DefaultChannelMax        = 2047
	DefaultHeartbeat         = 60 * time.Second
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultCloseTimeout      = 3 * time.Second
	DefaultMaxMessageSize    = 128 << 20
	DefaultMaxPendingContent = 256 << 20
	DefaultProduct           = "qmgr"
)

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	set := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	fm, cm := uint64(c.FrameMax), uint64(c.ChannelMax)
	set(&fm, DefaultFrameMax)
	set(&cm, DefaultChannelMax)
	c.FrameMax, c.ChannelMax = uint32(fm), uint16(cm)
	set(&c.MaxMessageSize, DefaultMaxMessageSize)
	set(&c.MaxPendingContent, max(DefaultMaxPendingContent, c.MaxMessageSize))
	for _, d := range []struct {
		v *time.Duration
		d time.Duration
	}{{&c.Heartbeat, DefaultHeartbeat}, {&c.HandshakeTimeout, DefaultHandshakeTimeout}, {&c.CloseTimeout, DefaultCloseTimeout}} {
		if *d.v == 0 {
			*d.v = d.d
		}
	}
	if c.Product == "" {
		c.Product = DefaultProduct
	}
	return c
}

// Validate refuses a configuration (after WithDefaults) that cannot work.
// It changes nothing.
func (c Config) Validate() error {
	switch {
	case c.FrameMax < FrameMinSize:
		return fmt.Errorf("%w: FrameMax %d is under the protocol's minimum %d", ErrConfig, c.FrameMax, FrameMinSize)
	case c.ChannelMax == 0:
		return fmt.Errorf("%w: ChannelMax 0: no channel could open", ErrConfig)
	case c.Heartbeat < time.Second || c.Heartbeat > 65535*time.Second:
		return fmt.Errorf("%w: Heartbeat %v: want 1s to 65535s (whole seconds on the wire)", ErrConfig, c.Heartbeat)
	case c.HandshakeTimeout <= 0 || c.CloseTimeout <= 0:
		return fmt.Errorf("%w: HandshakeTimeout %v and CloseTimeout %v must be positive", ErrConfig, c.HandshakeTimeout, c.CloseTimeout)
	case c.MaxMessageSize == 0:
		return fmt.Errorf("%w: MaxMessageSize 0", ErrConfig)
	case c.MaxPendingContent < c.MaxMessageSize:
		return fmt.Errorf("%w: MaxPendingContent %d under MaxMessageSize %d: no message that large could arrive", ErrConfig, c.MaxPendingContent, c.MaxMessageSize)
	}
	return nil
}
