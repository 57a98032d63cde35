package layouttable

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/constant"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Layout names a table and the constants it documents.
type Layout struct {
	// File is the Go source file holding the table and its constants,
	// relative to the test's working directory (its package directory).
	File string
	// Title is a substring of the table's comment that precedes the rows
	// (the line naming the record).
	Title string
	// Prefix: every constant declared in File whose name is Prefix
	// followed by a capital letter or a digit (qState for "q", not
	// queueSize) is a field of this record and must have a row, except
	// SizeName and Except.
	Prefix string
	// SizeName is the constant holding the record's size in bytes (the
	// fixed part's size when the table ends with a "*" row). It may be
	// declared anywhere in the package.
	SizeName string
	// Except lists constants with Prefix that are not fields (sizes,
	// counts, flag bits).
	Except []string
}

// Row is a row of a table.
type Row struct {
	Line      int // line of File
	Off, Size uint64
	Var       bool   // size "*": the variable-length rest of the record
	Name      string // the offset constant, "-" for unused bytes
}

var rowRE = regexp.MustCompile(`^//\t\s*(\d+)\s+(\d+|\*)\s+([A-Za-z_]\w*|-)(\s|$)`)

// Verify checks the layouts and reports every mismatch with t.Error.
func Verify(t testing.TB, layouts ...Layout) {
	t.Helper()
	for _, l := range layouts {
		for _, err := range l.Check() {
			t.Error(err)
		}
	}
}

// Check returns every mismatch between the table and the constants.
func (l Layout) Check() []error {
	pkg, err := load(filepath.Dir(l.File))
	if err != nil {
		return []error{err}
	}
	c := checker{l: l, pkg: pkg}
	c.run()
	return c.errs
}

type checker struct {
	l    Layout
	pkg  *pkgInfo
	errs []error
}

func (c *checker) errorf(pos token.Pos, format string, args ...any) {
	where := c.l.File
	if pos.IsValid() {
		p := c.pkg.fset.Position(pos)
		where = fmt.Sprintf("%s:%d", c.l.File, p.Line)
	}
	c.errs = append(c.errs, fmt.Errorf("%s: layout %q: %s", where, c.l.Title, fmt.Sprintf(format, args...)))
}

func (c *checker) run() {
	f := c.pkg.files[filepath.Base(c.l.File)]
	if f == nil {
		c.errorf(token.NoPos, "no such file in package %s", c.pkg.dir)
		return
	}
	decl := c.findDecl(f)
	if decl == nil {
		return
	}
	rows := c.readRows(decl.Doc)
	if len(rows) == 0 {
		c.errorf(decl.Doc.Pos(), "no rows after the title (rows are \"//<tab>offset size constant field\")")
		return
	}
	declared := constsOf(decl)
	named := c.checkRows(rows, declared)
	c.checkEnd(rows)
	c.checkPrefix(f, named)
}

// findDecl returns the const declaration whose doc comment holds the title.
func (c *checker) findDecl(f *ast.File) *ast.GenDecl {
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if ok && g.Tok == token.CONST && g.Doc != nil && strings.Contains(g.Doc.Text(), c.l.Title) {
			return g
		}
	}
	for _, cg := range f.Comments {
		if strings.Contains(cg.Text(), c.l.Title) {
			c.errorf(cg.Pos(), "the table is not the doc comment of a const declaration (it must sit directly above its offset constants)")
			return nil
		}
	}
	c.errorf(token.NoPos, "no table with this title")
	return nil
}

// readRows reads the rows that follow the title line (every row of the
// comment when the title is empty).
func (c *checker) readRows(doc *ast.CommentGroup) []Row {
	var rows []Row
	in := c.l.Title == ""
	for _, cm := range doc.List {
		if !in {
			in = strings.Contains(cm.Text, c.l.Title)
			continue
		}
		m := rowRE.FindStringSubmatch(cm.Text)
		if m == nil {
			continue
		}
		r := Row{Line: c.pkg.fset.Position(cm.Pos()).Line, Name: m[3]}
		r.Off, _ = strconv.ParseUint(m[1], 10, 64)
		if m[2] == "*" {
			r.Var = true
		} else {
			r.Size, _ = strconv.ParseUint(m[2], 10, 64)
		}
		rows = append(rows, r)
	}
	return rows
}

func constsOf(g *ast.GenDecl) map[string]bool {
	names := map[string]bool{}
	for _, sp := range g.Specs {
		for _, n := range sp.(*ast.ValueSpec).Names {
			names[n.Name] = true
		}
	}
	return names
}

// checkRows checks that rows are contiguous from 0 and that each named
// row sits at its constant's value; it returns the names with a row.
func (c *checker) checkRows(rows []Row, declared map[string]bool) map[string]bool {
	named := map[string]bool{}
	var at uint64
	for i, r := range rows {
		pos := c.linePos(r.Line)
		if r.Off != at {
			what := "a gap"
			if r.Off < at {
				what = "an overlap"
			}
			c.errorf(pos, "row %s at %d, the row before ends at %d (%s)", r.Name, r.Off, at, what)
		}
		at = r.Off + r.Size
		if r.Var && i != len(rows)-1 {
			c.errorf(pos, "row %s has size * but is not the last row", r.Name)
		}
		if r.Name == "-" {
			continue
		}
		if named[r.Name] {
			c.errorf(pos, "constant %s has two rows", r.Name)
		}
		named[r.Name] = true
		if !declared[r.Name] {
			c.errorf(pos, "row %s names no constant of the declaration below the table", r.Name)
			continue
		}
		v, err := c.pkg.value(r.Name)
		if err != nil {
			c.errorf(pos, "row %s: %v", r.Name, err)
			continue
		}
		if v != r.Off {
			c.errorf(pos, "the table puts %s at %d, the constant says %d", r.Name, r.Off, v)
		}
	}
	return named
}

// checkEnd checks that the rows end at the record's size.
func (c *checker) checkEnd(rows []Row) {
	last := rows[len(rows)-1]
	end := last.Off + last.Size
	size, err := c.pkg.value(c.l.SizeName)
	if err != nil {
		c.errorf(token.NoPos, "record size: %v", err)
		return
	}
	if end != size {
		c.errorf(c.linePos(last.Line), "the rows end at %d, but %s = %d", end, c.l.SizeName, size)
	}
}

// checkPrefix checks that every constant of the file with the prefix has
// a row.
func (c *checker) checkPrefix(f *ast.File, named map[string]bool) {
	skip := map[string]bool{c.l.SizeName: true}
	for _, n := range c.l.Except {
		skip[n] = true
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			for _, n := range sp.(*ast.ValueSpec).Names {
				if hasPrefix(n.Name, c.l.Prefix) && !named[n.Name] && !skip[n.Name] {
					c.errorf(n.Pos(), "constant %s has no row in the table", n.Name)
				}
			}
		}
	}
}

// hasPrefix says whether name is prefix followed by a capital letter or a
// digit (a camel-case word boundary: prefix "q" takes qState, not
// queueSize).
func hasPrefix(name, prefix string) bool {
	if !strings.HasPrefix(name, prefix) || len(name) == len(prefix) {
		return false
	}
	b := name[len(prefix)]
	return 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

func (c *checker) linePos(line int) token.Pos {
	tf := c.pkg.fset.File(c.pkg.files[filepath.Base(c.l.File)].Pos())
	if tf == nil || line < 1 || line > tf.LineCount() {
		return token.NoPos
	}
	return tf.LineStart(line)
}

// pkgInfo is a package's non-test files, type-checked for constant values.
type pkgInfo struct {
	dir   string
	fset  *token.FileSet
	files map[string]*ast.File
	pkg   *types.Package
}

func (p *pkgInfo) value(name string) (uint64, error) {
	obj, ok := p.pkg.Scope().Lookup(name).(*types.Const)
	if !ok {
		return 0, fmt.Errorf("no package-level constant %s", name)
	}
	v := constant.ToInt(obj.Val())
	if v.Kind() != constant.Int {
		return 0, fmt.Errorf("constant %s has no integer value (does it depend on another package?)", name)
	}
	u, exact := constant.Uint64Val(v)
	if !exact {
		return 0, fmt.Errorf("constant %s = %s is not a uint64", name, v)
	}
	return u, nil
}

var (
	cacheMu sync.Mutex
	cache   = map[string]*pkgInfo{}
)

// load parses and type-checks the package in dir (once per process).
func load(dir string) (*pkgInfo, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if p := cache[abs]; p != nil {
		return p, nil
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return nil, fmt.Errorf("layouttable: %w", err)
	}
	p := &pkgInfo{dir: abs, fset: token.NewFileSet(), files: map[string]*ast.File{}}
	var list []*ast.File
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		if ok, err := build.Default.MatchFile(abs, name); err != nil || !ok {
			continue
		}
		f, err := parser.ParseFile(p.fset, filepath.Join(abs, name), nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("layouttable: %w", err)
		}
		p.files[name] = f
		list = append(list, f)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("layouttable: no Go files in %s", abs)
	}
	// Imports are not resolved: only the package's own constants matter,
	// and the type errors this leaves elsewhere are ignored.
	conf := types.Config{Importer: noImports{}, Error: func(error) {}}
	p.pkg, _ = conf.Check(list[0].Name.Name, p.fset, list, nil)
	cache[abs] = p
	return p, nil
}

// CheckTree checks every table under root (a module's directory; testdata
// and hidden directories are skipped), registered in a test or not: rows
// contiguous from 0, each row's constant declared below the table and
// its value the row's offset. The record size and the prefix, which only
// a Layout names, are checked by Check.
func CheckTree(root string) []error {
	var errs []error
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		errs = append(errs, checkDir(root, path)...)
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("layouttable: %w", err))
	}
	return errs
}

// checkDir checks the tables of the package in dir, if there is one.
func checkDir(root, dir string) []error {
	pkg, err := load(dir)
	if err != nil {
		if strings.Contains(err.Error(), "no Go files") {
			return nil
		}
		return []error{err}
	}
	var errs []error
	for _, name := range sortedKeys(pkg.files) {
		rel, _ := filepath.Rel(root, filepath.Join(dir, name))
		f := pkg.files[name]
		docs := map[*ast.CommentGroup]bool{}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST || g.Doc == nil {
				continue
			}
			docs[g.Doc] = true
			c := checker{l: Layout{File: rel}, pkg: pkg}
			rows := c.readRows(g.Doc)
			if len(rows) == 0 {
				continue
			}
			c.l.Title = strings.SplitN(g.Doc.Text(), "\n", 2)[0]
			c.checkRows(rows, constsOf(g))
			errs = append(errs, c.errs...)
		}
		// A table anywhere else (a package doc, a type's comment) is a
		// copy that nothing keeps in step with the code.
		for _, cg := range f.Comments {
			c := checker{l: Layout{File: rel}, pkg: pkg}
			if docs[cg] || len(c.readRows(cg)) == 0 {
				continue
			}
			c.l.Title = strings.SplitN(cg.Text(), "\n", 2)[0]
			c.errorf(cg.Pos(), "a table that is not the doc comment of its offset constants' declaration (move it there, or describe the record in words)")
			errs = append(errs, c.errs...)
		}
	}
	return errs
}

func sortedKeys(m map[string]*ast.File) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type noImports struct{}

func (noImports) Import(path string) (*types.Package, error) {
	return nil, fmt.Errorf("layouttable: imports are not resolved (%s)", path)
}
