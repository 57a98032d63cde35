package request

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
)

func TestConfigValidate(t *testing.T) {
	prog := func(*Ctx, *Request) error { return nil }
	good := Config{Input: "IN", Program: prog}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if good.DefaultMode != ModeRestartable || good.MaxAttempts != 3 || good.MaxResumes != 10 || good.Workers != 4 || good.CallTimeout != 30*time.Second ||
		good.StateQueue != DefaultStateQueue || good.TombstoneQueue != DefaultTombstoneQueue || good.SweepInterval != time.Second ||
		good.MaxBackoff != 5*time.Second || good.StateWaitWarn != 30*time.Second {
		t.Fatalf("defaults: %+v", good)
	}
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Input = "" }, "input queue"},
		{func(c *Config) { c.Input = "bad name" }, "input queue"},
		{func(c *Config) { c.Input = DefaultStateQueue }, "one of the group-wide"},
		{func(c *Config) { c.Input = DefaultTombstoneQueue }, "one of the group-wide"},
		{func(c *Config) { c.TombstoneQueue = "bad name" }, "tombstone queue"},
		{func(c *Config) { c.Program = nil }, "no Program"},
		{func(c *Config) { c.DefaultMode = 9 }, "default mode"},
		{func(c *Config) { c.MaxAttempts = 0 }, "MaxAttempts"},
		{func(c *Config) { c.MaxResumes = -1 }, "MaxResumes"},
		{func(c *Config) { c.MaxResumes = 1<<20 + 1 }, "MaxResumes"},
		{func(c *Config) { c.Workers = 0 }, "Workers"},
		{func(c *Config) { c.CancelCheck = -1 }, "CancelCheck"},
		{func(c *Config) { c.SweepInterval = 0 }, "SweepInterval"},
		{func(c *Config) { c.MaxBackoff = -1 }, "MaxBackoff"},
		{func(c *Config) { c.MaxBackoff = c.ReconnectWait / 2 }, "MaxBackoff"},
		{func(c *Config) { c.StateWaitWarn = -1 }, "StateWaitWarn"},
		{func(c *Config) { c.Name = strings.Repeat("x", 49) }, "manager name"},
	} {
		bad := good
		c.change(&bad)
		before := bad
		err := bad.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "request: ") {
			t.Errorf("%q: %v", c.want, err)
		}
		if bad.Name != before.Name || bad.Workers != before.Workers {
			t.Errorf("Validate changed the config")
		}
	}
}

// TestUnexpectedQueueHasRoom: the Unexpected Message Queue that
// Definitions defines takes a message of the others' largest size (the
// default MAXMSGL: Definitions sets none for them) behind its header; with
// no room, such a message (a malformed request, a stray reply) would fail
// to move again and again.
func TestUnexpectedQueueHasRoom(t *testing.T) {
	def := defs.DefaultQueue("X").MaxMsgL
	want := fmt.Sprintf("MAXMSGL(%d)", unexpectedMaxMsgL)
	if !strings.Contains(definition(DefaultUnexpectedQueue, DefaultUnexpectedQueue), want) || unexpectedMaxMsgL < def+uhSize {
		t.Fatalf("the Unexpected Message Queue's definition %q: want %s, at least %d", definition(DefaultUnexpectedQueue, DefaultUnexpectedQueue), want, def+uhSize)
	}
	for _, q := range []string{DefaultStateQueue, DefaultTombstoneQueue, DefaultReplyQueue, DefaultCancelQueue} {
		if strings.Contains(definition(q, q), "MAXMSGL") {
			t.Errorf("%s: a MAXMSGL of its own; the test assumes the default", q)
		}
	}
}
