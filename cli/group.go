package cli

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/recovery/logbuf"
)

// groupFlags are the flags every group command takes.
type groupFlags struct {
	cfg     group.Config
	appSize uint64 // MiB
}

func (g *groupFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.cfg.Name, "group", "QSG1", "queue-sharing group")
	fs.StringVar(&g.cfg.DataDir, "data", "", "the group's data directory (default: $XDG_STATE_HOME/qmgr/<group>)")
	fs.StringVar(&g.cfg.CFDir, "cf-dir", "", "the group's CF directory (default: /dev/shm/qmgr-<group>)")
	fs.Uint64Var(&g.appSize, "app-size", 256, "MiB of the application structure APPL1 when this process creates it")
	fs.IntVar(&g.cfg.AppElementSize, "app-element-size", 256, "bytes per data element of the application structures this process creates (larger suits large messages)")
}

func (g *groupFlags) config() (group.Config, error) {
	c := g.cfg
	if g.appSize > 1<<20 {
		return c, fmt.Errorf("--app-size %d MiB: at most %d", g.appSize, 1<<20)
	}
	c.AppSize = g.appSize << 20
	c = c.WithDefaults()
	return c, c.Validate()
}

// exitError carries an exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func newFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

// cmdStart runs a member in the foreground.
func cmdStart(args []string, out io.Writer) error {
	var gf groupFlags
	var c qm.Config
	var jsonLog bool
	fs := newFlags("start", out)
	gf.register(fs)
	fs.StringVar(&c.Name, "name", "", "member (queue manager) name (required)")
	fs.IntVar(&c.Port, "port", 0, "the member's own inbound port")
	fs.IntVar(&c.GenericPort, "generic-port", 0, "the port every member of the group shares")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", 200*time.Millisecond, "heartbeat interval")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 10*time.Second, "a peer silent this long while alive is hung and is killed")
	fs.DurationVar(&c.StopGrace, "stop-grace", 2*time.Second, "how long an orderly stop waits for connections")
	fs.DurationVar(&c.UOWWarnAge, "uow-warn-age", time.Minute, "log a connection's unit of work open this long (negative: never)")
	fs.DurationVar(&c.UOWMaxAge, "uow-max-age", 10*time.Minute, "back out a connection's unit of work open this long and break the connection (negative: never)")
	fs.DurationVar(&c.StructureWait, "structure-wait", 10*time.Minute, "how long a starting member waits for a structure another member is creating or recovering")
	fs.BoolVar(&jsonLog, "json-log", false, "log JSON instead of text")
	fs.StringVar(&c.LogArchiveDir, "log-archive", "", "move recovery log segments no recovery needs here instead of deleting them")
	logSegMiB := fs.Int("log-segment-size", 64, "MiB of each recovery log segment file")
	noChinit := false
	fs.BoolVar(&noChinit, "no-chinit", false, "run no channel initiator")
	spin := fs.Duration("channel-spin", channel.DefaultSpinWait, "how long a running channel's read spins on its socket before it parks (0: never)")
	procs := fs.Int("chinit-procs", 0, "threads running the channel initiator's Go code at once (GOMAXPROCS); 0: "+chinitProcsDefaultDoc)
	maxHB := fs.Duration("channel-max-hbint", channel.DefaultMaxHeartbeat, "the longest heartbeat interval a channel agrees (whole seconds)")
	grace := fs.Duration("channel-silence-grace", channel.DefaultSilenceGrace, "how long a receiver waits beyond twice the heartbeat interval before it cuts a silent partner")
	var in channel.Inbound
	registerInbound(fs, &in, "channel-")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *procs < 0 {
		return fmt.Errorf("start: --chinit-procs %d: want 0 (the default) or more", *procs)
	}
	if err := in.Validate(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c.LogSegmentSize = int64(*logSegMiB) << 20
	var err error
	if c.Group, err = gf.config(); err != nil {
		return err
	}
	c.Logger = newLogger(jsonLog)
	if !noChinit {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("start: the channel initiator's binary: %w", err)
		}
		c.ChinitCommand = []string{exe, "chinit", "--group", c.Group.Name, "--data", c.Group.DataDir, "--cf-dir", c.Group.CFDir,
			"--qmgr", c.Name, "--port", strconv.Itoa(c.Port), "--generic-port", strconv.Itoa(c.GenericPort),
			"--spin", spin.String(), "--procs", strconv.Itoa(*procs), "--max-hbint", maxHB.String(), "--silence-grace", grace.String(),
			"--bind", in.Bind, "--max-inbound", strconv.Itoa(in.MaxConns), "--hello-timeout", in.HelloTimeout.String()}
		if jsonLog {
			c.ChinitCommand = append(c.ChinitCommand, "--json-log")
		}
	}
	m, err := qm.Start(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return m.Run(ctx)
}

// cmdStop asks a member to stop in order and waits until it has.
func cmdStop(args []string, out io.Writer) error {
	var gf groupFlags
	var name string
	var wait time.Duration
	fs := newFlags("stop", out)
	gf.register(fs)
	fs.StringVar(&name, "name", "", "member to stop (required)")
	fs.DurationVar(&wait, "wait", 30*time.Second, "how long to wait for it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	if name == "" {
		return errors.New("stop: --name is required")
	}
	g, err := group.Open(cfg, false)
	if err != nil {
		return err
	}
	defer g.Close()
	p, err := qm.SignalStop(g, name)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		cur, err := g.Peer(p.Slot)
		if err == nil && (cur.Incarnation != p.Incarnation || !cur.State.Running()) {
			fmt.Fprintf(out, "member %s stopped (%s)\n", name, cur.State)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("stop: %s did not stop within %v", name, wait)
}

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
		fmt.Fprintf(out, "group %s (CF %s, data %s): %d active\n", rep.Group, rep.CFDir, rep.DataDir, rep.Active)
		for _, m := range rep.Members {
			fmt.Fprintf(out, "  member %-12s %-10s pid %-7d incarnation %d %s\n", m.Name, m.State, m.Pid, m.Incarnation, m.Heartbeat)
			if m.Log != nil {
				fmt.Fprintf(out, "    recovery log: %s\n", m.Log.text)
			}
		}
		for _, s := range rep.Structures {
			fmt.Fprintf(out, "  structure %-9s %5d MiB  entries %d/%d  connections %d %s\n", s.Name, s.SizeMB, s.Used, s.Entries, s.Owners, s.Problems)
		}
		for _, q := range rep.Queues {
			fmt.Fprintf(out, "  queue %-30s depth %-8d uncommitted %-6d open in %d out %d\n", q.Name, q.Depth, q.Uncom, q.In, q.Out)
		}
		fmt.Fprintf(out, "  inbound connections refused: %d over a listener's cap, %d without a HELLO in time, %d partners not authenticated\n", rep.InboundRefused, rep.InboundTimedOut, rep.InboundUnauth)
	}
	if rep.Active == 0 {
		return exitError{1, fmt.Errorf("no active member")}
	}
	return nil
}

// cmdMQSC sends admin commands to a member.
func cmdMQSC(args []string, in io.Reader, out io.Writer) error {
	var gf groupFlags
	var command, name string
	var asJSON bool
	fs := newFlags("mqsc", out)
	gf.register(fs)
	fs.StringVar(&command, "c", "", "the command (default: commands from stdin)")
	fs.StringVar(&name, "name", "", "member to run them (default: any active member)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object per result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	if command == "" {
		b, err := io.ReadAll(in)
		if err != nil {
			return err
		}
		command = string(b)
	}
	if strings.TrimSpace(command) == "" {
		return errors.New("mqsc: no command")
	}
	member, err := activeMember(cfg, name)
	if err != nil {
		return err
	}
	resp, err := qm.Command(cfg, member, command)
	if err != nil {
		return err
	}
	if asJSON {
		for _, o := range resp.Objects {
			fmt.Fprintln(out, string(o))
		}
	} else {
		fmt.Fprint(out, resp.Text)
	}
	if !resp.OK {
		return exitError{1, fmt.Errorf("%s", resp.Error)}
	}
	return nil
}

// activeMember picks the named member or any active one.
func activeMember(cfg group.Config, name string) (string, error) {
	g, err := group.Open(cfg, false)
	if err != nil {
		return "", err
	}
	defer g.Close()
	peers, err := g.Peers()
	if err != nil {
		return "", err
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	for _, p := range peers {
		if (name == "" || p.Name == name) && p.State == group.PeerActive && p.ProcessAlive() {
			return p.Name, nil
		}
	}
	if name != "" {
		return "", fmt.Errorf("member %s of group %s is not active", name, cfg.Name)
	}
	return "", fmt.Errorf("group %s has no active member", cfg.Name)
}

// parseID reads a message or correlation id: 48 hex digits, or text
// (padded with zero bytes).
func parseID(s string) (*[24]byte, error) {
	if s == "" {
		return nil, nil
	}
	var id [24]byte
	if len(s) == 48 {
		if b, err := hex.DecodeString(s); err == nil {
			copy(id[:], b)
			return &id, nil
		}
	}
	if len(s) > 24 {
		return nil, fmt.Errorf("id %q: give 48 hex digits or at most 24 characters", s)
	}
	copy(id[:], s)
	return &id, nil
}

func connect(gf groupFlags, name string) (*mq.Conn, error) {
	cfg, err := gf.config()
	if err != nil {
		return nil, err
	}
	return mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: name, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
}

// cmdPut puts messages: stdin lines, or generated ones.
func cmdPut(args []string, in io.Reader, out io.Writer) error {
	var gf groupFlags
	var name, queue, correl string
	var count, size, prio, every int
	var persistent, syncpoint bool
	fs := newFlags("put", out)
	gf.register(fs)
	fs.StringVar(&name, "name", "", "member to connect through (default: any active)")
	fs.StringVar(&queue, "queue", "", "queue (required)")
	fs.IntVar(&count, "count", 0, "generate this many messages instead of reading stdin")
	fs.IntVar(&size, "size", 64, "size of generated messages")
	fs.BoolVar(&persistent, "persistent", false, "persistent messages")
	fs.IntVar(&prio, "priority", mq.PriorityAsQDef, "priority 0-9 (default: the queue's DEFPRTY)")
	fs.StringVar(&correl, "correlid", "", "correlation id (48 hex digits or text)")
	fs.BoolVar(&syncpoint, "syncpoint", false, "put in units of work")
	fs.IntVar(&every, "commit-every", 1, "with --syncpoint: commit after this many messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if queue == "" {
		return errors.New("put: --queue is required")
	}
	cid, err := parseID(correl)
	if err != nil {
		return err
	}
	c, err := connect(gf, name)
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open(queue, mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	defer q.Close()
	n := 0
	put := func(body []byte) error {
		m := mq.Message{Body: body, Priority: prio, Persistence: mq.NotPersistent}
		if persistent {
			m.Persistence = mq.Persistent
		}
		if cid != nil {
			m.CorrelID = *cid
		}
		if err := q.Put(&m, mq.PutOptions{Syncpoint: syncpoint}); err != nil {
			return err
		}
		n++
		if syncpoint && n%every == 0 {
			return c.Commit()
		}
		return nil
	}
	if count > 0 {
		for i := 0; i < count; i++ {
			body := []byte(fmt.Sprintf("%0*d", size, i))
			if len(body) > size {
				body = body[len(body)-size:]
			}
			if err := put(body); err != nil {
				return err
			}
		}
	} else {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 100<<20)
		for sc.Scan() {
			if err := put(append([]byte(nil), sc.Bytes()...)); err != nil {
				return err
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if syncpoint {
		return c.Commit()
	}
	return nil
}

// cmdGet gets (or browses) messages and prints each body on its own line;
// with --syncpoint it prints "#commit" after each successful commit.
func cmdGet(args []string, out io.Writer) error {
	var gf groupFlags
	var name, queue, msgid, correl string
	var count, every int
	var wait time.Duration
	var browse, syncpoint bool
	fs := newFlags("get", out)
	gf.register(fs)
	fs.StringVar(&name, "name", "", "member to connect through (default: any active)")
	fs.StringVar(&queue, "queue", "", "queue (required)")
	fs.IntVar(&count, "count", 0, "stop after this many messages (default: until none is left)")
	fs.DurationVar(&wait, "wait", 0, "wait this long for each message")
	fs.BoolVar(&browse, "browse", false, "browse: do not remove the messages")
	fs.StringVar(&msgid, "msgid", "", "only the message with this message id")
	fs.StringVar(&correl, "correlid", "", "only messages with this correlation id")
	fs.BoolVar(&syncpoint, "syncpoint", false, "get in units of work")
	fs.IntVar(&every, "commit-every", 1, "with --syncpoint: commit after this many messages")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if queue == "" {
		return errors.New("get: --queue is required")
	}
	if every < 1 {
		return errors.New("get: --commit-every must be at least 1")
	}
	mid, err := parseID(msgid)
	if err != nil {
		return err
	}
	cid, err := parseID(correl)
	if err != nil {
		return err
	}
	c, err := connect(gf, name)
	if err != nil {
		return err
	}
	defer c.Disconnect()
	w := bufio.NewWriter(out)
	defer w.Flush()
	opts := mq.OpenOptions{Input: !browse, Browse: browse}
	q, err := c.Open(queue, opts)
	if err != nil {
		return err
	}
	defer q.Close()
	gopt := mq.GetOptions{Syncpoint: syncpoint && !browse, Wait: wait, MsgID: mid, CorrelID: cid}
	var cur *mq.BrowseCursor
	if browse {
		if cur, err = q.Browse(); err != nil {
			return err
		}
	}
	n, pending := 0, 0
	for count == 0 || n < count {
		var m *mq.Message
		if browse {
			m, err = cur.Next(gopt)
		} else {
			m, err = q.Get(gopt)
		}
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			w.Flush()
			return err
		}
		w.Write(m.Body)
		w.WriteByte('\n')
		n++
		if gopt.Syncpoint {
			if pending++; pending == every {
				if err := c.Commit(); err != nil {
					w.Flush()
					return err
				}
				w.WriteString("#commit\n")
				w.Flush()
				pending = 0
			}
		}
	}
	if gopt.Syncpoint && pending > 0 {
		if err := c.Commit(); err != nil {
			return err
		}
		w.WriteString("#commit\n")
	}
	return nil
}

// cmdChinit runs a member's channel initiator in the foreground (the
// member starts it as its child; see qm.Config.ChinitCommand). SIGTERM
// stops it leaving its channels to the other members, SIGINT leaves them
// stopped.
func cmdChinit(args []string, out io.Writer) error {
	var gf groupFlags
	var c channel.Config
	var jsonLog bool
	fs := newFlags("chinit", out)
	gf.register(fs)
	fs.StringVar(&c.QMgr, "qmgr", "", "the member (required)")
	fs.IntVar(&c.Port, "port", 0, "the member's own inbound port")
	fs.IntVar(&c.GenericPort, "generic-port", 0, "the port every member of the group shares")
	fs.BoolVar(&jsonLog, "json-log", false, "log JSON instead of text")
	fs.DurationVar(&c.SpinWait, "spin", channel.DefaultSpinWait, "how long a running channel's read spins on its socket before it parks (0: never)")
	procs := fs.Int("procs", 0, "threads running Go code at once (GOMAXPROCS); 0: "+chinitProcsDefaultDoc)
	fs.DurationVar(&c.MaxHeartbeat, "max-hbint", channel.DefaultMaxHeartbeat, "the longest heartbeat interval a channel agrees (whole seconds)")
	fs.DurationVar(&c.SilenceGrace, "silence-grace", channel.DefaultSilenceGrace, "how long a receiver waits beyond twice the heartbeat interval before it cuts a silent partner")
	registerInbound(fs, &c.Inbound, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *procs < 0 {
		return fmt.Errorf("chinit: --procs %d: want 0 (the default) or more", *procs)
	}
	setChinitProcs(*procs)
	if c.SpinWait == 0 {
		c.SpinWait = -1 // 0 is the default in channel.Config
	}
	var err error
	if c.Group, err = gf.config(); err != nil {
		return err
	}
	c.Logger = newLogger(jsonLog)
	defer profile(c.Logger)()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var got os.Signal
	go func() { got = <-sigs; cancel() }()
	return channel.Run(ctx, c, func() channel.OnStop {
		if got == syscall.SIGINT {
			return channel.Stop
		}
		return channel.Restart
	})
}

// registerInbound registers the flags of the listeners' configuration,
// their names after prefix ("--bind" is never prefixed).
func registerInbound(fs *flag.FlagSet, in *channel.Inbound, prefix string) {
	fs.StringVar(&in.Bind, "bind", channel.DefaultBind, "the IP address the channel listeners (--port, --generic-port) bind: loopback by default; 0.0.0.0 or :: for every interface")
	fs.IntVar(&in.MaxConns, prefix+"max-inbound", channel.DefaultMaxInbound, "the most connections each channel listener holds at once; one over is closed at once and counted (DISPLAY QMGR INREFUSED)")
	fs.DurationVar(&in.HelloTimeout, prefix+"hello-timeout", channel.DefaultHelloTimeout, "how long an inbound connection has to complete its TLS handshake and HELLO; one that has not is closed and counted (DISPLAY QMGR INTIMEOUT)")
}

const chinitProcsDefaultDoc = "half the CPUs (or of the container's CPU limit), at least 1, unless GOMAXPROCS is set"

// setChinitProcs sets how many threads run the channel initiator's Go
// code. By default half of Go's own default (the CPUs, or the container's
// CPU limit): a channel initiator moving messages as
// fast as it can shares the host with its member and, on one host, with
// the other end of its channels. With every CPU its own, Go's scheduler
// wakes threads on the other CPUs to look for work each time a channel's
// goroutine blocks or wakes, and they take those CPUs from the process
// at the other end: on 2 CPUs, one thread per initiator moved 64-byte
// messages faster than two in 9 of 10 alternating pairs of runs
// (perf/chanbench; see README).
func setChinitProcs(n int) {
	if n == 0 {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		n = max(1, runtime.GOMAXPROCS(0)/2) // Go's default: the CPUs, or the container's CPU limit
	}
	runtime.GOMAXPROCS(n)
}

// newLogger logs to standard error, as text or JSON.
func newLogger(jsonLog bool) *slog.Logger {
	if jsonLog {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// profile writes a CPU profile of this process when QMGR_CPUPROFILE is
// "dir:seconds[:hz]" (for benchmarks: the channel initiator is a child process
// killed with its member, so the profile covers a fixed time from start,
// or until the process stops when that is sooner). It returns the stop.
func profile(log *slog.Logger) func() {
	v := os.Getenv("QMGR_CPUPROFILE")
	if v == "" {
		return func() {}
	}
	dir, secs, _ := strings.Cut(v, ":")
	secs, hz, _ := strings.Cut(secs, ":")
	n, err := strconv.Atoi(secs)
	if err != nil || n <= 0 {
		n = 10
	}
	if r, err := strconv.Atoi(hz); err == nil && r > 0 {
		runtime.SetCPUProfileRate(r) // before StartCPUProfile, which then warns that the rate is set
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.prof", os.Getpid())))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Warn("QMGR_CPUPROFILE", "err", err)
		return func() {}
	}
	var once sync.Once
	stop := func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }
	time.AfterFunc(time.Duration(n)*time.Second, stop)
	return stop
}
