package channel

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
)

// TestPollSeesKnownEntriesAtOnceAndNewOnesSoon: Poll rereads the entries
// it knows on every call and finds a new one by the next full scan.
func TestPollSeesKnownEntriesAtOnceAndNewOnesSoon(t *testing.T) {
	dir := t.TempDir()
	g, err := group.Open(group.Config{Name: "QSG", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 16 << 20}, true)
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
