package request_test

import (
	"bufio"
	"context"
	"encoding/hex"
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
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// The members are this test binary acting as qmgr; request managers and
// subordinate servers are children of their own (roles "manager" and
// "server"), so that a test can SIGKILL each, or make a crash point kill
// it at an exact step.
func TestMain(m *testing.M) {
	testproc.Register("qmgr", func(args []string) int { return cli.Main(args, os.Stdout, os.Stderr) })
	testproc.Register("manager", managerMain)
	testproc.Register("server", serverMain)
	testproc.Main(m)
}

// The test's queues: the requester's reply queue, the subordinate servers'
// queues (NOANSWER has no server), and PERFORMED, where each server
// records, in the unit of work that performs a call, the call's id.
const (
	inputQ     = "TRAVEL.IN"
	clientQ    = "CLIENT.REPLY"
	performedQ = "PERFORMED"
)

var serverQueues = []string{"FLIGHT", "HOTEL", "PAYMENT", "SLOW"}

// connFlags are the flags of a child that connects to the group.
type connFlags struct{ group, data, cf, qmgr string }

func (c *connFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.group, "group", "", "")
	fs.StringVar(&c.data, "data", "", "")
	fs.StringVar(&c.cf, "cf", "", "")
	fs.StringVar(&c.qmgr, "qmgr", "", "")
}

func (c *connFlags) options() mq.ConnectOptions {
	return mq.ConnectOptions{Group: c.group, DataDir: c.data, CFDir: c.cf, QMgr: c.qmgr}
}

// travel is the test's request program. Its request's body says what to
// do:
//
//	ok       FLIGHT, save, HOTEL, final reply, then PAYMENT (after the final reply)
//	fail     FLIGHT, then fail (the program returns an error)
//	timeout  a call to NOANSWER (no server) that times out: withdrawn
//	slow     a call to SLOW, whose server answers after the timeout: not withdrawn
//	wait     a call to NOANSWER that waits long (to be cancelled)
//	confirm  a confirmed call (refused unless recoverable), its error in the final reply
//	poison   a call to FLIGHT whose server dies on it (serverMain -kill-on poison), its error in the final reply
//	die      SIGKILLs its own manager's process, every time it runs
//	replydie the final reply "replied", then SIGKILLs its manager's process, every time
func travel(ctx *request.Ctx, req *request.Request) error {
	call := func(q string, timeout time.Duration) ([]byte, error) {
		ctx.Step(q)
		return ctx.Call(q, req.Body, request.CallOptions{Timeout: timeout})
	}
	switch string(req.Body) {
	case "ok":
		f, err := call("FLIGHT", 0)
		if err != nil {
			return err
		}
		if err := ctx.Save("flight", f); err != nil {
			return err
		}
		h, err := call("HOTEL", 0)
		if err != nil {
			return err
		}
		if err := ctx.FinalReply([]byte(string(ctx.Load("flight")) + "+" + string(h))); err != nil {
			return err
		}
		_, err = call("PAYMENT", 0)
		return err
	case "fail":
		if _, err := call("FLIGHT", 0); err != nil {
			return err
		}
		return errors.New("the travel agent says no")
	case "timeout", "slow":
		q := "NOANSWER"
		if string(req.Body) == "slow" {
			q = "SLOW"
		}
		// SLOW's server takes the call at once and answers only once the
		// call has timed out (slowUntilTimedOut); the 2 s leave a loaded
		// machine ample time to take it. NOANSWER has no server.
		timeout := 300 * time.Millisecond
		if q == "SLOW" {
			timeout = 2 * time.Second
		}
		_, err := call(q, timeout)
		var te *request.CallTimeoutError
		if !errors.As(err, &te) {
			return fmt.Errorf("want a timeout, got %v", err)
		}
		return ctx.FinalReply(fmt.Appendf(nil, "withdrawn=%v", te.Withdrawn))
	case "wait":
		ctx.Step("waiting")
		_, err := ctx.Call("NOANSWER", req.Body, request.CallOptions{Timeout: time.Minute})
		return err
	case "confirm":
		_, err := ctx.Call("FLIGHT", req.Body, request.CallOptions{Confirmed: true})
		return ctx.FinalReply(fmt.Appendf(nil, "confirmed: %v", err))
	case "poison":
		_, err := call("FLIGHT", 0)
		var fe *request.CallFailedError
		if !errors.As(err, &fe) || !errors.Is(err, request.ErrCallFailed) || fe.Queue != "FLIGHT" {
			return fmt.Errorf("want a *CallFailedError of FLIGHT, got %v", err)
		}
		return ctx.FinalReply(fmt.Appendf(nil, "poison: %v", err))
	case "die", "replydie":
		if string(req.Body) == "replydie" {
			if err := ctx.FinalReply([]byte("replied")); err != nil {
				return err
			}
		}
		ctx.Step("dying")
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // until the signal lands
	}
	return fmt.Errorf("unknown request %q", req.Body)
}

// managerMain runs a request manager until SIGTERM; it prints READY once
// started and "ENDED <id> <status>" as each request ends.
func managerMain(args []string) int {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	name := fs.String("name", "RM1", "")
	workers := fs.Int("workers", 2, "")
	tombTTL := fs.Duration("tombstone-ttl", 0, "")
	stateWarn := fs.Duration("state-wait-warn", 0, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var mu sync.Mutex
	m, err := request.Start(request.Config{
		Name: *name, Connect: cf.options(), Input: inputQ, Program: travel, Workers: *workers,
		MaxAttempts: 3, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, CancelGrace: time.Second,
		ReconnectWait: 20 * time.Millisecond, TombstoneTTL: *tombTTL, StateWaitWarn: *stateWarn, Log: slog.New(slog.NewTextHandler(os.Stderr, nil)),
		Ended: func(id request.ID, how request.Status) {
			mu.Lock()
			fmt.Printf("ENDED %s %s\n", id, how)
			mu.Unlock()
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Stop(ctx)
	return 0
}

// serverMain serves the subordinate queues until SIGTERM, each on a
// connection of its own: a call's id goes to PERFORMED in the unit of
// work that performs it. SLOW answers once its caller has given up
// waiting (slowUntilTimedOut). A call whose body is -kill-on SIGKILLs the
// server while it holds the call.
func serverMain(args []string) int {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	delay := fs.Duration("delay", 0, "")
	killOn := fs.String("kill-on", "", "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	root, err := mq.Connect(cf.options())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(serverQueues))
	for _, q := range serverQueues {
		c, err := root.Sibling()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		perf, err := c.Open(performedQ, mq.OpenOptions{Output: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- request.Serve(ctx, c, q, func(call *mq.Message) ([]byte, error) {
				if *killOn != "" && string(call.Body) == *killOn {
					syscall.Kill(os.Getpid(), syscall.SIGKILL)
				}
				if q == "SLOW" {
					if err := slowUntilTimedOut(ctx, root, call.CorrelID); err != nil {
						return nil, err
					}
				} else if *delay > 0 {
					time.Sleep(*delay) // the server's work, not synchronisation
				}
				if err := perf.Put(&mq.Message{CorrelID: call.CorrelID, Body: []byte(q)}, mq.PutOptions{Syncpoint: true}); err != nil {
					return nil, err
				}
				return []byte(q + "-ok"), nil
			})
		}()
	}
	fmt.Println("READY")
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

// env is a group with the request queues defined, and its children.
type env struct {
	t   *testing.T
	dir string
	cfg group.Config
	g   *groupproc.Group
	c   *mq.Conn // the test's own connection

	mu       sync.Mutex
	children []*child
}

func newEnv(t *testing.T, members ...string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	cfg := group.Config{Name: "RQ", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20}
	g, err := groupproc.New(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	g.Command = func(args ...string) *exec.Cmd {
		c := exec.Command(os.Args[0], args...)
		c.Env = append(os.Environ(), testproc.RoleEnv("qmgr"))
		return c
	}
	g.StartFlags = []string{"--heartbeat", "20ms", "--heartbeat-timeout", "2s", "--no-chinit"}
	e := &env{t: t, dir: dir, cfg: g.Cfg, g: g}
	t.Cleanup(func() {
		if e.c != nil {
			e.c.Disconnect()
		}
		g.KillAll()
		if t.Failed() {
			g.DumpLogs(t.Logf, 20000)
		}
	})
	t.Cleanup(e.finalCheck) // runs first: before the members are killed (check_test.go)
	if len(members) == 0 {
		members = []string{"QM1"}
	}
	for _, m := range members {
		if _, err := g.Start(m); err != nil {
			t.Fatal(err)
		}
	}
	mqsc := request.Definitions() + fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(100000)\nDEFINE QLOCAL(%s) MAXDEPTH(100000)\nDEFINE QLOCAL(%s) MAXDEPTH(100000)\nDEFINE QLOCAL(NOANSWER)\n", inputQ, clientQ, performedQ)
	for _, q := range serverQueues {
		mqsc += fmt.Sprintf("DEFINE QLOCAL(%s) BOTHRESH(5) BOQNAME(%s.BO)\nDEFINE QLOCAL(%s.BO)\n", q, q, q)
	}
	for _, line := range strings.Split(strings.TrimSpace(mqsc), "\n") {
		if out, err := g.MQSC(members[0], line); err != nil {
			t.Fatalf("%s: %v %s", line, err, out)
		}
	}
	e.c, err = mq.Connect(e.connect(members[0]))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) connect(via string) mq.ConnectOptions {
	return mq.ConnectOptions{Group: e.cfg.Name, DataDir: e.cfg.DataDir, CFDir: e.cfg.CFDir, QMgr: via}
}

func (e *env) flags(via string) []string {
	return []string{"-group", e.cfg.Name, "-data", e.cfg.DataDir, "-cf", e.cfg.CFDir, "-qmgr", via}
}

// child is a manager or server process with the lines it printed.
type child struct {
	p     *testproc.Proc
	mu    sync.Mutex
	lines []string
	ready chan struct{}
	done  chan struct{}
}

// start starts a child in role, with extra environment, and waits until it
// is READY (or exits: a crash point may kill it at once).
func (e *env) start(role, via string, env []string, extra ...string) *child {
	e.t.Helper()
	p := testproc.Command(e.t, role, append(e.flags(via), extra...)...)
	p.Env = append(p.Env, env...)
	out, err := p.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		e.t.Fatal(err)
	}
	ch := &child{p: p, ready: make(chan struct{}), done: make(chan struct{})}
	e.mu.Lock()
	e.children = append(e.children, ch)
	e.mu.Unlock()
	go ch.read(out)
	select {
	case <-ch.ready:
	case <-ch.done:
	case <-time.After(20 * time.Second):
		e.t.Fatalf("%s not ready: %s", role, p.Log())
	}
	return ch
}

func (ch *child) read(r io.Reader) {
	defer close(ch.done)
	s := bufio.NewScanner(r)
	once := sync.Once{}
	for s.Scan() {
		if s.Text() == "READY" {
			once.Do(func() { close(ch.ready) })
			continue
		}
		ch.mu.Lock()
		ch.lines = append(ch.lines, s.Text())
		ch.mu.Unlock()
	}
	ch.p.Wait()
}

// stop ends a child in order (SIGTERM) and waits.
func (ch *child) stop(t *testing.T) {
	ch.p.Process.Signal(syscall.SIGTERM)
	select {
	case <-ch.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("child did not stop: %s", ch.p.Log())
	}
}

// waitRecord waits up to limit until some state record on the state
// queue matches.
func (e *env) waitRecord(limit time.Duration, what string, match func(*request.Record) bool) {
	e.t.Helper()
	waitFor(e.t, limit, what, func() bool {
		rs, err := request.List(e.c, "")
		if err != nil {
			e.t.Fatal(err)
		}
		return slices.ContainsFunc(rs, match)
	})
}

// waitFor polls cond (a condition of the queues, not a time) until it
// holds, failing the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// put puts a request of mode with body and returns its id.
func (e *env) put(mode request.Mode, body string) request.ID {
	e.t.Helper()
	q, err := e.c.Open(inputQ, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	m := &mq.Message{Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(body)), ReplyToQ: clientQ}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return request.ID(m.MsgID)
}

// browse is every message on queue.
func (e *env) browse(queue string) []*mq.Message {
	e.t.Helper()
	q, err := e.c.Open(queue, mq.OpenOptions{Browse: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*mq.Message
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return out
		}
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, m)
	}
}

// facts is what the queues say of one request.
type facts struct {
	finals    []string       // formats of its final replies
	replies   int            // its intermediate replies
	performed map[string]int // calls performed, by server queue
	callIDs   map[[24]byte]int
	live      bool // its live marker or record is on the state queue
	tomb      *request.Record
	strays    []request.UnexpectedHeader // its messages on the Unexpected Message Queue
	onInput   bool
	onReplyQ  int // replies of its calls still on the reply queue
}

func (e *env) facts(id request.ID) facts {
	e.t.Helper()
	k := request.KeyOf(id)
	ofReq := func(correl [24]byte) bool { return [16]byte(correl[:16]) == [16]byte(k) }
	f := facts{performed: map[string]int{}, callIDs: map[[24]byte]int{}}
	for _, m := range e.browse(clientQ) {
		if m.CorrelID != id {
			continue
		}
		if request.IsFinalFormat(m.Format) {
			f.finals = append(f.finals, m.Format+":"+string(m.Body))
		} else {
			f.replies++
		}
	}
	for _, m := range e.browse(performedQ) {
		if ofReq(m.CorrelID) {
			f.performed[string(m.Body)]++
			f.callIDs[m.CorrelID]++
		}
	}
	for _, m := range e.browse(request.DefaultStateQueue) {
		if ofReq(m.CorrelID) {
			f.live = true // its record or live marker
		}
	}
	for _, m := range e.browse(request.DefaultTombstoneQueue) {
		if ofReq(m.CorrelID) {
			r, err := request.ParseRecord(m.Body)
			if err != nil || m.Format != request.FormatTombstone {
				e.t.Fatalf("%s on the tombstone queue: %v", m.Format, err)
			}
			f.tomb = r
		}
	}
	for _, m := range e.browse(request.DefaultUnexpectedQueue) {
		h, _, err := request.ParseUnexpectedHeader(m.Body)
		if err != nil {
			e.t.Fatalf("unexpected message queue: %v", err)
		}
		if ofReq(h.CorrelID) || h.RequestID == id {
			f.strays = append(f.strays, h)
		}
	}
	for _, m := range e.browse(inputQ) {
		if m.MsgID == id {
			f.onInput = true
		}
	}
	for _, m := range e.browse(request.DefaultReplyQueue) {
		if ofReq(m.CorrelID) {
			f.onReplyQ++
		}
	}
	return f
}

// endedBy reports how request id ended, from the ENDED lines of the
// managers (empty: not ended yet).
func (e *env) endedBy(id request.ID) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	prefix := "ENDED " + id.String() + " "
	for _, ch := range e.children {
		ch.mu.Lock()
		for _, l := range ch.lines {
			if strings.HasPrefix(l, prefix) {
				ch.mu.Unlock()
				return strings.TrimPrefix(l, prefix)
			}
		}
		ch.mu.Unlock()
	}
	return ""
}

// waitEnded waits until a manager ended request id, and then until no
// message of it is left in flight: no live marker nor record, not on the
// input queue, no reply of its calls on the reply queue (the sweeper
// moves strays).
func (e *env) waitEnded(id request.ID) facts {
	e.t.Helper()
	waitFor(e.t, 30*time.Second, "request "+id.String()+" to end", func() bool { return e.endedBy(id) != "" })
	var f facts
	waitFor(e.t, 30*time.Second, "request "+id.String()+" to leave nothing in flight", func() bool {
		f = e.facts(id)
		return !f.live && !f.onInput && f.onReplyQ == 0
	})
	return f
}

// wantNoDuplicates fails if a call id was performed more than once: the
// servers' exactly-once with respect to their unit of work.
func (f facts) wantNoDuplicates(t *testing.T) {
	t.Helper()
	for id, n := range f.callIDs {
		if n > 1 {
			t.Errorf("call %s performed %d times", hex.EncodeToString(id[:]), n)
		}
	}
}

var _ = crashpoint.EnvVar

// slowUntilTimedOut holds a call to SLOW until its request's state record
// no longer has it pending (the manager's call timed out and could not take
// it back, since this server holds it), so that its reply is late whatever
// the machine's load: a condition, not a sleep. It reads the records
// through root, a connection the servers use for nothing else.
func slowUntilTimedOut(ctx context.Context, root *mq.Conn, correl [24]byte) error {
	id, err := request.ParseCallID(correl)
	if err != nil {
		return err
	}
	pending := func() (bool, error) {
		rs, err := request.List(root, "")
		if err != nil {
			return false, err
		}
		for _, r := range rs {
			if request.KeyOf(r.RequestID) != id.Key {
				continue
			}
			for _, p := range r.Pending {
				if p.Attempt == id.Attempt && p.Seq == id.Seq {
					return true, nil
				}
			}
		}
		return false, nil
	}
	for {
		still, err := pending()
		if err != nil || !still {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond): // polling a condition
		}
	}
}
