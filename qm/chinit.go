package qm

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
)

// The channel initiator is a child process of its member (the same binary,
// Config.ChinitCommand), supervised as a child service (child.go):
// restarted when it dies unless the member is stopping or STOP CHINIT
// stopped it. If the member dies the
// kernel kills it (parent-death signal), and its connections, labelled
// with the member, are recovered by the survivors with the member's.
//
// Its stop says what becomes of the shared channels it runs: SIGTERM
// leaves them to another member's channel initiator at once
// (SHARED(RESTART)), SIGINT leaves them stopped (SHARED(STOP)).

// WithAdmin runs f with the member's admin owner (mqsc.ChannelEnv).
func (m *Member) WithAdmin(f func(o *lockfree.Owner) error) error { return m.withOwn(f) }

// Chinit starts or stops the channel initiator (mqsc.ChannelEnv).
func (m *Member) Chinit(start bool, shared string) (string, error) {
	if !m.chinit.configured() {
		return "", errors.New("qm: this member runs no channel initiator")
	}
	if start {
		if !m.chinit.start() {
			return "", fmt.Errorf("qm: the channel initiator of %s is already running", m.cfg.Name)
		}
		return "CSQX011I: START CHINIT accepted.", nil
	}
	sig := syscall.SIGTERM
	if shared == "STOP" {
		sig = syscall.SIGINT
	}
	if !m.chinit.stop(sig, 30*time.Second) {
		return "", fmt.Errorf("qm: the channel initiator of %s is not running", m.cfg.Name)
	}
	return "CSQX021I: STOP CHINIT completed.", nil
}

// Connect is a connection through this member for the channel commands
// that work on queues (mqsc.ChannelEnv).
func (m *Member) Connect() (*mq.Conn, error) {
	g := m.g.Config()
	return mq.Connect(mq.ConnectOptions{Group: g.Name, QMgr: m.cfg.Name, DataDir: g.DataDir, CFDir: g.CFDir})
}
