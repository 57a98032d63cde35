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
  start    run a member (queue manager) of the group in the foreground
  stop     stop a member in order
  status   the group, its members, structures and queues (exit 1 if no member is active)
  mqsc     run admin commands (-c 'COMMAND' or stdin) on a member
  put      put messages (stdin lines, or --count N --size B)
  get      get or browse messages, one body per line
  check    check every structure of the group (exit 1 on a broken invariant)
  demo     the group at work: three members, applications, a member killed and recovered
  cf-demo  the coupling facility alone: processes, a SIGKILL mid unit of work, repair

every group command takes --group G, --data DIR and --cf-dir DIR;
run "qmgr <command> -h" for a command's flags
`

// Main runs the command in args (without the program name) and returns the
// process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return MainIO(args, os.Stdin, stdout, stderr)
}

// MainIO is Main with standard input.
func MainIO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "start":
		err = cmdStart(args[1:], stdout)
	case "stop":
		err = cmdStop(args[1:], stdout)
	case "status":
		err = cmdStatus(args[1:], stdout)
	case "mqsc":
		err = cmdMQSC(args[1:], stdin, stdout)
	case "put":
		err = cmdPut(args[1:], stdin, stdout)
	case "get":
		err = cmdGet(args[1:], stdout)
	case "demo":
		err = cmdGroupDemo(args[1:], stdout)
	case "group-demo-worker":
		err = cmdGroupDemoWorker(args[1:])
	case "cf-demo":
		err = cmdDemo(args[1:], stdout)
	case "demo-worker":
		err = cmdDemoWorker(args[1:])
	case "check":
		err = cmdCheck(args[1:], stdout)
	case "chinit":
		err = cmdChinit(args[1:], stdout)
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
	var xe exitError
	if errors.As(err, &xe) {
		fmt.Fprintf(stderr, "qmgr %s: %v\n", args[0], xe.err)
		return xe.code
	}
	if err != nil {
		fmt.Fprintln(stderr, "qmgr:", err)
		return 1
	}
	return 0
}

type checkError struct{ n int }

func (e checkError) Error() string { return fmt.Sprintf("%d broken invariants", e.n) }

func cmdCheck(args []string, out io.Writer) error {
	var gf groupFlags
	fs := newFlags("check", out)
	gf.register(fs)
	fail := fs.Bool("fail", false, "take an application structure that fails the check out of service: the members recover it from its backup and the logs (the check is exact on a quiet structure only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := gf.config()
	if err != nil {
		return err
	}
	c := struct{ Dir string }{cfg.CFDir}
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
		if *fail && len(r.Problems) > 0 && n != shm.AdminStructure && s.Fail() {
			fmt.Fprintf(out, "%s: taken out of service; the members recover it\n", n)
		}
		s.Close()
	}
	if problems > 0 {
		return checkError{problems}
	}
	return nil
}

func notifyTerm(c chan os.Signal) { signal.Notify(c, syscall.SIGTERM, os.Interrupt) }
