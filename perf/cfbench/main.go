package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/shm"
)

const roleEnv = "CFBENCH_ROLE"

func main() {
	if role := os.Getenv(roleEnv); role != "" {
		if err := child(role); err != nil {
			fmt.Fprintln(os.Stderr, "cfbench child:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("n", 2_000_000, "messages per throughput run")
	pings := flag.Int("pings", 200_000, "round trips per latency run")
	rounds := flag.Int("rounds", 3, "runs per figure; the best is reported")
	only := flag.String("only", "", "run only figures whose name starts with this")
	flag.Parse()
	if err := run(*n, *pings, *rounds, *only); err != nil {
		fmt.Fprintln(os.Stderr, "cfbench:", err)
		os.Exit(1)
	}
}

type figure struct {
	name  string
	value float64
	unit  string
}

func emit(f figure) {
	if f.unit == "ratio" {
		fmt.Printf("%s %.3f %s\n", f.name, f.value, f.unit)
		return
	}
	fmt.Printf("%s %.0f %s\n", f.name, f.value, f.unit)
}

func run(n, pings, rounds int, only string) error {
	dir, err := os.MkdirTemp("/dev/shm", "qmgr-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	s, _, err := lockfree.Create(lockfree.CreateOptions{Dir: dir, Name: "APPL1",
		Params: lockfree.Params{Owners: 32, Queues: 8, Entries: 1 << 16, Elements: 4096}})
	if err != nil {
		return err
	}
	defer s.Close()
	o, err := s.Register()
	if err != nil {
		return err
	}
	for _, q := range []string{"Q", "PING", "PONG"} {
		if _, err := o.CreateQueue(q, lockfree.QueueAttrs{}); err != nil {
			return err
		}
	}
	o.Close()

	results := map[string]float64{}
	best := func(name, unit string, higherBetter bool, f func() (float64, error)) error {
		if only != "" && !hasPrefix(name, only) {
			return nil
		}
		var vals []float64
		for r := 0; r < rounds; r++ {
			v, err := f()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			vals = append(vals, v)
		}
		slices.Sort(vals)
		v := vals[0]
		if higherBetter {
			v = vals[len(vals)-1]
		}
		results[name] = v
		emit(figure{name, v, unit})
		return nil
	}
	thr := func(p, c, batch int) func() (float64, error) {
		return func() (float64, error) { return putget(dir, n, p, c, batch) }
	}
	steps := []struct {
		name, unit string
		hb         bool
		f          func() (float64, error)
	}{
		{"baseline.gochan.64B", "msgs/s", true, func() (float64, error) { return gochan(n), nil }},
		{"baseline.unixsock.64B", "msgs/s", true, func() (float64, error) { return unixsock(dir, n/4) }},
		{"cf.putget.1to1.64B", "msgs/s", true, thr(1, 1, 1)},
		{"cf.putget.2to2.64B", "msgs/s", true, thr(2, 2, 1)},
		{"cf.putget.1to1.64B.batch64", "msgs/s", true, thr(1, 1, 64)},
		{"cf.putget.2to2.64B.batch64", "msgs/s", true, thr(2, 2, 64)},
	}
	for _, st := range steps {
		if err := best(st.name, st.unit, st.hb, st.f); err != nil {
			return err
		}
	}
	// Latencies: p50 and p99 come from the same run; keep the run with the
	// best p50.
	lat := func(name string, f func() ([]time.Duration, error)) error {
		if only != "" && !hasPrefix(name, only) {
			return nil
		}
		var bestRun []time.Duration
		for r := 0; r < rounds; r++ {
			d, err := f()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if bestRun == nil || pct(d, 50) < pct(bestRun, 50) {
				bestRun = d
			}
		}
		results[name+".p50.ns"] = float64(pct(bestRun, 50))
		emit(figure{name + ".p50.ns", float64(pct(bestRun, 50)), "ns"})
		if name != "baseline.shm.pingpong" {
			results[name+".p99.ns"] = float64(pct(bestRun, 99))
			emit(figure{name + ".p99.ns", float64(pct(bestRun, 99)), "ns"})
		}
		return nil
	}
	if err := lat("baseline.shm.pingpong", func() ([]time.Duration, error) { return rawPingPong(dir, pings) }); err != nil {
		return err
	}
	if err := lat("cf.pingpong.spin", func() ([]time.Duration, error) { return cfPingPong(dir, pings, true) }); err != nil {
		return err
	}
	if err := lat("cf.pingpong.futex", func() ([]time.Duration, error) { return cfPingPong(dir, pings/10, false) }); err != nil {
		return err
	}
	ratio := func(name, base string, inverse bool) {
		a, b := results[name], results[base]
		if a == 0 || b == 0 {
			return
		}
		r := a / b
		if inverse {
			r = b / a
		}
		emit(figure{name + ".vs." + base, r, "ratio"})
	}
	for _, f := range []string{"cf.putget.1to1.64B", "cf.putget.2to2.64B", "cf.putget.1to1.64B.batch64", "cf.putget.2to2.64B.batch64"} {
		ratio(f, "baseline.gochan.64B", false)
		ratio(f, "baseline.unixsock.64B", false)
	}
	// Latency ratios: how many times the bare cache-line round trip.
	ratio("cf.pingpong.spin.p50.ns", "baseline.shm.pingpong.p50.ns", false)
	ratio("cf.pingpong.futex.p50.ns", "baseline.shm.pingpong.p50.ns", false)
	return nil
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func spawn(role string, env ...string) *exec.Cmd {
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	return cmd
}

// putget runs p producer and c consumer processes moving n 64-byte messages
// through queue Q and returns messages per second, from the moment all
// children are ready to the moment the last consumer is done.
func putget(dir string, n, p, c, batch int) (float64, error) {
	var cmds []*exec.Cmd
	var readys []io.ReadCloser
	start := func(role string, count int) error {
		cmd := spawn(role, "CF_DIR="+dir, "CF_N="+strconv.Itoa(count), "CF_BATCH="+strconv.Itoa(batch))
		out, _ := cmd.StdoutPipe()
		in, _ := cmd.StdinPipe()
		_ = in
		if err := cmd.Start(); err != nil {
			return err
		}
		cmds = append(cmds, cmd)
		readys = append(readys, out)
		return nil
	}
	for i := 0; i < c; i++ {
		if err := start("consumer", n/c); err != nil {
			return 0, err
		}
	}
	for i := 0; i < p; i++ {
		if err := start("producer", n/p); err != nil {
			return 0, err
		}
	}
	// Each child prints "ready" once attached, then waits for a byte on
	// stdin; all start together.
	for _, r := range readys {
		line, err := bufio.NewReader(r).ReadString('\n')
		if err != nil || line != "ready\n" {
			return 0, fmt.Errorf("child not ready: %q %v", line, err)
		}
	}
	t0 := time.Now()
	for _, cmd := range cmds {
		cmd.Process.Signal(os.Interrupt)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			return 0, err
		}
	}
	return float64(n/c*c) / time.Since(t0).Seconds(), nil
}

func child(role string) error {
	switch role {
	case "unixsock-writer":
		return unixsockWriter()
	case "raw-pong":
		return rawPong()
	}
	s, err := lockfree.Attach(os.Getenv("CF_DIR"), "APPL1")
	if err != nil {
		return err
	}
	defer s.Close()
	o, err := s.Register()
	if err != nil {
		return err
	}
	defer o.Close()
	n, _ := strconv.Atoi(os.Getenv("CF_N"))
	batch, _ := strconv.Atoi(os.Getenv("CF_BATCH"))
	if role == "cf-pong" {
		return cfPong(s, o, n, os.Getenv("CF_SPIN") == "1")
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	waitGo()
	if os.Getenv("CF_RUSAGE") != "" {
		t0 := time.Now()
		defer func() {
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			fmt.Fprintf(os.Stderr, "%s: wall %v user %v sys %v voluntary-cs %d involuntary-cs %d\n", role, time.Since(t0).Round(time.Millisecond),
				time.Duration(ru.Utime.Nano()).Round(time.Millisecond), time.Duration(ru.Stime.Nano()).Round(time.Millisecond), ru.Nvcsw, ru.Nivcsw)
		}()
	}
	if d := os.Getenv("CF_PROFILE"); d != "" {
		f, err := os.Create(filepath.Join(d, fmt.Sprintf("%s-%d.prof", role, os.Getpid())))
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	switch role {
	case "producer":
		msgs := make([]lockfree.Message, max(batch, 1))
		for i := range msgs {
			msgs[i].Body = make([]byte, 64)
		}
		for sent := 0; sent < n; {
			k := min(len(msgs), n-sent)
			done, err := o.PutBatch(q, msgs[:k], lockfree.PutOptions{})
			sent += done
			if errors.Is(err, lockfree.ErrStructureFull) || errors.Is(err, lockfree.ErrQueueFull) {
				runtime.Gosched() // the consumers are behind: back-pressure
				continue
			}
			if err != nil {
				return err
			}
			for i := range msgs[:k] {
				msgs[i].MsgID = [24]byte{}
			}
		}
	case "consumer":
		msgs := make([]lockfree.Message, max(batch, 1))
		for got := 0; got < n; {
			k, err := o.GetBatch(q, lockfree.GetOptions{Wait: 10 * time.Second, Spin: time.Second}, msgs[:min(len(msgs), n-got)])
			got += k
			if err != nil {
				return fmt.Errorf("after %d: %w", got, err)
			}
		}
	}
	return nil
}

// waitGo reports ready and waits for the parent's start signal (SIGINT,
// ignored until then).
func waitGo() {
	started := make(chan os.Signal, 1)
	notifyInterrupt(started)
	fmt.Println("ready")
	<-started
}

// gochan is the in-process baseline: one goroutine sends 64-byte messages
// through a buffered channel to another.
func gochan(n int) float64 {
	ch := make(chan [64]byte, 1024)
	t0 := time.Now()
	go func() {
		var m [64]byte
		for i := 0; i < n; i++ {
			m[0] = byte(i)
			ch <- m
		}
		close(ch)
	}()
	var sink byte
	for m := range ch {
		sink ^= m[0]
	}
	_ = sink
	return float64(n) / time.Since(t0).Seconds()
}

// unixsock: a child writes n 64-byte messages, one write each, to a
// unix-domain stream socket; this process reads them.
func unixsock(dir string, n int) (float64, error) {
	path := filepath.Join(dir, "sock")
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	cmd := spawn("unixsock-writer", "CF_SOCK="+path, "CF_N="+strconv.Itoa(n))
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	c, err := l.Accept()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	r := bufio.NewReaderSize(c, 64<<10)
	var m [64]byte
	if _, err := io.ReadFull(r, m[:1]); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(r, m[:]); err != nil {
			return 0, err
		}
	}
	el := time.Since(t0)
	if err := cmd.Wait(); err != nil {
		return 0, err
	}
	return float64(n) / el.Seconds(), nil
}

func unixsockWriter() error {
	n, _ := strconv.Atoi(os.Getenv("CF_N"))
	c, err := net.Dial("unix", os.Getenv("CF_SOCK"))
	if err != nil {
		return err
	}
	defer c.Close()
	c.Write([]byte{1})
	var m [64]byte
	for i := 0; i < n; i++ {
		m[0] = byte(i)
		if _, err := c.Write(m[:]); err != nil {
			return err
		}
	}
	return nil
}

// rawPingPong bounces one cache line between this process and a child: the
// floor for any cross-process hand-off on this host.
func rawPingPong(dir string, n int) ([]time.Duration, error) {
	m, _, err := shm.Create(shm.CreateOptions{Dir: dir, Name: "RAW", Kind: shm.KindApplication, Size: 2 * shm.PageSize, Version: 1})
	if err != nil {
		return nil, err
	}
	defer func() { m.Close(); shm.Remove(dir, "RAW") }()
	w := m.Mem().U64(0)
	atomic.StoreUint64(w, 0)
	cmd := spawn("raw-pong", "CF_DIR="+dir, "CF_N="+strconv.Itoa(n))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	for atomic.LoadUint64(w) != 1 { // child attached
		runtime.Gosched()
	}
	d := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		v := uint64(2*i + 2)
		t0 := time.Now()
		atomic.StoreUint64(w, v)
		for atomic.LoadUint64(w) != v+1 {
		}
		d[i] = time.Since(t0)
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	return d, nil
}

func rawPong() error {
	m, err := shm.Attach(os.Getenv("CF_DIR"), "RAW", 1)
	if err != nil {
		return err
	}
	defer m.Close()
	n, _ := strconv.Atoi(os.Getenv("CF_N"))
	w := m.Mem().U64(0)
	atomic.StoreUint64(w, 1)
	for i := 0; i < n; i++ {
		v := uint64(2*i + 2)
		for atomic.LoadUint64(w) != v {
		}
		atomic.StoreUint64(w, v+1)
	}
	return nil
}

// cfPingPong: this process puts to PING and gets from PONG; the child gets
// from PING and puts to PONG. Returns round-trip times.
func cfPingPong(dir string, n int, spin bool) ([]time.Duration, error) {
	s, err := lockfree.Attach(dir, "APPL1")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	o, err := s.Register()
	if err != nil {
		return nil, err
	}
	defer o.Close()
	ping, _ := s.LookupQueue("PING")
	pong, _ := s.LookupQueue("PONG")
	sp := "0"
	if spin {
		sp = "1"
	}
	cmd := spawn("cf-pong", "CF_DIR="+dir, "CF_N="+strconv.Itoa(n), "CF_SPIN="+sp)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		return nil, fmt.Errorf("pong not ready: %q %v", line, err)
	}
	opt := lockfree.GetOptions{Wait: 5 * time.Second}
	if spin {
		opt.Spin = 5 * time.Second
	}
	m := lockfree.Message{Body: make([]byte, 64)}
	var r lockfree.Message
	d := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		m.MsgID = [24]byte{1} // fixed id: no id generation in the loop
		t0 := time.Now()
		if err := o.Put(ping, &m, lockfree.PutOptions{}); err != nil {
			return nil, err
		}
		if err := o.Get(pong, opt, &r); err != nil {
			return nil, fmt.Errorf("round %d: %w", i, err)
		}
		d[i] = time.Since(t0)
	}
	if err := cmd.Wait(); err != nil {
		return nil, err
	}
	return d, nil
}

func cfPong(s *lockfree.Structure, o *lockfree.Owner, n int, spin bool) error {
	ping, _ := s.LookupQueue("PING")
	pong, _ := s.LookupQueue("PONG")
	opt := lockfree.GetOptions{Wait: 5 * time.Second}
	if spin {
		opt.Spin = 5 * time.Second
	}
	fmt.Println("ready")
	var m lockfree.Message
	for i := 0; i < n; i++ {
		if err := o.Get(ping, opt, &m); err != nil {
			if errors.Is(err, lockfree.ErrNoMessage) {
				return fmt.Errorf("round %d: no ping", i)
			}
			return err
		}
		m.MsgID = [24]byte{2}
		if err := o.Put(pong, &m, lockfree.PutOptions{}); err != nil {
			return err
		}
	}
	return nil
}
