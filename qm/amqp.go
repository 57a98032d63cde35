package qm

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/listen"
	"github.com/qmgr/qmgr/mqsc"
)

// The AMQP listener is a child process of its member of its own (the
// same binary, Config.AMQPCommand: the hidden "amqp-listener" command),
// supervised as a child service (child.go), independent of the channel
// initiator: STOP CHINIT leaves it running. Package amqp/listen's doc
// says why and what dies with what.

// AMQPConfig is the member's AMQP listener. It is off unless a port is
// set.
type AMQPConfig struct {
	// Port is the member's own AMQP port; 0 (the default) for none.
	Port int
	// GenericPort is the AMQP port every member of the group shares
	// (SO_REUSEPORT), through which a client whose member died reaches a
	// survivor; 0 (the default) for none.
	GenericPort int
	// Bind is the IP address both ports listen on; default DefaultAMQPBind
	// (loopback, as the channel ports: 0.0.0.0 or :: for every interface).
	Bind string
	// TLSCertFile and TLSKeyFile make both ports TLS only (PEM files, both
	// or neither); default none.
	TLSCertFile, TLSKeyFile string
	// MaxConnections is the most client connections the listener holds at
	// once; default listen.DefaultMaxConnections.
	MaxConnections int
	// HandshakeTimeout bounds a new connection's TLS and AMQP handshakes
	// (a client that connects and sends nothing is closed after it);
	// default amqp.DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

// DefaultAMQPBind is AMQPConfig.Bind's default.
const DefaultAMQPBind = "127.0.0.1"

// Enabled reports whether the member runs an AMQP listener (a port is
// set).
func (c AMQPConfig) Enabled() bool { return c.Port != 0 || c.GenericPort != 0 }

// WithDefaults is c with the defaults documented on its fields applied.
func (c AMQPConfig) WithDefaults() AMQPConfig {
	if c.Bind == "" {
		c.Bind = DefaultAMQPBind
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = listen.DefaultMaxConnections
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = amqp.DefaultHandshakeTimeout
	}
	return c
}

// Validate checks c (after WithDefaults); it changes nothing and reads no
// file.
func (c AMQPConfig) Validate() error {
	switch {
	case c.Port < 0 || c.Port > 65535 || c.GenericPort < 0 || c.GenericPort > 65535:
		return fmt.Errorf("%w: AMQP port out of range (port %d, generic port %d)", ErrConfig, c.Port, c.GenericPort)
	case c.Port != 0 && c.Port == c.GenericPort:
		return fmt.Errorf("%w: the AMQP port and generic port are both %d", ErrConfig, c.Port)
	case !c.Enabled() && (c.TLSCertFile != "" || c.TLSKeyFile != ""):
		return fmt.Errorf("%w: an AMQP TLS certificate without an AMQP port", ErrConfig)
	}
	if !c.Enabled() {
		return nil
	}
	if err := c.Listen().WithDefaults().Validate(); err != nil {
		return fmt.Errorf("%w: AMQP listener: %v", ErrConfig, err)
	}
	return nil
}

// Listen is the listener's configuration (package amqp/listen), which the
// "amqp-listener" command runs.
func (c AMQPConfig) Listen() listen.Config {
	addr := func(port int) string {
		if port == 0 {
			return ""
		}
		return net.JoinHostPort(c.Bind, strconv.Itoa(port))
	}
	return listen.Config{Addr: addr(c.Port), GenericAddr: addr(c.GenericPort),
		TLSCertFile: c.TLSCertFile, TLSKeyFile: c.TLSKeyFile, MaxConnections: c.MaxConnections,
		AMQP: amqp.Config{HandshakeTimeout: c.HandshakeTimeout}}
}

// Children is the state of the member's child processes (DISPLAY QMGR:
// mqsc.ChildEnv).
func (m *Member) Children() mqsc.Children {
	lc := m.cfg.AMQP.Listen()
	c := mqsc.Children{Chinit: m.chinit.status(), AMQP: m.amqp.status()}
	if m.amqp.configured() {
		c.AMQPAddr, c.AMQPGenericAddr = lc.Addr, lc.GenericAddr
	}
	return c
}

// validateAMQP checks the AMQP listener's part of c (with its defaults):
// its own rules, a command exactly when it has a port, and no port shared
// with the channel initiator's.
func (c Config) validateAMQP() error {
	if err := c.AMQP.Validate(); err != nil {
		return err
	}
	if c.AMQP.Enabled() != (len(c.AMQPCommand) > 0) {
		return fmt.Errorf("%w: the AMQP listener's command must be set exactly when it has a port (port %d, generic port %d, command %q)",
			ErrConfig, c.AMQP.Port, c.AMQP.GenericPort, c.AMQPCommand)
	}
	for _, p := range []int{c.AMQP.Port, c.AMQP.GenericPort} {
		if p != 0 && (p == c.Port || p == c.GenericPort) {
			return fmt.Errorf("%w: port %d is both an AMQP port and a channel port", ErrConfig, p)
		}
	}
	return nil
}
