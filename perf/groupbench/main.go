package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/perf/benchgroup"
)

func main() {
	benchgroup.RunChild(os.Args, "groupbench", app)
	n := flag.Int("n", 1_000_000, "messages per throughput run")
	rounds := flag.Int("rounds", 3, "runs per figure; the best is reported")
	recoveries := flag.Int("recoveries", 5, "member kills for the recovery figure")
	flag.Parse()
	if err := run(*n, *rounds, *recoveries); err != nil {
		fmt.Fprintln(os.Stderr, "groupbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	*benchgroup.Group
}

func (b *bench) mqsc(cmd string) error { return b.MQSC("QM1", cmd) }

var emit = benchgroup.Emit

func run(n, rounds, recoveries int) error {
	dir, err := os.MkdirTemp("", "qmgr-groupbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bg, err := benchgroup.New(group.Config{Name: "BENCH", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 256 << 20}, dir)
	if err != nil {
		return err
	}
	b := &bench{bg}
	defer b.Close()
	for _, m := range []string{"QM1", "QM2", "QM3"} {
		if err := b.Start(m); err != nil {
			return err
		}
	}
	if err := b.mqsc("DEFINE QLOCAL(B.Q) MAXDEPTH(50000)"); err != nil {
		return err
	}
	results := map[string]float64{}
	best := func(name string, f func() (float64, error)) error {
		var vals []float64
		for r := 0; r < rounds; r++ {
			v, err := f()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			vals = append(vals, v)
		}
		results[name] = slices.Max(vals)
		emit(name, results[name], "msgs/s")
		return nil
	}
	figures := []struct {
		name             string
		prodVia, consVia string
		commit           int
	}{
		{"group.putget.same.64B", "QM1", "QM1", 0},
		{"group.putget.cross.64B", "QM1", "QM2", 0},
		{"group.syncpoint.putget.64B.commit1", "QM1", "QM2", 1},
		{"group.syncpoint.putget.64B.commit100", "QM1", "QM2", 100},
	}
	for _, f := range figures {
		count := n
		if f.commit == 1 {
			count = n / 10
		}
		if err := best(f.name, func() (float64, error) { return b.putget(f.prodVia, f.consVia, count, f.commit) }); err != nil {
			return err
		}
	}
	ratio := func(a, base string) {
		if results[a] > 0 && results[base] > 0 {
			emit(a+".vs."+base, results[a]/results[base], "ratio")
		}
	}
	ratio("group.putget.cross.64B", "group.putget.same.64B")
	ratio("group.syncpoint.putget.64B.commit1", "group.putget.same.64B")
	ratio("group.syncpoint.putget.64B.commit100", "group.putget.same.64B")
	// Recovery: a member holding a unit of work is SIGKILLed; how long until
	// its messages can be got through a survivor.
	var times []float64
	for i := 0; i < recoveries; i++ {
		ms, err := b.recovery()
		if err != nil {
			return fmt.Errorf("group.recovery.uow.ms: %w", err)
		}
		times = append(times, ms)
	}
	slices.Sort(times)
	emit("group.recovery.uow.ms", times[len(times)/2], "ms")
	emit("group.recovery.uow.max.ms", times[len(times)-1], "ms")
	return nil
}

// putget runs a producer application through one member and a consumer
// through another and returns messages per second.
func (b *bench) putget(prodVia, consVia string, n, commit int) (float64, error) {
	startApp := func(role, via string) (*exec.Cmd, io.ReadCloser, error) {
		cmd := exec.Command(b.Exe, b.Args("app", role, via, strconv.Itoa(n), strconv.Itoa(commit))...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		out, _ := cmd.StdoutPipe()
		return cmd, out, cmd.Start()
	}
	cons, cout, err := startApp("consumer", consVia)
	if err != nil {
		return 0, err
	}
	prod, pout, err := startApp("producer", prodVia)
	if err != nil {
		return 0, err
	}
	for _, r := range []io.Reader{cout, pout} {
		if line, err := bufio.NewReader(r).ReadString('\n'); err != nil || line != "ready\n" {
			return 0, fmt.Errorf("application not ready: %q %v", line, err)
		}
	}
	t0 := time.Now()
	cons.Process.Signal(syscall.SIGUSR1)
	prod.Process.Signal(syscall.SIGUSR1)
	if err := prod.Wait(); err != nil {
		return 0, fmt.Errorf("producer: %w", err)
	}
	if err := cons.Wait(); err != nil {
		return 0, fmt.Errorf("consumer: %w", err)
	}
	return float64(n) / time.Since(t0).Seconds(), nil
}

// app is a benchmark application: args are role, member, count, commit
// interval (0: outside syncpoint), then the group flags.
func app(args []string) error {
	role, via := args[0], args[1]
	n, _ := strconv.Atoi(args[2])
	commit, _ := strconv.Atoi(args[3])
	cfg, err := benchgroup.ParseArgs(args[4:])
	if err != nil {
		return err
	}
	if role == "hold" {
		return hold(cfg, via, n)
	}
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: via, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return err
	}
	defer c.Disconnect()
	q, err := c.Open("B.Q", mq.OpenOptions{Input: role == "consumer", Output: role == "producer"})
	if err != nil {
		return err
	}
	go1 := make(chan os.Signal, 1)
	notify(go1, syscall.SIGUSR1)
	fmt.Println("ready")
	<-go1
	if d := os.Getenv("GROUPBENCH_PROFILE"); d != "" {
		f, err := os.Create(filepath.Join(d, fmt.Sprintf("%s-%d.prof", role, os.Getpid())))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	sync := commit > 0
	body := make([]byte, 64)
	for i := 1; i <= n; i++ {
		if role == "producer" {
			err = q.Put(&mq.Message{Body: body, Priority: 0}, mq.PutOptions{Syncpoint: sync})
			for mq.ReasonOf(err) == mq.RCQFull {
				if sync {
					c.Commit()
				}
				time.Sleep(50 * time.Microsecond)
				err = q.Put(&mq.Message{Body: body, Priority: 0}, mq.PutOptions{Syncpoint: sync})
			}
		} else {
			_, err = q.Get(mq.GetOptions{Syncpoint: sync, Wait: 10 * time.Second})
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if sync && (i%commit == 0 || i == n) {
			if err := c.Commit(); err != nil {
				return err
			}
		}
	}
	return nil
}

// hold gets k messages under syncpoint through member via, says so, and
// waits.
func hold(cfg group.Config, via string, k int) error {
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Name, QMgr: via, DataDir: cfg.DataDir, CFDir: cfg.CFDir})
	if err != nil {
		return err
	}
	q, err := c.Open("R.Q", mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	for i := 0; i < k; i++ {
		if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
			return err
		}
	}
	fmt.Println("held")
	select {}
}

// recovery: an application holds 10 messages through QM2; QM2 is SIGKILLed;
// the time until a getter through QM1 gets one of them.
func (b *bench) recovery() (float64, error) {
	if err := b.mqsc("DEFINE QLOCAL(R.Q) REPLACE"); err != nil {
		return 0, err
	}
	c, err := mq.Connect(mq.ConnectOptions{Group: b.Cfg.Name, QMgr: "QM1", DataDir: b.Cfg.DataDir, CFDir: b.Cfg.CFDir})
	if err != nil {
		return 0, err
	}
	defer c.Disconnect()
	q, err := c.Open("R.Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		return 0, err
	}
	for i := 0; i < 10; i++ {
		if err := q.Put(&mq.Message{Body: []byte("r")}, mq.PutOptions{}); err != nil {
			return 0, err
		}
	}
	holder := exec.Command(b.Exe, b.Args("app", "hold", "QM2", "10", "0")...)
	holder.Stderr = os.Stderr
	holder.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		return 0, err
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "held\n" {
		return 0, fmt.Errorf("holder: %q", line)
	}
	t0 := time.Now()
	b.Kill("QM2")
	if _, err := q.Get(mq.GetOptions{Wait: 10 * time.Second}); err != nil {
		return 0, fmt.Errorf("messages not back: %w", err)
	}
	el := time.Since(t0)
	for {
		if _, err := q.Get(mq.GetOptions{}); errors.Is(err, mq.ErrNoMessage) {
			break
		}
	}
	if err := b.Start("QM2"); err != nil {
		return 0, err
	}
	return float64(el.Microseconds()) / 1000, nil
}
