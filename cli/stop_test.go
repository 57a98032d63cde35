package cli

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
)

// TestSlowStopIsNotRevoked: a member's orderly stop is slow (its log
// takes seconds to sync: a crash point sleeps where it closes its log and
// owners) while a peer watches and applications work through the peer.
// The peer never revokes the stopping member's owners (they are its own,
// alive, and closed by it), the member stops cleanly, every message put is
// got once, and the checker is clean.
func TestSlowStopIsNotRevoked(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	g.startAt("QM2", "qm.stop.closing:1:sleep:5s")
	g.mqsc("DEFINE QLOCAL(Q)")
	pid := g.member("QM2").Process.Pid
	var wg sync.WaitGroup
	wg.Add(1)
	var stopOut, stopErr string
	var stopCode int
	go func() {
		defer wg.Done()
		stopCode, stopOut, stopErr = g.run("", "stop", "--name", "QM2")
	}()
	// Traffic through the peer while QM2 stops slowly.
	const n = 3000
	t0 := time.Now()
	put, got := 0, 0
	for time.Since(t0) < 6*time.Second {
		if code, _, errs := g.run("", "put", "--name", "QM1", "--queue", "Q", "--count", "100"); code != 0 {
			t.Fatalf("put: %s", errs)
		}
		put += 100
		code, out, errs := g.run("", "get", "--name", "QM1", "--queue", "Q", "--count", "50")
		if code != 0 {
			t.Fatalf("get: %s", errs)
		}
		got += strings.Count(out, "\n")
		if put >= n {
			break
		}
	}
	wg.Wait()
	if stopCode != 0 {
		t.Fatalf("stop QM2: %d %s %s", stopCode, stopOut, stopErr)
	}
	g.wantStoppedInOrder("QM2")
	code, out, errs := g.run("", "get", "--name", "QM1", "--queue", "Q")
	if code != 0 {
		t.Fatalf("get: %s", errs)
	}
	got += strings.Count(out, "\n")
	if got != put {
		t.Fatalf("put %d messages, got %d", put, got)
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, "QM1.log"))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "recovered a connection") && strings.Contains(l, fmt.Sprintf("pid=%d ", pid)) {
			t.Fatalf("QM1 recovered an owner of QM2 while it stopped in order:\n%s", l)
		}
	}
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %d\n%s%s", code, out, errs)
	}
}

// TestStopRightAfterStart: `qmgr stop` finds a member as soon as the CF
// shows it active, which is before its Start has returned (a crash point
// holds it there for 2 s). The member must stop in order all the same:
// exit 0 and log its stop, not die of the SIGTERM's default action
// because it had not yet asked for the signal.
func TestStopRightAfterStart(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.startAt("QM1", "qm.start.active:1:sleep:2s") // returns once the CF shows it active
	if code, out, errs := g.run("", "stop", "--name", "QM1"); code != 0 {
		t.Fatalf("stop QM1: %d %s %s", code, out, errs)
	}
	g.wantStoppedInOrder("QM1")
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check: %d\n%s%s", code, out, errs)
	}
}

// TestStopOfAKilledMemberFails: a member asked to stop is SIGKILLed
// while it stops (a crash point holds it in its stop). qmgr stop must
// not report it stopped: the peer's recovery marks it failed, then
// recovered, and the stop fails with ErrNotStoppedInOrder.
func TestStopOfAKilledMemberFails(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	g.startAt("QM2", "qm.stop.closing:1:sleep:10s")
	type result struct {
		code      int
		out, errs string
	}
	res := make(chan result, 1)
	go func() {
		code, out, errs := g.run("", "stop", "--name", "QM2")
		res <- result{code, out, errs}
	}()
	waitLog(t, filepath.Join(g.dir, "QM2.log"), "msg=stopping")
	g.kill("QM2")
	select {
	case r := <-res:
		if r.code == 0 || !strings.Contains(r.errs, "did not stop in order") {
			t.Fatalf("stop of a member killed while it stopped: %d %q %q", r.code, r.out, r.errs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("qmgr stop did not return after its member was killed")
	}
}

// TestSecondSignalWhileStartingEndsIt: a member signalled while it
// starts (held at Start's end by a crash point) says it will stop once
// active; a second signal ends it at once: by the signal (SIGTERM), or,
// for a SIGINT the member was started ignoring (a job a script puts in
// the background), by exit status 130, as a shell reports it.
func TestSecondSignalWhileStartingEndsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, tc := range []struct {
		name    string
		sig     syscall.Signal
		ignored bool
		want    string
	}{
		{"SIGTERM", syscall.SIGTERM, false, "signal: terminated"},
		{"ignored SIGINT", syscall.SIGINT, true, "exit status 130"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGroup(t)
			os.Setenv(crashpoint.EnvVar, "qm.start.active:1:sleep:10s")
			if tc.ignored {
				signal.Ignore(tc.sig) // inherited by the member across exec
			}
			m := g.start("QM1")
			if tc.ignored {
				signal.Reset(tc.sig)
			}
			os.Unsetenv(crashpoint.EnvVar)
			log := filepath.Join(g.dir, "QM1.log")
			m.Process.Signal(tc.sig)
			waitLog(t, log, "stop asked for while the member starts")
			m.Process.Signal(tc.sig)
			err := m.Wait()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("QM1 after a second %v while it started: %v, want %s", tc.sig, err, tc.want)
			}
			waitLog(t, log, "second signal while the member starts")
		})
	}
}

// wantStoppedInOrder waits for member name's process, asked to stop, and
// fails unless it exited 0 with its stop logged and no error.
func (g *testGroup) wantStoppedInOrder(name string) {
	g.t.Helper()
	if err := g.member(name).Wait(); err != nil {
		g.t.Fatalf("%s after its stop: %v", name, err)
	}
	b, _ := os.ReadFile(filepath.Join(g.dir, name+".log"))
	if !strings.Contains(string(b), `msg=stopped`) || strings.Contains(string(b), "level=ERROR") {
		g.t.Fatalf("%s's log of its stop:\n%s", name, b)
	}
}

// waitLog waits until the file at path holds what (10 s at most).
func waitLog(t *testing.T, path, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), what) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not say %q:\n%s", path, what, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
