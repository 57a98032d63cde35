package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/qmgr/qmgr/cli/demo"
	"github.com/qmgr/qmgr/internal/buildinfo"
)

// A command is one qmgr command: its name, its line in the usage text,
// and what runs it. A command without a line is a worker: the binary runs
// it as its own child (a member's channel initiator, the demos'
// applications), and the user-facing help leaves it out.
type command struct {
	name string
	help string // "": a worker, hidden from the help
	run  func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands is every command, in the order of the usage text.
var commands = []command{
	{"start", "run a member (queue manager) of the group in the foreground", noStdin(cmdStart)},
	{"stop", "stop a member in order", noStdin(cmdStop)},
	{"status", "the group, its members, structures and queues (exit 1 if no member is active)", noStdin(cmdStatus)},
	{"mqsc", "run admin commands (-c 'COMMAND' or stdin) on a member", cmdMQSC},
	{"put", "put messages (stdin lines, or --count N --size B)", cmdPut},
	{"get", "get or browse messages, one body per line", cmdGet},
	{"check", "check every structure of the group (exit 1 on a broken invariant)", cmdCheck},
	{"version", "the version of qmgr, the Go version and the VCS revision it was built from", noStdin(cmdVersion)},
	{"demo", "the group at work: three members, applications, a member killed and recovered", noStdin(demo.GroupCommand)},
	{"cf-demo", "the coupling facility alone: processes, a SIGKILL mid unit of work, repair", noStdin(demo.CFCommand)},
	{"chinit", "", noStdin(cmdChinit)},
	{"amqp-listener", "", noStdin(cmdAMQPListener)},
	{demo.GroupWorkerName, "", worker(demo.GroupWorker)},
	{demo.CFWorkerName, "", worker(demo.CFWorker)},
	{demo.RequestWorkerName, "", worker(demo.RequestWorker)},
	{demo.UnitWorkerName, "", worker(demo.UnitWorker)},
}

// noStdin adapts a command that reads neither stdin nor writes to stderr
// (its errors go to stderr through exitStatus).
func noStdin(f func(args []string, stdout io.Writer) error) func([]string, io.Reader, io.Writer, io.Writer) error {
	return func(args []string, _ io.Reader, stdout, _ io.Writer) error { return f(args, stdout) }
}

func worker(f func(args []string) error) func([]string, io.Reader, io.Writer, io.Writer) error {
	return func(args []string, _ io.Reader, _, _ io.Writer) error { return f(args) }
}

func lookup(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// usage is the user-facing help: every command but the workers.
func usage() string {
	var b bytes.Buffer
	b.WriteString("usage: qmgr <command> [flags]\n\ncommands:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		if c.help != "" {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.help)
		}
	}
	tw.Flush()
	b.WriteString("\nevery group command takes --group G, --data DIR and --cf-dir DIR;\n" +
		"run \"qmgr <command> -h\" for a command's flags\n")
	return b.String()
}

// Main runs the command in args (without the program name) and returns the
// process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, os.Stdin, stdout, stderr)
}

// MainIO is Main with standard input.
func MainIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage())
		return 0
	case "--version", "-version":
		args = []string{"version"}
	}
	c, ok := lookup(args[0])
	if !ok {
		fmt.Fprintf(stderr, "qmgr: unknown command %q\n\n%s", args[0], usage())
		return 2
	}
	return exitStatus(args[0], c.run(args[1:], stdin, stdout, stderr), stderr)
}

// exitStatus reports err, a command's result, and turns it into the
// process exit status.
func exitStatus(name string, err error, stderr io.Writer) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ce checkError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "qmgr check:", err)
		return 1
	}
	var xe exitError
	if errors.As(err, &xe) {
		fmt.Fprintf(stderr, "qmgr %s: %v\n", name, xe.err)
		return xe.code
	}
	if err != nil {
		fmt.Fprintln(stderr, "qmgr:", err)
		return 1
	}
	return 0
}

// cmdVersion prints the build information (internal/buildinfo).
func cmdVersion(args []string, out io.Writer) error {
	fs := newFlags("version", out)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("version: unexpected argument %q", fs.Arg(0))
	}
	fmt.Fprint(out, buildinfo.Read().String())
	return nil
}
