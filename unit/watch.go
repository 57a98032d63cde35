package unit

import (
	"sync"
	"sync/atomic"
	"time"
)

// roleWatch ends a replica's waits as soon as its unit's role record
// changes: a secondary browsing the log at its end when the primary dies
// is promoted by a compare-and-swap in another process (the dead
// replica's member), and without the watch it would act on it only when
// its browse's Poll ran out (the most of a failover on an idle log). The
// waits it ends are those with replica.wake: the secondary's browse of
// the log and the primary's wait for input; each loop resets wake before
// it reads the role record, so a change is seen by that read or ends the
// next wait at once (mq.Interrupter is sticky until Reset).
type roleWatch struct {
	done atomic.Bool // set by stop, read by the watching goroutine
	wg   sync.WaitGroup
}

// watchTimeout bounds one WaitStatus of the watch: a wake lost to a
// publisher killed between its CAS and its futex wake is seen then.
const watchTimeout = time.Second

// watchRole starts the watch of r's role record (after open).
func (r *replica) watchRole() *roleWatch {
	w := &roleWatch{}
	slot := r.svc.StatusBase
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		v, err := r.s.ReadStatus(slot, make([]byte, r.s.StatusSize()))
		for err == nil && !w.done.Load() {
			var nv uint64
			nv, err = r.s.WaitStatus(slot, v, watchTimeout, &w.done)
			if err == nil && nv != v {
				v = nv
				r.wake.Interrupt()
			}
		}
		if err != nil && !w.done.Load() {
			// The structure failed or faulted: the replica's own next
			// operation meets the same error and fails stop. Until then,
			// waits end at once rather than miss a promotion.
			r.wake.Interrupt()
		}
	}()
	return w
}

// stop ends the watch and waits for its goroutine.
func (w *roleWatch) stop(r *replica) {
	w.done.Store(true)
	r.s.WakeStatus(r.svc.StatusBase)
	w.wg.Wait()
}

// rearm resets wake before the role record is read; a replica being
// stopped (ctx ended: stop is interrupted first) keeps it interrupted.
func (r *replica) rearm() {
	r.wake.Reset()
	if r.stop.Interrupted() {
		r.wake.Interrupt()
	}
}
