package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/request"
	"github.com/qmgr/qmgr/request/example/travel"
)

// RequestWorkerName is the command a process of the request managers'
// demo runs (RequestWorker): a travel request manager or the travel
// servers.
const RequestWorkerName = "request-demo-worker"

// RequestsConfig sizes the request managers' demo (--part requests).
type RequestsConfig struct {
	Dir       string        // where the group lives; default a new temporary directory, removed at the end
	PerMode   int           // trips of each mode; default 8
	CallDelay time.Duration // how long a server takes per call; default 150ms
}

// WithDefaults is c with the defaults documented on its fields applied.
func (c RequestsConfig) WithDefaults() RequestsConfig {
	if c.PerMode == 0 {
		c.PerMode = 8
	}
	if c.CallDelay == 0 {
		c.CallDelay = 150 * time.Millisecond
	}
	return c
}

// Validate checks the configuration as RunRequests uses it; it changes
// nothing.
func (c RequestsConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.PerMode < 2 || c.PerMode > 100:
		return errors.New("demo: 2 to 100 trips of each mode")
	case c.CallDelay < time.Millisecond || c.CallDelay > 5*time.Second:
		return errors.New("demo: call delay not in 1ms..5s")
	}
	return nil
}

var requestModes = []request.Mode{request.ModeNonRecoverable, request.ModeRestartable, request.ModeRecoverable}

// RunRequests runs the request managers' demo: a group of two, two travel
// request managers (RM1 through QM1, RM2 through QM2) and a process of
// travel servers; trips of the three recovery modes side by side while
// RM1, the servers and member QM2 are SIGKILLed in turn; then what
// became of each trip, each mode's promise checked, and the checker.
func RunRequests(c RequestsConfig, out io.Writer) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "qmgr-rqdemo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	cfg := group.Config{Name: "RQDEMO", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 64 << 20}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	run, err := newDemoRun(dir)
	if err != nil {
		return err
	}
	defer run.killAll()
	members, err := groupproc.New(cfg, dir)
	if err != nil {
		return err
	}
	members.StartFlags = []string{"--heartbeat", "50ms", "--port", "0", "--no-chinit"}
	members.ActiveTimeout = 10 * time.Second
	defer members.KillAll()
	fmt.Fprintf(out, "\nqmgr demo, part 4: request managers and their recovery modes (seed 004), a travel agency (in %s)\n", dir)
	for _, n := range []string{"QM1", "QM2"} {
		if _, err := members.Start(n); err != nil {
			return err
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(travel.Definitions()), "\n") {
		resp, err := qm.Command(cfg, "QM1", line)
		if err != nil || !resp.OK {
			return fmt.Errorf("%s: %v %s", line, err, resp.Error)
		}
	}
	fmt.Fprintf(out, "  members QM1 and QM2; the request queues (SYSTEM.REQUEST.*) and the travel queues defined\n")
	gargs := cfg.Args()
	startWorker := func(name string, args ...string) (*demoProc, error) {
		return run.start(name, append(append([]string{RequestWorkerName}, args...), gargs...)...)
	}
	procs := map[string]*demoProc{}
	for _, p := range []struct{ name, via string }{{"RM1", "QM1"}, {"RM2", "QM2"}} {
		if procs[p.name], err = startWorker(p.name, "--role", "manager", "--name", p.name, "--via", p.via); err != nil {
			return err
		}
	}
	if procs["servers"], err = startWorker("servers", "--role", "servers", "--via", "QM1", "--delay", c.CallDelay.String()); err != nil {
		return err
	}
	conn, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: "QM1", DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return err
	}
	defer conn.Disconnect()
	g, err := group.Open(cfg, false)
	if err != nil {
		return err
	}
	defer g.Close()
	info := func() map[string]lockfree.QueueInfo {
		m, _ := g.QueueInfos() // what could be read: the waits below go on until it is enough
		return m
	}
	// Ready: both managers' workers wait on the input queue (four
	// each) and the servers on theirs.
	if err := waitUntil(20*time.Second, func() bool {
		qi := info()
		return qi[travel.Input].OpenIn >= 8 && qi[travel.Flight].OpenIn >= 1 && qi[travel.Hotel].OpenIn >= 1 && qi[travel.Payment].OpenIn >= 1
	}); err != nil {
		return fmt.Errorf("demo: the managers and servers did not start (logs in %s)", dir)
	}
	fmt.Fprintf(out, "  request managers RM1 (through QM1) and RM2 (through QM2), 4 requests at a time each; flight, hotel and\n"+
		"  payment servers (through QM1), %v a call; each trip books a flight, a hotel and the payment, then confirms\n", c.CallDelay)

	in, err := conn.Open(travel.Input, mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	trips := map[request.ID]travel.Outcome{}
	var order []request.ID
	for i := 0; i < c.PerMode; i++ {
		for _, mode := range requestModes {
			trip := fmt.Sprintf("trip-%s-%d", strings.ToLower(mode.String()[:4]), i+1)
			id, err := travel.Put(in, mode, trip)
			if err != nil {
				return err
			}
			trips[id] = travel.Outcome{Mode: mode, Trip: trip}
			order = append(order, id)
		}
	}
	total := len(trips)
	fmt.Fprintf(out, "  %d trips put, %d of each mode: NONRECOVERABLE, RESTARTABLE (X = 3 attempts), RECOVERABLE\n", total, c.PerMode)

	// The kills, each when trips are in flight: RM1 once a few trips
	// ended, the servers a third of the way, QM2 (under RM2) two thirds.
	type kill struct {
		at   int // trips ended
		what string
		done bool
	}
	kills := []*kill{{max(total/8, 1), "RM1", false}, {total / 3, "servers", false}, {total * 2 / 3, "QM2", false}}
	t0 := time.Now()
	var outcomes map[request.ID]*travel.Outcome
	for {
		outcomes, err = travel.Outcomes(conn, trips)
		if err != nil {
			return err
		}
		ended := 0
		for _, o := range outcomes {
			if o.Ended() {
				ended++
			}
		}
		inFlight, err := request.List(conn, "")
		if err != nil {
			return err
		}
		if ended == total && info()[travel.Input].Depth == 0 {
			break
		}
		for _, k := range kills {
			if k.done || ended < k.at || len(inFlight) == 0 {
				continue
			}
			// A manager or member is killed when it runs a
			// non-recoverable trip too (its purge is worth seeing),
			// or a little later anyway.
			if manager := map[string]string{"RM1": "RM1", "QM2": "RM2"}[k.what]; manager != "" && ended < k.at+total/6 && !runsNonRecoverable(inFlight, manager) {
				continue
			}
			k.done = true
			if err := requestsKill(k.what, procs, members, inFlight, startWorker, c, out); err != nil {
				return err
			}
		}
		if time.Since(t0) > time.Minute {
			for _, id := range order {
				if o := outcomes[id]; !o.Ended() {
					fmt.Fprintf(out, "  not ended: %s %v %s: finals %q booked %v live %v tombstone %+v strays %+v\n", o.Trip, o.Mode, id, o.Finals, o.Booked, o.Live, o.Tomb, o.Strays)
				}
			}
			for _, r := range inFlight {
				fmt.Fprintf(out, "  in flight: %s %v %v attempts %d manager %s step %s pending %d\n", r.RequestID, r.Mode, r.Status, r.Attempts, r.Manager, r.Step, len(r.Pending))
			}
			fmt.Fprintf(out, "  %s depth %d\n", travel.Input, info()[travel.Input].Depth)
			return fmt.Errorf("demo: %d of %d trips ended in a minute (logs in %s)", ended, total, dir)
		}
		time.Sleep(50 * time.Millisecond) // polling the queues
	}
	fmt.Fprintf(out, "  all %d trips ended after %.1fs; what became of each:\n", total, time.Since(t0).Seconds())
	violations := requestsReport(outcomes, order, out)
	// Stop the workers and the members in order, then the checker.
	for _, p := range procs { // the ones running (the killed ones were waited for)
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
	}
	conn.Disconnect()
	for _, n := range []string{"QM1", "QM2"} {
		if m := members.Member(n); m != nil && !m.Exited() {
			if err := members.StopMember(n, 20*time.Second); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
		}
	}
	if err := demoCheck(g, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "  processes and members stopped; checker: every structure clean, nothing leaked\n")
	if violations > 0 {
		return fmt.Errorf("demo: %d trips broke their mode's promise (logs in %s)", violations, dir)
	}
	return nil
}

// runsNonRecoverable reports whether manager runs a non-recoverable
// request waiting for a call.
func runsNonRecoverable(inFlight []*request.Record, manager string) bool {
	for _, r := range inFlight {
		if r.Manager == manager && r.Mode == request.ModeNonRecoverable && len(r.Pending) > 0 {
			return true
		}
	}
	return false
}

// requestsKill SIGKILLs what (a manager, the servers, or member QM2) and
// says what it held; a killed process is started again.
func requestsKill(what string, procs map[string]*demoProc, members *groupproc.Group, inFlight []*request.Record,
	start func(string, ...string) (*demoProc, error), c RequestsConfig, out io.Writer) error {
	steps := func(manager string) string {
		var s []string
		for _, r := range inFlight {
			if manager == "" || r.Manager == manager {
				step := strings.TrimPrefix(r.Step, "TRAVEL.")
				if step == "" {
					step = "its start"
				}
				s = append(s, fmt.Sprintf("%s at %s", strings.ToLower(r.Mode.String()[:4]), step))
			}
		}
		sort.Strings(s)
		return strings.Join(s, ", ")
	}
	switch what {
	case "RM1":
		p := procs["RM1"]
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		fmt.Fprintf(out, "  SIGKILL request manager RM1 (pid %d) while it ran: %s\n", p.cmd.Process.Pid, steps("RM1"))
		np, err := start("RM1", "--role", "manager", "--name", "RM1", "--via", "QM1")
		if err != nil {
			return err
		}
		procs["RM1"] = np
		fmt.Fprintf(out, "    RM1 started again (pid %d); its trips are back on TRAVEL.REQUESTS for whichever manager takes them\n", np.cmd.Process.Pid)
	case "servers":
		p := procs["servers"]
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
		fmt.Fprintf(out, "  SIGKILL the travel servers (pid %d) in the middle of their calls; trips waiting: %s\n", p.cmd.Process.Pid, steps(""))
		np, err := start("servers", "--role", "servers", "--via", "QM1", "--delay", c.CallDelay.String())
		if err != nil {
			return err
		}
		procs["servers"] = np
		fmt.Fprintf(out, "    servers started again (pid %d): the calls they had not committed are taken again\n", np.cmd.Process.Pid)
	case "QM2":
		m := members.Member("QM2")
		members.Kill("QM2")
		fmt.Fprintf(out, "  SIGKILL member QM2 (pid %d), under request manager RM2, while RM2 ran: %s\n", m.Process.Pid, steps("RM2"))
		fmt.Fprintf(out, "    QM1 recovers QM2's connections; RM2 connects again through QM1\n")
	}
	return nil
}

// requestsReport prints each trip's outcome and each mode's tally, and
// returns how many trips broke their mode's promise.
func requestsReport(outcomes map[request.ID]*travel.Outcome, order []request.ID, out io.Writer) int {
	violations := 0
	type tally struct{ n, replied, purged, runs2, twice, strays int }
	tallies := map[request.Mode]*tally{}
	fmt.Fprintf(out, "    %-16s %-15s %-4s %-14s %s\n", "trip", "mode", "runs", "flt/htl/pay", "outcome")
	for _, id := range order {
		o := outcomes[id]
		t := tallies[o.Mode]
		if t == nil {
			t = &tally{}
			tallies[o.Mode] = t
		}
		t.n++
		var outcome string
		switch {
		case len(o.Finals) == 0:
			outcome = "purged: no reply"
			t.purged++
		default:
			outcome = strings.Join(o.Finals, " | ")
			t.replied++
		}
		if len(o.Strays) > 0 {
			reasons := map[string]int{}
			for _, s := range o.Strays {
				reasons[s.Reason.String()]++
			}
			var r []string
			for k, v := range reasons {
				r = append(r, fmt.Sprintf("%d %s", v, k))
			}
			sort.Strings(r)
			outcome += "; late replies to the Unexpected Message Queue: " + strings.Join(r, ", ")
			t.strays += len(o.Strays)
		}
		if o.Attempts() > 1 {
			t.runs2++
		}
		for _, q := range travel.Services {
			if o.Booked[q] > 1 {
				t.twice++
				break
			}
		}
		if v := o.Check(3); v != "" {
			violations++
			outcome += "   <-- BREAKS ITS MODE'S PROMISE: " + v
		}
		fmt.Fprintf(out, "    %-16s %-15s %-4d %d/%d/%-10d %s\n", o.Trip, o.Mode, o.Attempts(), o.Booked[travel.Flight], o.Booked[travel.Hotel], o.Booked[travel.Payment], outcome)
	}
	for _, m := range requestModes {
		t := tallies[m]
		if t == nil {
			continue
		}
		switch m {
		case request.ModeNonRecoverable:
			fmt.Fprintf(out, "  NONRECOVERABLE: %d of %d confirmed, %d purged without a reply (%d late replies moved to the Unexpected Message Queue)\n", t.replied, t.n, t.purged, t.strays)
		case request.ModeRestartable:
			fmt.Fprintf(out, "  RESTARTABLE:    %d of %d confirmed (one final reply each); %d ran again from the top, %d booked something twice\n", t.replied, t.n, t.runs2, t.twice)
		case request.ModeRecoverable:
			fmt.Fprintf(out, "  RECOVERABLE:    %d of %d confirmed (one final reply each); %d resumed at their last commit, %d booked something twice\n", t.replied, t.n, t.runs2, t.twice)
		}
	}
	if violations == 0 {
		fmt.Fprintf(out, "  every trip kept its mode's promise\n")
	}
	return violations
}

// waitUntil polls cond until it holds (nil) or limit passes.
func waitUntil(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(20 * time.Millisecond) // polling
	}
	return nil
}

// RequestWorker is a process of the request managers' demo: --role
// manager (a travel request manager named --name, connecting through
// --via first, then any member) or servers (the flight, hotel and
// payment servers, each call taking --delay), until SIGTERM.
func RequestWorker(args []string) error {
	cfg := group.Config{Name: "QSG1"}
	fs := newFlags(RequestWorkerName, os.Stderr)
	cfg.RegisterFlags(fs)
	role := fs.String("role", "", "manager or servers")
	name := fs.String("name", "RM1", "the manager's name")
	via := fs.String("via", "", "member to connect through first")
	delay := fs.Duration("delay", 150*time.Millisecond, "servers: how long a call takes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	connect := mq.ConnectOptions{Group: cfg.Name, QMgr: *via, DataDir: cfg.DataDir, CFDir: cfg.CFDir}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sig := make(chan os.Signal, 1)
	notifyTerm(sig)
	go func() { <-sig; stop() }()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	switch *role {
	case "manager":
		mc := travel.ManagerConfig(*name, connect)
		mc.Log = log
		mc.Ended = func(id request.ID, how request.Status) { log.Info("request ended", "request", id, "how", how) }
		m, err := request.Start(mc)
		if err != nil {
			return err
		}
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Stop(sctx)
		return nil
	case "servers":
		root, err := mq.Connect(connect)
		if err != nil {
			return err
		}
		defer root.Disconnect()
		return travel.Servers(ctx, root, *delay)
	}
	return fmt.Errorf("%s: unknown role %q", RequestWorkerName, *role)
}
