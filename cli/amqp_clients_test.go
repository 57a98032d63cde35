package cli

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testtool"
)

// The AMQP clients other than amqp091-go that the README names, as
// .ci/run installs them (and the command that does it).
const (
	pikaInstall    = "apt-get install python3-pika"
	amqplibInstall = "npm install amqplib@2.3.1, with its node_modules on NODE_PATH"
)

// TestAMQPOtherClients: Python's pika and Node's amqplib, unmodified
// RabbitMQ clients in other languages, drive a member's AMQP port through
// scripts (testdata/amqpclients) that exit non-zero when anything differs
// from what RabbitMQ does: every header field type each writes, every
// property, mandatory returns, nack and redelivery, consume order,
// prefetch, transactions, confirms, a 404, an 8 MiB message and
// dead-lettering with x-death. A message qmgr put puts comes out of pika,
// and what each publishes comes out of qmgr get with its properties.
func TestAMQPOtherClients(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	clients := []struct {
		name, tool, install string
		out, lang, correl   string // the queue it publishes to for qmgr get, and what it puts in the message
		probe               func() error
		cmd                 func(port int) *exec.Cmd
	}{
		{"pika", "python3 with pika", pikaInstall, "interop.out.py", "python", "py-1",
			func() error { return exec.Command(python3(), "-c", "import pika").Run() },
			func(port int) *exec.Cmd {
				return exec.Command(python3(), filepath.Join("testdata", "amqpclients", "pika_interop.py"), strconv.Itoa(port))
			}},
		{"amqplib", "node with amqplib", amqplibInstall, "interop.out.js", "node", "js-1",
			func() error { return exec.Command("node", "-e", "require('amqplib')").Run() },
			func(port int) *exec.Cmd {
				return exec.Command("node", filepath.Join("testdata", "amqpclients", "amqplib_interop.js"), strconv.Itoa(port))
			}},
	}
	var usable []int
	for i, c := range clients {
		if err := c.probe(); err == nil {
			usable = append(usable, i)
		}
	}
	if len(usable) == 0 { // nothing to run: skip (or fail, in CI) before starting a group
		for _, c := range clients {
			testtool.Need(t, c.tool, c.install, c.probe)
		}
	}
	g, port, _, _ := amqpGroup(t)
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			testtool.Need(t, c.tool, c.install, c.probe)
			if c.name == "pika" {
				if code, out, errs := g.run("", "mqsc", "-c", "DEFINE QLOCAL('interop.in')"); code != 0 {
					t.Fatalf("DEFINE QLOCAL: exit %d %s %s", code, out, errs)
				}
				if code, _, errs := g.run("from-qmgr", "put", "--queue", "interop.in"); code != 0 {
					t.Fatalf("qmgr put: exit %d: %s", code, errs)
				}
			}
			runClientScript(t, c.cmd(port))
			code, out, errs := g.run("", "get", "--queue", c.out, "--props")
			if code != 0 {
				t.Fatalf("qmgr get %s: exit %d: %s", c.out, code, errs)
			}
			for _, want := range []string{`"CorrelationID":"` + c.correl + `"`, `"lang":"` + c.lang + `"`, `"DeliveryMode":2`, `"ContentType":"text/plain"`, "\nfrom-" + c.name + "\n"} {
				if !strings.Contains(out, want) {
					t.Fatalf("qmgr get --props of what %s published lacks %s:\n%s", c.name, want, out)
				}
			}
		})
	}
}

// python3 is the interpreter to run pika with: Debian's, where apt puts
// python3-pika, when there is one (a PATH may put another first).
func python3() string {
	if _, err := exec.LookPath("/usr/bin/python3"); err == nil {
		return "/usr/bin/python3"
	}
	return "python3"
}

// runClientScript runs a client's script, bounded in time, and fails the
// test unless it ends well, printing OK.
func runClientScript(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	out, err := c.CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatalf("%s did not end within 2 minutes:\n%s", cmd, out)
	}
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), "OK") {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}
