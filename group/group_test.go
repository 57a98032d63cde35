package group

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/shm"
)

func testGroup(t *testing.T) *Group {
	t.Helper()
	dir := t.TempDir()
	g, err := Open(Config{Name: "TEST", DataDir: dir + "/data", CFDir: dir + "/cf", AdminSize: 8 << 20, AppSize: 32 << 20}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestConfigDefaults(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/tmp/xdg")
	c := Config{}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c != (Config{}) {
		t.Fatalf("Validate changed its receiver: %+v", c)
	}
	d := c.WithDefaults()
	if d.Name != "QSG1" || d.DataDir != "/tmp/xdg/qmgr/QSG1" || d.CFDir != "/dev/shm/qmgr-QSG1" || d.AdminSize != 16<<20 || d.AppSize != 256<<20 || d.AppElementSize != 256 {
		t.Fatalf("%+v", d)
	}
	for _, b := range []struct {
		c    Config
		says string
	}{
		{Config{Name: "bad/name"}, `group name "bad/name"`},
		{Config{AppElementSize: 100}, "application element size 100"},
		{Config{AppElementSize: 2 << 20}, "application element size 2097152"},
	} {
		before := b.c
		if err := b.c.Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), b.says) {
			t.Errorf("%+v: %v, want ErrConfig saying %q", b.c, err, b.says)
		}
		if b.c != before {
			t.Errorf("Validate changed its receiver: %+v, was %+v", b.c, before)
		}
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "")
	if err := (Config{}).Validate(); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "no data directory given and no home directory") {
		t.Errorf("no state or home directory: %v", err)
	}
}

func TestOpenWithoutGroup(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Config{Name: "NONE", DataDir: dir, CFDir: dir}, false); !errors.Is(err, ErrNoGroup) {
		t.Fatalf("%v", err)
	}
}

func TestPeersLeasesCounters(t *testing.T) {
	g := testGroup(t)
	o, err := g.Admin().Register()
	if err != nil {
		t.Fatal(err)
	}
	self := procid.Self()
	ok, err := g.UpdatePeer(o, 3, func(p *Peer) bool {
		p.Name, p.State, p.Process, p.Incarnation, p.Port = "QM1", PeerActive, self, 1, 1414
		return true
	})
	if err != nil || !ok {
		t.Fatal(err)
	}
	p, found, err := g.FindPeer("QM1")
	if err != nil || !found || p.Slot != 3 || p.State != PeerActive || p.Process != self || p.Port != 1414 || !p.ProcessAlive() {
		t.Fatalf("%+v %v %v", p, found, err)
	}
	if ok, _ := g.UpdatePeer(o, 3, func(p *Peer) bool { return false }); ok {
		t.Fatal("unchanged update reported a change")
	}
	held, err := g.AcquireLease(o, LeaseExpiry, 3, time.Second)
	if err != nil || !held {
		t.Fatalf("lease: %v %v", held, err)
	}
	if held, _ := g.AcquireLease(o, LeaseExpiry, 4, time.Second); held {
		t.Fatal("a held lease was taken by another member")
	}
	if held, _ := g.AcquireLease(o, LeaseExpiry, 3, time.Second); !held {
		t.Fatal("the holder could not renew")
	}
	g.ReleaseLease(o, LeaseExpiry, 3)
	if held, _ := g.AcquireLease(o, LeaseExpiry, 4, time.Millisecond); !held {
		t.Fatal("a released lease could not be taken")
	}
	time.Sleep(2 * time.Millisecond)
	if held, _ := g.AcquireLease(o, LeaseExpiry, 5, time.Second); !held {
		t.Fatal("an expired lease could not be taken")
	}
	for i := 1; i <= 3; i++ {
		if v, err := g.AddCounter(o, CounterDefs, 1); err != nil || v != uint64(i) {
			t.Fatalf("counter %d %v", v, err)
		}
	}
	if _, err := g.Structure(shm.DefaultApplicationStructure, true); err != nil {
		t.Fatal(err)
	}
	if names, err := g.Structures(); err != nil || len(names) != 1 || names[0] != "APPL1" {
		t.Fatalf("%v %v", names, err)
	}
}

func FuzzDecodePeer(f *testing.F) {
	f.Add(Peer{Name: "QM1", State: PeerActive, Process: procid.ID{Pid: 5, Start: 7}, Port: 1}.Encode())
	f.Add(Peer{Name: "QM2", State: PeerActive, Process: procid.ID{Pid: 1, Start: 9}, PidNS: 4026532178}.Encode())
	f.Add(Peer{Name: "QM3", State: PeerActive, Process: procid.ID{Pid: 2, Start: 9}, Version: "v0.0.0-20261203110000-46816a0c1b2d+dirty"}.Encode())
	f.Add(make([]byte, recordSize))
	f.Add(make([]byte, prUsed))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePeer(b)
		if err != nil {
			return
		}
		q, err := DecodePeer(p.Encode())
		if err != nil || q.Name != p.Name || q.State != p.State || q.Process != p.Process || q.PidNS != p.PidNS || q.Version != p.Version {
			t.Fatalf("round trip: %+v -> %+v %v", p, q, err)
		}
	})
}

func TestLRSN(t *testing.T) {
	g := testGroup(t)
	o, err := g.Admin().Register()
	if err != nil {
		t.Fatal(err)
	}
	a, b := g.LRSN(o), g.LRSN(o)
	first, err := a.Next(10)
	if err != nil || first != 1 {
		t.Fatalf("first reservation: %d, %v", first, err)
	}
	if next, _ := b.Next(1); next != 11 {
		t.Fatalf("after 10 reserved: %d", next)
	}
	if err := a.AtLeast(100); err != nil {
		t.Fatal(err)
	}
	if err := a.AtLeast(50); err != nil {
		t.Fatal(err)
	}
	if next, _ := b.Next(5); next != 101 {
		t.Fatalf("after AtLeast(100): %d", next)
	}
}

func TestCheckPidNS(t *testing.T) {
	self := procid.SelfNS()
	if err := CheckPidNS(Peer{Name: "QM1", PidNS: self}); err != nil {
		t.Fatalf("same namespace: %v", err)
	}
	if err := CheckPidNS(Peer{Name: "QM1"}); err != nil {
		t.Fatalf("a record without a namespace (an older member): %v", err)
	}
	err := CheckPidNS(Peer{Name: "QM1", Process: procid.ID{Pid: 1}, PidNS: self + 1})
	if !errors.Is(err, ErrPidNamespace) || !strings.Contains(err.Error(), "pid namespace") {
		t.Fatalf("another namespace: %v", err)
	}
}

// TestPeerVersion: a peer record carries the member's version (cut to
// MaxVersionLen); a record of an older member, zero there or ending before
// the field, has none.
func TestPeerVersion(t *testing.T) {
	p := Peer{Name: "QM1", State: PeerActive, Version: "v1.2.0-46816a0c1b2d+dirty"}
	if q, err := DecodePeer(p.Encode()); err != nil || q.Version != p.Version {
		t.Fatalf("round trip: %q %v, want %q", q.Version, err, p.Version)
	}
	long := strings.Repeat("v", MaxVersionLen+10)
	if q, err := DecodePeer(Peer{Name: "QM1", State: PeerActive, Version: long}.Encode()); err != nil || q.Version != long[:MaxVersionLen] {
		t.Fatalf("long version: %q %v", q.Version, err)
	}
	old := Peer{Name: "QM1", State: PeerActive}.Encode()
	for _, b := range [][]byte{old, old[:prUsed]} {
		if q, err := DecodePeer(b); err != nil || q.Version != "" {
			t.Fatalf("record of %d bytes from an older member: version %q %v", len(b), q.Version, err)
		}
	}
}
