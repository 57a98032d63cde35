package lockfree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// longFutexSleeps makes every futex sleep last up to an hour for the
// test: a waiter that returns was woken, not timed out of its sleep.
func longFutexSleeps(t *testing.T) {
	old := maxFutexSleep
	maxFutexSleep = time.Hour
	t.Cleanup(func() { maxFutexSleep = old })
}

// sleepersOn counts the threads of this process asleep in a futex wait
// on word w (/proc/self/task/*/syscall: the futex system call, 202 on
// amd64 and 98 on arm64, with w as its first argument).
func sleepersOn(t *testing.T, w *uint32) int {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/syscall")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("%#x", uintptr(unsafe.Pointer(w)))
	n := 0
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended
		}
		if fs := strings.Fields(string(b)); len(fs) > 1 && (fs[0] == "202" || fs[0] == "98") && fs[1] == addr {
			n++
		}
	}
	return n
}

// waitSleepers waits until n threads sleep on w.
func waitSleepers(t *testing.T, w *uint32, n int) {
	t.Helper()
	for sleepersOn(t, w) != n {
		time.Sleep(time.Millisecond)
	}
}

// TestInterruptWaitingGet: a get waiting for ever returns ErrInterrupted
// when another goroutine interrupts it, woken (futex sleeps last an hour
// here) and alone (the other owners asleep on the queue stay asleep);
// the owner and queue work afterwards, the interrupt stays until Reset,
// and a put still wakes the waiters.
func TestInterruptWaitingGet(t *testing.T) {
	longFutexSleeps(t)
	s := newStructure(t, smallParams)
	a, b, c := register(t, s), register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	fw := s.futexWord(uint32(q))
	var in Interrupter
	got := make(chan error, 3)
	go func() {
		vs := make([]View, 4)
		_, err := a.GetViewsInto(q, GetOptions{Wait: -1, Interrupt: &in}, vs)
		got <- err
	}()
	others := make(chan string, 2)
	for _, o := range []*Owner{b, c} {
		go func() {
			var m Message
			if err := o.Get(q, GetOptions{Wait: -1}, &m); err != nil {
				others <- err.Error()
				return
			}
			others <- string(m.Body)
		}()
	}
	waitSleepers(t, fw, 3)
	in.Interrupt()
	if err := <-got; !errors.Is(err, ErrInterrupted) {
		t.Fatalf("interrupted get: %v", err)
	}
	in.mu.Lock()
	woken := in.woken
	in.mu.Unlock()
	// 1, or 0 if the interrupted get was in the futex call but not yet
	// asleep (it then saw the word bumped): never the other two.
	if woken > 1 {
		t.Fatalf("the interrupt woke %d sleepers, want only the interrupted get's", woken)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
	// Still interrupted: a get that would wait returns at once; one that
	// finds a message gets it.
	var m Message
	if err := a.Get(q, GetOptions{Wait: -1, Interrupt: &in}, &m); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("get with the interrupt standing: %v", err)
	}
	// The other two are still asleep; two puts wake them.
	waitSleepers(t, fw, 2)
	put(t, a, q, "X", 0, false)
	put(t, a, q, "Y", 0, false)
	if x, y := <-others, <-others; x+y != "XY" && x+y != "YX" {
		t.Fatalf("the other waiters got %q and %q", x, y)
	}
	put(t, a, q, "Z", 0, false)
	if err := a.Get(q, GetOptions{Wait: -1, Interrupt: &in}, &m); err != nil || string(m.Body) != "Z" {
		t.Fatalf("get of an available message while interrupted: %v %q", err, m.Body)
	}
	// Reset: it waits again, and a put wakes it.
	in.Reset()
	go func() {
		var m Message
		err := a.Get(q, GetOptions{Wait: -1, Interrupt: &in}, &m)
		if err == nil && string(m.Body) != "W" {
			err = fmt.Errorf("got %q", m.Body)
		}
		got <- err
	}()
	waitSleepers(t, fw, 1)
	put(t, b, q, "W", 0, false)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// An interrupt while the get spins, before it sleeps.
	go func() {
		var m Message
		got <- a.Get(q, GetOptions{Wait: -1, Spin: time.Hour, Interrupt: &in}, &m)
	}()
	in.Interrupt()
	if err := <-got; !errors.Is(err, ErrInterrupted) {
		t.Fatalf("spinning get: %v", err)
	}
	checkOK(t, s)
}

// TestInterruptiblePutWakes: a get waiting with an Interrupter is woken
// by a message another process puts.
func TestInterruptiblePutWakes(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	longFutexSleeps(t)
	dir := t.TempDir()
	s := newStructureIn(t, dir, smallParams)
	defer s.Close()
	a := register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	var in Interrupter
	got := make(chan error, 1)
	go func() {
		var m Message
		err := a.Get(q, GetOptions{Wait: -1, Interrupt: &in}, &m)
		if err == nil && len(m.Body) != 16 {
			err = fmt.Errorf("got %q", m.Body)
		}
		got <- err
	}()
	waitSleepers(t, s.futexWord(uint32(q)), 1)
	if err := spawn(t, dir, "producer", "LF_N=1", "LF_COMMIT=1").Run(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}
