package lockfree

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Scenario scripts (testdata/scenarios/*.txt) drive one structure in
// t.TempDir() from one process: owners register, create queues, put, get,
// commit, back out, browse, are repaired, and the checker runs. A script
// is a sequence of blocks:
//
//	# comments and blank lines between blocks are kept as they are
//	command args...
//	command args...
//	----
//	expected output, whole, line by line
//	(a blank line or the end of the file ends the block)
//
// The output of a block is what its commands print, in order, and is
// compared whole. `go test ./lockfree/ -run TestScenarios -rewrite`
// writes what the commands print now as the expected output (check the
// diff before committing it). The commands are described in
// scenarioCommands.

var rewrite = flag.Bool("rewrite", false, "scenario scripts: write the output the commands print now as the expected output")

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenario scripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			for _, m := range runScenarioFile(t, f, *rewrite) {
				t.Error(m)
			}
		})
	}
}

// scenarioBlock is one block of a script: head is every line before the
// separator (comments, blank lines and commands), cmds the commands.
type scenarioBlock struct {
	line int // of the separator
	head []string
	cmds []string
	want []string
}

// parseScenario splits a script into blocks; trailing lines after the
// last block (comments) are returned as tail.
func parseScenario(text string) (blocks []scenarioBlock, tail []string, err error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var cur scenarioBlock
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if l != "----" {
			cur.head = append(cur.head, l)
			if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
				cur.cmds = append(cur.cmds, t)
			}
			continue
		}
		if len(cur.cmds) == 0 {
			return nil, nil, fmt.Errorf("line %d: separator without commands", i+1)
		}
		cur.line = i + 1
		for i+1 < len(lines) && lines[i+1] != "" {
			i++
			cur.want = append(cur.want, lines[i])
		}
		i++ // the blank line ending the block
		blocks = append(blocks, cur)
		cur = scenarioBlock{}
	}
	if len(cur.cmds) > 0 {
		return nil, nil, fmt.Errorf("commands at the end without a separator: %q", cur.cmds)
	}
	return blocks, cur.head, nil
}

// TestScenarioRunnerFails: a script whose expected output is wrong, or
// incomplete, is reported.
func TestScenarioRunnerFails(t *testing.T) {
	for name, script := range map[string]string{
		"wrong":   "register o\ncreate o Q\nput o Q a\nget o Q\n----\nb\n",
		"missing": "register o\ncreate o Q\nget o Q\n----\n",
		"extra":   "register o\ncreate o Q\n----\nok\n",
	} {
		path := filepath.Join(t.TempDir(), name+".txt")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		if m := runScenarioFile(t, path, false); len(m) != 1 {
			t.Errorf("%s: mismatches %q, want one", name, m)
		}
	}
}

// TestScenarioRunnerRefusesUnknownWords: a command given an option or a
// flag it does not take stops the script (a typo would otherwise be
// ignored and the command do something else than the script says, with
// nothing in the output to show it).
func TestScenarioRunnerRefusesUnknownWords(t *testing.T) {
	for name, script := range map[string]string{
		"flag typo":               "register o\ncreate o Q\nput o Q a snyc\n----\n",
		"option typo":             "register o\ncreate o Q\nput o Q a repat=3\n----\n",
		"flag of another command": "register o\ncreate o Q\nget o Q held\n----\nerror: lockfree: no message available\n",
		"option as a flag":        "register o\ncreate o Q\nput o Q a prio\n----\n",
	} {
		path := filepath.Join(t.TempDir(), "script.txt")
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		f := &fatalRecorder{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errScriptStopped {
					panic(r)
				}
			}()
			if m := runScenarioFile(f, path, false); len(m) > 0 {
				t.Errorf("%s: mismatches %q", name, m)
			}
		}()
		if !strings.Contains(f.fatal, "unknown") {
			t.Errorf("%s: the script ran to its end (fatal %q)", name, f.fatal)
		}
	}
}

// fatalRecorder is a test whose Fatalf records its message and stops the
// scenario run (a panic of errScriptStopped) instead of the test.
type fatalRecorder struct {
	testing.TB
	fatal string
}

var errScriptStopped = errors.New("script stopped")

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	panic(errScriptStopped)
}

// runScenarioFile runs the script at path and returns its blocks whose
// output differs from the expected; with rewrite it writes the output
// as the expected instead.
func runScenarioFile(t testing.TB, path string, rewrite bool) (mismatches []string) {
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blocks, tail, err := parseScenario(string(text))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	sc := &scenario{t: t, owners: map[string]*Owner{}, queues: map[string]QueueID{}}
	var out strings.Builder
	for _, b := range blocks {
		var got []string
		for _, c := range b.cmds {
			got = append(got, sc.run(c)...)
		}
		if rewrite {
			for _, l := range b.head {
				out.WriteString(l + "\n")
			}
			out.WriteString("----\n")
			for _, l := range got {
				out.WriteString(l + "\n")
			}
			out.WriteString("\n")
			continue
		}
		if g, w := strings.Join(got, "\n"), strings.Join(b.want, "\n"); g != w {
			mismatches = append(mismatches, fmt.Sprintf("%s:%d: output of\n  %s\ngot:\n%s\nwant:\n%s", path, b.line, strings.Join(b.cmds, "\n  "), g, w))
		}
	}
	if rewrite {
		for _, l := range tail {
			out.WriteString(l + "\n")
		}
		if err := os.WriteFile(path, []byte(strings.TrimSuffix(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return mismatches
}

// scenario is the state of one script: the structure, created on first
// use (or by the structure command), and owners and queues by name.
type scenario struct {
	t      testing.TB
	s      *Structure
	owners map[string]*Owner
	queues map[string]QueueID
}

// scenarioArgs are a command's words: positional ones first, then
// options (key=value) and flags (a bare word).
type scenarioArgs struct {
	pos   []string
	opts  map[string]string
	flags map[string]bool
}

// splitArgs takes npos positional words (every word when npos < 0).
func splitArgs(words []string, npos int) (scenarioArgs, error) {
	a := scenarioArgs{opts: map[string]string{}, flags: map[string]bool{}}
	if npos < 0 {
		npos = len(words)
	}
	if len(words) < npos {
		return a, fmt.Errorf("want %d arguments, got %d", npos, len(words))
	}
	a.pos = words[:npos]
	for _, w := range words[npos:] {
		if k, v, ok := strings.Cut(w, "="); ok {
			a.opts[k] = v
		} else {
			a.flags[w] = true
		}
	}
	return a, nil
}

// only refuses an option or a flag not among those given.
func (a scenarioArgs) only(opts, flags []string) error {
	for k := range a.opts {
		if !slices.Contains(opts, k) {
			return fmt.Errorf("unknown option %s=", k)
		}
	}
	for f := range a.flags {
		if !slices.Contains(flags, f) {
			return fmt.Errorf("unknown flag %s", f)
		}
	}
	return nil
}

func (a scenarioArgs) int(k string, def int) int {
	if v, ok := a.opts[k]; ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			panic(scriptError(fmt.Sprintf("option %s=%s: not a number", k, v)))
		}
		return n
	}
	return def
}

// scriptError is a mistake in a script (an unknown owner, a bad option),
// raised as a panic by the commands and reported with the command's usage.
type scriptError string

// scenarioCommand is one command: the number of its positional arguments
// (owner, queue, body, ...; -1: every word), and what it does, printing
// lines.
type scenarioCommand struct {
	npos  int
	usage string
	run   func(sc *scenario, a scenarioArgs) []string
}

// scenarioKeys are the options (key=value) and flags (bare words) each
// command takes; a command takes no other (a typo such as "snyc" would
// otherwise be ignored, and the command would do something else than the
// script says).
var scenarioKeys = map[string]struct{ opts, flags []string }{
	"structure": {[]string{"owners", "queues", "entries", "elements", "elementsize", "segments"}, nil},
	"create":    {[]string{"maxdepth", "maxmsglen"}, []string{"index"}},
	"put":       {[]string{"prio", "msgid", "correlid", "size", "expiry", "repeat"}, []string{"sync", "persistent"}},
	"get":       {[]string{"msgid", "correlid", "repeat"}, []string{"sync"}},
	"drain":     {nil, []string{"sync"}},
	"browse":    {nil, []string{"held", "uncommitted"}},
	"repair":    {nil, []string{"commit", "backout"}},
}

// scenarioCommands: mutations print nothing when they succeed and
// "error: ..." when they fail (the sentinel's text when the error wraps
// one: details such as slot numbers stay out of the scripts).
var scenarioCommands map[string]scenarioCommand

func init() {
	scenarioCommands = map[string]scenarioCommand{
		"structure": {0, "structure [owners=N queues=N entries=N elements=N elementsize=N segments=N]: create the structure (default smallParams)", cmdStructure},
		"register":  {-1, "register OWNER...: register owners", cmdRegister},
		"close":     {1, "close OWNER", func(sc *scenario, a scenarioArgs) []string { return errLines(sc.owner(a.pos[0]).Close()) }},
		"create":    {2, "create OWNER QUEUE [maxdepth=N] [maxmsglen=N] [index]: create a queue (index: by message and correlation id)", cmdCreate},
		"delete": {2, "delete OWNER QUEUE", func(sc *scenario, a scenarioArgs) []string {
			return errLines(sc.owner(a.pos[0]).DeleteQueue(sc.queue(a.pos[1])))
		}},
		"put":     {3, "put OWNER QUEUE BODY [prio=P] [sync] [persistent] [msgid=ID] [correlid=ID] [size=N] [expiry=past|hour] [repeat=N]: put (repeat: N times, BODY formatted with %d as 0..N-1; size: BODY repeated N times)", cmdPut},
		"get":     {2, "get OWNER QUEUE [sync] [msgid=ID] [correlid=ID] [repeat=N]: get and print the message (BODY, with (backout=N) when backed out before) or the error", cmdGet},
		"drain":   {2, "drain OWNER QUEUE [sync]: get until no message and print them on one line", cmdDrain},
		"browse":  {2, "browse OWNER QUEUE [held] [uncommitted]: browse the queue and print it on one line (uncommitted puts in parentheses)", cmdBrowse},
		"commit":  {1, "commit OWNER", func(sc *scenario, a scenarioArgs) []string { return errLines(sc.owner(a.pos[0]).Commit()) }},
		"backout": {1, "backout OWNER", func(sc *scenario, a scenarioArgs) []string { return errLines(sc.owner(a.pos[0]).Backout()) }},
		"decide":  {1, "decide OWNER: record the decision to commit (as a process killed right after it would leave it)", func(sc *scenario, a scenarioArgs) []string { return errLines(sc.owner(a.pos[0]).DecideCommit()) }},
		"repair":  {1, "repair OWNER [commit|backout]: repair the owner (forced: its process is this one) and print what the repair did", cmdRepair},
		"expire":  {2, "expire OWNER QUEUE: remove expired messages and print how many", cmdExpire},
		"info":    {1, "info QUEUE: print depth and uncommitted count", cmdInfo},
		"lookup":  {1, "lookup QUEUE: look the queue up by name", cmdLookup},
		"check":   {0, "check: run the checker (quiescent) and print its report", cmdCheck},
	}
}

func (sc *scenario) run(line string) (out []string) {
	words := strings.Fields(line)
	c, ok := scenarioCommands[words[0]]
	if !ok {
		sc.t.Fatalf("unknown command %q", line)
	}
	a, err := splitArgs(words[1:], c.npos)
	if err == nil {
		k := scenarioKeys[words[0]]
		err = a.only(k.opts, k.flags)
	}
	if err != nil {
		sc.t.Fatalf("%q: %v (usage: %s)", line, err, c.usage)
	}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(scriptError); !ok {
				panic(r)
			}
			sc.t.Fatalf("%q: %v (usage: %s)", line, r, c.usage)
		}
	}()
	if sc.s == nil && words[0] != "structure" {
		sc.create(smallParams)
	}
	return c.run(sc, a)
}

func (sc *scenario) create(p Params) {
	sc.s = newStructure(sc.t, p)
}

func (sc *scenario) owner(name string) *Owner {
	o, ok := sc.owners[name]
	if !ok {
		panic(scriptError("unknown owner " + name))
	}
	return o
}

// queue returns the queue created as name (it may have been deleted
// since).
func (sc *scenario) queue(name string) QueueID {
	q, ok := sc.queues[name]
	if !ok {
		panic(scriptError("unknown queue " + name))
	}
	return q
}

// scenarioSentinels are printed by their text alone.
var scenarioSentinels = []error{
	ErrParams, ErrCorrupt, ErrQueueFull, ErrMsgTooLong, ErrNoMessage, ErrStructureFull,
	ErrNoOwnerSlot, ErrUnknownQueue, ErrQueueExists, ErrQueueNotEmpty, ErrNoQueueSlot,
	ErrBadName, ErrBadPriority, ErrStatusChanged, ErrStatusBusy, ErrStatusRange,
	ErrOwnerRevoked, ErrOwnerAlive, ErrOwnerBusy, ErrNotOwner, ErrClosed, ErrViewReleased,
	ErrStructureFailed, ErrOwnerStalled,
}

func errText(err error) string {
	for _, s := range scenarioSentinels {
		if errors.Is(err, s) {
			return "error: " + s.Error()
		}
	}
	return "error: " + err.Error()
}

func errLines(err error) []string {
	if err == nil {
		return nil
	}
	return []string{errText(err)}
}

func scenarioID(s string) (id [idBytes]byte) {
	copy(id[:], s)
	return id
}

func msgText(m *Message) string {
	if m.BackoutCount > 0 {
		return fmt.Sprintf("%s(backout=%d)", m.Body, m.BackoutCount)
	}
	return string(m.Body)
}

func cmdStructure(sc *scenario, a scenarioArgs) []string {
	if sc.s != nil {
		panic(scriptError("the structure exists already (structure must come first)"))
	}
	p := smallParams
	p.Owners = a.int("owners", p.Owners)
	p.Queues = a.int("queues", p.Queues)
	p.Entries = a.int("entries", p.Entries)
	p.Elements = a.int("elements", p.Elements)
	p.ElementSize = a.int("elementsize", p.ElementSize)
	p.Segments = a.int("segments", p.Segments)
	sc.create(p)
	return nil
}

func cmdRegister(sc *scenario, a scenarioArgs) []string {
	var out []string
	for _, name := range a.pos {
		o, err := sc.s.Register()
		if err != nil {
			out = append(out, errText(err))
			continue
		}
		sc.owners[name] = o
	}
	return out
}

func cmdCreate(sc *scenario, a scenarioArgs) []string {
	attrs := QueueAttrs{MaxDepth: int64(a.int("maxdepth", 0)), MaxMsgLen: a.int("maxmsglen", 0), IndexMsgID: a.flags["index"], IndexCorrelID: a.flags["index"]}
	q, err := sc.owner(a.pos[0]).CreateQueue(a.pos[1], attrs)
	if err != nil {
		return errLines(err)
	}
	sc.queues[a.pos[1]] = q
	return nil
}

func cmdPut(sc *scenario, a scenarioArgs) []string {
	o, q := sc.owner(a.pos[0]), sc.queue(a.pos[1])
	n := a.int("repeat", 1)
	for i := 0; i < n; i++ {
		m := Message{Body: []byte(a.pos[2]), Priority: a.int("prio", 0), Persistent: a.flags["persistent"]}
		if _, ok := a.opts["repeat"]; ok {
			m.Body = []byte(fmt.Sprintf(a.pos[2], i))
		}
		if _, ok := a.opts["size"]; ok {
			m.Body = bytes.Repeat([]byte(a.pos[2]), a.int("size", 0))
		}
		if id, ok := a.opts["msgid"]; ok {
			m.MsgID = scenarioID(id)
		}
		if id, ok := a.opts["correlid"]; ok {
			m.CorrelID = scenarioID(id)
		}
		switch a.opts["expiry"] {
		case "":
		case "past":
			m.Expiry = time.Now().Add(-time.Second).UnixNano()
		case "hour":
			m.Expiry = time.Now().Add(time.Hour).UnixNano()
		default:
			panic(scriptError("expiry is past or hour"))
		}
		if err := o.Put(q, &m, PutOptions{Syncpoint: a.flags["sync"]}); err != nil {
			return []string{errText(err)}
		}
	}
	return nil
}

func getOptions(a scenarioArgs) GetOptions {
	opt := GetOptions{Syncpoint: a.flags["sync"], IncludeHeld: a.flags["held"], IncludeUncommitted: a.flags["uncommitted"]}
	if v, ok := a.opts["msgid"]; ok {
		id := scenarioID(v)
		opt.MsgID = &id
	}
	if v, ok := a.opts["correlid"]; ok {
		id := scenarioID(v)
		opt.CorrelID = &id
	}
	return opt
}

func cmdGet(sc *scenario, a scenarioArgs) []string {
	o, q := sc.owner(a.pos[0]), sc.queue(a.pos[1])
	var out []string
	for i := 0; i < a.int("repeat", 1); i++ {
		var m Message
		if err := o.Get(q, getOptions(a), &m); err != nil {
			return append(out, errText(err))
		}
		out = append(out, msgText(&m))
	}
	return out
}

func cmdDrain(sc *scenario, a scenarioArgs) []string {
	o, q := sc.owner(a.pos[0]), sc.queue(a.pos[1])
	var got []string
	for {
		var m Message
		err := o.Get(q, getOptions(a), &m)
		if errors.Is(err, ErrNoMessage) {
			return []string{"[" + strings.Join(got, " ") + "]"}
		}
		if err != nil {
			return []string{"[" + strings.Join(got, " ") + "] " + errText(err)}
		}
		got = append(got, msgText(&m))
	}
}

func cmdBrowse(sc *scenario, a scenarioArgs) []string {
	o, q := sc.owner(a.pos[0]), sc.queue(a.pos[1])
	cur := o.NewBrowseCursor(q)
	var got []string
	for {
		var m Message
		err := o.BrowseNext(cur, getOptions(a), &m)
		if errors.Is(err, ErrNoMessage) {
			return []string{"[" + strings.Join(got, " ") + "]"}
		}
		if err != nil {
			return []string{"[" + strings.Join(got, " ") + "] " + errText(err)}
		}
		if cur.Uncommitted() {
			got = append(got, "("+msgText(&m)+")")
		} else {
			got = append(got, msgText(&m))
		}
	}
}

func cmdRepair(sc *scenario, a scenarioArgs) []string {
	out := OutcomeAuto
	switch {
	case a.flags["commit"]:
		out = OutcomeCommit
	case a.flags["backout"]:
		out = OutcomeBackout
	}
	rep, err := sc.s.RepairWith(sc.owner(a.pos[0]).Tag(), out, true)
	if err != nil {
		return errLines(err)
	}
	return []string{fmt.Sprintf("committed %v, puts committed %d, puts removed %d, gets removed %d, gets restored %d, lone done %v",
		rep.Committed, rep.PutsCommitted, rep.PutsRemoved, rep.GetsRemoved, rep.GetsRestored, rep.LoneDone)}
}

func cmdExpire(sc *scenario, a scenarioArgs) []string {
	n, err := sc.owner(a.pos[0]).RemoveExpired(sc.queue(a.pos[1]))
	if err != nil {
		return errLines(err)
	}
	return []string{fmt.Sprintf("removed %d", n)}
}

func cmdInfo(sc *scenario, a scenarioArgs) []string {
	info, err := sc.s.QueueInfo(sc.queue(a.pos[0]))
	if err != nil {
		return errLines(err)
	}
	return []string{fmt.Sprintf("depth %d uncommitted %d", info.Depth, info.Uncom)}
}

func cmdLookup(sc *scenario, a scenarioArgs) []string {
	q, err := sc.s.LookupQueue(a.pos[0])
	if err != nil {
		return errLines(err)
	}
	if q != sc.queues[a.pos[0]] {
		return []string{fmt.Sprintf("found slot %d, created as slot %d", q, sc.queues[a.pos[0]])}
	}
	return []string{"found"}
}

func cmdCheck(sc *scenario, a scenarioArgs) []string {
	return strings.Split(sc.s.Check(CheckOptions{Quiescent: true}).String(), "\n")
}
