package layouttable

import (
	"strings"
	"testing"
)

func TestGoodTable(t *testing.T) {
	l := Layout{File: "testdata/good/good.go", Title: "Record layout", Prefix: "r", SizeName: "rSize", Except: []string{"rFlag"}}
	if errs := l.Check(); len(errs) != 0 {
		t.Fatalf("errors for a table that matches: %v", errs)
	}
}

// TestDriftReported: every kind of drift is reported, all of them at once,
// each with the file and line.
func TestDriftReported(t *testing.T) {
	l := Layout{File: "testdata/drift/drift.go", Title: "Record layout", Prefix: "d", SizeName: "dSize"}
	var got []string
	for _, err := range l.Check() {
		got = append(got, err.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"drift.go:7: layout \"Record layout\": the table puts dLen at 8, the constant says 12",
		"drift.go:8: layout \"Record layout\": row dGone at 20, the row before ends at 16 (a gap)",
		"row dGone names no constant of the declaration below the table",
		"drift.go:9: layout \"Record layout\": row dData has size * but is not the last row",
		"the rows end at 32, but dSize = 40",
		"constant dNew has no row in the table",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no error %q in:\n%s", want, all)
		}
	}
	if len(got) != 6 {
		t.Errorf("%d errors, want 6:\n%s", len(got), all)
	}
}

func TestTableNotAboveConstants(t *testing.T) {
	for _, c := range []struct{ title, want string }{
		{"Loose layout", "is not the doc comment of a const declaration"},
		{"No such layout", "no table with this title"},
	} {
		l := Layout{File: "testdata/drift/drift.go", Title: c.title, Prefix: "zz", SizeName: "dSize"}
		errs := l.Check()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), c.want) {
			t.Errorf("%s: errors %v, want one saying %q", c.title, errs, c.want)
		}
	}
}

func TestOverlapAndValueErrors(t *testing.T) {
	l := Layout{File: "testdata/drift/drift.go", Title: "Free layout", Prefix: "f", SizeName: "nosuch"}
	errs := l.Check()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "no package-level constant nosuch") {
		t.Errorf("errors %v, want one about the missing size constant", errs)
	}
}

// TestEveryTableInTheModule: every table of the module, whether a
// package's TestLayoutTables names it or not, matches its constants.
func TestEveryTableInTheModule(t *testing.T) {
	for _, err := range CheckTree("../..") {
		t.Error(err)
	}
}

// TestCheckTreeFindsDrift: CheckTree finds the drift of a table no test
// names (offsets and gaps; sizes and prefixes need a Layout) and a table
// away from its constants.
func TestCheckTreeFindsDrift(t *testing.T) {
	var got []string
	for _, err := range CheckTree("testdata") {
		got = append(got, err.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		"drift/drift.go:7: layout \"Record layout:\": the table puts dLen at 8, the constant says 12",
		"drift/drift.go:8: layout \"Record layout:\": row dGone at 20, the row before ends at 16 (a gap)",
		"a table that is not the doc comment of its offset constants' declaration",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no error %q in:\n%s", want, all)
		}
	}
	if strings.Contains(all, "good.go") {
		t.Errorf("errors for the table that matches:\n%s", all)
	}
}
