package procid

import (
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
)

func TestWatcherSeesDeathAtOnce(t *testing.T) {
	w, err := NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := testproc.Exec(t, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := Of(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Watch("child", id); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.Wait(20 * time.Millisecond); len(got) != 0 {
		t.Fatalf("reported a live process: %v", got)
	}
	t0 := time.Now()
	cmd.Process.Kill()
	got, err := w.Wait(5 * time.Second)
	el := time.Since(t0)
	if err != nil || len(got) != 1 || got[0] != "child" {
		t.Fatalf("%v %v", got, err)
	}
	t.Logf("death noticed after %v", el)
	cmd.Wait()
	if w.Watching("child") {
		t.Fatal("still watching a reported process")
	}
}

func TestWatcherReusedPid(t *testing.T) {
	w, _ := NewWatcher()
	defer w.Close()
	self := Self()
	// Our pid with another start time is some other process: dead to us.
	if err := w.Watch("old", ID{Pid: self.Pid, Start: self.Start + 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.Watch("gone", ID{Pid: 1 << 30, Start: 1}); err != nil {
		t.Fatal(err)
	}
	got, _ := w.Wait(time.Second)
	if len(got) != 2 {
		t.Fatalf("%v", got)
	}
}

func TestWatchWakesWait(t *testing.T) {
	w, _ := NewWatcher()
	defer w.Close()
	done := make(chan time.Duration)
	go func() {
		t0 := time.Now()
		w.Wait(10 * time.Second)
		done <- time.Since(t0)
	}()
	time.Sleep(20 * time.Millisecond)
	w.Watch("x", Self())
	if el := <-done; el > 2*time.Second {
		t.Fatalf("a new watch did not wake the waiter (%v)", el)
	}
}
