package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/perf/benchgroup"
)

// Modes of the qmgr side (-qmgr-mode).
const (
	// modeInproc: the broker (qsg.New and amqp.Serve) runs in a child of
	// this program, one per member, connected through that member; the
	// members are this program re-executed as qmgr.
	modeInproc = "inproc"
	// modeListener: every member runs its own AMQP listener
	// (qmgr start --amqp-port, --amqp-generic-port).
	modeListener = "listener"
)

// listenerSupported reports whether this program's qmgr start has the
// AMQP listener flags (its -h lists them).
func listenerSupported() bool {
	exe, err := os.Executable()
	if err != nil {
		return false
	}
	out, _ := exec.Command(exe, "start", "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-amqp-port")) && bytes.Contains(out, []byte("-amqp-generic-port"))
}

// qmgrSide is a group of two members, QM1 and QM2, serving AMQP.
type qmgrSide struct {
	g    *benchgroup.Group
	mode string
	dir  string
	// profile, when set, is where the process serving QM1 writes its CPU
	// profile (inproc mode).
	profile string

	genericPort int            // listener mode: the port every member shares
	ports       map[string]int // listener mode: each member's own AMQP port
	servers     map[string]*server
}

// server is a broker process of inproc mode.
type server struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startQmgr starts the group in dir and the AMQP service of QM1 and QM2.
func startQmgr(mode, dir string, appMiB uint64, profile string) (*qmgrSide, error) {
	cfg := group.Config{Name: "ABENCH", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: appMiB << 20}
	g, err := benchgroup.New(cfg, dir)
	if err != nil {
		return nil, err
	}
	q := &qmgrSide{g: g, mode: mode, dir: dir, profile: profile, ports: map[string]int{}, servers: map[string]*server{}}
	if mode == modeInproc {
		g.StartFlags = append(g.StartFlags, "--no-chinit")
	} else if q.genericPort, err = freePort(); err != nil {
		return nil, err
	}
	for _, m := range []string{"QM1", "QM2"} {
		if err := q.start(m); err != nil {
			q.close()
			return nil, err
		}
	}
	return q, nil
}

// start starts member m and its AMQP service, and waits until it accepts.
func (q *qmgrSide) start(m string) error {
	if q.mode == modeListener {
		p, ok := q.ports[m] // a restarted member listens where it did
		if !ok {
			var err error
			if p, err = freePort(); err != nil {
				return err
			}
			q.ports[m] = p
		}
		if err := q.g.Start(m, "--amqp-port", strconv.Itoa(p), "--amqp-generic-port", strconv.Itoa(q.genericPort)); err != nil {
			return err
		}
		return waitAccepting(q.addr(m), 15*time.Second)
	}
	if err := q.g.Start(m); err != nil {
		return err
	}
	s, err := q.serve(m)
	if err != nil {
		return err
	}
	q.servers[m] = s
	return nil
}

// serve starts an inproc broker process through member m.
func (q *qmgrSide) serve(m string) (*server, error) {
	cmd := exec.Command(q.g.Exe, q.g.Args("app", "serve", m)...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if q.profile != "" && m == "QM1" {
		cmd.Env = append(os.Environ(), profileEnv+"="+q.profile)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan struct{})}
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("broker through %s did not start: %q %v", m, line, err)
	}
	s.addr = addr
	go func() { cmd.Wait(); close(s.done) }()
	return s, nil
}

// addr is the address of member m's AMQP service.
func (q *qmgrSide) addr(m string) string {
	if q.mode == modeListener {
		return fmt.Sprintf("127.0.0.1:%d", q.ports[m])
	}
	return q.servers[m].addr
}

// url is the AMQP URL of member m's service.
func (q *qmgrSide) url(m string) string { return "amqp://guest:guest@" + q.addr(m) + "/" }

// genericURL is where a client reconnects after a member died: the
// generic port (listener mode), or survivor's broker (inproc mode, which
// has no generic port).
func (q *qmgrSide) genericURL(survivor string) string {
	if q.mode == modeListener {
		return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", q.genericPort)
	}
	return q.url(survivor)
}

// servePID is the process serving member m's AMQP clients.
func (q *qmgrSide) servePID(m string) (int, error) {
	if q.mode == modeListener {
		return pidListening(q.ports[m])
	}
	return q.servers[m].cmd.Process.Pid, nil
}

// signalServer sends sig to the process serving member m's AMQP clients.
func (q *qmgrSide) signalServer(m string, sig syscall.Signal) error {
	pid, err := q.servePID(m)
	if err != nil {
		return err
	}
	return syscall.Kill(pid, sig)
}

// cpu is the processor time used so far by the members with their
// children (listeners, channel initiators), and by the inproc brokers.
func (q *qmgrSide) cpu() map[string]time.Duration {
	members := map[int]bool{}
	for _, n := range q.g.Names() {
		if m := q.g.Member(n); !m.Exited() {
			members[m.Process.Pid] = true
		}
	}
	servers := map[int]bool{}
	for _, s := range q.servers {
		servers[s.cmd.Process.Pid] = true
	}
	return map[string]time.Duration{"members": benchgroup.TreeCPU(members), "brokers": benchgroup.TreeCPU(servers)}
}

// kill SIGKILLs member m (and, in inproc mode, its broker process with
// it, as a listener dies with its member) and waits until they are gone.
func (q *qmgrSide) kill(m string) {
	s := q.servers[m]
	if s != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
	}
	q.g.Kill(m)
	if s != nil {
		<-s.done
		delete(q.servers, m)
	}
}

// close stops the brokers and the group.
func (q *qmgrSide) close() {
	for m, s := range q.servers {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.done
		}
		delete(q.servers, m)
	}
	q.g.Close()
}
