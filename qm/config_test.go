package qm

import (
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/recovery/rlog"
)

// TestConfigValidateIsPure: Validate changes nothing (the defaults are
// withDefaults's), needs no dummy log or log buffer configuration, and
// says what is wrong with a bad configuration.
func TestConfigValidateIsPure(t *testing.T) {
	dir := t.TempDir()
	good := Config{Group: group.Config{DataDir: dir, CFDir: dir}, Name: "QM1"}
	c := good
	if err := c.Validate(); err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
	if !reflect.DeepEqual(c, good) {
		t.Fatalf("Validate changed its receiver: %+v, was %+v", c, good)
	}
	d := c.withDefaults()
	if d.HeartbeatInterval != 200*time.Millisecond || d.HeartbeatTimeout != 10*time.Second || d.ExpiryInterval != 5*time.Second ||
		d.StopGrace != 2*time.Second || d.UOWWarnAge != time.Minute || d.UOWMaxAge != 10*time.Minute || d.StructureWait != 10*time.Minute ||
		d.Logger != slog.Default() || d.LogSegmentSize != rlog.DefaultSegmentSize || d.LogRings != group.MaxConnections || d.LogRingSize != 32<<10 {
		t.Fatalf("withDefaults: %+v", d)
	}
	if !reflect.DeepEqual(d.Group, good.Group) {
		t.Fatalf("withDefaults changed the group's configuration: %+v", d.Group)
	}
	with := func(f func(*Config)) Config { c := good; f(&c); return c }
	for _, b := range []struct {
		c    Config
		says string
	}{
		{with(func(c *Config) { c.Group.Name = "bad/group" }), `group name "bad/group"`},
		{with(func(c *Config) { c.Name = "" }), `member name ""`},
		{with(func(c *Config) { c.Name = "QM/1" }), `member name "QM/1"`}, // a valid MQ name, but it names a file
		{with(func(c *Config) { c.Name = ".QM1" }), `member name ".QM1"`},
		{with(func(c *Config) { c.Port = 65536 }), "port out of range"},
		{with(func(c *Config) { c.GenericPort = -1 }), "port out of range"},
		{with(func(c *Config) { c.StructureWait = -time.Second }), "structure wait -1s"},
		{with(func(c *Config) { c.HeartbeatInterval = -time.Second }), "heartbeat interval -1s is negative"},
		{with(func(c *Config) { c.HeartbeatTimeout = 900 * time.Millisecond }), "heartbeat timeout 900ms must be at least five heartbeat intervals (200ms)"},
		{with(func(c *Config) { c.LogSegmentSize = 100 }), "segment size 100"},
		{with(func(c *Config) { c.LogRings = 5000 }), "5000 rings"},
		{with(func(c *Config) { c.LogRingSize = 3000 }), "ring size 3000"},
	} {
		before := b.c
		err := b.c.Validate()
		if err == nil || !strings.Contains(err.Error(), b.says) {
			t.Errorf("%+v: %v, want an error saying %q", b.c, err, b.says)
			continue
		}
		if !errors.Is(err, ErrConfig) && !errors.Is(err, group.ErrConfig) {
			t.Errorf("%v: neither qm.ErrConfig nor group.ErrConfig", err)
		}
		if !reflect.DeepEqual(b.c, before) {
			t.Errorf("Validate changed its receiver: %+v, was %+v", b.c, before)
		}
	}
}
