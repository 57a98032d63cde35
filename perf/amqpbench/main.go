package main

import (
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/perf/benchgroup"
)

type options struct {
	mode              string
	rabbitURL         string
	rounds            int
	warmup, duration  time.Duration
	confirmPublishers int
	confirmWindow     int
	idle              int
	backlog           int
	kills             int
	held              int
	failoverInproc    bool
	appMiB            uint64
	cpuprofile        string
	profileFigure     string
	only              string
}

func main() {
	benchgroup.RunChild(os.Args, "amqpbench", app)
	var o options
	flag.StringVar(&o.mode, "qmgr-mode", "", "how qmgr serves AMQP: inproc (a broker process of this program per member, through qsg and amqp.Serve) or listener (qmgr start --amqp-port); default listener when qmgr start has that flag, inproc otherwise")
	flag.StringVar(&o.rabbitURL, "rabbitmq-url", "", "AMQP URL of a RabbitMQ to measure the same way (empty: qmgr only, ratios missing)")
	flag.IntVar(&o.rounds, "rounds", 5, "runs per throughput figure and broker, alternating the brokers; the median is reported")
	flag.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "time each throughput run runs before it is measured")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "measured time of each throughput run")
	flag.IntVar(&o.confirmPublishers, "confirm-publishers", 8, "publishers of amqp.confirm.persistent.64B")
	flag.IntVar(&o.confirmWindow, "confirm-window", 100, "unconfirmed publishes each confirm-mode publisher may have outstanding")
	flag.IntVar(&o.backlog, "max-backlog", 10000, "the most messages per queue a transient publisher may be ahead of its consumers (0: unbounded, as PerfTest's publishers are)")
	flag.IntVar(&o.idle, "idle-conns", 1000, "idle connections (each with one channel open) for the memory figures (0: skip)")
	flag.IntVar(&o.kills, "kills", 5, "member kills for amqp.failover.ms (0: skip)")
	flag.IntVar(&o.held, "held", 100, "unacknowledged messages the consumer holds when its member is killed")
	flag.BoolVar(&o.failoverInproc, "failover-inproc", false, "measure failover in inproc mode too (a member killed with its broker process; the client reconnects to the survivor's broker, there being no generic port)")
	flag.Uint64Var(&o.appMiB, "app-size", 512, "MiB of the group's application structure (holds the backlog of the throughput runs)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the process serving qmgr's AMQP (QM1's, inproc mode) during the figure -cpuprofile-figure here")
	flag.StringVar(&o.profileFigure, "cpuprofile-figure", "publish.consume", "the figure -cpuprofile profiles: publish.consume, confirm or fanout")
	flag.StringVar(&o.only, "only", "", "comma-separated figures to measure (publish.consume, confirm, fanout, memory, failover); empty: all")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "amqpbench:", err)
		os.Exit(1)
	}
}

var emit = benchgroup.Emit

// missing says a figure could not be measured (a comment line, so that a
// reader of "name value unit" lines skips it).
func missing(name, why string) { fmt.Printf("# %s missing: %s\n", name, why) }

func run(o options) error {
	supported := listenerSupported()
	switch {
	case o.mode == "" && supported:
		o.mode = modeListener
	case o.mode == "":
		o.mode = modeInproc
	case o.mode == modeListener && !supported:
		return errors.New("-qmgr-mode listener: qmgr start has no --amqp-port/--amqp-generic-port")
	case o.mode != modeListener && o.mode != modeInproc:
		return fmt.Errorf("-qmgr-mode %q: want inproc or listener", o.mode)
	}
	dir, err := os.MkdirTemp("", "qmgr-amqpbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	q, err := startQmgr(o.mode, dir, o.appMiB, o.cpuprofile)
	if err != nil {
		return err
	}
	defer q.close()
	fmt.Printf("# qmgr serves AMQP in %s mode\n", o.mode)
	targets := []*target{{name: "qmgr", url: q.url("QM1"), cpu: q.cpu, servePID: func() (int, error) { return q.servePID("QM1") }}}
	if o.rabbitURL != "" {
		t, err := rabbitTarget(o.rabbitURL)
		if err != nil {
			return err
		}
		targets = append(targets, t)
	} else {
		missing("ratios vs RabbitMQ", "rabbitmq-server is not installed (or -rabbitmq-url not given): qmgr's figures only")
	}
	want := func(f string) bool { return o.only == "" || slices.Contains(strings.Split(o.only, ","), f) }
	var failed []error
	// Memory first: the serving processes have not yet touched the pages
	// of the throughput runs' backlogs.
	if want("memory") && o.idle > 0 {
		t0 := time.Now()
		if err := memoryFigures(targets, o.idle); err != nil {
			failed = append(failed, err)
		}
		fmt.Fprintf(os.Stderr, "amqpbench: memory took %v\n", time.Since(t0).Round(time.Millisecond))
	}
	for _, s := range []struct {
		key, name, other string
		f                func(*target, options) (sample, error)
	}{
		{"publish.consume", "amqp.publish.consume.64B", "published", publishConsume},
		{"confirm", "amqp.confirm.persistent.64B", "delivered", confirmPersistent},
		{"fanout", "amqp.fanout.64B", "published", fanout},
	} {
		if !want(s.key) {
			continue
		}
		profile := o.cpuprofile != "" && o.profileFigure == s.key
		if profile {
			if err := q.signalServer("QM1", syscall.SIGUSR1); err != nil {
				return err
			}
		}
		t0 := time.Now()
		err := throughput(s.name, s.other, s.f, targets, o)
		fmt.Fprintf(os.Stderr, "amqpbench: %s took %v\n", s.name, time.Since(t0).Round(time.Millisecond))
		if profile {
			q.signalServer("QM1", syscall.SIGUSR2)
		}
		if err != nil {
			failed = append(failed, err)
		}
	}
	if want("failover") && o.kills > 0 {
		if err := failoverFigures(q, o, len(targets) > 1); err != nil {
			failed = append(failed, err)
		}
	}
	return errors.Join(failed...)
}

// rabbitTarget is the RabbitMQ at rawURL: its serving process is the one
// listening on the URL's port (beam.smp), whose processor time (with its
// children's) is RabbitMQ's.
func rabbitTarget(rawURL string) (*target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return nil, fmt.Errorf("-rabbitmq-url %s: no port", rawURL)
	}
	if _, err := pidListening(port); err != nil {
		return nil, fmt.Errorf("-rabbitmq-url %s: %w", rawURL, err)
	}
	pid := func() (int, error) { return pidListening(port) }
	return &target{name: "rabbitmq", url: rawURL, servePID: pid, cpu: func() map[string]time.Duration {
		p, err := pid()
		if err != nil {
			return nil
		}
		return map[string]time.Duration{"beam": benchgroup.TreeCPU(map[int]bool{p: true})}
	}}, nil
}

// throughput runs scenario f o.rounds times on every target, alternating
// which goes first, and emits the medians (the scenario's second count as
// name.other) and the ratios of qmgr's to RabbitMQ's.
func throughput(name, other string, f func(*target, options) (sample, error), targets []*target, o options) error {
	got := map[string][]sample{}
	for r := range o.rounds {
		order := slices.Clone(targets)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, t := range order {
			s, err := f(t, o)
			if err != nil {
				missing(name, fmt.Sprintf("%s round %d: %v", t.name, r+1, err))
				return fmt.Errorf("%s on %s: %w", name, t.name, err)
			}
			got[t.name] = append(got[t.name], s)
		}
	}
	var med = map[string]sample{}
	for _, t := range targets {
		ss := got[t.name]
		med[t.name] = sample{
			rate:     median(ss, func(s sample) float64 { return s.rate }),
			other:    median(ss, func(s sample) float64 { return s.other }),
			usPerMsg: median(ss, func(s sample) float64 { return s.usPerMsg }),
			clientUs: median(ss, func(s sample) float64 { return s.clientUs }),
		}
		fmt.Fprintf(os.Stderr, "amqpbench: %s %s rounds (msgs/s):", name, t.name)
		for _, s := range ss {
			fmt.Fprintf(os.Stderr, " %.0f", s.rate)
		}
		fmt.Fprintf(os.Stderr, "; median us/msg by part:")
		for _, part := range slices.Sorted(maps.Keys(ss[0].parts)) {
			fmt.Fprintf(os.Stderr, " %s %.1f", part, median(ss, func(s sample) float64 { return s.parts[part] }))
		}
		fmt.Fprintln(os.Stderr)
		suffix := ""
		if t.name != "qmgr" {
			suffix = "." + t.name
		}
		emit(name+suffix, med[t.name].rate, "msgs/s")
		emit(name+"."+other+suffix, med[t.name].other, "msgs/s")
		emit(name+".cpu"+suffix, med[t.name].usPerMsg, "us/msg")
		emit(name+".client.cpu"+suffix, med[t.name].clientUs, "us/msg")
		if cu := med[t.name].clientUs; cu > 0 {
			emit(name+".client.bound"+suffix, clientBound(cu), "msgs/s")
		}
	}
	if r, ok := med["rabbitmq"]; ok && r.rate > 0 {
		emit(name+".ratio_vs_rabbitmq", med["qmgr"].rate/r.rate, "ratio")
		if med["qmgr"].usPerMsg > 0 {
			emit(name+".cpu.ratio_vs_rabbitmq", med["qmgr"].usPerMsg/r.usPerMsg, "ratio")
		}
		if cu := med["qmgr"].clientUs; cu > 0 {
			// The most any ratio could be here: a broker that cost nothing,
			// driven by this client on these cores.
			emit(name+".client.bound.ratio_vs_rabbitmq", clientBound(cu)/r.rate, "ratio")
		}
	}
	return nil
}

// clientBound is the rate this machine's cores could reach with the
// client alone using them (a broker that cost nothing), from the client's
// processor time per message in µs.
func clientBound(clientUs float64) float64 {
	return float64(runtime.NumCPU()) * 1e6 / clientUs
}

// median of f over ss.
func median(ss []sample, f func(sample) float64) float64 {
	v := make([]float64, len(ss))
	for i, s := range ss {
		v[i] = f(s)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}

// memoryFigures emits each target's serving process's resident set before
// and after n idle connections, and what one connection costs.
func memoryFigures(targets []*target, n int) error {
	name := fmt.Sprintf("amqp.idle%d", n)
	per := map[string]float64{}
	var failed []error
	for _, t := range targets {
		before, after, err := memory(t, n)
		if err != nil {
			missing(name+" "+t.name, err.Error())
			failed = append(failed, fmt.Errorf("%s on %s: %w", name, t.name, err))
			continue
		}
		suffix := ""
		if t.name != "qmgr" {
			suffix = "." + t.name
		}
		emit(name+".rss.before"+suffix, before.rss/1024, "MiB")
		emit(name+".rss.after"+suffix, after.rss/1024, "MiB")
		emit(name+".anon.before"+suffix, before.anon/1024, "MiB")
		emit(name+".anon.after"+suffix, after.anon/1024, "MiB")
		per[t.name] = (after.rss - before.rss) / float64(n)
		emit(name+".rss.per.conn"+suffix, per[t.name], "KiB")
	}
	if r, ok := per["rabbitmq"]; ok && r > 0 {
		if qv, ok := per["qmgr"]; ok {
			emit(name+".rss.per.conn.ratio_vs_rabbitmq", qv/r, "ratio")
		}
	}
	return errors.Join(failed...)
}

// failoverFigures emits amqp.failover.ms p50 and p99 over o.kills kills.
func failoverFigures(q *qmgrSide, o options, rabbit bool) error {
	if rabbit {
		missing("amqp.failover.ms.rabbitmq", "one RabbitMQ node: a member to fail over to would need a cluster")
	}
	if q.mode != modeListener && !o.failoverInproc {
		missing("amqp.failover.ms", "qmgr start has no --amqp-port/--amqp-generic-port (-failover-inproc kills a member with its inproc broker instead)")
		return nil
	}
	name := "amqp.failover.ms"
	if q.mode == modeInproc {
		name = "amqp.failover.inproc.ms"
	}
	var ms []float64
	for i := range o.kills {
		v, err := failoverOnce(q, o.held)
		if err != nil {
			missing(name, fmt.Sprintf("kill %d: %v", i+1, err))
			return fmt.Errorf("%s: kill %d: %w", name, i+1, err)
		}
		ms = append(ms, v)
	}
	slices.Sort(ms)
	emit(name+".p50", percentile(ms, 50), "ms")
	emit(name+".p99", percentile(ms, 99), "ms")
	return nil
}

// percentile p of sorted v (nearest rank: with fewer than 100 values, p99
// is the largest).
func percentile(v []float64, p int) float64 {
	i := (p*len(v)+99)/100 - 1
	return v[max(0, min(i, len(v)-1))]
}
