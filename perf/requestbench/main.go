// Command requestbench measures request managers (package request) with
// the travel example (request/example/travel: a request calls the
// flight, hotel and payment servers, then sends its final reply), under a
// group of one member, and prints "name value unit" lines:
//
//	requests.per.s.plain           requests/s  the same work with plain request/reply: an orchestrator
//	                                           (as many goroutines as the manager has workers, each
//	                                           on its own connection) gets a request outside
//	                                           syncpoint, puts the three calls in turn (reply-to
//	                                           queue, CorrelID) and waits for each reply, then puts
//	                                           the final reply; no state, no recovery; the same servers
//	requests.per.s.<mode>          requests/s  a travel request manager, requests of that mode
//	                                           (nonrecoverable, restartable, recoverable)
//	requests.per.s.<mode>.vs.plain ratio       median over the rounds of <mode> / plain
//	requests.recovery.ms           ms          p50 over -kills kills: a recoverable request waits
//	                                           for its first call (no server runs) in a manager
//	                                           process, which is SIGKILLed; a second manager, idle,
//	                                           takes it over: from the kill to its state record
//	                                           saying the second manager runs it (its attempt
//	                                           committed)
//	requests.recovery.max.ms       ms          the worst of those kills
//
//	go run ./perf/requestbench [-n requests] [-rounds r] [-workers w] [-kills k]
//
// Each round puts -n requests at once and times them from the first put
// to the last final reply got by the requester; a throughput figure is
// the best of the rounds, and each round measures plain and the three
// modes one after the other. The processes are this program re-executed:
// the member as qmgr (start), the manager, the plain orchestrator and the
// servers as "app <role>".
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
	"github.com/qmgr/qmgr/request"
	"github.com/qmgr/qmgr/request/example/travel"
)

// The baseline's queues.
const (
	plainIn    = "PLAIN.IN"
	plainReply = "PLAIN.REPLY" // the orchestrator's calls' replies, indexed by CorrelID
)

func main() {
	benchgroup.RunChild(os.Args, "requestbench", app)
	n := flag.Int("n", 2000, "requests per run")
	rounds := flag.Int("rounds", 3, "runs per figure")
	workers := flag.Int("workers", 8, "requests a manager (and the plain orchestrator) runs at once")
	kills := flag.Int("kills", 5, "manager kills for the recovery figure")
	flag.Parse()
	if *n < 1 || *rounds < 1 || *workers < 1 || *kills < 1 {
		fmt.Fprintln(os.Stderr, "requestbench: -n, -rounds, -workers and -kills must be positive")
		os.Exit(2)
	}
	if err := run(*n, *rounds, *workers, *kills); err != nil {
		fmt.Fprintln(os.Stderr, "requestbench:", err)
		os.Exit(1)
	}
}

var emit = benchgroup.Emit

type bench struct {
	*benchgroup.Group
	conn *mq.Conn
}

func run(n, rounds, workers, kills int) error {
	dir, err := os.MkdirTemp("", "qmgr-requestbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bg, err := benchgroup.New(group.Config{Name: "RQBENCH", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 256 << 20}, dir)
	if err != nil {
		return err
	}
	b := &bench{Group: bg}
	defer b.Close()
	if err := b.Start("QM1", "--no-chinit"); err != nil {
		return err
	}
	mqsc := travel.Definitions() + fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(100000)\nDEFINE QLOCAL(%s) INDXTYPE(CORRELID) MAXDEPTH(100000)\n", plainIn, plainReply)
	for _, line := range strings.Split(strings.TrimSpace(mqsc), "\n") {
		if err := b.MQSC("QM1", line); err != nil {
			return err
		}
	}
	if b.conn, err = b.Connect("QM1"); err != nil {
		return err
	}
	defer b.conn.Disconnect()

	// Throughput: the servers, a manager and the plain orchestrator run
	// all along; each waits on its own input queue.
	var running []*proc
	stopAll := func() {
		for _, p := range running {
			p.stop()
		}
		running = nil
	}
	defer stopAll()
	for _, a := range [][]string{{"servers"}, {"manager", "RM1", strconv.Itoa(workers)}, {"plain", strconv.Itoa(workers)}} {
		p, err := b.startApp(a...)
		if err != nil {
			return err
		}
		running = append(running, p)
	}
	kinds := []struct {
		name  string
		input string
		mode  request.Mode
	}{
		{"plain", plainIn, 0},
		{"nonrecoverable", travel.Input, request.ModeNonRecoverable},
		{"restartable", travel.Input, request.ModeRestartable},
		{"recoverable", travel.Input, request.ModeRecoverable},
	}
	rates := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, k := range kinds {
			v, err := b.throughput(k.input, k.mode, n)
			if err != nil {
				return fmt.Errorf("requests.per.s.%s: %w", k.name, err)
			}
			rates[k.name] = append(rates[k.name], v)
		}
	}
	for _, k := range kinds {
		emit("requests.per.s."+k.name, slices.Max(rates[k.name]), "requests/s")
	}
	for _, k := range kinds[1:] {
		var ratios []float64
		for r := range rounds {
			ratios = append(ratios, rates[k.name][r]/rates["plain"][r])
		}
		slices.Sort(ratios)
		emit("requests.per.s."+k.name+".vs.plain", ratios[len(ratios)/2], "ratio")
	}

	// Recovery: the servers and the throughput's manager are stopped
	// first (a request then waits on its first call, in a manager of
	// the recovery's own).
	stopAll()
	times, err := b.recovery(kills)
	if err != nil {
		return fmt.Errorf("requests.recovery.ms: %w", err)
	}
	slices.Sort(times)
	emit("requests.recovery.ms", times[len(times)/2], "ms")
	emit("requests.recovery.max.ms", times[len(times)-1], "ms")
	return nil
}

// proc is an application child.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startApp starts "app <args>" and waits until it says it is ready.
func (b *bench) startApp(args ...string) (*proc, error) {
	cmd := exec.Command(b.Exe, b.Args(append([]string{"app"}, args...)...)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { io.Copy(io.Discard, out); cmd.Wait(); close(p.done) }()
	if err != nil || line != "ready\n" {
		p.kill()
		return nil, fmt.Errorf("app %v not ready: %q %v", args, line, err)
	}
	return p, nil
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop ends p in order (SIGTERM), SIGKILLing it after 10 s.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
	}
}

// throughput puts n requests on input (mode's request header; none for
// the baseline) and returns requests per second, from the first put to
// the last final reply on travel.Replies.
func (b *bench) throughput(input string, mode request.Mode, n int) (float64, error) {
	if err := b.drain(travel.Ledger); err != nil { // what the last run booked
		return 0, err
	}
	in, err := b.conn.Open(input, mq.OpenOptions{Output: true})
	if err != nil {
		return 0, err
	}
	defer in.Close()
	replies, err := b.conn.Open(travel.Replies, mq.OpenOptions{Input: true})
	if err != nil {
		return 0, err
	}
	defer replies.Close()
	t0 := time.Now()
	for i := 0; i < n; i++ {
		trip := "trip-" + strconv.Itoa(i)
		if mode == 0 {
			err = in.Put(&mq.Message{Body: []byte(trip), ReplyToQ: travel.Replies}, mq.PutOptions{})
		} else {
			_, err = travel.Put(in, mode, trip)
		}
		if err != nil {
			return 0, err
		}
	}
	for i := 0; i < n; i++ {
		m, err := replies.Get(mq.GetOptions{Wait: 60 * time.Second})
		if err != nil {
			return 0, fmt.Errorf("reply %d of %d: %w", i+1, n, err)
		}
		if mode != 0 && m.Format != request.FormatFinal {
			return 0, fmt.Errorf("a reply %s %q", m.Format, m.Body)
		}
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// drain gets every message off queue.
func (b *bench) drain(queue string) error {
	q, err := b.conn.Open(queue, mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	defer q.Close()
	for {
		if _, err := q.Get(mq.GetOptions{}); errors.Is(err, mq.ErrNoMessage) {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// recovery measures kills takeovers: each time a recoverable request
// waits for its first call in the manager that holds it, which is
// SIGKILLed while another, idle, waits on the input queue.
func (b *bench) recovery(kills int) ([]float64, error) {
	in, err := b.conn.Open(travel.Input, mq.OpenOptions{Output: true})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	managers := map[string]*proc{}
	defer func() {
		for _, p := range managers {
			p.kill()
		}
	}()
	seq := 0
	startManager := func() error {
		seq++
		name := fmt.Sprintf("RK%d", seq)
		p, err := b.startApp("manager", name, "1")
		if err != nil {
			return err
		}
		managers[name] = p
		return nil
	}
	var times []float64
	for k := 0; k < kills; k++ {
		for len(managers) < 2 {
			if err := startManager(); err != nil {
				return nil, err
			}
		}
		id, err := travel.Put(in, request.ModeRecoverable, "wait")
		if err != nil {
			return nil, err
		}
		var holder *request.Record
		if err := poll(10*time.Second, func() (bool, error) {
			holder, err = b.record(id)
			return holder != nil && len(holder.Pending) == 1, err
		}); err != nil {
			return nil, fmt.Errorf("the request did not start waiting: %w", err)
		}
		p := managers[holder.Manager]
		if p == nil {
			return nil, fmt.Errorf("request held by unknown manager %s", holder.Manager)
		}
		t0 := time.Now()
		p.kill()
		delete(managers, holder.Manager)
		if err := poll(10*time.Second, func() (bool, error) {
			r, err := b.record(id)
			return r != nil && r.Manager != holder.Manager && r.Attempts > holder.Attempts, err
		}); err != nil {
			return nil, fmt.Errorf("the request was not taken over: %w", err)
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
		if err := request.Cancel(b.conn, "", id); err != nil {
			return nil, err
		}
		if err := poll(10*time.Second, func() (bool, error) {
			r, err := b.record(id)
			return r == nil, err
		}); err != nil {
			return nil, fmt.Errorf("the request did not end after its cancel: %w", err)
		}
	}
	return times, nil
}

// record is request id's state record (nil: none).
func (b *bench) record(id request.ID) (*request.Record, error) {
	rs, err := request.List(b.conn, "")
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.RequestID == id {
			return r, nil
		}
	}
	return nil, nil
}

// poll calls cond until it holds, fails, or limit passes.
func poll(limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(200 * time.Microsecond) // polling the state queue
	}
}

// app is a benchmark process: args are a role and its arguments, then
// the group flags. Roles: servers (the travel servers), manager name
// workers (a travel request manager), plain workers (the baseline
// orchestrator). Each prints "ready" and runs until SIGTERM.
func app(args []string) error {
	if len(args) == 0 {
		return errors.New("no role")
	}
	role := args[0]
	nargs := map[string]int{"servers": 0, "manager": 2, "plain": 1}[role]
	if len(args) < 1+nargs {
		return fmt.Errorf("role %s: too few arguments", role)
	}
	cfg, err := benchgroup.ParseArgs(args[1+nargs:])
	if err != nil {
		return err
	}
	connect := mq.ConnectOptions{Group: cfg.Name, QMgr: "QM1", DataDir: cfg.DataDir, CFDir: cfg.CFDir}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	switch role {
	case "servers":
		root, err := mq.Connect(connect)
		if err != nil {
			return err
		}
		defer root.Disconnect()
		errc := make(chan error, 1)
		go func() { errc <- travel.Servers(ctx, root, 0) }()
		fmt.Println("ready")
		return <-errc
	case "manager":
		w, _ := strconv.Atoi(args[2])
		mc := travel.ManagerConfig(args[1], connect)
		mc.Workers = w
		mc.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		m, err := request.Start(mc)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Stop(sctx)
		return nil
	case "plain":
		w, _ := strconv.Atoi(args[1])
		return plain(ctx, connect, w)
	}
	return fmt.Errorf("unknown role %q", role)
}

// plain is the baseline orchestrator: workers goroutines, each on its own
// connection, each taking a request and calling the three servers in
// turn with plain request/reply, then replying; no syncpoint, no state.
func plain(ctx context.Context, connect mq.ConnectOptions, workers int) error {
	root, err := mq.Connect(connect)
	if err != nil {
		return err
	}
	defer root.Disconnect()
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	var ready sync.WaitGroup
	for w := 0; w < workers; w++ {
		c, err := root.Sibling()
		if err != nil {
			return err
		}
		defer c.Disconnect()
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- plainWorker(ctx, c, &ready)
		}()
	}
	ready.Wait()
	fmt.Println("ready")
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

func plainWorker(ctx context.Context, c *mq.Conn, ready *sync.WaitGroup) error {
	in, err := c.Open(plainIn, mq.OpenOptions{Input: true})
	if err != nil {
		ready.Done()
		return err
	}
	replies, err := c.Open(plainReply, mq.OpenOptions{Input: true})
	if err != nil {
		ready.Done()
		return err
	}
	outs := map[string]*mq.Queue{}
	for _, q := range append([]string{travel.Replies}, travel.Services...) {
		if outs[q], err = c.Open(q, mq.OpenOptions{Output: true}); err != nil {
			ready.Done()
			return err
		}
	}
	ready.Done()
	var intr mq.Interrupter
	defer context.AfterFunc(ctx, intr.Interrupt)()
	for {
		req, err := in.Get(mq.GetOptions{Wait: mq.WaitForever, Interrupt: &intr})
		if errors.Is(err, mq.ErrInterrupted) {
			return nil
		}
		if err != nil {
			return err
		}
		var results []string
		for i, q := range travel.Services {
			var correl [24]byte
			copy(correl[:], req.MsgID[:20])
			correl[23] = byte(i + 1)
			if err := outs[q].Put(&mq.Message{CorrelID: correl, ReplyToQ: plainReply, Body: req.Body}, mq.PutOptions{}); err != nil {
				return err
			}
			r, err := replies.Get(mq.GetOptions{CorrelID: &correl, Wait: 30 * time.Second})
			if err != nil {
				return fmt.Errorf("the reply of %s: %w", q, err)
			}
			results = append(results, string(r.Body))
		}
		body := fmt.Appendf(nil, "booked %s: flight %s, hotel %s, paid %s", req.Body, results[0], results[1], results[2])
		if err := outs[req.ReplyToQ].Put(&mq.Message{CorrelID: req.MsgID, Body: body}, mq.PutOptions{}); err != nil {
			return err
		}
	}
}
