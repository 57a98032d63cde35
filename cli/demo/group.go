package demo

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// GroupConfig sizes the group demo.
type GroupConfig struct {
	Dir       string        // where the group lives; default a new temporary directory, removed at the end
	Messages  int           // messages per producer; default 100000
	Producers int           // producer processes; default 2
	Consumers int           // consumer processes; default 2
	Batch     int           // messages per unit of work; default 50
	Rate      int           // messages per second from all producers; 0 unpaced (demo's --rate defaults to 50000)
	KillAt    float64       // fraction done when a member is killed; default 0.4
	Refresh   time.Duration // progress refresh; default 250ms
}

// WithDefaults is c with the defaults documented on its fields applied.
func (c GroupConfig) WithDefaults() GroupConfig {
	if c.Messages == 0 {
		c.Messages = 100_000
	}
	if c.Producers == 0 {
		c.Producers = 2
	}
	if c.Consumers == 0 {
		c.Consumers = 2
	}
	if c.Batch == 0 {
		c.Batch = 50
	}
	if c.KillAt == 0 {
		c.KillAt = 0.4
	}
	if c.Refresh == 0 {
		c.Refresh = 250 * time.Millisecond
	}
	return c
}

// Validate checks the configuration as RunGroup uses it (with its defaults
// applied); it changes nothing.
func (c GroupConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Messages < 100:
		return errors.New("demo: at least 100 messages per producer")
	case c.Producers < 1 || c.Producers > 8 || c.Consumers < 1 || c.Consumers > 8:
		return errors.New("demo: 1 to 8 producers and consumers")
	case c.Batch < 1 || c.Batch > 10_000:
		return errors.New("demo: batch not in 1..10000")
	case c.Rate < 0:
		return errors.New("demo: negative rate")
	case c.KillAt <= 0 || c.KillAt >= 1:
		return errors.New("demo: kill point not between 0 and 1")
	}
	return nil
}

var demoMembers = []string{"QM1", "QM2", "QM3"}

const demoGroup = "DEMO"

// GroupWorkerName is the command a group demo application runs
// (GroupWorker): the demo re-executes its binary with it.
const GroupWorkerName = "group-demo-worker"

// GroupCommand is "qmgr demo": a group of three at work, then a shared
// channel (--part).
func GroupCommand(args []string, out io.Writer) error {
	var c GroupConfig
	fs := newFlags("demo", out)
	fs.IntVar(&c.Messages, "messages", 100_000, "messages per producer")
	fs.IntVar(&c.Producers, "producers", 2, "producer processes")
	fs.IntVar(&c.Consumers, "consumers", 2, "consumer processes")
	fs.IntVar(&c.Batch, "batch", 50, "messages per unit of work")
	fs.IntVar(&c.Rate, "rate", 50_000, "messages per second from all producers (0: unpaced)")
	fs.StringVar(&c.Dir, "dir", "", "directory for the group (default: a temporary one, removed afterwards)")
	part := fs.String("part", "all", "which part: group (members and applications), channel (a shared channel), amqp (AMQP clients), requests (request managers and their recovery modes), units (a recovery unit through a SIGKILL), or all")
	var rc RequestsConfig
	fs.IntVar(&rc.PerMode, "trips", 8, "requests part: trips of each recovery mode")
	fs.DurationVar(&rc.CallDelay, "call-delay", 150*time.Millisecond, "requests part: how long a travel server takes per call")
	var uc UnitsConfig
	fs.IntVar(&uc.Transfers, "transfers", 3000, "units part: transfers through the ledger unit")
	fs.IntVar(&uc.Rate, "transfer-rate", 1000, "units part: transfers a second")
	fs.BoolVar(&uc.KillMember, "kill-member", false, "units part: SIGKILL the member hosting the primary replica (which dies with it) instead of the replica alone")
	chMsgs := fs.Int("channel-messages", 200_000, "messages through the shared channel")
	amqpMsgs := fs.Int("amqp-messages", 20_000, "messages through AMQP")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if *chMsgs < 1000 {
		return errors.New("demo: at least 1000 channel messages")
	}
	if *amqpMsgs < 1000 {
		return errors.New("demo: at least 1000 AMQP messages")
	}
	if err := rc.Validate(); err != nil {
		return err
	}
	if err := uc.Validate(); err != nil {
		return err
	}
	switch *part {
	case "all", "group", "channel", "amqp", "requests", "units":
	default:
		return fmt.Errorf("demo: --part %q: group, channel, amqp, requests, units or all", *part)
	}
	if *part == "all" || *part == "group" {
		if err := RunGroup(c, out); err != nil {
			return err
		}
	}
	if *part == "all" || *part == "channel" {
		dir, err := partDir(c.Dir, "channel")
		if err != nil {
			return err
		}
		if err := runChannelDemo(dir, *chMsgs, max(c.Rate, 50_000), out); err != nil {
			return err
		}
	}
	if *part == "all" || *part == "amqp" {
		dir, err := partDir(c.Dir, "amqp")
		if err != nil {
			return err
		}
		if err := runAMQPDemo(dir, *amqpMsgs, out); err != nil {
			return err
		}
	}
	if *part == "all" || *part == "requests" {
		dir, err := partDir(c.Dir, "requests")
		if err != nil {
			return err
		}
		rc.Dir = dir
		if err := RunRequests(rc, out); err != nil {
			return err
		}
	}
	if *part == "all" || *part == "units" {
		dir, err := partDir(c.Dir, "units")
		if err != nil {
			return err
		}
		uc.Dir = dir
		return RunUnits(uc, out)
	}
	return nil
}

// partDir is the directory of a demo part under dir ("" when dir is: a
// temporary one).
func partDir(dir, part string) (string, error) {
	if dir == "" {
		return "", nil
	}
	d := filepath.Join(dir, part)
	return d, os.MkdirAll(d, 0o755)
}

// demoTally counts the demo's messages ("p<producer>-<number>") as they
// arrive, and refuses one that is malformed or arrives twice.
type demoTally struct {
	seen                []bool
	got                 int
	producers, messages int
}

func newDemoTally(producers, messages int) *demoTally {
	return &demoTally{seen: make([]bool, producers*messages), producers: producers, messages: messages}
}

func (d *demoTally) add(body []byte) error {
	var p, i int
	if _, err := fmt.Sscanf(string(body), "p%d-%d", &p, &i); err != nil || p < 0 || i < 0 || p >= d.producers || i >= d.messages {
		return fmt.Errorf("demo: unexpected message %q", body)
	}
	if d.seen[p*d.messages+i] {
		return fmt.Errorf("demo: message %s arrived twice", body)
	}
	d.seen[p*d.messages+i] = true
	d.got++
	return nil
}

type demoProc struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// demoRun starts the demo's processes (this binary) with their logs in
// dir, and kills them all at the end.
type demoRun struct {
	dir   string
	exe   string
	procs []*demoProc
}

func newDemoRun(dir string) (*demoRun, error) {
	exe, err := os.Executable()
	return &demoRun{dir: dir, exe: exe}, err
}

func (r *demoRun) start(name string, args ...string) (*demoProc, error) {
	cmd := exec.Command(r.exe, args...)
	logf, err := os.Create(filepath.Join(r.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the demo
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	p := &demoProc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	r.procs = append(r.procs, p)
	return p, nil
}

func (r *demoRun) killAll() {
	for _, p := range r.procs {
		p.cmd.Process.Kill()
	}
}

// RunGroup runs the group demo (c validated): three members, producers and
// consumers through them, a member SIGKILLed with units of work open.
func RunGroup(c GroupConfig, out io.Writer) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	dir := c.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "qmgr-demo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	cfg := group.Config{Name: demoGroup, DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 64 << 20}.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	gargs := cfg.Args()
	run, err := newDemoRun(dir)
	if err != nil {
		return err
	}
	defer run.killAll()
	start := run.start
	members, err := groupproc.New(cfg, dir)
	if err != nil {
		return err
	}
	members.StartFlags = []string{"--heartbeat", "50ms", "--port", "0"}
	members.ActiveTimeout = 10 * time.Second
	defer members.KillAll()
	fmt.Fprintf(out, "qmgr demo: a queue-sharing group of three in %s\n", dir)
	for i, n := range demoMembers {
		m, err := members.Start(n)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  member %s started (pid %d)%s\n", n, m.Process.Pid, map[bool]string{true: ", created the group's structures", false: ""}[i == 0])
	}
	for _, cmd := range []string{"DEFINE QLOCAL(DEMO.IN) MAXDEPTH(20000) DESCR('work to do')", "DEFINE QLOCAL(DEMO.DONE) MAXDEPTH(999999999) DESCR('work done')"} {
		resp, err := qm.Command(cfg, "QM1", cmd)
		if err != nil || !resp.OK {
			return fmt.Errorf("%s: %v %s", cmd, err, resp.Error)
		}
		fmt.Fprintf(out, "  %s: %s", cmd, resp.Text)
	}
	total := c.Producers * c.Messages
	perRate := 0
	if c.Rate > 0 {
		perRate = max(c.Rate/c.Producers, 1)
	}
	for i := 0; i < c.Producers; i++ {
		via := demoMembers[i%2] // QM1 and QM2
		if _, err := start(fmt.Sprintf("producer%d", i), append([]string{GroupWorkerName, "--role", "producer", "--id", strconv.Itoa(i), "--via", via,
			"--messages", strconv.Itoa(c.Messages), "--batch", strconv.Itoa(c.Batch), "--rate", strconv.Itoa(perRate)}, gargs...)...); err != nil {
			return err
		}
	}
	for i := 0; i < c.Consumers; i++ {
		via := demoMembers[1+i%2] // QM2 and QM3
		if _, err := start(fmt.Sprintf("consumer%d", i), append([]string{GroupWorkerName, "--role", "consumer", "--id", strconv.Itoa(i), "--via", via,
			"--batch", strconv.Itoa(c.Batch)}, gargs...)...); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "  %d producers put %d messages each (through QM1 and QM2); %d consumers move them from DEMO.IN to DEMO.DONE\n"+
		"  (through QM2 and QM3), %d per unit of work. QM2 will be SIGKILLed with units of work open.\n", c.Producers, c.Messages, c.Consumers, c.Batch)

	conn, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: "QM1", DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return err
	}
	defer conn.Disconnect()
	done, err := conn.Open("DEMO.DONE", mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	g, err := group.Open(cfg, false)
	if err != nil {
		return err
	}
	defer g.Close()
	inStruct, _ := g.Structure("APPL1", false)
	tally := newDemoTally(c.Producers, c.Messages)
	inInfo := func() (in lockfree.QueueInfo) { // DEMO.IN's depth and uncommitted count
		if id, err := inStruct.LookupQueue("DEMO.IN"); err == nil {
			in, _ = inStruct.QueueInfo(id)
		}
		return in
	}
	t0 := time.Now()
	tty := isTerminal(out)
	lastT, lastN := t0, 0
	progress := func(final bool) {
		in := inInfo()
		now := time.Now()
		rate := float64(tally.got-lastN) / now.Sub(lastT).Seconds()
		lastT, lastN = now, tally.got
		var states []string
		peers, _ := g.Peers()
		for _, p := range peers {
			st := p.State.String()
			if p.State.Running() && !p.ProcessAlive() {
				st = "DEAD"
			}
			states = append(states, p.Name+" "+st)
		}
		line := fmt.Sprintf("  %5.1fs  DEMO.IN %5d (%4d in open units of work) | arrived %7d/%d | %7.0f msgs/s | %s",
			now.Sub(t0).Seconds(), in.Depth, in.Uncom, tally.got, total, rate, strings.Join(states, ", "))
		if tty && !final {
			fmt.Fprintf(out, "\r%s\033[K", line)
		} else {
			fmt.Fprintln(out, line)
		}
	}
	killed := false
	var killTime time.Time
	recoveredShown := false
	tick := time.NewTicker(c.Refresh)
	defer tick.Stop()
	lastGot, lastProgress := 0, time.Now()
	for tally.got < total {
		for k := 0; k < 100_000; k++ {
			m, err := done.Get(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return err
			}
			if err := tally.add(m.Body); err != nil {
				return err
			}
		}
		<-tick.C
		progress(false)
		if !killed && tally.got >= int(float64(total)*c.KillAt) {
			killed = true
			in := inInfo()
			if tty {
				fmt.Fprintln(out)
			}
			victim := members.Member("QM2")
			victim.Process.Signal(syscall.SIGKILL)
			killTime = time.Now()
			fmt.Fprintf(out, "  SIGKILL QM2 (pid %d) while %d messages of DEMO.IN were held in open units of work\n", victim.Process.Pid, in.Uncom)
			// Watch closely how long the survivors take.
			for time.Since(killTime) < 5*time.Second {
				if p, found, _ := g.FindPeer("QM2"); found && p.State == group.PeerRecovered {
					break
				}
				time.Sleep(time.Millisecond)
			}
		}
		if killed && !recoveredShown {
			if p, found, _ := g.FindPeer("QM2"); found && p.State == group.PeerRecovered {
				recoveredShown = true
				if tty {
					fmt.Fprintln(out)
				}
				fmt.Fprintf(out, "  QM2's units of work recovered by a survivor (seen %v after the kill): its held messages are back in place,\n"+
					"  its applications got \"connection broken\" and reconnected through a survivor\n", time.Since(killTime).Round(time.Millisecond))
			}
		}
		if tally.got != lastGot {
			lastGot, lastProgress = tally.got, time.Now()
		} else if time.Since(lastProgress) > time.Minute {
			return fmt.Errorf("demo: no progress for a minute (%d of %d arrived; logs in %s)", tally.got, total, dir)
		}
	}
	if tty {
		fmt.Fprintln(out)
	}
	progress(true)
	el := time.Since(t0)
	fmt.Fprintf(out, "  all %d messages arrived exactly once: none lost, none twice (%.1fs)\n", total, el.Seconds())
	// Stop the workers, then the members, in order.
	for _, p := range run.procs {
		if strings.HasPrefix(p.name, "consumer") || strings.HasPrefix(p.name, "producer") {
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.done
		}
	}
	for _, n := range []string{"QM1", "QM3"} {
		if err := members.StopMember(n, 20*time.Second); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	conn.Disconnect()
	if err := demoCheck(g, out); err != nil {
		return err
	}
	fmt.Fprintf(out, "  members stopped; checker: every structure clean, nothing leaked\n")
	return nil
}

// demoCheck runs the structure checker on every structure of g, which is
// quiescent.
func demoCheck(g *group.Group, out io.Writer) error {
	problems := 0
	names, _ := g.Structures()
	for _, n := range append(names, "ADMIN") {
		var s *lockfree.Structure
		if n == "ADMIN" {
			s = g.Admin()
		} else {
			s, _ = g.Structure(n, false)
		}
		r := s.Check(lockfree.CheckOptions{Quiescent: true})
		problems += len(r.Problems)
		if !r.OK() {
			fmt.Fprintf(out, "  %s %s: %v\n", g.Config().Name, n, r)
		}
	}
	if problems > 0 {
		return fmt.Errorf("demo: the checker found %d problems in group %s", problems, g.Config().Name)
	}
	return nil
}

// GroupWorker is a demo application process. When its member dies
// it reconnects through another and carries on: a producer from its last
// committed message, a consumer simply (its open unit of work was backed
// out, so those messages are on DEMO.IN again).
func GroupWorker(args []string) error {
	cfg := group.Config{Name: "QSG1", AppSize: 256 << 20, AppElementSize: 256}
	var role, via string
	var id, n, batch, rate int
	fs := newFlags(GroupWorkerName, os.Stderr)
	cfg.RegisterFlags(fs)
	fs.StringVar(&role, "role", "", "producer or consumer")
	fs.StringVar(&via, "via", "", "member to connect through first")
	fs.IntVar(&id, "id", 0, "worker number")
	var tag string
	fs.StringVar(&tag, "tag", "", "torture-producer: the prefix of this incarnation's message ids")
	fs.IntVar(&n, "messages", 0, "messages to put")
	fs.IntVar(&batch, "batch", 50, "messages per unit of work")
	fs.IntVar(&rate, "rate", 0, "messages per second (0 unpaced)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	notifyTerm(stop)
	isStopped := false
	stopped := func() bool { // sticky: the signal is read once
		if !isStopped {
			select {
			case <-stop:
				isStopped = true
			default:
			}
		}
		return isStopped
	}
	reconnect := func(prefer string) (*mq.Conn, error) {
		for i := 0; i < 200; i++ {
			c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: prefer, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
			if err == nil {
				return c, nil
			}
			prefer = "" // any active member
			time.Sleep(50 * time.Millisecond)
		}
		return nil, errors.New("no member to connect through")
	}
	c, err := reconnect(via)
	if err != nil {
		return err
	}
	defer func() { c.Disconnect() }()
	broken := func(err error) bool {
		r := mq.ReasonOf(err)
		return r == mq.RCConnectionBroken || r == mq.RCQMgrNotAvailable || r == mq.RCQMgrStopping
	}
	switch role {
	case "torture-producer":
		// Puts its own ids (tag-seq) in units of work and prints the ids of
		// each committed one; a unit of work broken by a member's death is
		// never put again (its ids were never committed).
		out := bufio.NewWriter(os.Stdout)
		seq := 0
		pace := newPacer(rate)
		for !stopped() {
			q, err := c.Open("DEMO.IN", mq.OpenOptions{Output: true})
			for err == nil && !stopped() {
				var ids []string
				for k := 0; k < batch && err == nil; k++ {
					pace.wait(seq)
					body := fmt.Sprintf("p%s-%d", tag, seq)
					seq++
					err = q.Put(&mq.Message{Body: []byte(body), Priority: mq.PriorityAsQDef}, mq.PutOptions{Syncpoint: true})
					if err == nil {
						ids = append(ids, body)
					}
				}
				if r := mq.ReasonOf(err); r == mq.RCQFull || r == mq.RCStorageMediumFull {
					err = c.Backout()
					time.Sleep(2 * time.Millisecond)
					continue
				}
				if err == nil {
					if err = c.Commit(); err == nil {
						fmt.Fprintf(out, "committed %s\n", strings.Join(ids, " "))
						out.Flush()
					}
				}
			}
			if err != nil && !broken(err) {
				return err
			}
			if err != nil {
				c.Disconnect()
				if c, err = reconnect(""); err != nil {
					return err
				}
			}
		}
		return nil
	case "producer":
		committed := 0 // messages 0..committed-1 are on DEMO.IN for good
		pace := newPacer(rate)
		for committed < n && !stopped() {
			q, err := c.Open("DEMO.IN", mq.OpenOptions{Output: true})
			for err == nil && committed < n {
				end := min(committed+batch, n)
				for i := committed; i < end && err == nil; i++ {
					pace.wait(i)
					err = q.Put(&mq.Message{Body: []byte(fmt.Sprintf("p%d-%d", id, i)), Priority: mq.PriorityAsQDef}, mq.PutOptions{Syncpoint: true})
					for mq.ReasonOf(err) == mq.RCQFull {
						time.Sleep(time.Millisecond)
						err = q.Put(&mq.Message{Body: []byte(fmt.Sprintf("p%d-%d", id, i)), Priority: mq.PriorityAsQDef}, mq.PutOptions{Syncpoint: true})
					}
				}
				if err == nil {
					if err = c.Commit(); err == nil {
						committed = end
					}
				}
			}
			if err != nil && !broken(err) {
				return err
			}
			if err != nil {
				c.Disconnect()
				if c, err = reconnect(""); err != nil {
					return err
				}
			}
		}
		return nil
	case "consumer":
		for !stopped() {
			in, err := c.Open("DEMO.IN", mq.OpenOptions{Input: true})
			var out *mq.Queue
			if err == nil {
				out, err = c.Open("DEMO.DONE", mq.OpenOptions{Output: true})
			}
			k := 0
			for err == nil && !stopped() {
				var m *mq.Message
				m, err = in.Get(mq.GetOptions{Syncpoint: true, Wait: 50 * time.Millisecond})
				if errors.Is(err, mq.ErrNoMessage) {
					err = c.Commit()
					k = 0
					continue
				}
				if err == nil {
					err = out.Put(&mq.Message{Body: m.Body, Priority: m.Priority}, mq.PutOptions{Syncpoint: true})
				}
				if err == nil {
					if k++; k == batch {
						err = c.Commit()
						k = 0
					}
				}
			}
			if err == nil {
				return c.Commit()
			}
			if !broken(err) {
				return err
			}
			c.Disconnect()
			if c, err = reconnect(""); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("%s: unknown role %q", GroupWorkerName, role)
}

// newFlags is a flag set that reports to out and returns its errors.
func newFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}
