package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/recovery/logbuf"
)

// statusReport is what `qmgr status` shows.
type statusReport struct {
	Group      string         `json:"group"`
	DataDir    string         `json:"data"`
	CFDir      string         `json:"cf_dir"`
	Active     int            `json:"active"`
	Members    []memberStatus `json:"members"`
	Structures []structStatus `json:"structures"`
	Queues     []queueStatus  `json:"queues"`
	// Inbound channel connections refused since the admin structure was
	// created (channel.Inbound): over a listener's cap, and handshake not
	// complete by its deadline.
	InboundRefused  uint64 `json:"inbound_refused"`
	InboundTimedOut uint64 `json:"inbound_timed_out"`
	InboundUnauth   uint64 `json:"inbound_unauthenticated"`
}

type memberStatus struct {
	Name        string     `json:"name"`
	State       string     `json:"state"`
	Pid         int        `json:"pid"`
	Incarnation uint64     `json:"incarnation"`
	Heartbeat   string     `json:"heartbeat_age,omitempty"`
	Log         *logStatus `json:"log,omitempty"`
}

// logStatus is a running member's recovery log, as its log buffer says.
type logStatus struct {
	State       string `json:"state"`           // "ok", "failed", or "unknown" (unreadable)
	Since       string `json:"since,omitempty"` // when it failed (RFC 3339)
	Reason      string `json:"reason,omitempty"`
	Failures    uint64 `json:"failures"`
	LastFailure string `json:"last_failure,omitempty"`
	Reserve     string `json:"next_segment_not_reserved,omitempty"`
	text        string // the line `qmgr status` prints
}

// memberLog reads member's log status from its log buffer.
func memberLog(cfg group.Config, member string) *logStatus {
	st, err := logbuf.ReadStatus(cfg.CFDir, member)
	if err != nil {
		return &logStatus{State: "unknown", Reason: err.Error(), text: "unknown: " + err.Error()}
	}
	ls := &logStatus{State: "ok", Failures: st.Failures, Reason: st.Reason, Reserve: st.ReserveErr, text: st.Summary()}
	if st.Failed {
		ls.State, ls.Since = "failed", st.Since.Format(time.RFC3339Nano)
	}
	if !st.LastFailure.IsZero() {
		ls.LastFailure = st.LastFailure.Format(time.RFC3339Nano)
	}
	return ls
}

type structStatus struct {
	Name     string `json:"name"`
	SizeMB   uint64 `json:"size_mb"`
	Entries  int    `json:"entries"`
	Used     int    `json:"entries_used"`
	Owners   int    `json:"connections"`
	Problems string `json:"problem,omitempty"`
}

type queueStatus struct {
	Name  string `json:"name"`
	Depth int64  `json:"depth"`
	Uncom int64  `json:"uncommitted"`
	In    int64  `json:"open_input"`
	Out   int64  `json:"open_output"`
}

func cmdStatus(args []string, out io.Writer) error {
	var gf groupFlags
	var asJSON bool
	fs := newFlags("status", out)
	gf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	rep := statusReport{Group: cfg.Name, DataDir: cfg.DataDir, CFDir: cfg.CFDir}
	g, err := group.Open(cfg, false)
	if err != nil {
		if asJSON {
			b, _ := json.Marshal(rep)
			fmt.Fprintln(out, string(b))
		} else {
			fmt.Fprintf(out, "group %s: not running (%v)\n", cfg.Name, err)
		}
		return exitError{1, fmt.Errorf("no active member")}
	}
	defer g.Close()
	peers, err := g.Peers()
	if err != nil {
		return err
	}
	for _, p := range peers {
		st := p.State.String()
		if p.State.Running() && !p.ProcessAlive() {
			st = "failed"
		}
		ms := memberStatus{Name: p.Name, State: st, Pid: p.Process.Pid, Incarnation: p.Incarnation}
		if p.State.Running() && p.Heartbeat != 0 {
			ms.Heartbeat = time.Since(time.Unix(0, p.Heartbeat)).Round(time.Millisecond).String()
		}
		if st == "active" {
			rep.Active++
			ms.Log = memberLog(cfg, p.Name)
		}
		rep.Members = append(rep.Members, ms)
	}
	rep.InboundRefused, _ = g.Counter(group.CounterInboundRefused)
	rep.InboundTimedOut, _ = g.Counter(group.CounterInboundTimedOut)
	rep.InboundUnauth, _ = g.Counter(group.CounterInboundUnauth)
	names, _ := g.Structures()
	for _, n := range names {
		s, err := g.Structure(n, false)
		if err != nil {
			rep.Structures = append(rep.Structures, structStatus{Name: n, Problems: err.Error()})
			continue
		}
		u := s.Usage()
		ss := structStatus{Name: n, SizeMB: s.Mapping().Header().Size >> 20, Entries: s.Params().Entries, Used: u.EntriesUsed, Owners: u.Owners}
		if st := g.StructureStatus(s); st.Status != "ACTIVE" {
			ss.Problems = st.Status + ": " + st.Reason
		}
		rep.Structures = append(rep.Structures, ss)
		for _, qi := range s.Queues() {
			rep.Queues = append(rep.Queues, queueStatus{Name: qi.Name, Depth: qi.Depth, Uncom: qi.Uncom, In: qi.OpenIn, Out: qi.OpenOut})
		}
	}
	sort.Slice(rep.Queues, func(i, j int) bool { return rep.Queues[i].Name < rep.Queues[j].Name })
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Fprintln(out, string(b))
	} else {
		rep.writeText(out)
	}
	if rep.Active == 0 {
		return exitError{1, fmt.Errorf("no active member")}
	}
	return nil
}

// writeText writes the report as text, each kind of line in aligned
// columns (text/tabwriter): the members (each followed by its recovery
// log), the structures, the queues.
func (rep *statusReport) writeText(out io.Writer) {
	fmt.Fprintf(out, "group %s (CF %s, data %s): %d active\n", rep.Group, rep.CFDir, rep.DataDir, rep.Active)
	members := columns(len(rep.Members), func(w io.Writer, i int) {
		m := rep.Members[i]
		fmt.Fprintf(w, "  member\t%s\t%s\tpid %d\tincarnation %d\t%s\n", m.Name, m.State, m.Pid, m.Incarnation, m.Heartbeat)
	})
	for i, line := range members {
		fmt.Fprintln(out, line)
		if l := rep.Members[i].Log; l != nil {
			fmt.Fprintf(out, "    recovery log: %s\n", l.text)
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
