package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/channel"
)

// cmdChinit runs a member's channel initiator in the foreground (the
// member starts it as its child; see qm.Config.ChinitCommand). SIGTERM
// stops it leaving its channels to the other members, SIGINT leaves them
// stopped.
func cmdChinit(args []string, out io.Writer) error {
	var gf groupFlags
	var c channel.Config
	var jsonLog bool
	fs := newFlags("chinit", out)
	gf.register(fs)
	fs.StringVar(&c.QMgr, "qmgr", "", "the member (required)")
	fs.IntVar(&c.Port, "port", 0, "the member's own inbound port")
	fs.IntVar(&c.GenericPort, "generic-port", 0, "the port every member of the group shares")
	fs.BoolVar(&jsonLog, "json-log", false, "log JSON instead of text")
	fs.DurationVar(&c.SpinWait, "spin", channel.DefaultSpinWait, "how long a running channel's read spins on its socket before it parks (0: never)")
	procs := fs.Int("procs", 0, "threads running Go code at once (GOMAXPROCS); 0: "+chinitProcsDefaultDoc)
	fs.DurationVar(&c.MaxHeartbeat, "max-hbint", channel.DefaultMaxHeartbeat, "the longest heartbeat interval a channel agrees (whole seconds)")
	fs.DurationVar(&c.SilenceGrace, "silence-grace", channel.DefaultSilenceGrace, "how long a receiver waits beyond twice the heartbeat interval before it cuts a silent partner")
	registerInbound(fs, &c.Inbound, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *procs < 0 {
		return fmt.Errorf("chinit: --procs %d: want 0 (the default) or more", *procs)
	}
	setChinitProcs(*procs)
	if c.SpinWait == 0 {
		c.SpinWait = channel.NoSpin // --spin 0 means never; 0 in channel.Config is the default
	}
	var err error
	if c.Group, err = gf.config(); err != nil {
		return err
	}
	c.Logger = newLogger(jsonLog)
	c.WriteFigures = true // for the member's metrics (package channel/chanstats)
	defer profile(c.Logger)()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var got os.Signal
	go func() { got = <-sigs; cancel() }()
	return channel.Run(ctx, c, func() channel.OnStop {
		if got == syscall.SIGINT {
			return channel.Stop
		}
		return channel.Restart
	})
}

// registerInbound registers the flags of the listeners' configuration,
// their names after prefix ("--bind" is never prefixed).
func registerInbound(fs *flag.FlagSet, in *channel.Inbound, prefix string) {
	fs.StringVar(&in.Bind, "bind", channel.DefaultBind, "the IP address the channel listeners (--port, --generic-port) bind: loopback by default; 0.0.0.0 or :: for every interface")
	fs.IntVar(&in.MaxConns, prefix+"max-inbound", channel.DefaultMaxInbound, "the most connections each channel listener holds at once; one over is closed at once and counted (DISPLAY QMGR INREFUSED)")
	fs.DurationVar(&in.HelloTimeout, prefix+"hello-timeout", channel.DefaultHelloTimeout, "how long an inbound connection has to complete its TLS handshake and HELLO; one that has not is closed and counted (DISPLAY QMGR INTIMEOUT)")
}

const chinitProcsDefaultDoc = "half the CPUs (or of the container's CPU limit), at least 1, unless GOMAXPROCS is set"

// setChinitProcs sets how many threads run the channel initiator's Go
// code. By default half of Go's own default (the CPUs, or the container's
// CPU limit): a channel initiator moving messages as
// fast as it can shares the host with its member and, on one host, with
// the other end of its channels. With every CPU its own, Go's scheduler
// wakes threads on the other CPUs to look for work each time a channel's
// goroutine blocks or wakes, and they take those CPUs from the process
// at the other end: on 2 CPUs, one thread per initiator moved 64-byte
// messages faster than two in 9 of 10 alternating pairs of runs
// (perf/chanbench; see README).
func setChinitProcs(n int) {
	if n == 0 {
		if os.Getenv("GOMAXPROCS") != "" {
			return
		}
		n = max(1, runtime.GOMAXPROCS(0)/2) // Go's default: the CPUs, or the container's CPU limit
	}
	runtime.GOMAXPROCS(n)
}

// profile writes a CPU profile of this process when QMGR_CPUPROFILE is
// "dir:seconds[:hz]" (for benchmarks: the channel initiator is a child process
// killed with its member, so the profile covers a fixed time from start,
// or until the process stops when that is sooner). It returns the stop.
func profile(log *slog.Logger) func() {
	v := os.Getenv("QMGR_CPUPROFILE")
	if v == "" {
		return func() {}
	}
	dir, secs, _ := strings.Cut(v, ":")
	secs, hz, _ := strings.Cut(secs, ":")
	n, err := strconv.Atoi(secs)
	if err != nil || n <= 0 {
		n = 10
	}
	if r, err := strconv.Atoi(hz); err == nil && r > 0 {
		runtime.SetCPUProfileRate(r) // before StartCPUProfile, which then warns that the rate is set
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("cpu-%d.prof", os.Getpid())))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Warn("QMGR_CPUPROFILE", "err", err)
		return func() {}
	}
	var once sync.Once
	stop := func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }
	time.AfterFunc(time.Duration(n)*time.Second, stop)
	return stop
}
