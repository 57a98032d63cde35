package chaos

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/group"
)

// MemberCommands and ClientCommand are the first arguments the harness
// re-executes its binary with. MemberCommands go to cli.Main: a member
// ("start"; a member runs its channel initiator as "chinit" and its AMQP
// listener as "amqp-listener", re-executing its own binary) and the qmgr commands the harness runs. ClientCommand
// and a JSON configuration go to ClientMain. A test binary's TestMain
// dispatches them (testproc.RegisterCommand).
var (
	MemberCommands = []string{"start", "chinit", "amqp-listener", "stop", "mqsc", "check", "status"}
	ClientCommand  = "chaos-client"
)

// ClientMain runs a client child: args are ClientCommand and its
// configuration; the result is its exit status.
func ClientMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "chaos-client: one argument, the configuration")
		return 2
	}
	return RunClient(args[1])
}

// qgroup is a group under test whose members are child processes.
type qgroup struct {
	label   string // "A", "B": names it in reports and events
	cfg     group.Config
	names   []string
	extra   []string // flags of every member's start
	members map[string]*proc
	structs []string // its application structures
	h       *harness
}

func (g *qgroup) args(a ...string) []string {
	return g.cfg.Args(a...)
}

// run runs a qmgr command in this process against the group.
func (g *qgroup) run(args ...string) (int, string) {
	var out bytes.Buffer
	code := cli.MainIO(g.args(args...), strings.NewReader(""), &out, &out)
	return code, out.String()
}

// mqsc runs an MQSC command through any active member.
func (g *qgroup) mqsc(cmd string) error {
	if code, out := g.run("mqsc", "-c", cmd); code != 0 {
		return fmt.Errorf("group %s: %s: exit %d: %s", g.label, cmd, code, out)
	}
	return nil
}

// active reports whether member name runs as pid and is active.
func (g *qgroup) active(name string, pid int) bool {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return false
	}
	defer gr.Close()
	p, found, _ := gr.FindPeer(name)
	return found && p.State == group.PeerActive && p.Process.Pid == pid && p.ProcessAlive()
}

// allActive reports whether every member's current process is active.
func (g *qgroup) allActive() bool {
	for _, n := range g.names {
		pid := g.members[n].currentPid()
		if pid == 0 || !g.active(n, pid) {
			return false
		}
	}
	return true
}

// inService reports whether application structure name is attached and
// in service.
func (g *qgroup) inService(name string) bool {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return false
	}
	defer gr.Close()
	s, err := gr.Structure(name, false)
	return err == nil && s.InService()
}

// depth is the depth of queue q in structure s: -1 when it cannot be
// read, or when the structure is not in service (a structure being
// recovered may not hold its messages yet).
func (g *qgroup) depth(s, q string) int64 {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return -1
	}
	defer gr.Close()
	if st, err := gr.Structure(s, false); err != nil || !st.InService() {
		return -1
	}
	d, err := gr.Depth(s, q)
	if err != nil {
		return -1
	}
	return d
}

// connsRecovered reports whether every connection registered in the
// admin structure belongs to a live process and is not being repaired:
// the units of work of dead applications are backed out.
func (g *qgroup) connsRecovered() bool {
	gr, err := group.Open(g.cfg, false)
	if err != nil {
		return false
	}
	defer gr.Close()
	for _, o := range gr.Admin().Owners() {
		if o.State != "active" || !o.Alive {
			return false
		}
	}
	return true
}

// proc is a supervised child process: a member, restarted whenever it
// exits (as systemd would), or a client slot, whose every start is a new
// incarnation with a history of its own. The nemesis holds it down to
// choose when it starts again.
type proc struct {
	h       *harness
	g       *qgroup // members: the group
	name    string  // member name, or client slot ("p1")
	member  bool
	client  *ClientConfig // clients: the template of every incarnation
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	inc     int
	exited  chan struct{} // closed when the current process was reaped
	expect  bool          // the harness killed the current process
	stopped int64         // Now() of the harness's SIGSTOP; 0 when running
	hold    chan struct{} // not nil: do not start before it is closed
	quit    bool          // stop supervising
	wake    chan struct{} // closed by stop: ends a hold
	done    chan struct{} // closed when the supervisor returned
	startAt []int64       // start times (members: for the reports)
	nextEnv []string      // added to the environment of the next start only
	procs   []string      // clients: every incarnation's name
}

func (p *proc) currentPid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil || p.exitedLocked() {
		return 0
	}
	return p.cmd.Process.Pid
}

func (p *proc) exitedLocked() bool {
	if p.exited == nil {
		return true
	}
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// label names the process in events (a member with its group's label in
// Event.Group).
func (p *proc) label() string { return p.name }

// supervise starts the process and starts it again whenever it exits,
// until quit.
func (p *proc) supervise() {
	defer close(p.done)
	backoff := 100 * time.Millisecond
	for {
		p.mu.Lock()
		hold, quit := p.hold, p.quit
		p.mu.Unlock()
		if quit {
			return
		}
		if hold != nil {
			select {
			case <-hold:
				p.release()
			case <-p.wake:
			}
			continue
		}
		started := time.Now()
		exited, err := p.start()
		if err != nil {
			p.h.events.Add(Event{Kind: ObsStartFailed, Group: p.groupLabel(), Target: p.label(), Detail: err.Error()})
			time.Sleep(200 * time.Millisecond)
			continue
		}
		<-exited
		if p.judgeExit() {
			backoff = 100 * time.Millisecond
			continue
		}
		// As a supervisor's restart delay: 100 ms, doubling while the
		// process keeps exiting within a few seconds, up to 2 s.
		if time.Since(started) > 5*time.Second {
			backoff = 100 * time.Millisecond
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (p *proc) groupLabel() string {
	if p.g != nil {
		return p.g.label
	}
	return ""
}

// start starts a new process (a new incarnation of a client).
func (p *proc) start() (chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inc++
	var args []string
	var stdout, stderr *os.File
	if p.member {
		args = p.g.args(append([]string{"start", "--name", p.name, "--heartbeat", "20ms",
			"--heartbeat-timeout", p.h.cfg.HeartbeatTimeout.String(), "--stop-grace", "300ms",
			"--log-segment-size", "4"}, p.g.extra...)...)
	} else {
		c := *p.client
		c.Proc = fmt.Sprintf("%s.%d", p.name, p.inc)
		c.History = filepath.Join(p.h.histDir, c.Proc+".jsonl")
		c.Seed = p.h.cfg.Seed ^ int64(crc32.ChecksumIEEE([]byte(c.Proc)))<<16
		b, err := json.Marshal(c)
		if err != nil {
			return nil, err
		}
		args = []string{ClientCommand, string(b)}
		p.procs = append(p.procs, c.Proc)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fmt.Fprintf(f, "==== chaos: start %d of %s at %s\n", p.inc, p.label(), p.h.events.Offset(Now()))
	stdout, stderr = f, f
	cmd := exec.Command(p.h.exe, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = append(os.Environ(), p.nextEnv...)
	p.nextEnv = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.cmd, p.expect, p.stopped = cmd, false, 0
	p.exited = make(chan struct{})
	p.startAt = append(p.startAt, Now())
	exited := p.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	return exited, nil
}

// judgeExit records an exit the harness did not cause; it reports
// whether the exit was expected.
func (p *proc) judgeExit() bool {
	p.mu.Lock()
	cmd, expect, stopped, quit := p.cmd, p.expect, p.stopped, p.quit
	p.mu.Unlock()
	st := cmd.ProcessState
	ws, _ := st.Sys().(syscall.WaitStatus)
	switch {
	case expect:
		return true
	case quit && st.Success():
		return true // a client told to stop
	case quit && ws.Signaled() && ws.Signal() == syscall.SIGTERM:
		return true // stopped before it installed its handler
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL && stopped != 0:
		// SIGSTOPped by the nemesis for longer than the heartbeat
		// timeout: a peer fenced it, as it should.
		p.h.events.Add(Event{Kind: ObsFenced, Group: p.groupLabel(), Target: p.label(),
			Detail: fmt.Sprintf("SIGKILLed by a peer after %.1fs stopped", float64(Now()-stopped)/1e9)})
		return true
	}
	kind, why := ObsMemberExit, ""
	switch {
	case !p.member:
		kind = ObsClientExit
	case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
		// Nobody here sent it: a peer that took the member for hung
		// (its heartbeat stood still), though the nemesis had not
		// stopped it.
		kind, why = ObsFencedRunning, p.g.fencedBy(p.name, st.Pid())
	}
	p.h.events.Add(Event{Kind: kind, Group: p.groupLabel(), Target: p.label(),
		Detail: fmt.Sprintf("%v (pid %d)%s; log %s: %s", st, st.Pid(), why, filepath.Base(p.logPath), crashTail(p.logPath, 24))})
	return false
}

// fencedBy is the line of a peer's log that says it killed member name
// (pid) as hung, or "".
func (g *qgroup) fencedBy(name string, pid int) string {
	want := fmt.Sprintf("peer=%s pid=%d", name, pid)
	for _, n := range g.names {
		b, err := os.ReadFile(g.members[n].logPath)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "peer hung") && strings.Contains(line, want) {
				return "; " + n + " logged: " + line
			}
		}
	}
	return ""
}

// crashTail is, when the file holds a Go panic or fatal error, its first
// line and the n lines after it (the panicking goroutine's frames, where
// the cause is), otherwise the file's last n lines; joined with " | ".
func crashTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "panic: ") || strings.HasPrefix(lines[i], "fatal error: ") {
			return strings.Join(lines[i:min(len(lines), i+1+n)], " | ")
		}
	}
	return tail(path, n)
}

// tail is the last n lines of a file, joined with " | ".
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 64<<10 {
		b = b[len(b)-64<<10:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// signal sends sig to the current process; false when there is none.
// SIGKILL marks the exit as the harness's, SIGSTOP and SIGCONT track the
// stop.
func (p *proc) signal(sig syscall.Signal) (pid int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.exitedLocked() {
		return 0, false
	}
	switch sig {
	case syscall.SIGKILL:
		p.expect = true
	case syscall.SIGSTOP:
		if p.stopped != 0 {
			return 0, false // already stopped
		}
		p.stopped = Now()
	case syscall.SIGCONT:
		p.stopped = 0
	}
	pid = p.cmd.Process.Pid
	return pid, p.cmd.Process.Signal(sig) == nil
}

// setNextEnv adds env to the environment of the next start only.
func (p *proc) setNextEnv(env ...string) {
	p.mu.Lock()
	p.nextEnv = append(p.nextEnv, env...)
	p.mu.Unlock()
}

// holdDown makes the supervisor wait for release before the next start
// and SIGKILLs the current process, waiting until it is reaped.
func (p *proc) holdDown(release chan struct{}) {
	p.mu.Lock()
	p.hold = release
	exited := p.exited
	p.mu.Unlock()
	p.signal(syscall.SIGKILL)
	if exited != nil {
		<-exited
	}
}

// release forgets the hold (the supervisor calls it once the channel
// given to holdDown is closed: the caller starts several at once).
func (p *proc) release() {
	p.mu.Lock()
	p.hold = nil
	p.mu.Unlock()
}

// stop ends supervision: SIGTERM (a client stops between operations, a
// member in order), SIGKILL after grace; it waits for the supervisor.
func (p *proc) stop(grace time.Duration) error {
	p.mu.Lock()
	if !p.quit {
		p.quit = true
		close(p.wake)
	}
	p.mu.Unlock()
	p.signal(syscall.SIGCONT)
	pid, running := p.signal(syscall.SIGTERM)
	var err error
	if running {
		select {
		case <-p.done:
		case <-time.After(grace):
			p.signal(syscall.SIGQUIT) // a goroutine dump in its log
			time.Sleep(500 * time.Millisecond)
			p.signal(syscall.SIGKILL)
			err = fmt.Errorf("%s (pid %d) did not stop within %v (goroutines in %s)", p.label(), pid, grace, filepath.Base(p.logPath))
		}
	}
	<-p.done
	return err
}

// children are the pids of process pid's children (a member's channel
// initiator).
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(w); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// pollEvery is how often the harness looks at the groups: attaching a
// structure prefaults its pages, which costs milliseconds of CPU.
const pollEvery = 200 * time.Millisecond

// waitUntil polls cond every pollEvery until it holds or limit passes.
func waitUntil(limit time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
	return true
}

var errStopped = errors.New("chaos: stopped")
