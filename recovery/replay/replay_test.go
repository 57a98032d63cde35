package replay

import (
	"fmt"
	"testing"

	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/vfs"
)

// logs writes two members' logs sharing one LRSN sequence.
type logs struct {
	t   *testing.T
	m   *vfs.Mem
	src rlog.Counter
	l   map[string]*rlog.Log
}

func newLogs(t *testing.T) *logs {
	g := &logs{t: t, m: vfs.NewMem(1), l: map[string]*rlog.Log{}}
	for _, n := range []string{"QM1", "QM2"} {
		l, err := rlog.Open(rlog.Config{FS: g.m, Dir: "/log/" + n, LRSN: &g.src, SegmentSize: 8192})
		if err != nil {
			t.Fatal(err)
		}
		g.l[n] = l
	}
	return g
}

func (g *logs) rec(qm string, r plog.Record) {
	g.t.Helper()
	if err := g.l[qm].Write(uint8(r.Type), plog.Append(nil, &r)); err != nil {
		g.t.Fatal(err)
	}
}

func put(uow, key uint64, q, body string) plog.Record {
	r := plog.Record{Type: plog.TypePut, UOW: uow, Structure: "APPL1", Queue: q, Key: key, Body: []byte(body), Properties: []byte{}}
	if uow == 0 {
		r.Flags = plog.FlagCommitted
	}
	return r
}

func get(uow, key uint64) plog.Record {
	r := plog.Record{Type: plog.TypeGet, UOW: uow, Structure: "APPL1", Queue: "Q", Key: key}
	if uow == 0 {
		r.Flags = plog.FlagCommitted
	}
	return r
}

func TestReplay(t *testing.T) {
	g := newLogs(t)
	g.rec("QM2", put(0, 8, "Q2", "cleared"))
	g.rec("QM1", put(0, 1, "Q", "a"))   // committed by itself
	g.rec("QM1", put(100, 2, "Q", "b")) // uow 100 on QM1...
	g.rec("QM2", put(200, 3, "Q", "c")) // uow 200 on QM2...
	g.rec("QM2", plog.Record{Type: plog.TypeCommit, UOW: 200})
	g.rec("QM1", put(100, 4, "Q", "d"))
	g.rec("QM1", plog.Record{Type: plog.TypeCommit, UOW: 100}) // ...commits after 200
	g.rec("QM2", get(300, 1))                                  // uow 300 gets a, backs out
	g.rec("QM2", plog.Record{Type: plog.TypeBackout, UOW: 300})
	g.rec("QM2", get(0, 3)) // c got outside syncpoint
	g.rec("QM1", put(400, 5, "Q", "never committed"))
	p := put(0, 6, "Q", "other structure")
	p.Structure = "APPL2"
	g.rec("QM1", p)
	g.rec("QM2", put(0, 2, "Q", "b again")) // a put of a key present changes nothing
	g.rec("QM2", get(500, 4))
	g.rec("QM1", plog.Record{Type: plog.TypeCommit, UOW: 500}) // unit of work keys are group-wide
	g.rec("QM1", plog.Record{Type: plog.TypeClear, Flags: plog.FlagCommitted, Structure: "APPL1", Queue: "Q2"})
	g.rec("QM2", put(0, 7, "Q2", "after the clear"))
	for _, l := range g.l {
		l.Close()
	}
	res, err := Run(Options{FS: g.m, LogDirs: []string{"/log/QM1", "/log/QM2"}, Structure: "APPL1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, string(m.Body))
	}
	// a (LRSN 1), then uow 100 (b, d: committed after uow 200's c, which
	// was got); uow 500's get of d commits.
	if fmt.Sprint(got) != "[a b after the clear]" {
		t.Fatalf("survivors %v", got)
	}
	if res.Records != 17 || res.Units != 3 || res.Dropped != 2 || res.MaxLRSN != 17 {
		t.Fatalf("result %+v", res)
	}
	// From the middle, with the messages before as the seed: the same.
	seed := []plog.Record{put(0, 1, "Q", "a"), put(0, 2, "Q", "b"), put(0, 3, "Q", "c"), put(0, 4, "Q", "d")}
	res2, err := Run(Options{FS: g.m, LogDirs: []string{"/log/QM1", "/log/QM2"}, Structure: "APPL1", From: 9, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, m := range res2.Messages {
		got = append(got, string(m.Body))
	}
	if fmt.Sprint(got) != "[a b after the clear]" {
		t.Fatalf("survivors from LRSN 9 with a seed: %v", got)
	}
}

// TestSeedPlaces: a producer's unit of work 100 (keys 1, 2) is
// uncommitted when a backup's scan passes it; it commits, and the
// producer's next one (key 3) commits before the scan reaches it. Unit of
// work 100's messages go back at the places the seed kept for them,
// before key 3, as the producer put them; a place whose unit of work
// backs out brings nothing back.
func TestSeedPlaces(t *testing.T) {
	g := newLogs(t)
	g.rec("QM1", put(100, 1, "Q", "first"))
	g.rec("QM1", put(100, 2, "Q", "second"))
	g.rec("QM1", put(300, 5, "Q", "backed out"))
	g.rec("QM1", plog.Record{Type: plog.TypeCommit, UOW: 100}) // LRSN 4, after the backup's start
	g.rec("QM1", put(200, 3, "Q", "third"))
	g.rec("QM1", plog.Record{Type: plog.TypeCommit, UOW: 200})
	g.rec("QM1", plog.Record{Type: plog.TypeBackout, UOW: 300})
	g.rec("QM1", put(0, 4, "Q", "fourth"))
	for _, l := range g.l {
		l.Close()
	}
	place := func(key uint64) plog.Record {
		return plog.Record{Type: plog.TypePut, Structure: "APPL1", Queue: "Q", Key: key}
	}
	for _, c := range []struct {
		seed []plog.Record
		want string
	}{
		{[]plog.Record{place(1), place(2), place(5), put(0, 3, "Q", "third")}, "[first second third fourth]"},
		{nil, "[first second third fourth]"},
		// Without places (a version 1 backup) unit of work 100 comes back
		// after the seed: out of its producer's order.
		{[]plog.Record{put(0, 3, "Q", "third")}, "[third first second fourth]"},
	} {
		res, err := Run(Options{FS: g.m, LogDirs: []string{"/log/QM1", "/log/QM2"}, Structure: "APPL1", From: 1, Seed: c.seed, SeedLRSN: 4})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range res.Messages {
			got = append(got, string(m.Body))
		}
		if fmt.Sprint(got) != c.want {
			t.Fatalf("seed of %d records: survivors %v, want %s", len(c.seed), got, c.want)
		}
	}
}

// TestAborted: a unit of work named aborted is dropped although its commit
// record is in the log, before or after others' records; the others apply.
func TestAborted(t *testing.T) {
	g := newLogs(t)
	g.rec("QM1", put(0, 1, "Q", "a"))
	g.rec("QM1", put(100, 2, "Q", "aborted put"))
	g.rec("QM1", get(100, 1)) // its get of a does not apply either
	g.rec("QM1", plog.Record{Type: plog.TypeCommit, UOW: 100})
	g.rec("QM2", put(200, 3, "Q", "b"))
	g.rec("QM2", plog.Record{Type: plog.TypeCommit, UOW: 200})
	lone := put(0, 4, "Q", "aborted lone put") // outside syncpoint, its own key aborted
	lone.UOW = 300
	g.rec("QM1", lone)
	gb := get(0, 3)
	gb.UOW = 301 // an aborted get outside syncpoint of b
	g.rec("QM1", gb)
	for _, l := range g.l {
		l.Close()
	}
	res, err := Run(Options{FS: g.m, LogDirs: []string{"/log/QM1", "/log/QM2"}, Structure: "APPL1", Aborted: map[uint64]bool{100: true, 300: true, 301: true}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range res.Messages {
		got = append(got, string(m.Body))
	}
	if fmt.Sprint(got) != "[a b]" || res.Units != 1 || res.Dropped != 1 {
		t.Fatalf("survivors %v, result %+v", got, res)
	}
}
