package lockfree

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// layoutRow is a row of a byte layout's table in a source file.
type layoutRow struct {
	off, size uint64
	name      string // the offset constant, or "-" for unused bytes
}

var layoutRowRE = regexp.MustCompile(`^//\t\s*(\d+)\s+(\d+)\s+(\S+)\s`)

// readLayoutTable reads the table that follows the line starting with
// title in the comment of file.
func readLayoutTable(t *testing.T, file, title string) []layoutRow {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rows []layoutRow
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, title) {
			in = true
			continue
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(line, "//") {
			break
		}
		m := layoutRowRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		off, _ := strconv.ParseUint(m[1], 10, 64)
		size, _ := strconv.ParseUint(m[2], 10, 64)
		rows = append(rows, layoutRow{off, size, m[3]})
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no table after %q", file, title)
	}
	return rows
}

// constNames lists the constants of file whose names start with prefix.
func constNames(t *testing.T, file, prefix string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			for _, n := range sp.(*ast.ValueSpec).Names {
				if strings.HasPrefix(n.Name, prefix) {
					names[n.Name] = true
				}
			}
		}
	}
	return names
}

// checkLayout checks a table against its constants: rows follow each other
// from 0 to size with no gap or overlap, each named row's offset is its
// constant's value, and every constant with the prefix (but sizeConst,
// the record's size) has a row.
func checkLayout(t *testing.T, file, title, prefix, sizeConst string, size uint64, consts map[string]uint64) {
	t.Helper()
	rows := readLayoutTable(t, file, title)
	var at uint64
	named := map[string]bool{}
	for _, r := range rows {
		if r.off != at {
			t.Errorf("%s: row %s at %d, the row before ends at %d", title, r.name, r.off, at)
		}
		at = r.off + r.size
		if r.name == "-" {
			continue
		}
		named[r.name] = true
		v, ok := consts[r.name]
		if !ok {
			t.Errorf("%s: row %s names no constant the test knows", title, r.name)
			continue
		}
		if v != r.off {
			t.Errorf("%s: the table puts %s at %d, the constant says %d", title, r.name, r.off, v)
		}
	}
	if at != size {
		t.Errorf("%s: the rows end at %d, the record is %d bytes", title, at, size)
	}
	for n := range constNames(t, file, prefix) {
		if !named[n] && n != sizeConst {
			t.Errorf("%s: constant %s has no row in the table", title, n)
		}
	}
}

// TestLayoutTables: the byte layouts documented as tables beside their
// offset constants match the constants and the record sizes.
func TestLayoutTables(t *testing.T) {
	checkLayout(t, "layout.go", "Owner slot fields.", "own", "ownerSize", ownerSize, map[string]uint64{
		"ownState": ownState, "ownPid": ownPid, "ownStart": ownStart, "ownReg": ownReg,
		"ownRepStart": ownRepStart, "ownRepPid": ownRepPid, "ownLabel": ownLabel, "ownOpSeq": ownOpSeq,
		"ownUOW": ownUOW, "ownTook": ownTook, "ownCommit": ownCommit, "ownUOWSince": ownUOWSince,
		"ownPidNS": ownPidNS, "ownLone": ownLone, "ownLoneKey": ownLoneKey, "ownDesc": ownDesc,
		"ownSegDesc": ownSegDesc, "ownEpoch": ownEpoch,
	})
}
