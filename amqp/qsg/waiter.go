package qsg

import (
	"time"

	"github.com/qmgr/qmgr/mq"
)

// INTERIM until mq has an interruptible wait: the consumer's get waits a
// short while and looks at its state again.
type getWaiter struct{}

func newGetWaiter() *getWaiter { return &getWaiter{} }

func (w *getWaiter) Interrupt() {}

func (w *getWaiter) options() mq.GetOptions { return mq.GetOptions{Wait: 50 * time.Millisecond} }

func isInterrupted(err error) bool { return false }
