package demo

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/shm"
)

// CFConfig sizes the coupling-facility demo.
type CFConfig struct {
	Dir       string        // where the demo's CF structures go; default: a new directory under /dev/shm, removed at the end
	Producers int           // producer processes; default 2
	Consumers int           // consumer processes; default 2
	Messages  int           // messages per producer; default 500000
	Rate      int           // messages per second put by all producers together; 0 for as fast as they go (cf-demo's --rate defaults to 250000)
	Batch     int           // messages per unit of work; default 50
	KillAt    float64       // fraction of the messages done when a consumer is SIGKILLed; default 0.4
	Refresh   time.Duration // progress refresh; default 200ms
}

// WithDefaults is c with the defaults documented on its fields applied.
func (c CFConfig) WithDefaults() CFConfig {
	if c.Producers == 0 {
		c.Producers = 2
	}
	if c.Consumers == 0 {
		c.Consumers = 2
	}
	if c.Messages == 0 {
		c.Messages = 500_000
	}
	if c.Batch == 0 {
		c.Batch = 50
	}
	if c.KillAt == 0 {
		c.KillAt = 0.4
	}
	if c.Refresh == 0 {
		c.Refresh = 200 * time.Millisecond
	}
	return c
}

// Validate checks the configuration as RunCF uses it (with its defaults
// applied); it changes nothing.
func (c CFConfig) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.Producers < 1 || c.Producers > 16:
		return fmt.Errorf("demo: producers %d not in 1..16", c.Producers)
	case c.Consumers < 2 || c.Consumers > 16:
		return fmt.Errorf("demo: consumers %d not in 2..16 (one is killed)", c.Consumers)
	case c.Messages < 100:
		return fmt.Errorf("demo: at least 100 messages per producer")
	case c.Rate < 0:
		return fmt.Errorf("demo: negative rate")
	case c.Batch < 1 || c.Batch > 10_000:
		return fmt.Errorf("demo: batch %d not in 1..10000", c.Batch)
	case c.KillAt <= 0 || c.KillAt >= 1:
		return fmt.Errorf("demo: kill point %v not between 0 and 1", c.KillAt)
	}
	return nil
}

const (
	demoStructure = shm.DefaultApplicationStructure
	demoIn        = "DEMO.IN"
	demoDone      = "DEMO.DONE"
)

// CFWorkerName is the command a cf-demo process runs (CFWorker): the
// demo re-executes its binary with it.
const CFWorkerName = "demo-worker"

// CFCommand is "qmgr cf-demo": the coupling facility alone.
func CFCommand(args []string, out io.Writer) error {
	var c CFConfig
	fs := flag.NewFlagSet("cf-demo", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&c.Producers, "producers", 2, "producer processes")
	fs.IntVar(&c.Consumers, "consumers", 2, "consumer processes (one is killed)")
	fs.IntVar(&c.Messages, "messages", 500_000, "messages per producer")
	fs.IntVar(&c.Rate, "rate", 250_000, "messages per second from all producers together (0: as fast as they go)")
	fs.IntVar(&c.Batch, "batch", 50, "messages per unit of work")
	fs.StringVar(&c.Dir, "cf-dir", "", "CF directory (default: a temporary one under /dev/shm, removed afterwards)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	return RunCF(c, out)
}

// RunCF runs the coupling-facility demo (c validated): producers put messages to DEMO.IN under syncpoint; consumers move
// them to DEMO.DONE, each get and put in one unit of work. Part way through,
// one consumer is SIGKILLed with a unit of work open; the demo, acting as
// the surviving member, repairs it at once and starts a replacement. The
// demo drains DEMO.DONE and checks every message arrives exactly once.
func RunCF(c CFConfig, out io.Writer) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	dir := c.Dir
	if dir == "" {
		base := "/dev/shm"
		if _, err := os.Stat(base); err != nil {
			base = os.TempDir()
		}
		d, err := os.MkdirTemp(base, "qmgr-demo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	total := c.Producers * c.Messages
	s, _, err := lockfree.Create(lockfree.CreateOptions{Dir: dir, Name: demoStructure, Kind: shm.KindApplication,
		Size: 64 << 20, Params: lockfree.Params{Owners: 64, Queues: 8}})
	if err != nil {
		return err
	}
	defer s.Close()
	admin, err := s.Register()
	if err != nil {
		return err
	}
	defer admin.Close()
	in, err := admin.CreateQueue(demoIn, lockfree.QueueAttrs{MaxDepth: 20_000})
	if err != nil {
		return err
	}
	done, err := admin.CreateQueue(demoDone, lockfree.QueueAttrs{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "qmgr demo: coupling facility in %s (structure %s, %d entries, %d data elements)\n",
		dir, demoStructure, s.Params().Entries, s.Params().Elements)
	fmt.Fprintf(out, "  %d producer processes put %d messages each to %s; %d consumer processes move them to %s,\n  getting and putting %d per unit of work. One consumer will be SIGKILLed with a unit of work open.\n",
		c.Producers, c.Messages, demoIn, c.Consumers, demoDone, c.Batch)

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	start := func(role string, id int) (*exec.Cmd, error) {
		cmd := exec.Command(exe, CFWorkerName, "-role", role, "-id", strconv.Itoa(id), "-cf-dir", dir,
			"-messages", strconv.Itoa(c.Messages), "-batch", strconv.Itoa(c.Batch), "-rate", strconv.Itoa(c.Rate/c.Producers))
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the demo
		return cmd, cmd.Start()
	}
	var prods, cons []*exec.Cmd
	waitAll := func() {
		for _, p := range append(prods, cons...) {
			if p.ProcessState == nil {
				p.Process.Kill()
				p.Wait()
			}
		}
	}
	defer waitAll()
	for i := 0; i < c.Consumers; i++ {
		cmd, err := start("consumer", i)
		if err != nil {
			return err
		}
		cons = append(cons, cmd)
	}
	t0 := time.Now()
	for i := 0; i < c.Producers; i++ {
		cmd, err := start("producer", i)
		if err != nil {
			return err
		}
		prods = append(prods, cmd)
	}
	prodDone := make(chan error, len(prods))
	for _, p := range prods {
		go func(p *exec.Cmd) { prodDone <- p.Wait() }(p)
	}

	tty := isTerminal(out)
	lastT, lastN := t0, 0
	progress := func(final bool, n int) {
		din, _ := s.QueueInfo(in)
		now := time.Now()
		rate := float64(n-lastN) / now.Sub(lastT).Seconds()
		if final {
			rate = float64(n) / now.Sub(t0).Seconds()
		}
		lastT, lastN = now, n
		line := fmt.Sprintf("  %5.1fs  %s depth %6d, %4d held in open units of work | arrived %7d/%d | %8.0f msgs/s",
			now.Sub(t0).Seconds(), demoIn, din.Depth, din.Uncom, n, total, rate)
		if tty && !final {
			fmt.Fprintf(out, "\r%s", line)
		} else {
			fmt.Fprintf(out, "%s\n", line)
		}
	}
	// The demo itself is the last consumer: it drains DEMO.DONE as it goes
	// and proves every message arrives exactly once.
	tally := newDemoTally(c.Producers, c.Messages)
	var m lockfree.Message
	drain := func() error {
		for k := 0; k < 200_000; k++ {
			err := admin.Get(done, lockfree.GetOptions{}, &m)
			if errors.Is(err, lockfree.ErrNoMessage) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := tally.add(m.Body); err != nil {
				return err
			}
		}
		return nil
	}
	killed := false
	producersLeft := len(prods)
	tick := time.NewTicker(c.Refresh)
	defer tick.Stop()
	lastGot, lastProgress := 0, time.Now()
	for {
		select {
		case err := <-prodDone:
			if err != nil {
				return fmt.Errorf("producer: %w", err)
			}
			producersLeft--
		case <-tick.C:
		}
		if err := drain(); err != nil {
			return err
		}
		progress(false, tally.got)
		if !killed && tally.got >= int(float64(total)*c.KillAt) {
			killed = true
			if tty {
				fmt.Fprintln(out)
			}
			if err := killAndRepair(s, cons[0], in, out); err != nil {
				return err
			}
			cmd, err := start("consumer", c.Consumers)
			if err != nil {
				return err
			}
			cons[0] = cmd
			fmt.Fprintf(out, "  started consumer %d (pid %d) in its place\n", c.Consumers, cmd.Process.Pid)
		}
		if producersLeft == 0 && tally.got == total {
			break
		}
		if tally.got != lastGot {
			lastGot, lastProgress = tally.got, time.Now()
		} else if time.Since(lastProgress) > time.Minute {
			return fmt.Errorf("demo: no progress for a minute (%d of %d messages arrived)", tally.got, total)
		}
	}
	if tty {
		fmt.Fprintln(out)
	}
	progress(true, tally.got)
	el := time.Since(t0)
	for _, p := range cons {
		p.Process.Signal(syscall.SIGTERM)
		p.Wait()
	}
	if _, err := s.RepairDead(); err != nil {
		return err
	}
	if d := s.Depth(in) + s.Depth(done); d != 0 {
		return fmt.Errorf("demo: %d messages left on the queues", d)
	}
	r := s.Check(lockfree.CheckOptions{Quiescent: true})
	fmt.Fprintf(out, "  all %d messages arrived exactly once: none lost, none twice (%.2fs, %d units of work)\n",
		total, el.Seconds(), 2*total/c.Batch)
	if !r.OK() {
		return fmt.Errorf("demo: checker: %v", r)
	}
	fmt.Fprintf(out, "  checker: %d queues, no broken invariant, nothing leaked\n", r.Queues)
	return nil
}

// killAndRepair SIGKILLs a consumer in the middle of its unit of work and
// repairs it, as a surviving member does when its watcher sees the death.
func killAndRepair(s *lockfree.Structure, cmd *exec.Cmd, in lockfree.QueueID, out io.Writer) error {
	before, _ := s.QueueInfo(in)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	t := time.Now()
	reps, err := s.RepairDead()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  SIGKILL consumer pid %d (%d messages of %s held in open units of work)\n", cmd.Process.Pid, before.Uncom, demoIn)
	for _, r := range reps {
		fmt.Fprintf(out, "  repaired %v in %v from the shared memory alone: %d held messages back in their original places (backout count 1), %d uncommitted puts removed, %d entries freed\n",
			r.Owner, time.Since(t).Round(time.Microsecond), r.GetsRestored, r.PutsRemoved, r.EntriesFreed)
	}
	return nil
}

// CFWorker is one cf-demo process (not for users: the demo starts it).
func CFWorker(args []string) error {
	fs := flag.NewFlagSet(CFWorkerName, flag.ContinueOnError)
	role := fs.String("role", "", "producer or consumer")
	id := fs.Int("id", 0, "worker number")
	dir := fs.String("cf-dir", "", "CF directory")
	n := fs.Int("messages", 0, "messages to put")
	batch := fs.Int("batch", 50, "messages per unit of work")
	rate := fs.Int("rate", 0, "messages per second (0: unpaced)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := lockfree.Attach(*dir, demoStructure)
	if err != nil {
		return err
	}
	defer s.Close()
	o, err := s.Register()
	if err != nil {
		return err
	}
	in, err := s.LookupQueue(demoIn)
	if err != nil {
		return err
	}
	done, err := s.LookupQueue(demoDone)
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	notifyTerm(stop)
	switch *role {
	case "producer":
		pace := newPacer(*rate)
		for i := 0; i < *n; i++ {
			if i%*batch == 0 {
				pace.wait(i)
			}
			m := lockfree.Message{Body: []byte(fmt.Sprintf("p%d-%d", *id, i))}
			for {
				err := o.Put(in, &m, lockfree.PutOptions{Syncpoint: true})
				if errors.Is(err, lockfree.ErrQueueFull) {
					if err := o.Commit(); err != nil {
						return err
					}
					time.Sleep(200 * time.Microsecond)
					continue
				}
				if err != nil {
					return err
				}
				break
			}
			if i%*batch == *batch-1 {
				if err := o.Commit(); err != nil {
					return err
				}
			}
		}
		if err := o.Commit(); err != nil {
			return err
		}
		return o.Close()
	case "consumer":
		var m lockfree.Message
		k := 0
		for {
			select {
			case <-stop:
				o.Commit()
				return o.Close()
			default:
			}
			err := o.Get(in, lockfree.GetOptions{Syncpoint: true, Wait: 20 * time.Millisecond}, &m)
			if errors.Is(err, lockfree.ErrNoMessage) {
				if err := o.Commit(); err != nil {
					return err
				}
				k = 0
				continue
			}
			if err != nil {
				return err
			}
			if err := o.Put(done, &lockfree.Message{Body: m.Body}, lockfree.PutOptions{Syncpoint: true}); err != nil {
				return err
			}
			if k++; k == *batch {
				if err := o.Commit(); err != nil {
					return err
				}
				k = 0
			}
		}
	}
	return fmt.Errorf("%s: unknown role %q", CFWorkerName, *role)
}

// isTerminal reports whether w is a terminal (progress lines then
// overwrite each other).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}

// notifyTerm delivers SIGTERM and SIGINT to c (a worker stops in order).
func notifyTerm(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
