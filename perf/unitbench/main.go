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
//	units.state.transfer.MBps  MB/s      a state of -transfer-mb MiB (the ledger's ballast, an
//	                                     input "pad n") given to a new secondary: the secondary
//	                                     SIGKILLed, its replacement timed from its first sight
//	                                     JOINING to its first sight active in DISPLAY SVSTATUS
//	                                     (polled): the donor's Snapshot, the chunks through the
//	                                     CF, the joiner's Restore
//	units.baseline.chunks.MBps MB/s      the same bytes put and got back by this one process as
//	                                     messages of the transfer's chunk size, 16 a unit of work
//	units.state.transfer.ratio ratio     transfer / baseline
//
//	go run ./perf/unitbench [-n transfers] [-rounds r] [-kills k] [-failover-rate r] [-transfer-mb m] [-logging LATE|EARLY|INDEPENDENT]
//
// -logging sets the ledger unit's LOGGING (default LATE): the ledger
// figures are then of that mode (design 12's units.throughput.ledger.early).
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
	"github.com/qmgr/qmgr/unit/logrec"
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
	xferMiB := flag.Int("transfer-mb", 64, "MiB of ballast in the ledger's state for the state transfer figure (0: not measured)")
	flag.StringVar(&logging, "logging", "LATE", "the ledger unit's LOGGING: LATE, EARLY or INDEPENDENT")
	flag.Parse()
	if *n < 100 || *rounds < 1 || *kills < 1 || *frate < 10 || *xferMiB < 0 || *xferMiB > ledger.MaxPad>>20 || logging != "LATE" && logging != "EARLY" && logging != "INDEPENDENT" {
		fmt.Fprintln(os.Stderr, "unitbench: -n at least 100; -rounds, -kills positive; -failover-rate at least 10; -transfer-mb 0..1024; -logging LATE, EARLY or INDEPENDENT")
		os.Exit(2)
	}
	if err := run(*n, *rounds, *kills, *frate, *xferMiB); err != nil {
		fmt.Fprintln(os.Stderr, "unitbench:", err)
		os.Exit(1)
	}
}

var emit = benchgroup.Emit

// logging is the ledger unit's LOGGING (-logging).
var logging = "LATE"

// inIndex is what the unit's input queue's definition needs for logging:
// INDEPENDENT requires INDXTYPE(MSGID).
func inIndex() string {
	if logging == "INDEPENDENT" {
		return " INDXTYPE(MSGID)"
	}
	return ""
}

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

func run(n, rounds, kills, frate, transferMiB int) error {
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
		"DEFINE QLOCAL(" + unitIn + ") MAXDEPTH(1000000)" + inIndex(), "DEFINE QLOCAL(" + plainIn + ") MAXDEPTH(1000000)",
		"DEFINE QLOCAL(" + ledger.Confirm + ") MAXDEPTH(1000000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('app replica') INPUT(%s) REPLICAS(2) LOGGING(%s)", b.Exe, unitIn, logging),
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

	// State transfer to a new secondary, against the same bytes put and
	// got as chunks by one process.
	if transferMiB > 0 {
		xfer, err := b.transfer(transferMiB << 20)
		if err != nil {
			return fmt.Errorf("units.state.transfer: %w", err)
		}
		base, err := b.chunkBaseline(transferMiB << 20)
		if err != nil {
			return fmt.Errorf("units.baseline.chunks: %w", err)
		}
		emit("units.state.transfer.MBps", xfer, "MB/s")
		emit("units.baseline.chunks.MBps", base, "MB/s")
		emit("units.state.transfer.ratio", xfer/base, "ratio")
	}

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

// transfer gives the ledger a state of about size bytes (an input "pad
// size": every replica holds the same ballast), SIGKILLs its secondary
// and returns MB/s (10^6 bytes) of the state over the time its
// replacement was JOINING (from its first sight in DISPLAY SVSTATUS,
// polled, to its first sight active): the donor's Snapshot, the chunks
// through the CF and the joiner's Restore.
func (b *bench) transfer(size int) (float64, error) {
	c, err := b.Connect("QM1")
	if err != nil {
		return 0, err
	}
	defer c.Disconnect()
	q, err := c.Open(unitIn, mq.OpenOptions{Output: true})
	if err != nil {
		return 0, err
	}
	if err := q.Put(&mq.Message{Body: fmt.Appendf(nil, "pad %d", size)}, mq.PutOptions{}); err != nil {
		return 0, err
	}
	// Transfers after it, confirmed: every replica has applied the pad.
	n, err := b.produce(unitIn, 100, 10, 0, nil)
	b.put += n
	if err != nil {
		return 0, err
	}
	if err := waitFor(time.Minute, func() bool { return b.count() >= b.put }); err != nil {
		return 0, fmt.Errorf("%d confirmations of %d transfers after the pad", b.count(), b.put)
	}
	if _, err := b.waitBoth(30 * time.Second); err != nil {
		return 0, err
	}
	victim, err := b.secondary()
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("SIGKILL pid %d: %w", victim.Pid, err)
	}
	var joining, active time.Time
	err = waitFor(2*time.Minute, func() bool {
		p, ok := b.position(victim.Position)
		switch {
		case !ok || p.Pid == victim.Pid || p.Pid == 0:
		case p.Role == "JOINING":
			if joining.IsZero() {
				joining = time.Now()
			}
		case p.Role == "SENDER" || p.Role == "SECONDARY":
			active = time.Now()
			return true
		}
		return false
	})
	if err != nil {
		return 0, fmt.Errorf("the replacement of position %d not active within 2 minutes (member log %s)", victim.Position, b.LogPath("QM1"))
	}
	if joining.IsZero() {
		return 0, fmt.Errorf("the replacement of position %d was never seen joining: the transfer was too quick to time; use a larger -transfer-mb", victim.Position)
	}
	fmt.Fprintf(os.Stderr, "# state transfer: %d bytes to position %d in %.1f ms\n", size, victim.Position, float64(active.Sub(joining).Microseconds())/1000)
	return float64(size) / 1e6 / active.Sub(joining).Seconds(), nil
}

// chunkBaseline puts size bytes as messages of the transfer's chunk size
// on a queue of the unit's structure and gets them back, 16 a unit of
// work each way (as the donor commits), in this one process, and returns
// MB/s (10^6 bytes).
func (b *bench) chunkBaseline(size int) (float64, error) {
	if err := b.MQSC("QM1", "DEFINE QLOCAL(XFER.BASE) MAXDEPTH(100000)"); err != nil {
		return 0, err
	}
	c, err := b.Connect("QM1")
	if err != nil {
		return 0, err
	}
	defer c.Disconnect()
	q, err := c.Open("XFER.BASE", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		return 0, err
	}
	chunk := make([]byte, logrec.MaxChunkData)
	t0 := time.Now()
	for done := 0; done < size; {
		k := 0
		for ; k < 16 && done < size; k++ {
			n := min(len(chunk), size-done)
			if err := q.Put(&mq.Message{Body: chunk[:n]}, mq.PutOptions{Syncpoint: true}); err != nil {
				return 0, err
			}
			done += n
		}
		if err := c.Commit(); err != nil {
			return 0, err
		}
		for range k {
			if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
				return 0, err
			}
		}
		if err := c.Commit(); err != nil {
			return 0, err
		}
	}
	return float64(size) / 1e6 / time.Since(t0).Seconds(), nil
}

// secondary is the running position that is not the primary.
func (b *bench) secondary() (svPos, error) {
	for k := 0; k < 2; k++ {
		if p, ok := b.position(k); ok && p.Role != "PRIMARY" && p.Status == "RUNNING" && p.Pid != 0 {
			return p, nil
		}
	}
	return svPos{}, errors.New("no running secondary")
}

// position is position k of DISPLAY SVSTATUS(LEDGER).
func (b *bench) position(k int) (svPos, bool) {
	resp, err := qm.Command(b.Cfg, "QM1", "DISPLAY SVSTATUS(LEDGER)")
	if err != nil || !resp.OK {
		return svPos{}, false
	}
	for _, raw := range resp.Objects {
		var p svPos
		if json.Unmarshal(raw, &p) == nil && p.Position == k {
			return p, true
		}
	}
	return svPos{}, false
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
