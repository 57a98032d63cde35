package lockfree

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestBrowseWaitWakesEveryBrowser: three browsers wait on one queue (a
// recovery unit's secondaries on its log); a put, and the commit of a put
// under syncpoint, must wake all three, not one: each browser is to see
// every message. maxFutexSleep is made long so that only a wake ends a
// sleep (before the fix, the two browsers not woken slept out their wait).
func TestBrowseWaitWakesEveryBrowser(t *testing.T) {
	s := newStructure(t, Params{Owners: 8, Queues: 4, Entries: 256, Elements: 256, ElementSize: 64})
	w := register(t, s)
	q := mustQueue(t, w, "LOG", QueueAttrs{})
	var rds []*Owner
	var curs []*BrowseCursor
	for range 3 {
		o := register(t, s)
		rds, curs = append(rds, o), append(curs, o.NewBrowseCursor(q))
	}
	old := maxFutexSleep
	maxFutexSleep = time.Hour
	defer func() { maxFutexSleep = old }()
	for _, syncpoint := range []bool{false, true} {
		body := fmt.Sprintf("syncpoint=%v", syncpoint)
		var wg sync.WaitGroup
		errs := make([]error, len(rds))
		for i := range rds {
			wg.Go(func() {
				var m Message
				t0 := time.Now()
				err := rds[i].BrowseNextWith(curs[i], GetOptions{}, BrowseOptions{Wait: 10 * time.Second, StopAtUncommitted: true}, &m)
				switch d := time.Since(t0); {
				case err != nil:
					errs[i] = err
				case string(m.Body) != body || d > 2*time.Second:
					errs[i] = fmt.Errorf("browser %d: %q after %v", i, m.Body, d)
				}
			})
		}
		for s.Waiters(q) < len(rds) {
			time.Sleep(time.Millisecond)
		}
		put(t, w, q, body, 5, syncpoint)
		if syncpoint {
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("%s: %v", body, err)
			}
		}
	}
}
