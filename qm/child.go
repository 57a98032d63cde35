package qm

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/mqsc"
)

// A child service is a worker process of the member: the same binary run
// with a hidden command (its argv, e.g. Config.ChinitCommand or
// Config.AMQPCommand), supervised here. While it is wanted it is started,
// and restarted when it ends, with a backoff (100ms doubling to 5s, back
// to 100ms after a run of over 10s); when the member stops, or the service
// is stopped (STOP CHINIT), it is not restarted. Each child gets
// Pdeathsig=SIGKILL: if the member dies, the kernel kills it.
//
// The connections a child makes (mq.Connect with the member as QMgr) are
// registered under the member, which watches them with a pidfd like any
// application's: if only the child dies, the member recovers its
// connections (backs out their units of work) as those of a dead
// application; if the member dies too, the survivors recover them with
// the member's (they carry the member's label, group.ConnLabel).
//
// Its goroutine (supervise) runs the child and waits for it; start, stop
// and close may be called from any goroutine.
type childService struct {
	name     string   // for the log: "channel initiator", "AMQP listener"
	argv     []string // nil: the member runs no such child
	log      *slog.Logger
	stopping func() bool // the member is stopping: never restart

	mu          sync.Mutex // guards supervising, want, cmd, exited, started
	supervising bool       // run was called (close then waits for supervise)
	want        bool       // wanted (the member's start, START CHINIT) vs stopped
	cmd         *exec.Cmd  // the running process, nil when none
	exited      chan struct{}
	started     int // starts, for the log and status

	kick     chan struct{} // wakes supervise when the service becomes wanted
	quit     chan struct{} // closed by close (once): supervise returns
	quitOnce sync.Once
	done     chan struct{} // closed when supervise has returned
}

// Restart backoff of a child service.
const (
	childBackoffMin   = 100 * time.Millisecond
	childBackoffMax   = 5 * time.Second
	childStableRunFor = 10 * time.Second // a run this long resets the backoff
)

// newChildService is a child service, wanted when it has an argv; run
// starts its supervisor. Until then start only records that it is wanted.
func newChildService(name string, argv []string, log *slog.Logger, stopping func() bool) *childService {
	return &childService{name: name, argv: argv, log: log, stopping: stopping, want: len(argv) > 0,
		kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
}

// configured reports whether the member runs this child at all.
func (s *childService) configured() bool { return len(s.argv) > 0 }

// run starts the supervisor goroutine (once the member is active).
func (s *childService) run() {
	s.mu.Lock()
	s.supervising = true
	s.mu.Unlock()
	go s.supervise()
}

// start wants the child again and wakes the supervisor; false if it was
// already running.
func (s *childService) start() bool {
	s.mu.Lock()
	running := s.cmd != nil
	s.want = true
	s.mu.Unlock()
	if running {
		return false
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return true
}

// status is the child as DISPLAY QMGR shows it (mqsc.Child).
func (s *childService) status() mqsc.Child {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := mqsc.Child{Starts: s.started}
	switch {
	case len(s.argv) == 0:
		c.State = "NONE"
	case s.cmd != nil:
		c.State, c.Pid = "RUNNING", s.cmd.Process.Pid
	case s.want:
		c.State = "STARTING"
	default:
		c.State = "STOPPED"
	}
	return c
}

// supervise runs the child while it is wanted, until close.
func (s *childService) supervise() {
	defer close(s.done)
	backoff := childBackoffMin
	for {
		if s.wanted() {
			t0 := time.Now()
			err := s.runOnce()
			if s.stopping() {
				return
			}
			if s.stillWanted() {
				if time.Since(t0) > childStableRunFor {
					backoff = childBackoffMin
				}
				s.log.Warn(s.name+" ended; restarting", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-s.quit:
					return
				}
				backoff = min(2*backoff, childBackoffMax)
				continue
			}
		}
		select {
		case <-s.kick:
		case <-s.quit:
			return
		}
	}
}

// wanted: start the child now (wanted, and the member not stopping).
func (s *childService) wanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want && !s.stopping()
}

// stillWanted: the child ended but nobody stopped it.
func (s *childService) stillWanted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.want
}

// runOnce starts the child and waits for it to end.
func (s *childService) runOnce() error {
	cmd := exec.Command(s.argv[0], s.argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.name, err)
	}
	exited := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.started++
	n := s.started
	s.mu.Unlock()
	s.log.Info(s.name+" started", "pid", cmd.Process.Pid, "start", n)
	err := cmd.Wait()
	s.mu.Lock()
	s.cmd = nil
	s.mu.Unlock()
	close(exited)
	return err
}

// stop asks the child to stop with sig and waits for it (killing it after
// wait); false if none was running. It stays stopped until start.
func (s *childService) stop(sig syscall.Signal, wait time.Duration) bool {
	s.mu.Lock()
	s.want = false
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return false
	}
	// Its own child, not yet reaped (its pid cannot be reused before the
	// Wait that closes exited), and os.Process signals through the pidfd
	// it got when it started the child.
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		cmd.Process.Kill()
		<-exited
	}
	return true
}

// close stops the child (sig, wait as stop) and ends the supervisor if
// run started it; the member's orderly stop calls it after marking itself
// stopping. Calling it again does no harm.
func (s *childService) close(sig syscall.Signal, wait time.Duration) {
	s.stop(sig, wait)
	s.mu.Lock()
	supervising := s.supervising
	s.mu.Unlock()
	if !supervising {
		return
	}
	s.quitOnce.Do(func() { close(s.quit) })
	<-s.done
}
