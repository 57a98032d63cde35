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
