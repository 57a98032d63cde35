package qm

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
)

// The channel initiator is a child process of its member (the same binary,
// Config.ChinitCommand), supervised here: restarted when it dies unless
// the member is stopping or STOP CHINIT stopped it. If the member dies the
// kernel kills it (parent-death signal), and its connections, labelled
// with the member, are recovered by the survivors with the member's.
//
// Its stop says what becomes of the shared channels it runs: SIGTERM
// leaves them to another member's channel initiator at once
// (SHARED(RESTART)), SIGINT leaves them stopped (SHARED(STOP)).

// chinitState is guarded by Member.chMu.
type chinitState struct {
	want    bool      // START CHINIT (and the member's start) vs STOP CHINIT
	cmd     *exec.Cmd // the running process, nil when none
	exited  chan struct{}
	started int // starts, for the log
}

// WithAdmin runs f with the member's admin owner (mqsc.ChannelEnv).
func (m *Member) WithAdmin(f func(o *lockfree.Owner) error) error { return m.withOwn(f) }

// Chinit starts or stops the channel initiator (mqsc.ChannelEnv).
func (m *Member) Chinit(start bool, shared string) (string, error) {
	if len(m.cfg.ChinitCommand) == 0 {
		return "", errors.New("qm: this member runs no channel initiator")
	}
	if start {
		m.chMu.Lock()
		running := m.ch.cmd != nil
		m.ch.want = true
		m.chMu.Unlock()
		if running {
			return "", fmt.Errorf("qm: the channel initiator of %s is already running", m.cfg.Name)
		}
		m.kickChinit()
		return "CSQX011I: START CHINIT accepted.", nil
	}
	sig := syscall.SIGTERM
	if shared == "STOP" {
		sig = syscall.SIGINT
	}
	if !m.stopChinit(sig, 30*time.Second) {
		return "", fmt.Errorf("qm: the channel initiator of %s is not running", m.cfg.Name)
	}
	return "CSQX021I: STOP CHINIT completed.", nil
}

func (m *Member) kickChinit() {
	select {
	case m.chKick <- struct{}{}:
	default:
	}
}

// superviseChinit runs the channel initiator while it is wanted, until
// the member stops.
func (m *Member) superviseChinit() {
	defer close(m.chDone)
	backoff := 100 * time.Millisecond
	for {
		m.chMu.Lock()
		want := m.ch.want && !m.stopping.Load()
		m.chMu.Unlock()
		if want {
			t0 := time.Now()
			err := m.runChinit()
			if m.stopping.Load() {
				return
			}
			m.chMu.Lock()
			still := m.ch.want
			m.chMu.Unlock()
			if still {
				if time.Since(t0) > 10*time.Second {
					backoff = 100 * time.Millisecond
				}
				m.log.Warn("channel initiator ended; restarting", "err", err, "in", backoff)
				select {
				case <-time.After(backoff):
				case <-m.chQuit:
					return
				}
				backoff = min(2*backoff, 5*time.Second)
				continue
			}
		}
		select {
		case <-m.chKick:
		case <-m.chQuit:
			return
		}
	}
}

// runChinit starts the channel initiator and waits for it to end.
func (m *Member) runChinit() error {
	argv := m.cfg.ChinitCommand
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start channel initiator: %w", err)
	}
	exited := make(chan struct{})
	m.chMu.Lock()
	m.ch.cmd, m.ch.exited = cmd, exited
	m.ch.started++
	n := m.ch.started
	m.chMu.Unlock()
	m.log.Info("channel initiator started", "pid", cmd.Process.Pid, "start", n)
	err := cmd.Wait()
	m.chMu.Lock()
	m.ch.cmd = nil
	m.chMu.Unlock()
	close(exited)
	return err
}

// stopChinit asks the channel initiator to stop with sig and waits for it
// (killing it after wait); false if none was running.
func (m *Member) stopChinit(sig syscall.Signal, wait time.Duration) bool {
	m.chMu.Lock()
	m.ch.want = false
	cmd, exited := m.ch.cmd, m.ch.exited
	m.chMu.Unlock()
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

// Connect is a connection through this member for the channel commands
// that work on queues (mqsc.ChannelEnv).
func (m *Member) Connect() (*mq.Conn, error) {
	g := m.g.Config()
	return mq.Connect(mq.ConnectOptions{Group: g.Name, QMgr: m.cfg.Name, DataDir: g.DataDir, CFDir: g.CFDir})
}
