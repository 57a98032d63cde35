package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/httpd"
	"github.com/qmgr/qmgr/internal/sdnotify"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/qm"
)

// cmdStart runs a member in the foreground.
func cmdStart(args []string, out io.Writer) error {
	var gf groupFlags
	var c qm.Config
	var jsonLog bool
	fs := newFlags("start", out)
	gf.register(fs)
	fs.StringVar(&c.Name, "name", "", "member (queue manager) name (required)")
	fs.IntVar(&c.Port, "port", 0, "the member's own inbound port")
	fs.IntVar(&c.GenericPort, "generic-port", 0, "the port every member of the group shares")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat", 200*time.Millisecond, "heartbeat interval")
	fs.DurationVar(&c.HeartbeatTimeout, "heartbeat-timeout", 10*time.Second, "a peer silent this long while alive is hung and is killed")
	fs.DurationVar(&c.StopGrace, "stop-grace", 2*time.Second, "how long an orderly stop waits for connections")
	fs.DurationVar(&c.UOWWarnAge, "uow-warn-age", time.Minute, "log a connection's unit of work open this long (negative: never)")
	fs.DurationVar(&c.UOWMaxAge, "uow-max-age", 10*time.Minute, "back out a connection's unit of work open this long and break the connection (negative: never)")
	fs.DurationVar(&c.StructureWait, "structure-wait", 10*time.Minute, "how long a starting member waits for a structure another member is creating or recovering")
	fs.BoolVar(&jsonLog, "json-log", false, "log JSON instead of text")
	fs.StringVar(&c.LogArchiveDir, "log-archive", "", "move recovery log segments no recovery needs here instead of deleting them")
	logSegMiB := fs.Int("log-segment-size", 64, "MiB of each recovery log segment file")
	noChinit := false
	fs.BoolVar(&noChinit, "no-chinit", false, "run no channel initiator")
	spin := fs.Duration("channel-spin", channel.DefaultSpinWait, "how long a running channel's read spins on its socket before it parks (0: never)")
	procs := fs.Int("chinit-procs", 0, "threads running the channel initiator's Go code at once (GOMAXPROCS); 0: "+chinitProcsDefaultDoc)
	maxHB := fs.Duration("channel-max-hbint", channel.DefaultMaxHeartbeat, "the longest heartbeat interval a channel agrees (whole seconds)")
	grace := fs.Duration("channel-silence-grace", channel.DefaultSilenceGrace, "how long a receiver waits beyond twice the heartbeat interval before it cuts a silent partner")
	var hc httpd.Config
	fs.StringVar(&hc.Addr, "http", "", "serve /metrics, /healthz, /readyz, the JSON API and the web console on this address (e.g. 127.0.0.1:9100); default: no HTTP server")
	fs.StringVar(&hc.Token, "http-token", "", "allow the HTTP API's actions (start/stop channel) to requests with \"Authorization: Bearer TOKEN\" (at least 16 bytes; default: $"+httpTokenEnv+", else no actions)")
	var in channel.Inbound
	registerInbound(fs, &in, "channel-")
	registerAMQP(fs, &c.AMQP, "amqp-")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *procs < 0 {
		return fmt.Errorf("start: --chinit-procs %d: want 0 (the default) or more", *procs)
	}
	if err := in.Validate(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	c.LogSegmentSize = int64(*logSegMiB) << 20
	var err error
	if c.Group, err = gf.config(); err != nil {
		return err
	}
	c.Logger = newLogger(jsonLog)
	if !noChinit {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("start: the channel initiator's binary: %w", err)
		}
		c.ChinitCommand = c.Group.Args(exe, "chinit",
			"--qmgr", c.Name, "--port", strconv.Itoa(c.Port), "--generic-port", strconv.Itoa(c.GenericPort),
			"--spin", spin.String(), "--procs", strconv.Itoa(*procs), "--max-hbint", maxHB.String(), "--silence-grace", grace.String(),
			"--bind", in.Bind, "--max-inbound", strconv.Itoa(in.MaxConns), "--hello-timeout", in.HelloTimeout.String())
		if jsonLog {
			c.ChinitCommand = append(c.ChinitCommand, "--json-log")
		}
	}
	if c.AMQP.Enabled() {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("start: the AMQP listener's binary: %w", err)
		}
		c.AMQPCommand = c.Group.Args(append([]string{exe, "amqp-listener", "--qmgr", c.Name}, amqpArgs(c.AMQP)...)...)
		if jsonLog {
			c.AMQPCommand = append(c.AMQPCommand, "--json-log")
		}
	}
	// What /metrics exposes: the Go runtime's and the process's figures
	// now, the member's (package metrics) once it has started.
	hc.Registry = prometheus.NewRegistry()
	hc.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := listenHTTP(hc, c.Logger)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer srv.close()
	// Asked for before Start: the CF shows the member starting, then
	// active, before Start returns, and `qmgr stop` (or systemd) may
	// signal it from then on.
	ctx, started, stop := memberSignals(c.Logger.With("qmgr", c.Name))
	defer stop()
	m, err := qm.Start(c)
	started()
	if err != nil {
		return err
	}
	metrics.Register(hc.Registry, m)
	srv.setMember(m)
	notify(c.Logger, sdnotify.Ready+"\nSTATUS=member "+c.Name+" of group "+c.Group.Name+" active")
	go func() {
		<-ctx.Done()
		notify(c.Logger, sdnotify.Stopping+"\nSTATUS=member "+c.Name+" stopping")
	}()
	return m.Run(ctx)
}

// memberSignals handles a member's SIGINT and SIGTERM: the first ends
// ctx, so the member stops in order (once it is active, if it comes
// while it starts: Start takes no context, and may wait minutes for a
// structure). A second one while it starts ends the process at once, by
// the signal's default action, as if it had not been asked for (a peer
// recovers what it began). Call started when Start returns, stop at the
// end.
func memberSignals(log *slog.Logger) (ctx context.Context, started, stop func()) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	var starting atomic.Bool
	starting.Store(true)
	done := make(chan struct{})
	go func() {
		for n := 0; ; n++ {
			var sig os.Signal
			select {
			case sig = <-sigs:
			case <-done:
				return
			}
			switch {
			case n == 0:
				if starting.Load() {
					log.Warn("stop asked for while the member starts: it stops in order once active; signal again to end it now", "signal", sig.String())
				}
				cancel()
			case starting.Load():
				log.Warn("second signal while the member starts: it ends now, a peer recovers it", "signal", sig.String())
				signo := sig.(syscall.Signal)
				signal.Reset(sig)
				syscall.Kill(os.Getpid(), signo)
				// A signal ignored when the process started (SIGINT of a
				// job a script puts in the background) is ignored again
				// once reset: exit as a shell reports a death by it.
				time.Sleep(100 * time.Millisecond)
				os.Exit(128 + int(signo))
			}
		}
	}()
	started = func() { starting.Store(false) }
	stop = func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
	return ctx, started, stop
}

// httpTokenEnv holds the HTTP token when --http-token is not given (an
// argument is visible to every local user; the environment is not).
const httpTokenEnv = "QMGR_HTTP_TOKEN"

// memberHTTP is the member's HTTP server (package httpd), or nothing
// when --http is absent.
type memberHTTP struct{ s *httpd.Server }

// listenHTTP listens on hc's address when it has one and serves from
// then on, before the member starts: /healthz answers at once, /readyz
// and the API say the member is starting until setMember.
func listenHTTP(hc httpd.Config, log *slog.Logger) (memberHTTP, error) {
	envToken := os.Getenv(httpTokenEnv)
	os.Unsetenv(httpTokenEnv) // never handed to the member's child processes
	if !hc.Enabled() {
		return memberHTTP{}, hc.Validate() // a token without an address
	}
	if hc.Token == "" {
		hc.Token = envToken
	}
	hc.Logger = log
	s, err := httpd.Listen(hc)
	if err != nil {
		return memberHTTP{}, err
	}
	log.Info("http server listening", "addr", s.Addr().String(), "actions", hc.Token != "")
	go func() {
		if err := s.Serve(); err != nil {
			log.Error("http server", "err", err)
		}
	}()
	return memberHTTP{s}, nil
}

// setMember shows member m, now active.
func (h memberHTTP) setMember(m *qm.Member) {
	if h.s != nil {
		h.s.SetSource(httpd.MemberSource(m))
	}
}

// close stops the server, giving requests in flight a second.
func (h memberHTTP) close() {
	if h.s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	h.s.Close(ctx)
}

// notify tells systemd (Type=notify, $NOTIFY_SOCKET) the member's state:
// ready once it is active, stopping when asked to stop. A failure is
// logged: systemd then times the start out, which says more than a member
// that refuses to run.
func notify(log *slog.Logger, state string) {
	if _, err := sdnotify.Notify(state); err != nil {
		log.Warn("notify systemd", "err", err)
	}
}

// newLogger logs to standard error, as text or JSON.
func newLogger(jsonLog bool) *slog.Logger {
	if jsonLog {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}
