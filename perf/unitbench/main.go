// Command unitbench measures a recovery unit (package unit) with the
// example ledger (unit/example/ledger) under a group of one member, and
// prints "name value unit" lines:
//
//	units.ledger.throughput    inputs/s  a ledger service of REPLICAS(2) (LATE logging, the
//	                                     member starting both replicas): -n transfers put in
//	                                     one unit of work (the producer ahead), from its commit
//	                                     to the last confirmation got; the best of the rounds
//	units.plain.throughput     inputs/s  the same handler as a plain consumer (unit.RunPlain:
//	                                     get, Handle, put the confirmation, commit each input;
//	                                     no replicas, no log, a crash loses its state), the
//	                                     same way
//	units.ledger.ratio         ratio     median over the rounds of ledger / plain
//	units.failover.p50         ms        p50 over -kills SIGKILLs of the primary replica under a
//	                                     steady load of half the ledger's throughput (at most
//	                                     -failover-rate): from the kill to the first confirmation
//	                                     of the new epoch (Ctx.Epoch: the promoted secondary's
//	                                     own work, not the sender draining older outputs)
//	units.failover.max         ms        the worst of those kills
//
//	go run ./perf/unitbench [-n transfers] [-rounds r] [-kills k] [-failover-rate r]
//
// Each round measures plain then the ledger. Before each kill both
// replicas run (the previous kill's replacement has joined). At the end
// every transfer put must have been confirmed once (a count check; the
// demo, qmgr demo --part units, and the ledger's tests check more). The
// processes are this program re-executed: the member as qmgr (start), the
// replicas as "app replica" (the service's STARTCMD and STARTARG) and the
// plain consumer as "app plain".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit"
	"github.com/qmgr/qmgr/unit/example/ledger"
)

// The queues: the unit's input, the plain consumer's input; both send
// their confirmations to ledger.Confirm.
const (
	unitIn  = "LEDGER.IN"
	plainIn = "PLAIN.IN"
)

func main() {
	benchgroup.RunChild(os.Args, "unitbench", app)
	n := flag.Int("n", 20000, "transfers per throughput run")
	rounds := flag.Int("rounds", 3, "runs per throughput figure")
	kills := flag.Int("kills", 5, "SIGKILLs of the primary for the failover figures")
	frate := flag.Int("failover-rate", 2000, "at most this many transfers a second during the kills")
	flag.Parse()
	if *n < 100 || *rounds < 1 || *kills < 1 || *frate < 10 {
		fmt.Fprintln(os.Stderr, "unitbench: -n at least 100; -rounds, -kills positive; -failover-rate at least 10")
		os.Exit(2)
	}
	if err := run(*n, *rounds, *kills, *frate); err != nil {
		fmt.Fprintln(os.Stderr, "unitbench:", err)
		os.Exit(1)
	}
}

var emit = benchgroup.Emit

// arrival is one confirmation got: when, and the epoch it carries.
type arrival struct {
	at    time.Time
	epoch uint64
}

type bench struct {
	*benchgroup.Group
	mu       sync.Mutex
	arrivals []arrival
	put      int // transfers put, all runs
}

func (b *bench) count() int { b.mu.Lock(); defer b.mu.Unlock(); return len(b.arrivals) }

func (b *bench) at(i int) arrival { b.mu.Lock(); defer b.mu.Unlock(); return b.arrivals[i] }

func run(n, rounds, kills, frate int) error {
	dir, err := os.MkdirTemp("", "qmgr-unitbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bg, err := benchgroup.New(group.Config{Name: "UBENCH", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 256 << 20}, dir)
	if err != nil {
		return err
	}
	b := &bench{Group: bg}
	defer b.Close()
	if strings.ContainsAny(b.Exe, " \t'") {
		return fmt.Errorf("the program's path %q has a blank or a quote: it cannot be a STARTCMD", b.Exe)
	}
	if err := b.Start("QM1", "--no-chinit"); err != nil {
		return err
	}
	for _, line := range []string{
		"DEFINE QLOCAL(" + unitIn + ") MAXDEPTH(1000000)", "DEFINE QLOCAL(" + plainIn + ") MAXDEPTH(1000000)",
		"DEFINE QLOCAL(" + ledger.Confirm + ") MAXDEPTH(1000000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('app replica') INPUT(%s) REPLICAS(2)", b.Exe, unitIn),
	} {
		if err := b.MQSC("QM1", line); err != nil {
			return err
		}
	}
	// One consumer of the confirmations, all along.
	conn, err := b.Connect("QM1")
	if err != nil {
		return err
	}
	defer conn.Disconnect()
	confirm, err := conn.Open(ledger.Confirm, mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	stop, done := make(chan struct{}), make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			m, err := confirm.Get(mq.GetOptions{Wait: 100 * time.Millisecond})
			if errors.Is(err, mq.ErrNoMessage) {
				continue
			}
			if err != nil {
				done <- err
				return
			}
			cf, err := ledger.ParseConfirmation(m.Body)
			if err != nil {
				done <- err
				return
			}
			b.mu.Lock()
			b.arrivals = append(b.arrivals, arrival{at: time.Now(), epoch: cf.Epoch})
			b.mu.Unlock()
		}
	}()
	defer func() { close(stop); <-done }()
	if _, err := b.waitBoth(30 * time.Second); err != nil {
		return err
	}

	// Throughput.
	rates := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		plain, err := b.startPlain()
		if err != nil {
			return err
		}
		v, err := b.throughput(plainIn, n)
		plain.Process.Signal(syscall.SIGTERM)
		plain.Wait()
		if err != nil {
			return fmt.Errorf("units.plain.throughput: %w", err)
		}
		rates["plain"] = append(rates["plain"], v)
		if v, err = b.throughput(unitIn, n); err != nil {
			return fmt.Errorf("units.ledger.throughput: %w", err)
		}
		rates["ledger"] = append(rates["ledger"], v)
	}
	var ratios []float64
	for r := range rounds {
		ratios = append(ratios, rates["ledger"][r]/rates["plain"][r])
	}
	slices.Sort(ratios)
	emit("units.ledger.throughput", slices.Max(rates["ledger"]), "inputs/s")
	emit("units.plain.throughput", slices.Max(rates["plain"]), "inputs/s")
	emit("units.ledger.ratio", ratios[len(ratios)/2], "ratio")

	// Failover, under a steady load.
	rate := min(int(slices.Max(rates["ledger"])/2), frate)
	times, err := b.failover(kills, max(rate, 10))
	if err != nil {
		return fmt.Errorf("units.failover: %w", err)
	}
	slices.Sort(times)
	emit("units.failover.p50", times[len(times)/2], "ms")
	emit("units.failover.max", times[len(times)-1], "ms")

	// Every transfer confirmed (a count: more would be a duplicate).
	if err := waitFor(30*time.Second, func() bool { return b.count() >= b.put }); err != nil {
		return fmt.Errorf("%d confirmations of %d transfers", b.count(), b.put)
	}
	time.Sleep(300 * time.Millisecond) // nothing more may come
	if c := b.count(); c != b.put {
		return fmt.Errorf("%d confirmations of %d transfers", c, b.put)
	}
	return nil
}

// startPlain starts the plain consumer of plainIn.
func (b *bench) startPlain() (*exec.Cmd, error) {
	cmd := exec.Command(b.Exe, b.Args("app", "plain")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd, cmd.Start()
}

// produce puts transfers on input, batch a unit of work (0: one each
// 10 ms at rate), at rate a second (0: as fast as they go) until n are
// put or stop closes; it returns how many it put.
func (b *bench) produce(input string, n, batch, rate int, stop <-chan struct{}) (int, error) {
	c, err := b.Connect("QM1")
	if err != nil {
		return 0, err
	}
	defer c.Disconnect()
	q, err := c.Open(input, mq.OpenOptions{Output: true})
	if err != nil {
		return 0, err
	}
	accounts := []string{"a", "b", "c", "d", "e"}
	t0 := time.Now()
	if batch <= 0 {
		batch = max(1, rate/100) // a unit of work each 10 ms
	}
	put := 0
	for put < n {
		select {
		case <-stop:
			return put, nil
		default:
		}
		if rate > 0 {
			if ahead := time.Duration(float64(put)/float64(rate)*float64(time.Second)) - time.Since(t0); ahead > 0 {
				time.Sleep(ahead)
			}
		}
		for j := 0; j < batch && put < n; j++ {
			i := put
			body := fmt.Appendf(nil, "%d %s %s %d", i, accounts[i%5], accounts[(i/5+1+i)%5], 1+i*7%400)
			if err := q.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); err != nil {
				return put, fmt.Errorf("put: %w", err)
			}
			put++
		}
		if err := c.Commit(); err != nil {
			return put, fmt.Errorf("commit: %w", err)
		}
	}
	return put, nil
}

// throughput puts n transfers on input in one unit of work (the
// consumer finds the queue full: the producer ahead) and returns inputs a
// second from its commit to the n-th confirmation got.
func (b *bench) throughput(input string, n int) (float64, error) {
	base := b.count()
	if base != b.put {
		return 0, fmt.Errorf("%d confirmations of %d transfers before the run", base, b.put)
	}
	put, err := b.produce(input, n, n, 0, nil)
	t0 := time.Now()
	b.put += put
	if err != nil {
		return 0, err
	}
	if err := waitFor(2*time.Minute, func() bool { return b.count() >= base+n }); err != nil {
		return 0, fmt.Errorf("%d of %d confirmations", b.count()-base, n)
	}
	return float64(n) / b.at(base+n-1).at.Sub(t0).Seconds(), nil
}

// svPos is a position of DISPLAY SVSTATUS(LEDGER).
type svPos struct {
	Position int    `json:"POSITION"`
	Role     string `json:"ROLE"`
	Pid      int    `json:"PID"`
	Status   string `json:"STATUS"`
	Epoch    uint64 `json:"EPOCH"`
}

// waitBoth waits until both replicas run, one of them the primary, and
// returns the primary's position.
func (b *bench) waitBoth(limit time.Duration) (svPos, error) {
	var primary svPos
	var last []svPos
	err := waitFor(limit, func() bool {
		resp, err := qm.Command(b.Cfg, "QM1", "DISPLAY SVSTATUS(LEDGER)")
		if err != nil || !resp.OK {
			return false
		}
		last = last[:0]
		running := 0
		primary = svPos{Position: -1}
		for _, raw := range resp.Objects {
			var p svPos
			if json.Unmarshal(raw, &p) != nil {
				return false
			}
			last = append(last, p)
			if p.Status == "RUNNING" && p.Pid != 0 && (p.Role == "PRIMARY" || p.Role == "SENDER" || p.Role == "SECONDARY") {
				running++
			}
			if p.Role == "PRIMARY" {
				primary = p
			}
		}
		return running == 2 && primary.Position >= 0
	})
	if err != nil {
		return primary, fmt.Errorf("both replicas not running within %v (SVSTATUS %+v; member log %s)", limit, last, b.LogPath("QM1"))
	}
	return primary, nil
}

// failover SIGKILLs the primary kills times under a steady load of rate
// transfers a second and returns, for each, the milliseconds from the
// kill to the first confirmation of a later epoch.
func (b *bench) failover(kills, rate int) ([]float64, error) {
	if c := b.count(); c != b.put {
		return nil, fmt.Errorf("%d confirmations of %d transfers before the kills", c, b.put)
	}
	stop := make(chan struct{})
	type result struct {
		n   int
		err error
	}
	prod := make(chan result, 1)
	go func() {
		n, err := b.produce(unitIn, 1<<40, 0, rate, stop)
		prod <- result{n, err}
	}()
	var times []float64
	var ferr error
	for k := 0; k < kills && ferr == nil; k++ {
		primary, err := b.waitBoth(30 * time.Second)
		if err != nil {
			ferr = err
			break
		}
		// Under load for a moment (the replacement caught up).
		c0 := b.count()
		if err := waitFor(10*time.Second, func() bool { return b.count() >= c0+rate/4 }); err != nil {
			ferr = fmt.Errorf("kill %d: no load", k+1)
			break
		}
		from := b.count()
		tKill := time.Now()
		if err := syscall.Kill(primary.Pid, syscall.SIGKILL); err != nil {
			ferr = fmt.Errorf("kill %d: SIGKILL pid %d: %w", k+1, primary.Pid, err)
			break
		}
		var took time.Duration
		if err := waitFor(30*time.Second, func() bool {
			for i, c := from, b.count(); i < c; i++ {
				if a := b.at(i); a.epoch > primary.Epoch {
					took = a.at.Sub(tKill)
					return true
				}
			}
			return false
		}); err != nil {
			ferr = fmt.Errorf("kill %d: no confirmation of a later epoch than %d within 30 s (member log %s)", k+1, primary.Epoch, b.LogPath("QM1"))
			break
		}
		times = append(times, float64(took.Microseconds())/1000)
		fmt.Fprintf(os.Stderr, "# kill %d: primary pid %d at epoch %d; the new epoch's first confirmation %.1f ms later\n", k+1, primary.Pid, primary.Epoch, times[k])
	}
	close(stop)
	r := <-prod
	b.put += r.n
	if ferr != nil {
		return nil, ferr
	}
	return times, r.err
}

// waitFor polls cond until it holds (nil) or limit passes.
func waitFor(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		time.Sleep(2 * time.Millisecond) // polling
	}
	return nil
}

// app is a child: "replica" (a ledger replica, as the member starts it:
// configured from the environment) or "plain" (the plain consumer of
// plainIn, then the group flags), until SIGTERM.
func app(args []string) error {
	if len(args) == 0 {
		return errors.New("no role")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	switch args[0] {
	case "replica":
		return ledger.RunFromEnv(ctx)
	case "plain":
		cfg, err := benchgroup.ParseArgs(args[1:])
		if err != nil {
			return err
		}
		connect := mq.ConnectOptions{Group: cfg.Name, QMgr: "QM1", DataDir: cfg.DataDir, CFDir: cfg.CFDir}
		return unit.RunPlain(ctx, unit.PlainConfig{Connect: connect, Input: plainIn, Commit: 1, Poll: 20 * time.Millisecond}, ledger.New())
	}
	return fmt.Errorf("unknown role %q", args[0])
}
