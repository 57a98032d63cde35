package qm

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/listen"
	"github.com/qmgr/qmgr/group"
)

// TestAMQPConfig: the AMQP listener is off by default; its defaults; the
// listener's configuration it gives; and Validate, pure, refusing what
// cannot work.
func TestAMQPConfig(t *testing.T) {
	dir := t.TempDir()
	base := Config{Group: group.Config{DataDir: dir, CFDir: dir}, Name: "QM1", Port: 1414, GenericPort: 1415}
	if base.AMQP.Enabled() {
		t.Fatal("AMQP listener on by default")
	}
	if err := base.Validate(); err != nil {
		t.Fatal(err)
	}
	d := (AMQPConfig{}).WithDefaults()
	if d.Bind != DefaultAMQPBind || d.MaxConnections != listen.DefaultMaxConnections || d.HandshakeTimeout != amqp.DefaultHandshakeTimeout {
		t.Fatalf("defaults: %+v", d)
	}
	on := AMQPConfig{Port: 5672, GenericPort: 5673, TLSCertFile: "c.pem", TLSKeyFile: "k.pem", HandshakeTimeout: 3 * time.Second}.WithDefaults()
	if lc := on.Listen(); lc.Addr != "127.0.0.1:5672" || lc.GenericAddr != "127.0.0.1:5673" || lc.TLSCertFile != "c.pem" ||
		lc.TLSKeyFile != "k.pem" || lc.MaxConnections != listen.DefaultMaxConnections || lc.AMQP.HandshakeTimeout != 3*time.Second {
		t.Fatalf("Listen: %+v", lc)
	}
	if lc := (AMQPConfig{GenericPort: 5673, Bind: "::"}).Listen(); lc.Addr != "" || lc.GenericAddr != "[::]:5673" {
		t.Fatalf("Listen without a member's port: %+v", lc)
	}
	with := func(f func(*Config)) Config { c := base; f(&c); return c }
	good := with(func(c *Config) { c.AMQP.Port, c.AMQPCommand = 5672, []string{"qmgr", "amqp-listener"} })
	if err := good.Validate(); err != nil {
		t.Fatalf("a member with an AMQP port: %v", err)
	}
	for _, b := range []struct {
		c    Config
		says string
	}{
		{with(func(c *Config) { c.AMQP.Port = 70000 }), "AMQP port out of range"},
		{with(func(c *Config) { c.AMQP.Port, c.AMQP.GenericPort = 5672, 5672 }), "both 5672"},
		{with(func(c *Config) { c.AMQP.TLSCertFile = "c.pem" }), "without an AMQP port"},
		{with(func(c *Config) { c.AMQP.Port = 5672 }), "command must be set exactly when it has a port"},
		{with(func(c *Config) { c.AMQPCommand = []string{"qmgr"} }), "command must be set exactly when it has a port"},
		{with(func(c *Config) { c.AMQP.Port, c.AMQPCommand = 1415, []string{"qmgr"} }), "port 1415 is both an AMQP port and a channel port"},
		{with(func(c *Config) { c.AMQP.Port, c.AMQPCommand, c.AMQP.TLSKeyFile = 5672, []string{"qmgr"}, "k.pem" }), "TLS certificate needs its key"},
		{with(func(c *Config) { c.AMQP.Port, c.AMQPCommand, c.AMQP.Bind = 5672, []string{"qmgr"}, "localhost" }), "not an IP address"},
		{with(func(c *Config) { c.AMQP.Port, c.AMQPCommand, c.AMQP.MaxConnections = 5672, []string{"qmgr"}, -1 }), "MaxConnections -1"},
		{with(func(c *Config) {
			c.AMQP.Port, c.AMQPCommand, c.AMQP.HandshakeTimeout = 5672, []string{"qmgr"}, -time.Second
		}), "HandshakeTimeout -1s"},
	} {
		before := b.c
		err := b.c.Validate()
		if err == nil || !strings.Contains(err.Error(), b.says) || !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want an ErrConfig saying %q", b.c.AMQP, err, b.says)
		}
		if !reflect.DeepEqual(b.c, before) {
			t.Errorf("Validate changed its receiver: %+v, was %+v", b.c, before)
		}
	}
}
