package chaos

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
)

// Config is one run of the harness.
type Config struct {
	Dir              string          // working directory (groups, histories, logs); required
	Seed             int64           // the nemesis's and the clients' seed
	Duration         time.Duration   // how long faults are injected; default 20s
	MeanInterval     time.Duration   // mean time between two faults; default 400ms
	Channel          bool            // a second group and a channel to it through a proxy
	Faults           map[string]bool // the kinds to inject; nil: every kind available
	HeartbeatTimeout time.Duration   // the members' --heartbeat-timeout; default 3s
	Fsync            bool            // fsync every history record
	Log              io.Writer       // progress lines; nil: none
}

func (c Config) withDefaults() Config {
	if c.Duration == 0 {
		c.Duration = 20 * time.Second
	}
	if c.MeanInterval == 0 {
		c.MeanInterval = 400 * time.Millisecond
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 3 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return c
}

// Validate checks a configuration (with its defaults filled).
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("chaos: Config.Dir is required")
	case c.Duration < 0 || c.MeanInterval <= 0 || c.HeartbeatTimeout <= 0:
		return fmt.Errorf("chaos: Duration %v, MeanInterval %v and HeartbeatTimeout %v must be positive", c.Duration, c.MeanInterval, c.HeartbeatTimeout)
	}
	for k := range c.Faults {
		known := false
		for _, w := range faultWeights {
			known = known || w.kind == k
		}
		if !known {
			if why, ok := unavailableFaults[k]; ok {
				return fmt.Errorf("chaos: fault %s is not available: %s", k, why)
			}
			return fmt.Errorf("chaos: unknown fault kind %q", k)
		}
	}
	return nil
}

// The workload's queues.
const (
	queueMain   = "CHAOS.Q"     // group A: producers and consumers
	queueSmall  = "CHAOS.SMALL" // group A, structure APPL2: MAXDEPTH(smallDepth), producers racing for it
	queueRemote = "RQ"          // group A: QREMOTE for queueTarget on group B, through xmitQueue
	queueTarget = "TARGET"      // group B
	xmitQueue   = "XQ"
	channelName = "A.TO.B"
	channelKey  = "chaos-channel-secret-0123456789" // AUTHKEY of channelName on both sides
	smallDepth  = 4
)

// Report is the outcome of a run.
type Report struct {
	Seed      int64
	Duration  time.Duration // of the faults
	Elapsed   time.Duration // of the whole run
	Result    *Result
	Anomalies []Anomaly // the checker's and the harness's
	Events    []Event
	LeftOut   []string // fault kinds the run did not inject (Config.Faults)
	t0        int64
}

// harness is one run.
type harness struct {
	cfg     Config
	exe     string
	rng     *rand.Rand // the nemesis's (one goroutine)
	events  *EventLog
	histDir string
	logDir  string
	groups  []*qgroup
	clients []*proc
	proxy   *Proxy
	notes   []Anomaly     // what the harness itself found
	quit    chan struct{} // closed when the run ends
}

func (h *harness) quitting() bool {
	select {
	case <-h.quit:
		return true
	default:
		return false
	}
}

// Run runs the workload under the nemesis for cfg.Duration, heals,
// drains, checks the histories and returns the report. An error is a
// failure of the harness itself (it could not set up or read its
// histories), not an anomaly.
func Run(cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	h := &harness{cfg: cfg, rng: rand.New(rand.NewSource(cfg.Seed)), quit: make(chan struct{}),
		histDir: filepath.Join(cfg.Dir, "history"), logDir: filepath.Join(cfg.Dir, "logs")}
	var err error
	if h.exe, err = os.Executable(); err != nil {
		return nil, err
	}
	for _, d := range []string{h.histDir, h.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	t0 := Now()
	if h.events, err = NewEventLog(filepath.Join(cfg.Dir, "faults.jsonl"), t0); err != nil {
		return nil, err
	}
	defer h.events.Close()
	defer h.teardown()
	if err := h.setup(); err != nil {
		return nil, err
	}
	h.logf("workload running; faults for %v (seed %d)", cfg.Duration, cfg.Seed)
	n := &nemesis{h: h, stop: make(chan struct{}), busy: map[*proc]bool{}}
	n.run(time.Now().Add(cfg.Duration))
	close(n.stop)
	n.wg.Wait()
	h.logf("faults over; healing and draining")
	h.finish()
	ops, err := ReadHistories(h.histDir)
	if err != nil {
		return nil, err
	}
	events := h.events.Events()
	model := h.model()
	model.T0 = t0
	if b, err := json.MarshalIndent(model, "", "  "); err == nil {
		os.WriteFile(filepath.Join(cfg.Dir, "model.json"), b, 0o644) // for Recheck
	}
	res := Check(model, ops, events)
	r := &Report{Seed: cfg.Seed, Duration: cfg.Duration, Result: res, Events: events, t0: t0}
	for _, k := range FaultKinds() {
		if cfg.Faults != nil && !cfg.Faults[k] {
			r.LeftOut = append(r.LeftOut, k)
		}
	}
	r.Anomalies = append(append(r.Anomalies, res.Anomalies...), h.observed(events)...)
	r.Anomalies = append(r.Anomalies, h.notes...)
	r.Elapsed = time.Since(start)
	return r, nil
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.cfg.Log, "chaos %s: %s\n", h.events.Offset(Now()), fmt.Sprintf(format, args...))
}

func (h *harness) note(kind, detail string) {
	h.logf("%s: %s", kind, detail)
	h.notes = append(h.notes, Anomaly{Kind: kind, Detail: detail})
}

// model is what the checker knows of the workload.
func (h *harness) model() Model {
	m := Model{Route: map[string]string{}, Xmit: map[string]string{}, Path: map[string][]string{queueMain: {"A/APPL1"}, queueSmall: {"A/APPL2"}},
		MaxDepth: map[string]int{queueSmall: smallDepth}}
	if h.proxy != nil {
		m.Route[queueRemote] = queueTarget
		m.Xmit[queueRemote] = xmitQueue
		m.Path[queueRemote] = []string{"A/APPL1", "B/APPL1"}
	}
	return m
}

// newGroup lays out group label (members names) in the run directory.
func (h *harness) newGroup(label, name string, names []string, structs []string, extra ...string) (*qgroup, error) {
	dir := filepath.Join(h.cfg.Dir, label)
	cfg := group.Config{Name: name, DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &qgroup{label: label, cfg: cfg, names: names, extra: extra, members: map[string]*proc{}, structs: structs, h: h}
	for _, n := range names {
		g.members[n] = &proc{h: h, g: g, name: n, member: true, logPath: filepath.Join(h.logDir, label+"."+n+".log"),
			wake: make(chan struct{}), done: make(chan struct{})}
	}
	h.groups = append(h.groups, g)
	return g, nil
}

// setup starts the groups (each group's members at the same instant),
// defines the queues and the channel and starts the clients.
func (h *harness) setup() error {
	a, err := h.newGroup("A", "CHA", []string{"QMA1", "QMA2", "QMA3"}, []string{"APPL1", "APPL2"})
	if err != nil {
		return err
	}
	var b *qgroup
	if h.cfg.Channel {
		port, err := freePort()
		if err != nil {
			return err
		}
		if b, err = h.newGroup("B", "CHB", []string{"QMB1", "QMB2"}, []string{"APPL1"}, "--generic-port", fmt.Sprint(port)); err != nil {
			return err
		}
		if h.proxy, err = NewProxy(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			return err
		}
	}
	for _, g := range h.groups {
		for _, n := range g.names {
			go g.members[n].supervise()
		}
	}
	for _, g := range h.groups {
		if !waitUntil(90*time.Second, g.allActive) {
			return fmt.Errorf("chaos: group %s did not become active (logs in %s)", g.label, h.logDir)
		}
	}
	h.logf("groups active")
	defsA := []string{
		"DEFINE CFSTRUCT(APPL2) SIZE(24)",
		fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(1000000)", queueMain),
		fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(%d) CFSTRUCT(APPL2)", queueSmall, smallDepth),
	}
	if b != nil {
		for _, c := range []string{fmt.Sprintf("DEFINE CHANNEL(%s) CHLTYPE(RCVR) AUTHKEY('%s')", channelName, channelKey), fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(1000000)", queueTarget)} {
			if err := h.define(b, c); err != nil {
				return err
			}
		}
		defsA = append(defsA,
			// Triggered: the channel starts whenever messages wait, also
			// after the group lost its CF (and the channel's status).
			fmt.Sprintf("DEFINE QLOCAL(%s) USAGE(XMITQ) MAXDEPTH(1000000) TRIGGER TRIGDATA(%s)", xmitQueue, channelName),
			fmt.Sprintf("DEFINE CHANNEL(%s) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(%s) BATCHSZ(20) SHORTRTY(999999999) SHORTTMR(1) LONGRTY(999999999) LONGTMR(1) HBINT(5) AUTHKEY('%s')", channelName, h.proxy.Port(), xmitQueue, channelKey),
			fmt.Sprintf("DEFINE QREMOTE(%s) RNAME(%s) RQMNAME(%s) XMITQ(%s)", queueRemote, queueTarget, b.cfg.Name, xmitQueue),
			fmt.Sprintf("START CHANNEL(%s)", channelName))
	}
	for _, c := range defsA {
		if err := h.define(a, c); err != nil {
			return err
		}
	}
	h.startClients(a, b)
	return nil
}

// define runs a definition, retrying while members come and go.
func (h *harness) define(g *qgroup, cmd string) error {
	var err error
	for range 20 {
		if err = g.mqsc(cmd); err == nil {
			return nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return err
}

// waitProgress waits until depth() is zero, as long as it went down in
// the last quiet period; false when it stopped going down (a depth that
// cannot be read, -1, is no progress).
func waitProgress(quiet time.Duration, depth func() int64) bool {
	last, since := int64(math.MaxInt64), time.Now()
	for {
		d := depth()
		if d == 0 {
			return true
		}
		if d > 0 && d < last {
			last, since = d, time.Now()
		}
		if time.Since(since) > quiet {
			return false
		}
		time.Sleep(pollEvery)
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// rotate is names starting at i.
func rotate(names []string, i int) []string {
	i %= len(names)
	return append(append([]string(nil), names[i:]...), names[:i]...)
}

// startClients starts the workload: producers and consumers on the main
// queue, two producers racing for the small queue's MAXDEPTH and a slow
// consumer, and a producer and consumer through the channel.
func (h *harness) startClients(a, b *qgroup) {
	prod := ClientConfig{Role: RoleProducer, SyncpointPct: 60, PersistentPct: 50, BackoutPct: 15, MaxUOW: 4, MaxPad: 600, Pause: 4 * time.Millisecond}
	cons := ClientConfig{Role: RoleConsumer, SyncpointPct: 70, BackoutPct: 15, MaxUOW: 4, Wait: 100 * time.Millisecond, Pause: time.Millisecond}
	add := func(name string, g *qgroup, queue string, c ClientConfig, via int) {
		c.Group, c.Queue, c.Fsync = g.cfg, queue, h.cfg.Fsync
		c.Via = rotate(g.names, via)
		p := &proc{h: h, name: name, client: &c, logPath: filepath.Join(h.logDir, name+".log"), wake: make(chan struct{}), done: make(chan struct{})}
		h.clients = append(h.clients, p)
	}
	add("p1", a, queueMain, prod, 0)
	add("p2", a, queueMain, prod, 1)
	c1 := cons
	add("c1", a, queueMain, c1, 2)
	c2 := cons
	c2.SyncpointPct = 20
	add("c2", a, queueMain, c2, 0)
	small := prod
	small.Pause, small.MaxUOW = time.Millisecond, 2
	add("s1", a, queueSmall, small, 1)
	add("s2", a, queueSmall, small, 2)
	slow := cons
	slow.Pause, slow.SyncpointPct = 20*time.Millisecond, 50
	add("sc", a, queueSmall, slow, 0)
	if b != nil {
		add("r1", a, queueRemote, prod, 1)
		add("rc", b, queueTarget, cons, 0)
	}
	for _, c := range h.clients {
		go c.supervise()
	}
}

func (h *harness) isProducer(p *proc) bool { return p.client.Role == RoleProducer }

// finish heals every fault, stops the producers, lets the channel and
// the consumers drain, stops them, drains what is left with a final
// client and runs the structure checker.
func (h *harness) finish() {
	h.heal()
	errs := h.stopClients(true)
	xmitLeft := false
	if h.proxy != nil {
		a := h.groups[0]
		if !waitProgress(30*time.Second, func() int64 { return a.depth("APPL1", xmitQueue) }) {
			xmitLeft = true
			_, st := a.run("mqsc", "-c", "DISPLAY CHSTATUS(*)")
			h.note(AnomStuck, fmt.Sprintf("transmission queue %s not drained by channel %s after the faults were healed (30 s without progress): depth %d; DISPLAY CHSTATUS: %s",
				xmitQueue, channelName, a.depth("APPL1", xmitQueue), strings.Join(strings.Fields(st), " ")))
			a.mqsc(fmt.Sprintf("STOP CHANNEL(%s)", channelName))
		}
	}
	errs = append(errs, h.stopClients(false)...)
	if len(errs) > 0 {
		h.note(AnomStuck, "clients did not stop: "+strings.Join(errs, "; "))
	}
	for _, g := range h.groups {
		if !waitUntil(60*time.Second, g.connsRecovered) {
			h.note(AnomStuck, fmt.Sprintf("group %s: connections of dead clients not recovered within 60 s", g.label))
		}
	}
	h.drain(xmitLeft)
	for _, g := range h.groups {
		if code, out := g.run("check"); code != 0 {
			h.note(AnomCheck, fmt.Sprintf("group %s: qmgr check exit %d: %s", g.label, code, strings.TrimSpace(out)))
		}
	}
}

// stopClients stops the producers (or the consumers) all at once, and
// says which would not stop within 30 s.
func (h *harness) stopClients(producers bool) []string {
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for _, c := range h.clients {
		if h.isProducer(c) != producers {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.stop(30 * time.Second); err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// heal SIGCONTs everything, waits until every member is active and every
// structure in service.
func (h *harness) heal() {
	if h.proxy != nil {
		h.proxy.SetDown(false)
	}
	for _, g := range h.groups {
		for _, n := range g.names {
			m := g.members[n]
			m.signal(syscall.SIGCONT)
			if pid := m.currentPid(); pid != 0 {
				for _, c := range children(pid) {
					syscall.Kill(c, syscall.SIGCONT)
				}
			}
		}
	}
	for _, c := range h.clients {
		c.signal(syscall.SIGCONT)
	}
	for _, g := range h.groups {
		if !waitUntil(60*time.Second, func() bool { return g.allActive() && h.structuresInService(g) }) {
			var state []string
			for _, n := range g.names {
				state = append(state, fmt.Sprintf("%s pid %d active %v", n, g.members[n].currentPid(), g.active(n, g.members[n].currentPid())))
			}
			for _, s := range g.structs {
				state = append(state, fmt.Sprintf("%s in service %v", s, h.inService(g, s)))
			}
			h.note(AnomStuck, fmt.Sprintf("group %s not healed within 60 s: %s", g.label, strings.Join(state, ", ")))
		}
	}
}

func (h *harness) inService(g *qgroup, s string) bool { return g.inService(s) }

func (h *harness) structuresInService(g *qgroup) bool {
	for _, s := range g.structs {
		if !g.inService(s) {
			return false
		}
	}
	return true
}

// drain runs the final drainer: every queue emptied, the transmission
// queue browsed if the channel left messages on it.
func (h *harness) drain(browseXmit bool) {
	a := h.groups[0]
	targets := []DrainTarget{{Group: a.cfg, Queue: queueMain}, {Group: a.cfg, Queue: queueSmall}}
	if h.proxy != nil {
		targets = append(targets, DrainTarget{Group: h.groups[1].cfg, Queue: queueTarget})
		if browseXmit {
			targets = append(targets, DrainTarget{Group: a.cfg, Queue: xmitQueue, Browse: true})
		}
	}
	c := ClientConfig{Proc: "drain", Role: RoleDrainer, History: filepath.Join(h.histDir, "drain.jsonl"), Fsync: h.cfg.Fsync, Drain: targets}
	b, _ := json.Marshal(c)
	cmd := exec.Command(h.exe, ClientCommand, string(b))
	logf, err := os.Create(filepath.Join(h.logDir, "drain.log"))
	if err != nil {
		h.note(AnomStuck, "drainer: "+err.Error())
		return
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		h.note(AnomStuck, fmt.Sprintf("drainer: %v: %s", err, tail(logf.Name(), 5)))
	}
}

// teardown stops everything still running.
func (h *harness) teardown() {
	close(h.quit)
	var wg sync.WaitGroup
	stop := func(p *proc, grace time.Duration) {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	for _, c := range h.clients {
		stop(c, 5*time.Second)
	}
	wg.Wait()
	for _, g := range h.groups {
		for _, n := range g.names {
			stop(g.members[n], 15*time.Second)
		}
	}
	wg.Wait()
	if h.proxy != nil {
		h.proxy.Close()
	}
}

// observed turns what the harness saw of its processes into anomalies:
// one per distinct reason (a member that cannot start exits again at
// every restart), with how many times, the first and the last.
func (h *harness) observed(events []Event) []Anomaly {
	type group struct {
		first, last Event
		n           int
	}
	var order []string
	groups := map[string]*group{}
	for _, e := range events {
		if e.Kind != ObsMemberExit && e.Kind != ObsStartFailed && e.Kind != ObsClientExit && e.Kind != ObsFencedRunning {
			continue
		}
		k := e.Kind + " " + e.Group + " " + exitReason(e.Detail)
		g := groups[k]
		if g == nil {
			g = &group{first: e}
			groups[k] = g
			order = append(order, k)
		}
		g.n++
		g.last = e
	}
	var out []Anomaly
	for _, k := range order {
		g := groups[k]
		kind := AnomMemberCrash
		switch g.first.Kind {
		case ObsClientExit:
			kind = AnomClientCrash
		case ObsFencedRunning:
			kind = AnomFenced
		}
		detail := fmt.Sprintf("%s %s/%s at %s", g.first.Kind, g.first.Group, g.first.Target, h.events.Offset(g.first.T))
		if g.n > 1 {
			detail += fmt.Sprintf(" and %d times more until %s (last %s)", g.n-1, h.events.Offset(g.last.T), g.last.Target)
		}
		out = append(out, Anomaly{Kind: kind, Detail: detail + ": " + g.first.Detail, Faults: recentFaults(events, g.first.T, 3)})
	}
	return out
}

// exitReason is what tells an exit from another: its status and the last
// error line of the log, numbers and paths left out.
func exitReason(detail string) string {
	status, rest, _ := strings.Cut(detail, " (pid")
	reason := ""
	for _, line := range strings.Split(rest, " | ") {
		for _, marker := range []string{"qmgr: ", "panic: ", "fatal error: ", "unexpected fault address", "chaos client: ", "peer hung"} {
			if i := strings.Index(line, marker); i >= 0 {
				reason = line[i:]
			}
		}
	}
	return status + " " + digits.ReplaceAllString(reason, "N")
}

var digits = regexp.MustCompile(`[0-9]+`)

// recentFaults are the last n faults begun by t.
func recentFaults(events []Event, t int64, n int) []Event {
	var out []Event
	for _, e := range events {
		if e.Fault && e.T <= t {
			out = append(out, e)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Recheck runs the checker again on the files a run left in dir (with
// CHAOS_DIR): its model, histories and fault log.
func Recheck(dir string) (*Result, []Event, error) {
	b, err := os.ReadFile(filepath.Join(dir, "model.json"))
	if err != nil {
		return nil, nil, err
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fmt.Errorf("chaos: %s/model.json: %w", dir, err)
	}
	ops, err := ReadHistories(filepath.Join(dir, "history"))
	if err != nil {
		return nil, nil, err
	}
	events, err := ReadEvents(filepath.Join(dir, "faults.jsonl"))
	if err != nil {
		return nil, nil, err
	}
	return Check(m, ops, events), events, nil
}

// Summary prints the report: operations by kind and outcome, faults by
// kind, anomalies by kind, and up to detail anomalies of each kind in
// full.
func (r *Report) Summary(w io.Writer, detail int) {
	fmt.Fprintf(w, "chaos: seed %d (CHAOS_SEED=%d repeats the schedule's choices), faults for %v, run %v\n", r.Seed, r.Seed, r.Duration, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "operations (kind/outcome): %s\n", counts(r.Result.Ops))
	fmt.Fprintf(w, "messages: %s\n", counts(r.Result.Msgs))
	faults, obs := map[string]int{}, map[string]int{}
	for _, e := range r.Events {
		if e.Fault {
			faults[e.Kind]++
		} else {
			obs[e.Kind]++
		}
	}
	fmt.Fprintf(w, "faults injected: %s\n", counts(faults))
	var skipped []string
	for k := range unavailableFaults {
		skipped = append(skipped, k)
	}
	sort.Strings(skipped)
	fmt.Fprintf(w, "faults not available: %s\n", strings.Join(skipped, ", "))
	if len(r.LeftOut) > 0 {
		fmt.Fprintf(w, "faults left out of this run: %s\n", strings.Join(r.LeftOut, ", "))
	}
	fmt.Fprintf(w, "observed: %s\n", counts(obs))
	by := map[string]int{}
	for _, a := range r.Anomalies {
		by[a.Kind]++
	}
	fmt.Fprintf(w, "anomalies: %s\n", counts(by))
	shown := map[string]int{}
	for _, a := range r.Anomalies {
		if shown[a.Kind]++; shown[a.Kind] > detail {
			continue
		}
		fmt.Fprintf(w, "  - %s\n", a)
	}
}

// Schedule prints the fault log with offsets from the start.
func (r *Report) Schedule(w io.Writer) {
	for _, e := range r.Events {
		end := ""
		if e.End != 0 {
			end = fmt.Sprintf(" .. +%.3fs", float64(e.End-r.t0)/1e9)
		}
		what := "observed"
		if e.Fault {
			what = "fault"
		}
		target := e.Target
		if e.Group != "" {
			target = e.Group + "/" + target
		}
		fmt.Fprintf(w, "  +%.3fs%s %s %s %s: %s\n", float64(e.T-r.t0)/1e9, end, what, e.Kind, target, e.Detail)
	}
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
