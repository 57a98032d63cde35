package qm

import (
	"errors"
	"io"
	"log/slog"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestChildService: a child service starts its child, restarts it when
// it is killed, leaves it stopped after stop until start, and close
// stops it and ends the supervisor; one without a command is NONE and
// closes at once.
func TestChildService(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	var stopping atomic.Bool
	s := newChildService("test child", []string{sleep, "600"}, slog.New(slog.NewTextHandler(io.Discard, nil)), stopping.Load)
	if st := s.status(); st.State != "STARTING" || st.Pid != 0 {
		t.Fatalf("wanted, before run: %+v", st)
	}
	s.run()
	defer func() {
		stopping.Store(true)
		s.close(syscall.SIGKILL, 10*time.Second)
	}()
	running := func(not int) int {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			if st := s.status(); st.State == "RUNNING" && st.Pid != not {
				return st.Pid
			}
			if time.Now().After(deadline) {
				t.Fatalf("child not running (other than pid %d) within 20s: %+v", not, s.status())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	p1 := running(0)
	if err := syscall.Kill(p1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p2 := running(p1)
	if st := s.status(); st.Starts != 2 {
		t.Fatalf("after one kill: %+v, want 2 starts", st)
	}
	if s.start() {
		t.Fatal("start of a running child said it started it")
	}

	if !s.stop(syscall.SIGTERM, 10*time.Second) {
		t.Fatal("stop of a running child said none ran")
	}
	if st := s.status(); st.State != "STOPPED" || st.Pid != 0 {
		t.Fatalf("after stop: %+v", st)
	}
	if err := syscall.Kill(p2, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the stopped child %d: kill 0 says %v, want it gone (reaped)", p2, err)
	}
	if s.stop(syscall.SIGTERM, time.Second) {
		t.Fatal("stop of a stopped child said one ran")
	}
	if !s.start() {
		t.Fatal("start of a stopped child refused")
	}
	p3 := running(p2)
	if st := s.status(); st.Starts != 3 {
		t.Fatalf("after stop and start: %+v, want 3 starts (no restart after stop)", st)
	}

	stopping.Store(true)
	done := make(chan struct{})
	go func() { s.close(syscall.SIGTERM, 10*time.Second); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("close did not return")
	}
	if err := syscall.Kill(p3, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the child %d after close: kill 0 says %v, want it gone", p3, err)
	}
	select {
	case <-s.done:
	default:
		t.Fatal("the supervisor still runs after close")
	}

	none := newChildService("nothing", nil, slog.New(slog.NewTextHandler(io.Discard, nil)), stopping.Load)
	if st := none.status(); st.State != "NONE" || none.configured() {
		t.Fatalf("a service without a command: %+v", st)
	}
	none.close(syscall.SIGTERM, time.Second) // never run: returns at once
}
