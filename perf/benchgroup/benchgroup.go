package benchgroup

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// RunChild runs this program as the child it was started as, and exits:
// a member (Start runs it with "start", and a member runs its channel
// initiator as "chinit": it re-executes its own binary), or, with app
// not nil, a benchmark application ("app", then app's arguments). It
// returns when the program is the benchmark itself; a benchmark's main
// calls it first, so that no child ever runs the benchmark.
func RunChild(args []string, program string, app func(args []string) error) {
	if len(args) < 2 {
		return
	}
	switch {
	case args[1] == "start" || args[1] == "chinit":
		os.Exit(cli.Main(args[1:], os.Stdout, os.Stderr))
	case args[1] == "app" && app != nil:
		if err := app(args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, program+" app:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// Group is a group whose members are child processes of this program.
type Group struct {
	Cfg     group.Config
	Dir     string // member logs
	Exe     string
	Members map[string]*exec.Cmd
}

// New is group cfg (validated) with logs in dir.
func New(cfg group.Config, dir string) (*Group, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return &Group{Cfg: cfg, Dir: dir, Exe: exe, Members: map[string]*exec.Cmd{}}, nil
}

// ParseArgs reads the group flags Args wrote (an application child of a
// benchmark).
func ParseArgs(args []string) (group.Config, error) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	var cfg group.Config
	var appMiB uint64
	fs.StringVar(&cfg.Name, "group", "", "")
	fs.StringVar(&cfg.DataDir, "data", "", "")
	fs.StringVar(&cfg.CFDir, "cf-dir", "", "")
	fs.Uint64Var(&appMiB, "app-size", 0, "")
	fs.IntVar(&cfg.AppElementSize, "app-element-size", 0, "")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	cfg.AppSize = appMiB << 20
	return cfg, nil
}

// Args appends the group's flags to a.
func (g *Group) Args(a ...string) []string {
	return append(a, "--group", g.Cfg.Name, "--data", g.Cfg.DataDir, "--cf-dir", g.Cfg.CFDir, "--app-size", strconv.FormatUint(g.Cfg.AppSize>>20, 10),
		"--app-element-size", strconv.Itoa(g.Cfg.AppElementSize))
}

// Start starts member name with extra flags and waits until it is active.
func (g *Group) Start(name string, extra ...string) error {
	args := append([]string{"start", "--name", name, "--heartbeat", "20ms"}, extra...)
	cmd := exec.Command(g.Exe, g.Args(args...)...)
	logf, err := os.OpenFile(filepath.Join(g.Dir, g.Cfg.Name+"."+name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	g.Members[name] = cmd
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if gr, err := group.Open(g.Cfg, false); err == nil {
			p, found, _ := gr.FindPeer(name)
			gr.Close()
			if found && p.State == group.PeerActive && p.ProcessAlive() {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("member %s did not start (see %s)", name, logf.Name())
}

// Kill SIGKILLs member name and reaps it.
func (g *Group) Kill(name string) {
	if c := g.Members[name]; c != nil {
		c.Process.Signal(syscall.SIGKILL)
		c.Wait()
		delete(g.Members, name)
	}
}

// Close stops every member (SIGTERM, so that their channel initiators
// finish QMGR_CPUPROFILE profiles; SIGKILL after 10 s) and removes the
// structures.
func (g *Group) Close() {
	for n, c := range g.Members {
		c.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(10*time.Second, func() { c.Process.Signal(syscall.SIGKILL) })
		c.Wait()
		t.Stop()
		delete(g.Members, n)
	}
	os.RemoveAll(g.Cfg.CFDir)
}

// MQSC runs an MQSC command through member via.
func (g *Group) MQSC(via, cmd string) error {
	resp, err := qm.Command(g.Cfg, via, cmd)
	if err != nil {
		return err
	}
	if !resp.OK {
		return fmt.Errorf("%s: %s", cmd, resp.Error)
	}
	return nil
}

// Connect connects an application through member via.
func (g *Group) Connect(via string) (*mq.Conn, error) {
	return mq.Connect(mq.ConnectOptions{Group: g.Cfg.Name, QMgr: via, DataDir: g.Cfg.DataDir, CFDir: g.Cfg.CFDir})
}

// Emit prints one figure: "name value unit".
func Emit(name string, v float64, unit string) {
	if unit == "ratio" {
		fmt.Printf("%s %.3f %s\n", name, v, unit)
	} else {
		fmt.Printf("%s %.1f %s\n", name, v, unit)
	}
}
