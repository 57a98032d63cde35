package groupproc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/qm"
)

// Group is a group whose members are child processes.
type Group struct {
	// Cfg is the group's configuration (validated by New); its name and
	// directories must be set.
	Cfg group.Config
	// Dir holds the members' logs.
	Dir string
	// LogPrefix starts the name of every member's log file (a group's
	// name and a dot when two groups share Dir).
	LogPrefix string
	// Command makes the process that runs qmgr with args; by default
	// this program re-executed.
	Command func(args ...string) *exec.Cmd
	// StartFlags are flags every member's start gets (before the flags
	// of Start's call).
	StartFlags []string
	// ActiveTimeout bounds how long Start waits for a member to become
	// active; default 15 s.
	ActiveTimeout time.Duration

	mu      sync.Mutex
	members map[string]*Member
}

// errDefaultGroup refuses a group without name or directories.
var errDefaultGroup = errors.New("groupproc: the group's name and directories must be set (their defaults are a real group's)")

// Member is a running (or exited) member process.
type Member struct {
	*exec.Cmd
	Name string
	done chan struct{}
	err  error // Cmd.Wait's result, once done is closed
}

// Wait waits until the member exited and returns how (any number of
// callers).
func (m *Member) Wait() error {
	<-m.done
	return m.err
}

// Exited reports whether the member exited.
func (m *Member) Exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// Kill SIGKILLs the member and waits until it is gone.
func (m *Member) Kill() {
	m.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// New is group cfg (validated) with its members' logs in dir. The
// group's name and directories must be given: their defaults are a real
// group's (QSG1 under the user's state directory and /dev/shm), which a
// harness must never join.
func New(cfg group.Config, dir string) (*Group, error) {
	if cfg.Name == "" || cfg.DataDir == "" || cfg.CFDir == "" {
		return nil, errDefaultGroup
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Group{Cfg: cfg, Dir: dir, members: map[string]*Member{}}, nil
}

// Args appends the group's flags to a.
func (g *Group) Args(a ...string) []string { return g.Cfg.Args(a...) }

// LogPath is the path of member name's log file.
func (g *Group) LogPath(name string) string {
	return filepath.Join(g.Dir, g.LogPrefix+name+".log")
}

// Log is what member name has written to its log so far.
func (g *Group) Log(name string) string {
	b, _ := os.ReadFile(g.LogPath(name))
	return string(b)
}

func (g *Group) command(args ...string) (*exec.Cmd, error) {
	if g.Command != nil {
		return g.Command(args...), nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return exec.Command(exe, args...), nil
}

// Spawn starts member name with flags extra (after StartFlags) and does
// not wait for it; prepare, when not nil, may change the command before
// it starts (extra files, environment).
func (g *Group) Spawn(name string, prepare func(*exec.Cmd), extra ...string) (*Member, error) {
	if g.Cfg.Name == "" || g.Cfg.DataDir == "" || g.Cfg.CFDir == "" {
		// Never the defaults: a harness's members must not join a real group.
		return nil, fmt.Errorf("member %s: %w", name, errDefaultGroup)
	}
	args := append(append([]string{"start", "--name", name}, g.StartFlags...), extra...)
	cmd, err := g.command(g.Args(args...)...)
	if err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(g.LogPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	if prepare != nil {
		prepare(cmd)
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL // never outlive the process that started it
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	m := &Member{Cmd: cmd, Name: name, done: make(chan struct{})}
	go func() { m.err = cmd.Wait(); close(m.done) }()
	g.mu.Lock()
	if g.members == nil {
		g.members = map[string]*Member{}
	}
	g.members[name] = m
	g.mu.Unlock()
	return m, nil
}

// Start starts member name with flags extra and waits until it is active.
func (g *Group) Start(name string, extra ...string) (*Member, error) {
	m, err := g.Spawn(name, nil, extra...)
	if err != nil {
		return nil, err
	}
	return m, g.WaitActive(name)
}

// WaitActive waits until member name's current process is active in the
// peer table, or exited, or ActiveTimeout passed.
func (g *Group) WaitActive(name string) error {
	d := g.ActiveTimeout
	if d == 0 {
		d = 15 * time.Second
	}
	return g.WaitActiveWithin(name, d)
}

// WaitActiveWithin is WaitActive with a time limit of d.
func (g *Group) WaitActiveWithin(name string, d time.Duration) error {
	m := g.Member(name)
	if m == nil {
		return fmt.Errorf("member %s was not started", name)
	}
	deadline := time.Now().Add(d)
	for {
		if g.Active(name, m.Process.Pid) {
			return nil
		}
		if m.Exited() {
			return fmt.Errorf("member %s exited before it was active (%v); see %s", name, m.err, g.LogPath(name))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("member %s did not become active within %v; see %s", name, d, g.LogPath(name))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Active reports whether member name runs as pid (any pid: 0) and is
// active.
func (g *Group) Active(name string, pid int) bool {
	gr, err := group.Open(g.Cfg, false)
	if err != nil {
		return false
	}
	defer gr.Close()
	p, found, _ := gr.FindPeer(name)
	return found && p.State == group.PeerActive && p.ProcessAlive() && (pid == 0 || p.Process.Pid == pid)
}

// Member is member name's current process (nil if never started).
func (g *Group) Member(name string) *Member {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.members[name]
}

// Names are the members started so far, sorted.
func (g *Group) Names() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var n []string
	for k := range g.members {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// Kill SIGKILLs member name and waits until it is gone.
func (g *Group) Kill(name string) {
	if m := g.Member(name); m != nil {
		m.Kill()
	}
}

// Restart kills member name and starts it again with flags extra.
func (g *Group) Restart(name string, extra ...string) (*Member, error) {
	g.Kill(name)
	return g.Start(name, extra...)
}

// MQSC runs an MQSC command through member via and returns its text.
func (g *Group) MQSC(via, cmd string) (string, error) {
	resp, err := qm.Command(g.Cfg, via, cmd)
	if err != nil {
		return "", fmt.Errorf("%s: %w", cmd, err)
	}
	if !resp.OK {
		return resp.Text, fmt.Errorf("%s: %s", cmd, resp.Error)
	}
	return resp.Text, nil
}

// KillAll SIGKILLs every member and waits until they are gone.
func (g *Group) KillAll() {
	for _, n := range g.Names() {
		g.Kill(n)
	}
}

// Stop SIGTERMs every member (an orderly stop: channel initiators finish
// their profiles) and waits until they are gone, SIGKILLing one still
// there after grace.
func (g *Group) Stop(grace time.Duration) {
	for _, n := range g.Names() {
		m := g.Member(n)
		m.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(grace, func() { m.Process.Signal(syscall.SIGKILL) })
		m.Wait()
		t.Stop()
	}
}

// DumpLogs writes every log file in Dir (the last max bytes of each)
// through logf: a failed test's or run's account of what the members did.
func (g *Group) DumpLogs(logf func(format string, args ...any), max int) {
	logs, _ := filepath.Glob(filepath.Join(g.Dir, g.LogPrefix+"*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		if len(b) > max {
			b = b[len(b)-max:]
		}
		logf("%s:\n%s", filepath.Base(l), b)
	}
}

// StopMember SIGTERMs member name (an orderly stop) and waits until it is
// gone, at most within.
func (g *Group) StopMember(name string, within time.Duration) error {
	m := g.Member(name)
	if m == nil {
		return fmt.Errorf("member %s was not started", name)
	}
	m.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
		return nil
	case <-time.After(within):
		return fmt.Errorf("member %s did not stop within %v", name, within)
	}
}
