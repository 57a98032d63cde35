package benchgroup

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
	"github.com/qmgr/qmgr/mq"
)

// RunChild runs this program as the child it was started as, and exits:
// a member (Start runs it with "start", and a member runs its channel
// initiator as "chinit" and its AMQP listener as "amqp-listener": it
// re-executes its own binary), or, with app
// not nil, a benchmark application ("app", then app's arguments). It
// returns when the program is the benchmark itself; a benchmark's main
// calls it first, so that no child ever runs the benchmark.
func RunChild(args []string, program string, app func(args []string) error) {
	if len(args) < 2 {
		return
	}
	switch {
	case args[1] == "start" || args[1] == "chinit" || args[1] == "amqp-listener":
		os.Exit(cli.Main(args[1:], os.Stdout, os.Stderr))
	case args[1] == "app" && app != nil:
		if err := app(args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, program+" app:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// Group is a group whose members are child processes of this program
// (the group harness, groupproc, with the benchmarks' settings: 20 ms
// heartbeats, each member's log in Dir named <group>.<member>.log).
type Group struct {
	*groupproc.Group
	Exe string // this program, for the benchmark's application children
}

// New is group cfg (validated) with logs in dir.
func New(cfg group.Config, dir string) (*Group, error) {
	g, err := groupproc.New(cfg, dir)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	g.LogPrefix = g.Cfg.Name + "."
	g.StartFlags = []string{"--heartbeat", "20ms"}
	return &Group{Group: g, Exe: exe}, nil
}

// ParseArgs reads the group flags Args wrote (an application child of a
// benchmark).
func ParseArgs(args []string) (group.Config, error) {
	fs := flag.NewFlagSet("app", flag.ContinueOnError)
	var cfg group.Config
	cfg.RegisterFlags(fs)
	err := fs.Parse(args)
	return cfg, err
}

// Start starts member name with extra flags and waits until it is active.
func (g *Group) Start(name string, extra ...string) error {
	_, err := g.Group.Start(name, extra...)
	return err
}

// Close stops every member (SIGTERM, so that their channel initiators
// finish QMGR_CPUPROFILE profiles; SIGKILL after 10 s) and removes the
// structures.
func (g *Group) Close() {
	g.Stop(10 * time.Second)
	os.RemoveAll(g.Cfg.CFDir)
}

// MQSC runs an MQSC command through member via.
func (g *Group) MQSC(via, cmd string) error {
	_, err := g.Group.MQSC(via, cmd)
	return err
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
