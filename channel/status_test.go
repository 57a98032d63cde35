package channel

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
)

// TestPollSeesKnownEntriesAtOnceAndNewOnesSoon: Poll rereads the entries
// it knows on every call and finds a new one by the next full scan.
func TestPollSeesKnownEntriesAtOnceAndNewOnesSoon(t *testing.T) {
	dir := t.TempDir()
	g, err := group.Open(group.Config{Name: "QSG", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 24 << 20}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	o, err := g.Admin().Register()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	tab := NewTable(g)
	set := func(name string, state State) {
		t.Helper()
		if _, _, err := tab.Update(o, name, func(st *Status, _ bool) bool { st.State = state; return true }); err != nil {
			t.Fatal(err)
		}
	}
	states := func() map[string]State {
		t.Helper()
		all, err := tab.Poll()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]State{}
		for _, st := range all {
			m[st.Name] = st.State
		}
		return m
	}
	set("A", Running)
	if got := states(); len(got) != 1 || got["A"] != Running {
		t.Fatalf("first poll (a full scan): %v", got)
	}
	set("A", Retrying)
	set("B", Starting)
	got := states()
	if got["A"] != Retrying {
		t.Fatalf("a known entry's change is not seen at once: %v", got)
	}
	deadline := time.Now().Add(FullScanInterval + time.Second)
	for got["B"] != Starting {
		if time.Now().After(deadline) {
			t.Fatalf("a new entry is not seen after a full scan interval: %v", got)
		}
		time.Sleep(FullScanInterval / 10)
		got = states()
	}
	if all, _ := tab.All(); len(all) != 2 {
		t.Fatalf("All: %v", all)
	}
	if _, _, err := tab.Find("A_CHANNEL_NAME_TOO_LONG"); err == nil {
		t.Fatal("a name longer than a channel name is looked up")
	}
}

// TestDeletedEntry: a deleted entry is no entry to Find, All and Poll,
// keeps its slot (an entry behind it in the probe is still found), and an
// Update of its channel writes a new entry in that slot.
func TestDeletedEntry(t *testing.T) {
	dir := t.TempDir()
	g, err := group.Open(group.Config{Name: "QSG", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 24 << 20}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	o, err := g.Admin().Register()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	tab := NewTable(g)
	// Two channels whose names hash to the same home slot: the second is
	// found by probing past the first.
	a, b := "A", ""
	for i := 0; b == ""; i++ {
		if n := fmt.Sprintf("B%d", i); tab.home(n) == tab.home(a) {
			b = n
		}
	}
	for _, n := range []string{a, b} {
		if _, _, err := tab.Update(o, n, func(st *Status, _ bool) bool { st.State, st.Msgs, st.LastBatch = Stopped, 7, 9; return true }); err != nil {
			t.Fatal(err)
		}
	}
	slotA, _, _, _, _ := tab.find(a)
	if _, _, err := tab.Update(o, a, func(st *Status, _ bool) bool { *st = Status{Name: a, Owner: -1, Deleted: true}; return true }); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := tab.Find(a); ok || err != nil {
		t.Fatalf("Find of a deleted entry: %v %v", ok, err)
	}
	if st, ok, err := tab.Find(b); !ok || err != nil || st.Msgs != 7 {
		t.Fatalf("the entry probed past the deleted one: %+v %v %v", st, ok, err)
	}
	all, _ := tab.All()
	polled, _ := tab.Poll()
	for _, list := range [][]Status{all, polled} {
		if len(list) != 1 || list[0].Name != b {
			t.Fatalf("All or Poll lists a deleted entry: %+v", list)
		}
	}
	st, _, err := tab.Update(o, a, func(st *Status, exists bool) bool {
		if exists || st.Msgs != 0 || st.LastBatch != 0 || st.Owner != -1 {
			t.Errorf("Update of a deleted entry's channel sees %+v (exists %v), want a new entry", *st, exists)
		}
		st.State = Starting
		return true
	})
	if err != nil || st.State != Starting {
		t.Fatalf("new entry: %+v %v", st, err)
	}
	if slot, got, _, ok, _ := tab.find(a); !ok || slot != slotA || got.State != Starting {
		t.Fatalf("the new entry is in slot %d (%v, %+v), want the deleted one's, %d", slot, ok, got, slotA)
	}
}

// TestConfigValidate: the heartbeat clamp and the silence grace get their
// defaults (withDefaults) and are checked; Validate changes nothing and
// says what is wrong.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	base := Config{Group: group.Config{Name: "QSG", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf")}, QMgr: "QM1"}
	c := base
	if err := c.Validate(); err != nil {
		t.Fatalf("valid configuration: %v", err)
	}
	if !reflect.DeepEqual(c, base) {
		t.Fatalf("Validate changed its receiver: %+v, was %+v", c, base)
	}
	d := c.withDefaults()
	if d.MaxHeartbeat != DefaultMaxHeartbeat || d.SilenceGrace != DefaultSilenceGrace || d.SpinWait != DefaultSpinWait ||
		d.PollInterval != 10*time.Millisecond || d.Logger != slog.Default() || d.Inbound != c.Inbound.withDefaults() || !reflect.DeepEqual(d.Group, base.Group) {
		t.Fatalf("defaults: %+v", d)
	}
	for _, bad := range []struct {
		f    func(*Config)
		says string
	}{
		{func(c *Config) { c.MaxHeartbeat = 1500 * time.Millisecond }, "maximum heartbeat interval 1.5s not whole seconds"},
		{func(c *Config) { c.MaxHeartbeat = 1_000_000 * time.Second }, "maximum heartbeat interval 277h46m40s"},
		{func(c *Config) { c.MaxHeartbeat = -time.Second }, "maximum heartbeat interval -1s"},
		{func(c *Config) { c.SilenceGrace = -time.Second }, "silence grace -1s not in 0..1h"},
		{func(c *Config) { c.SilenceGrace = 2 * time.Hour }, "silence grace 2h0m0s"},
		{func(c *Config) { c.QMgr = "" }, `member name ""`},
		{func(c *Config) { c.Port = 70000 }, "port out of range"},
		{func(c *Config) { c.PollInterval = time.Microsecond }, "poll interval 1µs not in 1ms..1m"},
		{func(c *Config) { c.SpinWait = time.Second }, "spin wait 1s over 10ms"},
		{func(c *Config) { c.Inbound.MaxConns = -1 }, "-1 inbound connections"},
	} {
		c := base
		bad.f(&c)
		before := c
		err := c.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("%+v: %v, want ErrConfig saying %q", c, err, bad.says)
		}
		if !reflect.DeepEqual(c, before) {
			t.Errorf("Validate changed its receiver: %+v, was %+v", c, before)
		}
	}
	c = base
	c.SpinWait = NoSpin
	if err := c.Validate(); err != nil {
		t.Fatalf("NoSpin: %v", err)
	}
}
