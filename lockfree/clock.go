package lockfree

import (
	"sync"
	"sync/atomic"
	"time"
)

// A coarse wall clock for put times and expiry checks: reading time.Now on
// every put costs more than the rest of a small put's bookkeeping. A ticker
// goroutine refreshes it every 10 ms (MQ's put time has 10 ms resolution;
// an expiry is seen at most 10 ms late) and stops after a second in which
// nobody read it. It ticked every millisecond before: each tick wakes a
// thread, and in a busy channel initiator those wakeups were most of the
// process's context switches (3,000 a second, perf sched_switch).
var (
	coarseClock atomic.Int64 // Unix ns, 0 while the ticker is stopped
	coarseUsed  atomic.Bool
	coarseMu    sync.Mutex
)

const coarseTick = 10 * time.Millisecond

func coarseNow() int64 {
	if t := coarseClock.Load(); t != 0 {
		if !coarseUsed.Load() {
			coarseUsed.Store(true)
		}
		return t
	}
	return startCoarseClock()
}

func startCoarseClock() int64 {
	coarseMu.Lock()
	defer coarseMu.Unlock()
	if t := coarseClock.Load(); t != 0 {
		return t
	}
	now := time.Now().UnixNano()
	coarseClock.Store(now)
	coarseUsed.Store(true)
	go func() {
		tk := time.NewTicker(coarseTick)
		defer tk.Stop()
		idle := 0
		for range tk.C {
			if coarseUsed.Swap(false) {
				idle = 0
			} else if idle++; idle > int(time.Second/coarseTick) {
				coarseMu.Lock()
				coarseClock.Store(0)
				coarseMu.Unlock()
				return
			}
			coarseClock.Store(time.Now().UnixNano())
		}
	}()
	return now
}
