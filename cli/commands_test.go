package cli

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/internal/buildinfo"
)

// TestUsageFromTheCommandTable: the help lists every command of the table
// that has a line, aligned, and none of the workers; every command, worker
// or not, is dispatched (its -h exits 0 and prints its flags), and an
// unknown one exits 2 with the help.
func TestUsageFromTheCommandTable(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"help"}, &out, &errb); code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	help := out.String()
	col := -1
	for _, c := range commands {
		i := strings.Index(help, "\n  "+c.name+" ")
		if c.help == "" {
			if i >= 0 || strings.Contains(help, c.name+" ") {
				t.Errorf("worker command %s in the help:\n%s", c.name, help)
			}
			continue
		}
		if i < 0 {
			t.Fatalf("command %s not in the help:\n%s", c.name, help)
		}
		line := help[i+1:]
		line = line[:strings.IndexByte(line, '\n')]
		at := strings.Index(line, c.help)
		if at < 0 || (col >= 0 && at != col) {
			t.Fatalf("help line %q: description at column %d, want %d", line, at, col)
		}
		col = at
	}
	for _, c := range commands {
		out.Reset()
		code := Main([]string{c.name, "-h"}, &out, &errb)
		if code != 0 || (c.help != "" && !strings.Contains(out.String(), "Usage of "+c.name+":")) {
			t.Errorf("%s -h: exit %d, %q", c.name, code, out.String()) // a worker's help goes to its standard error
		}
	}
	out.Reset()
	errb.Reset()
	if code := Main([]string{"nosuch"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown command "nosuch"`) || !strings.Contains(errb.String(), help) {
		t.Fatalf("unknown command: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := Main(nil, &out, &errb); code != 2 || errb.String() != help {
		t.Fatalf("no command: exit %d, %q", code, errb.String())
	}
}

// TestStatusTextAligned: `qmgr status` prints members, structures and
// queues in aligned columns, each member's recovery log beneath it.
func TestStatusTextAligned(t *testing.T) {
	rep := statusReport{Group: "G", CFDir: "/cf", DataDir: "/d", Active: 1,
		Members: []memberStatus{
			{Name: "QM1", State: "active", Pid: 7, Incarnation: 3, Heartbeat: "20ms", Log: &logStatus{text: "ok"}},
			{Name: "A.LONGER.NAME", State: "recovered", Pid: 123456, Incarnation: 12},
		},
		Structures: []structStatus{{Name: "APPL1", SizeMB: 256, Entries: 100, Used: 5, Owners: 2}, {Name: "APPLICATION2", SizeMB: 16, Entries: 10, Problems: "FAILED: gone"}},
		Queues:     []queueStatus{{Name: "Q", Depth: 1}, {Name: "A.MUCH.LONGER.QUEUE", Depth: 123456, Uncom: 3, In: 1}},
	}
	var b bytes.Buffer
	rep.writeText(&b)
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

// TestVersionCommand: qmgr version and qmgr --version print the build
// information: the version, the Go version and the revision line.
func TestVersionCommand(t *testing.T) {
	want := buildinfo.Read().String()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if code := Main(args, &out, &errb); code != 0 || out.String() != want {
			t.Errorf("%v: exit %d, %q (stderr %q), want %q", args, code, out.String(), errb.String(), want)
		}
		if !strings.Contains(out.String(), "go: "+runtime.Version()) || !strings.Contains(out.String(), "\nrevision: ") {
			t.Errorf("%v: %q names neither the Go version nor the revision", args, out.String())
		}
	}
}
