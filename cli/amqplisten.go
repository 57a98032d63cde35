package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/qmgr/qmgr/amqp/listen"
	"github.com/qmgr/qmgr/amqp/qsg"
	"github.com/qmgr/qmgr/amqp/stats"
	"github.com/qmgr/qmgr/internal/childstats"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// cmdAMQPListener runs a member's AMQP listener in the foreground (the
// member starts it as its child; see qm.Config.AMQPCommand and package
// amqp/listen) until SIGTERM or SIGINT, which close its ports and every
// client connection.
func cmdAMQPListener(args []string, out io.Writer) error {
	var gf groupFlags
	var c qm.AMQPConfig
	var member string
	var jsonLog bool
	fs := newFlags("amqp-listener", out)
	gf.register(fs)
	fs.StringVar(&member, "qmgr", "", "the member (required)")
	registerAMQP(fs, &c, "")
	fs.BoolVar(&jsonLog, "json-log", false, "log JSON instead of text")
	if err := fs.Parse(args); err != nil {
		return err
	}
	g, err := gf.config()
	if err != nil {
		return err
	}
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("amqp-listener: %w", err)
	}
	if member == "" || !c.Enabled() {
		return errors.New("amqp-listener: --qmgr and a port (--port, --generic-port) are required")
	}
	log := newLogger(jsonLog).With("amqp", member)
	defer profile(log)()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b, err := qsg.New(qsg.Config{Connect: mq.ConnectOptions{Group: g.Name, QMgr: member, DataDir: g.DataDir, CFDir: g.CFDir}, Log: log})
	if err != nil {
		return fmt.Errorf("amqp-listener: %w", err)
	}
	defer b.Close()
	lc := c.Listen()
	lc.AMQP.Node, lc.AMQP.Cluster = member, g.Name
	done := writeAMQPStats(ctx, stats.Path(g.DataDir, member), b, log)
	defer done()
	return listen.Run(ctx, lc, b, log)
}

// writeAMQPStats writes the broker's figures for the member's metrics to
// path every stats.WriteInterval until ctx ends or done is called (which
// waits for the writer and removes the file).
func writeAMQPStats(ctx context.Context, path string, b *qsg.Broker, log *slog.Logger) (done func()) {
	return childstats.Keep(ctx, path, func(s childstats.Stamp) any {
		f := b.Stats()
		f.Pid, f.Written = s.Pid, s.Written
		return f
	}, func(err error) {
		log.Warn("amqp: figures for the member's metrics not written", "path", path, "err", err)
	})
}

// registerAMQP registers the flags of the AMQP listener's configuration,
// their names after prefix (start: "amqp-"; the worker: none).
func registerAMQP(fs *flag.FlagSet, c *qm.AMQPConfig, prefix string) {
	fs.IntVar(&c.Port, prefix+"port", 0, "the member's own AMQP 0-9-1 port (e.g. 5672); 0: none")
	fs.IntVar(&c.GenericPort, prefix+"generic-port", 0, "the AMQP port every member of the group shares (SO_REUSEPORT): clients of a member that dies reconnect to it; 0: none")
	fs.StringVar(&c.Bind, prefix+"bind", qm.DefaultAMQPBind, "the IP address the AMQP ports bind: loopback by default; 0.0.0.0 or :: for every interface")
	fs.StringVar(&c.TLSCertFile, prefix+"tls-cert", "", "PEM certificate (chain): the AMQP ports speak TLS only (with the key)")
	fs.StringVar(&c.TLSKeyFile, prefix+"tls-key", "", "PEM private key of the AMQP certificate")
	fs.IntVar(&c.MaxConnections, prefix+"max-connections", listen.DefaultMaxConnections, "the most AMQP client connections held at once; one over is closed at once")
	fs.DurationVar(&c.HandshakeTimeout, prefix+"handshake-timeout", 0, "how long a new AMQP connection has for its TLS and AMQP handshakes; 0: the default (10s)")
}

// amqpArgs are the worker's flags for c (registerAMQP without a prefix).
func amqpArgs(c qm.AMQPConfig) []string {
	c = c.WithDefaults()
	a := []string{"--port", strconv.Itoa(c.Port), "--generic-port", strconv.Itoa(c.GenericPort), "--bind", c.Bind,
		"--max-connections", strconv.Itoa(c.MaxConnections), "--handshake-timeout", c.HandshakeTimeout.String()}
	if c.TLSCertFile != "" || c.TLSKeyFile != "" {
		a = append(a, "--tls-cert", c.TLSCertFile, "--tls-key", c.TLSKeyFile)
	}
	return a
}
