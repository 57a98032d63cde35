package lockfree

import (
	"errors"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/testproc"
)

func init() {
	testproc.Register("statuswaiter", func([]string) int { return statusChild("wait") })
	testproc.Register("statuscaser", func([]string) int { return statusChild("cas") })
}

// statusChild: "wait" waits on status slot 0 without limit from the
// version in LF_SEEN; "cas" bumps slot 0's first byte by compare-and-swap
// once (a crash point may kill it inside).
func statusChild(what string) int {
	s, err := Attach(os.Getenv("LF_DIR"), "APPL1")
	if err != nil {
		return 3
	}
	defer s.Close()
	switch what {
	case "wait":
		seen, _ := strconv.ParseUint(os.Getenv("LF_SEEN"), 10, 64)
		if _, err := s.WaitStatus(0, seen, -1, nil); err != nil {
			return 3
		}
	case "cas":
		o, err := s.Register()
		if err != nil {
			return 3
		}
		if err := o.UpdateStatus(0, func(cur []byte) []byte { cur[0]++; return cur }); err != nil {
			return 3
		}
	}
	return 0
}

func bumpStatus(t *testing.T, o *Owner, i int) {
	t.Helper()
	if err := o.UpdateStatus(i, func(cur []byte) []byte { cur[0]++; return cur }); err != nil {
		t.Fatal(err)
	}
}

// TestWaitStatus: a waiter is woken by a CAS on its slot (not by a timed
// look: maxFutexSleep is made long), not by a CAS on another slot; a
// wait times out with the version it was given; a stop flag and
// WakeStatus end a wait at once; nobody left marked as sleeping.
func TestWaitStatus(t *testing.T) {
	old := maxFutexSleep
	maxFutexSleep = time.Hour
	defer func() { maxFutexSleep = old }()
	s := newStructure(t, Params{Owners: 8, Queues: 2, Entries: 64, Elements: 64, StatusSlots: 512})
	if s.StatusSlots() != 512 {
		t.Fatalf("%d slots", s.StatusSlots())
	}
	o := register(t, s)
	buf := make([]byte, s.StatusSize())
	v0, err := s.ReadStatus(511, buf)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.WaitStatus(511, v0, 0, nil); err != nil || v != v0 {
		t.Fatalf("no wait: %d %v", v, err)
	}
	t0 := time.Now()
	if v, err := s.WaitStatus(511, v0, 30*time.Millisecond, nil); err != nil || v != v0 || time.Since(t0) < 30*time.Millisecond {
		t.Fatalf("timeout: %d %v after %v", v, err, time.Since(t0))
	}
	done := make(chan uint64, 1)
	go func() {
		v, err := s.WaitStatus(511, v0, 20*time.Second, nil)
		if err != nil {
			t.Error(err)
		}
		done <- v
	}()
	time.Sleep(50 * time.Millisecond)
	bumpStatus(t, o, 510) // another slot: no wake
	select {
	case v := <-done:
		t.Fatalf("woken by another slot's CAS: %d", v)
	case <-time.After(100 * time.Millisecond):
	}
	t0 = time.Now()
	bumpStatus(t, o, 511)
	select {
	case v := <-done:
		if v != v0+1 {
			t.Fatalf("woke with version %d, want %d", v, v0+1)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Fatalf("woken after %v", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the CAS did not wake the waiter")
	}
	if atomic.LoadUint32(s.mem.U32(s.statusOff(511)+stSleep)) != 0 {
		t.Fatal("sleep mark left after the wake (a woken waiter that finds the change must not mark again)")
	}
	// Stop: set the flag, wake the slot.
	var stop atomic.Bool
	errc := make(chan error, 1)
	go func() {
		_, err := s.WaitStatus(511, v0+1, -1, &stop)
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	stop.Store(true)
	if err := s.WakeStatus(511); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("stopped wait: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WakeStatus did not end the stopped wait")
	}
	if _, err := s.WaitStatus(512, 0, 0, nil); !errors.Is(err, ErrStatusRange) {
		t.Fatalf("slot 512: %v", err)
	}
}

// TestWaitStatusCrash: a waiter SIGKILLed in its sleep leaves nothing a
// publisher waits for (its mark costs one spare wake); a CAS-er killed
// after its publish and before its wake (lockfree.status.published)
// delays a waiter at most the futex sleep bound; a CAS-er killed holding
// the reservation (lockfree.status.reserved) is cleared by the next
// writer, whose publish wakes the waiter. The checker is clean after
// each.
func TestWaitStatusCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	s := newStructureIn(t, dir, Params{Owners: 16, Queues: 2, Entries: 64, Elements: 64, StatusSlots: 512})
	o := register(t, s)
	buf := make([]byte, s.StatusSize())
	version := func() uint64 {
		v, err := s.ReadStatus(0, buf)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	clean := func(what string) {
		t.Helper()
		if _, err := s.RepairDead(); err != nil {
			t.Fatalf("%s: repair: %v", what, err)
		}
		if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() {
			t.Fatalf("%s: %v", what, r)
		}
	}

	// A waiter killed while it sleeps.
	w := spawn(t, dir, "statuswaiter", "LF_SEEN="+strconv.FormatUint(version(), 10))
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	sleep := s.mem.U32(s.statusOff(0) + stSleep)
	for t0 := time.Now(); atomic.LoadUint32(sleep) == 0; time.Sleep(time.Millisecond) {
		if time.Since(t0) > 10*time.Second {
			t.Fatal("the waiter never slept")
		}
	}
	time.Sleep(20 * time.Millisecond)
	if err := w.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := w.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("waiter: %v", err)
	}
	t0 := time.Now()
	bumpStatus(t, o, 0)
	if d := time.Since(t0); d > time.Second || atomic.LoadUint32(sleep) != 0 {
		t.Fatalf("CAS after a dead waiter: %v, mark %d", d, atomic.LoadUint32(sleep))
	}
	clean("waiter killed")

	for _, cp := range []string{"lockfree.status.published", "lockfree.status.reserved"} {
		v0 := version()
		done := make(chan uint64, 1)
		go func() {
			v, err := s.WaitStatus(0, v0, 20*time.Second, nil)
			if err != nil {
				t.Error(err)
			}
			done <- v
		}()
		for t0 := time.Now(); atomic.LoadUint32(sleep) == 0; time.Sleep(time.Millisecond) {
			if time.Since(t0) > 10*time.Second {
				t.Fatal("the waiter never slept")
			}
		}
		c := spawn(t, dir, "statuscaser", crashpoint.EnvVar+"="+cp+":1")
		if err := c.Run(); !killedBySIGKILL(err) {
			t.Fatalf("%s: the CAS-er was not killed: %v", cp, err)
		}
		t0 := time.Now()
		if cp == "lockfree.status.reserved" {
			// Nothing published: the waiter sleeps on until a live writer
			// clears the dead reservation and publishes.
			select {
			case v := <-done:
				t.Fatalf("%s: woken with %d before any publish", cp, v)
			case <-time.After(100 * time.Millisecond):
			}
			bumpStatus(t, o, 0)
		}
		select {
		case v := <-done:
			if v != v0+1 {
				t.Fatalf("%s: version %d, want %d", cp, v, v0+1)
			}
			if d := time.Since(t0); d > 2*time.Second {
				t.Fatalf("%s: the waiter returned after %v", cp, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the waiter was never woken", cp)
		}
		clean(cp)
	}
}
