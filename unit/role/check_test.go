package role

import (
	"strings"
	"testing"
)

// TestCheckRecords: a quiet two-replica unit whose records agree has no
// problem; each broken agreement is reported, naming the position.
func TestCheckRecords(t *testing.T) {
	r := newUnit(t, 2, false)
	r = join(t, r, 0)
	r = join(t, r, 1)
	if r.Primary != 0 || r.Pos[1].State != Active {
		t.Fatalf("set-up: %+v", r)
	}
	good := func() Records {
		var recs Records
		recs.Role = r.Clone()
		recs.Progress[0] = &Progress{Position: 0, Tag: r.Pos[0].Tag, Applied: 50, LSNOut: 40}
		recs.Progress[1] = &Progress{Position: 1, Tag: r.Pos[1].Tag, Applied: 45, LSNOut: 40}
		return recs
	}
	alive := func(Position) bool { return true }
	if p := CheckRecords(good(), alive); len(p) != 0 {
		t.Fatalf("agreeing records: %v", p)
	}
	for _, tc := range []struct {
		name    string
		breakIt func(*Records) func(Position) bool
		want    string
	}{
		{"dead replica", func(*Records) func(Position) bool {
			return func(e Position) bool { return e.Pid != r.Pos[1].Pid }
		}, "position 1: its replica (pid"},
		{"no progress", func(recs *Records) func(Position) bool { recs.Progress[1] = nil; return alive }, "position 1: active, and its replica has published no progress"},
		{"ahead of the primary", func(recs *Records) func(Position) bool { recs.Progress[1].Applied = 51; return alive }, "position 1: applied LSN 51, beyond the primary's 50"},
		{"sent beyond applied", func(recs *Records) func(Position) bool {
			recs.Progress[r.Sender].LSNOut = recs.Progress[r.Sender].Applied + 1
			return alive
		}, "the sender's LSN_out"},
		{"broken role record", func(recs *Records) func(Position) bool { recs.Role.Primary = 3; return alive }, "primary 3 not active"},
	} {
		recs := good()
		a := tc.breakIt(&recs)
		p := CheckRecords(recs, a)
		if len(p) != 1 || !strings.Contains(p[0], tc.want) {
			t.Errorf("%s: %q, want one problem saying %q", tc.name, p, tc.want)
		}
	}
	if p := CheckRecords(Records{}, alive); len(p) != 1 {
		t.Errorf("no role record: %v", p)
	}
}
