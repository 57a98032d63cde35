package status

import (
	"bytes"
	"strings"
	"testing"
)

// TestStatusTextAligned: `qmgr status` prints members, structures and
// queues in aligned columns, each member's recovery log beneath it.
func TestStatusTextAligned(t *testing.T) {
	rep := Report{Group: "G", CFDir: "/cf", DataDir: "/d", Active: 1,
		Members: []Member{
			{Name: "QM1", State: "active", Pid: 7, Incarnation: 3, Heartbeat: "20ms", Log: &Log{Text: "ok"}},
			{Name: "A.LONGER.NAME", State: "recovered", Pid: 123456, Incarnation: 12},
		},
		Structures: []Structure{{Name: "APPL1", SizeMB: 256, Entries: 100, Used: 5, Owners: 2}, {Name: "APPLICATION2", SizeMB: 16, Entries: 10, Problems: "FAILED: gone"}},
		Queues:     []Queue{{Name: "Q", Depth: 1}, {Name: "A.MUCH.LONGER.QUEUE", Depth: 123456, Uncom: 3, In: 1}},
	}
	var b bytes.Buffer
	rep.WriteText(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	want := []struct {
		line int
		word string
		col  int
	}{
		{1, "pid 7", -1}, {3, "pid 123456", 1}, {1, "incarnation 3", -1}, {3, "incarnation 12", 1},
		{4, "256 MiB", -1}, {5, "16 MiB", 4}, {4, "entries", -1}, {5, "entries", 4},
		{6, "depth 1", -1}, {7, "depth 123456", 6}, {6, "uncommitted", -1}, {7, "uncommitted", 6},
	}
	cols := map[int]int{}
	for _, w := range want {
		i := strings.Index(lines[w.line], w.word)
		if i < 0 {
			t.Fatalf("line %d lacks %q:\n%s", w.line, w.word, b.String())
		}
		if w.col < 0 {
			cols[w.line] = i
		} else if i != cols[w.col] {
			t.Fatalf("%q at column %d in line %d, %d in line %d:\n%s", w.word, i, w.line, cols[w.col], w.col, b.String())
		}
	}
	if lines[2] != "    recovery log: ok" {
		t.Fatalf("QM1's recovery log not beneath it:\n%s", b.String())
	}
	for _, l := range lines {
		if strings.HasSuffix(l, " ") {
			t.Fatalf("trailing blanks in %q", l)
		}
	}
}
