package mqsc_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mqsc"
	"github.com/qmgr/qmgr/qm"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden files in testdata/ with the output the commands give now")

// TestGolden runs every MQSC script in testdata/*.mqsc against a member
// of its own and compares the whole output with the file's expectations.
//
// A script is a sequence of cases. A case is a request, a line starting
// with "> " and the lines after it starting with ">> " (joined by
// newlines: several commands, or one continued with + or -), followed by
// the expected output: the MQSC text, then "error: ..." when the request
// failed. A case whose request starts with "j> " expects the JSON objects
// instead of the text, one a line. Lines starting with "#" and
// blank lines between cases are comments. Volatile values (dates, times,
// pids, heartbeats, incarnations, usage counters) are masked as "*"
// (see mask). No output may show a value given to a secret attribute
// (AUTHKEY) by the script.
//
// go test ./mqsc -run TestGolden -rewrite writes the output the commands
// give now into the files (review the diff before committing it).
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.mqsc")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden scripts in testdata: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".mqsc"), func(t *testing.T) { runGolden(t, f) })
	}
}

// goldenCase is one request of a script and what it should answer.
type goldenCase struct {
	json    bool     // expect the JSON objects, not the text
	command []string // the request's lines, without their prefix
	want    []string // the expected output lines
	before  []string // the comment lines above the case, kept by -rewrite
	line    int      // where the case starts in its file
}

func runGolden(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cases, trailer := parseGolden(string(data))
	dir := t.TempDir()
	m := startGoldenMember(t, dir)
	var out strings.Builder
	failed := false
	var secrets []string // values given to secret attributes so far
	for _, c := range cases {
		secrets = append(secrets, secretValues(c.command)...)
		got := mask(answer(m, c), dir)
		for _, l := range got {
			for _, sec := range secrets {
				if strings.Contains(l, sec) {
					t.Errorf("%s:%d: the output shows a secret given to an earlier command:\n%s", path, c.line, l)
				}
			}
		}
		if !*rewrite && strings.Join(got, "\n") != strings.Join(c.want, "\n") {
			failed = true
			t.Errorf("%s:%d:\n%s\n--- want:\n%s\n--- got:\n%s", path, c.line, strings.Join(c.command, "\n"),
				strings.Join(c.want, "\n"), strings.Join(got, "\n"))
		}
		c.want = got
		writeCase(&out, c)
	}
	for _, l := range trailer {
		out.WriteString(l + "\n")
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if failed {
		t.Logf("run go test ./mqsc -run TestGolden -rewrite to take the output as expected")
	}
}

// secretValues are the values a request gives to secret attributes
// (those NamesSecret knows), for the check that no output shows them.
func secretValues(command []string) []string {
	cmds, _ := mqsc.Parse(strings.Join(command, "\n"))
	var out []string
	for _, c := range cmds {
		for _, a := range c.Attrs {
			if mqsc.NamesSecret(a.Key) && len(a.Value) >= 4 {
				out = append(out, a.Value)
			}
		}
	}
	return out
}

// parseGolden splits a script into cases; trailer is the comments after
// the last one.
func parseGolden(s string) (cases []goldenCase, trailer []string) {
	var cur *goldenCase
	var comments []string
	for n, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "> ") || strings.HasPrefix(line, "j> "):
			cases = append(cases, goldenCase{json: line[0] == 'j', before: comments, line: n + 1})
			cur, comments = &cases[len(cases)-1], nil
			cur.command = []string{line[strings.Index(line, "> ")+2:]}
		case strings.HasPrefix(line, ">> ") && cur != nil && len(cur.want) == 0:
			cur.command = append(cur.command, line[3:])
		case strings.HasPrefix(line, "#") || line == "":
			comments = append(comments, line)
		case cur != nil:
			// Comments and blank lines inside an output belong to it.
			cur.want = append(cur.want, comments...)
			cur.want = append(cur.want, line)
			comments = nil
		}
	}
	return cases, comments
}

func writeCase(b *strings.Builder, c goldenCase) {
	for _, l := range c.before {
		b.WriteString(l + "\n")
	}
	prefix := "> "
	if c.json {
		prefix = "j> "
	}
	for i, l := range c.command {
		if i > 0 {
			prefix = ">> "
		}
		b.WriteString(prefix + l + "\n")
	}
	for _, l := range c.want {
		b.WriteString(l + "\n")
	}
}

// answer runs a case's request and gives its output lines.
func answer(m *qm.Member, c goldenCase) []string {
	r := m.Exec(strings.Join(c.command, "\n"))
	var lines []string
	if c.json {
		for _, o := range r.Objects {
			lines = append(lines, string(o))
		}
	} else if r.Text != "" {
		lines = strings.Split(strings.TrimRight(r.Text, "\n"), "\n")
	}
	if !r.OK {
		lines = append(lines, "error: "+r.Error)
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return lines
}

// volatile are the attributes whose values change from run to run; an
// empty value stays as it is, but for HEARTBEAT (empty before the
// member's first beat).
var volatile = []string{"CRDATE", "CRTIME", "ALTDATE", "ALTTIME", "PID", "RECPID", "HEARTBEAT", "INCARNATION", "SINCE",
	"LSTUPDTM", "NEXTRTY", "CONN", "BKUPDATE", "BKUPTIME", "ENTSUSED", "ELEMUSED", "LOGBYTES", "RECOVERMS", "AGE", "IDLE"}

var (
	maskText = regexp.MustCompile(`\b(` + strings.Join(volatile, "|") + `)\([^)]*\)( *)`)
	maskJSON = regexp.MustCompile(`"(` + strings.Join(volatile, "|") + `)":("[^"]*"|-?[0-9]+)`)
)

// mask replaces volatile values by * (keeping the text's columns) and the
// test's directory by $DIR.
func mask(lines []string, dir string) []string {
	for i, l := range lines {
		l = strings.ReplaceAll(l, dir, "$DIR")
		l = maskText.ReplaceAllStringFunc(l, func(m string) string {
			key := m[:strings.IndexByte(m, '(')]
			if strings.HasPrefix(m[len(key):], "()") && key != "HEARTBEAT" {
				return m // an empty value says something (no backup, no retry)
			}
			if !strings.HasSuffix(m, " ") {
				return key + "(*)"
			}
			return fmt.Sprintf("%-*s", len(m), key+"(*)") // keep the column
		})
		lines[i] = maskJSON.ReplaceAllStringFunc(l, func(m string) string {
			key := m[1:strings.Index(m, `":`)]
			if strings.HasSuffix(m, `:""`) && key != "HEARTBEAT" {
				return m
			}
			return `"` + key + `":"*"`
		})
	}
	return lines
}

func startGoldenMember(t *testing.T, dir string) *qm.Member {
	t.Helper()
	cfg := qm.Config{
		Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name:  "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 10 * time.Second,
		UnitsByHand: true, // the scripts' services run nothing (STARTCMD('/bin/l'))
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:     "v9.9.9-golden", // DISPLAY GROUP VERSION, the same in every build
	}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(fmt.Errorf("start a member: %w", err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); m.Stop(); <-done })
	return m
}
