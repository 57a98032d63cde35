package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/shm"
)

const usage = `usage: qmgr <command> [flags]

commands:
  demo    run the coupling-facility demo (processes, a SIGKILL, repair)
  check   check every structure in a CF directory (exit 1 on a problem)

run "qmgr <command> -h" for a command's flags
`

// Main runs the command in args (without the program name) and returns the
// process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "demo":
		err = cmdDemo(args[1:], stdout)
	case "demo-worker":
		err = cmdDemoWorker(args[1:])
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "qmgr: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ce checkError
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, "qmgr check:", err)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "qmgr:", err)
		return 1
	}
	return 0
}

type checkError struct{ n int }

func (e checkError) Error() string { return fmt.Sprintf("%d broken invariants", e.n) }

// CheckConfig says what to check.
type CheckConfig struct {
	Group string // group name; default QSG1
	Dir   string // CF directory; default /dev/shm/qmgr-<group>
}

// Validate applies defaults and checks the configuration.
func (c *CheckConfig) Validate() error {
	if c.Group == "" {
		c.Group = "QSG1"
	}
	if c.Dir == "" {
		c.Dir = shm.DefaultDir(c.Group)
	}
	if !shm.ValidName(c.Group) {
		return fmt.Errorf("check: invalid group name %q", c.Group)
	}
	return nil
}

func cmdCheck(args []string, out io.Writer) error {
	var c CheckConfig
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Group, "group", "QSG1", "queue-sharing group")
	fs.StringVar(&c.Dir, "cf-dir", "", "CF directory (default /dev/shm/qmgr-<group>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.Validate(); err != nil {
		return err
	}
	names, err := shm.List(c.Dir)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("check: no structures in %s", c.Dir)
	}
	problems := 0
	for _, n := range names {
		s, err := lockfree.Attach(c.Dir, n)
		if err != nil {
			fmt.Fprintf(out, "%s: cannot attach: %v\n", n, err)
			problems++
			continue
		}
		r := s.Check(lockfree.CheckOptions{})
		fmt.Fprintf(out, "%s: %v\n", n, r)
		problems += len(r.Problems)
		s.Close()
	}
	if problems > 0 {
		return checkError{problems}
	}
	return nil
}

func notifyTerm(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
