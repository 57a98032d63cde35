package status

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/recovery/logbuf"
)

// Report is what `qmgr status` shows.
type Report struct {
	Group      string      `json:"group"`
	DataDir    string      `json:"data"`
	CFDir      string      `json:"cf_dir"`
	Active     int         `json:"active"`
	Members    []Member    `json:"members"`
	Structures []Structure `json:"structures"`
	Queues     []Queue     `json:"queues"`
	// Inbound channel connections refused since the admin structure was
	// created (channel.Inbound): over a listener's cap, and handshake not
	// complete by its deadline.
	InboundRefused  uint64 `json:"inbound_refused"`
	InboundTimedOut uint64 `json:"inbound_timed_out"`
	InboundUnauth   uint64 `json:"inbound_unauthenticated"`
}

// Member is one member of the peer table.
type Member struct {
	Name        string `json:"name"`
	State       string `json:"state"`
	Pid         int    `json:"pid"`
	Incarnation uint64 `json:"incarnation"`
	Heartbeat   string `json:"heartbeat_age,omitempty"`
	Log         *Log   `json:"log,omitempty"`
}

// Log is a running member's recovery log, as its log buffer says.
type Log struct {
	State       string `json:"state"`           // "ok", "failed", or "unknown" (unreadable)
	Since       string `json:"since,omitempty"` // when it failed (RFC 3339)
	Reason      string `json:"reason,omitempty"`
	Failures    uint64 `json:"failures"`
	LastFailure string `json:"last_failure,omitempty"`
	Reserve     string `json:"next_segment_not_reserved,omitempty"`
	// Text is the line `qmgr status` prints.
	Text string `json:"-"`
}

// Structure is one application structure.
type Structure struct {
	Name     string `json:"name"`
	SizeMB   uint64 `json:"size_mb"`
	Entries  int    `json:"entries"`
	Used     int    `json:"entries_used"`
	Owners   int    `json:"connections"`
	Problems string `json:"problem,omitempty"`
}

// Queue is one queue of an application structure.
type Queue struct {
	Name  string `json:"name"`
	Depth int64  `json:"depth"`
	Uncom int64  `json:"uncommitted"`
	In    int64  `json:"open_input"`
	Out   int64  `json:"open_output"`
	// Puts and Gets count the messages made available and removed since
	// the queue was created (lockfree QueueCounts): the console's rates.
	Puts int64 `json:"puts"`
	Gets int64 `json:"gets"`
}

// Empty is the report of a group that could not be opened: its name and
// directories only.
func Empty(cfg group.Config) Report {
	return Report{Group: cfg.Name, DataDir: cfg.DataDir, CFDir: cfg.CFDir}
}

// Collect reads the report from g: the members, the structures and their
// queues (sorted by name), and the refused inbound connections.
func Collect(g *group.Group) (Report, error) {
	rep := Empty(g.Config())
	peers, err := g.Peers()
	if err != nil {
		return rep, err
	}
	for _, p := range peers {
		ms := member(g.Config(), p)
		if ms.State == "active" {
			rep.Active++
		}
		rep.Members = append(rep.Members, ms)
	}
	rep.InboundRefused, _ = g.Counter(group.CounterInboundRefused)
	rep.InboundTimedOut, _ = g.Counter(group.CounterInboundTimedOut)
	rep.InboundUnauth, _ = g.Counter(group.CounterInboundUnauth)
	names, _ := g.Structures()
	for _, n := range names {
		rep.collectStructure(g, n)
	}
	sort.Slice(rep.Queues, func(i, j int) bool { return rep.Queues[i].Name < rep.Queues[j].Name })
	return rep, nil
}

// member is peer p as the report shows it: a running member whose process
// is gone is "failed"; an active one has its recovery log.
func member(cfg group.Config, p group.Peer) Member {
	st := p.State.String()
	if p.State.Running() && !p.ProcessAlive() {
		st = "failed"
	}
	ms := Member{Name: p.Name, State: st, Pid: p.Process.Pid, Incarnation: p.Incarnation}
	if p.State.Running() && p.Heartbeat != 0 {
		ms.Heartbeat = time.Since(time.Unix(0, p.Heartbeat)).Round(time.Millisecond).String()
	}
	if st == "active" {
		ms.Log = memberLog(cfg, p.Name)
	}
	return ms
}

// collectStructure adds structure n and its queues to the report.
func (rep *Report) collectStructure(g *group.Group, n string) {
	s, err := g.Structure(n, false)
	if err != nil {
		rep.Structures = append(rep.Structures, Structure{Name: n, Problems: err.Error()})
		return
	}
	u := s.Usage()
	ss := Structure{Name: n, SizeMB: s.Mapping().Header().Size >> 20, Entries: s.Params().Entries, Used: u.EntriesUsed, Owners: u.Owners}
	if st := g.StructureStatus(s); st.Status != "ACTIVE" {
		ss.Problems = st.Status + ": " + st.Reason
	}
	rep.Structures = append(rep.Structures, ss)
	for _, qi := range s.Queues() {
		rep.Queues = append(rep.Queues, Queue{Name: qi.Name, Depth: qi.Depth, Uncom: qi.Uncom, In: qi.OpenIn, Out: qi.OpenOut,
			Puts: qi.Counts.Puts, Gets: qi.Counts.Gets})
	}
}

// memberLog reads member's log status from its log buffer.
func memberLog(cfg group.Config, member string) *Log {
	st, err := logbuf.ReadStatus(cfg.CFDir, member)
	if err != nil {
		return &Log{State: "unknown", Reason: err.Error(), Text: "unknown: " + err.Error()}
	}
	ls := &Log{State: "ok", Failures: st.Failures, Reason: st.Reason, Reserve: st.ReserveErr, Text: st.Summary()}
	if st.Failed {
		ls.State, ls.Since = "failed", st.Since.Format(time.RFC3339Nano)
	}
	if !st.LastFailure.IsZero() {
		ls.LastFailure = st.LastFailure.Format(time.RFC3339Nano)
	}
	return ls
}

// WriteText writes the report as text, each kind of line in aligned
// columns (text/tabwriter): the members (each followed by its recovery
// log), the structures, the queues.
func (rep *Report) WriteText(out io.Writer) {
	fmt.Fprintf(out, "group %s (CF %s, data %s): %d active\n", rep.Group, rep.CFDir, rep.DataDir, rep.Active)
	members := columns(len(rep.Members), func(w io.Writer, i int) {
		m := rep.Members[i]
		fmt.Fprintf(w, "  member\t%s\t%s\tpid %d\tincarnation %d\t%s\n", m.Name, m.State, m.Pid, m.Incarnation, m.Heartbeat)
	})
	for i, line := range members {
		fmt.Fprintln(out, line)
		if l := rep.Members[i].Log; l != nil {
			fmt.Fprintf(out, "    recovery log: %s\n", l.Text)
		}
	}
	for _, line := range columns(len(rep.Structures), func(w io.Writer, i int) {
		s := rep.Structures[i]
		fmt.Fprintf(w, "  structure\t%s\t%d MiB\tentries %d/%d\tconnections %d\t%s\n", s.Name, s.SizeMB, s.Used, s.Entries, s.Owners, s.Problems)
	}) {
		fmt.Fprintln(out, line)
	}
	for _, line := range columns(len(rep.Queues), func(w io.Writer, i int) {
		q := rep.Queues[i]
		fmt.Fprintf(w, "  queue\t%s\tdepth %d\tuncommitted %d\topen in %d out %d\n", q.Name, q.Depth, q.Uncom, q.In, q.Out)
	}) {
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "  inbound connections refused: %d over a listener's cap, %d without a HELLO in time, %d partners not authenticated\n", rep.InboundRefused, rep.InboundTimedOut, rep.InboundUnauth)
}

// columns is n rows, written by row as tab-separated cells, in aligned
// columns: one line each, without trailing blanks.
func columns(n int, row func(w io.Writer, i int)) []string {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for i := 0; i < n; i++ {
		row(tw, i)
	}
	tw.Flush()
	var lines []string
	for _, l := range strings.SplitAfter(b.String(), "\n") {
		if l != "" {
			lines = append(lines, strings.TrimRight(l, " \n"))
		}
	}
	return lines
}
