package lockfree

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
)

// TestViewRequeue: a view got without syncpoint and requeued is back at
// its place (got before what was put after it) with its backout count
// raised by one; a syncpoint view is refused and stays in its unit of
// work; a view ends once.
func TestViewRequeue(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	for _, body := range []string{"M", "N", "O"} {
		put(t, a, q, body, 0, false)
	}
	vm, err := b.GetView(q, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vn, err := b.GetView(q, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vn.Requeue(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Requeue(); err != nil {
		t.Fatal(err)
	}
	if err := vm.Requeue(); !errors.Is(err, ErrViewReleased) {
		t.Fatalf("second requeue: %v", err)
	}
	checkOK(t, s)
	var m Message
	for i, want := range []string{"M", "N", "O"} {
		v, err := b.GetView(q, GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, count := string(v.Body[0]), v.Msg.BackoutCount; got != want || count != uint32(min(1, 2-i)) {
			t.Fatalf("get %d: %q with backout count %d, want %q with %d", i, got, count, want, min(1, 2-i))
		}
		if err := v.Requeue(); err != nil { // once more: counts go on rising
			t.Fatal(err)
		}
		if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != want || m.BackoutCount != uint32(min(1, 2-i))+1 {
			t.Fatalf("after a second requeue: %q %d %v", m.Body, m.BackoutCount, err)
		}
	}
	// Under syncpoint: refused, and the unit of work still holds it.
	put(t, a, q, "S", 0, false)
	v, err := b.GetView(q, GetOptions{Syncpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Requeue(); !errors.Is(err, ErrViewInUOW) {
		t.Fatalf("requeue of a syncpoint view: %v", err)
	}
	expectEmpty(t, a, q)
	if err := b.Backout(); err != nil {
		t.Fatal(err)
	}
	if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "S" || m.BackoutCount != 1 {
		t.Fatalf("after backout: %q %d %v", m.Body, m.BackoutCount, err)
	}
	checkOK(t, s)
}

// TestRequeueWakesWaiter: a getter waiting on an empty queue gets a
// requeued message.
func TestRequeueWakesWaiter(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "M", 0, false)
	v, err := b.GetView(q, GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		var m Message
		err := a.Get(q, GetOptions{Wait: -1}, &m)
		if err == nil && (string(m.Body) != "M" || m.BackoutCount != 1) {
			err = fmt.Errorf("got %q with backout count %d", m.Body, m.BackoutCount)
		}
		got <- err
	}()
	for s.Waiters(q) == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := v.Requeue(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// requeuerChild holds the first message of queue Q and gives it back:
// LF_MODE=requeue as a view got outside syncpoint (View.Requeue),
// backout as a get under syncpoint backed out, close as a view the
// owner's Close gives back, adopt as views of all three of which the
// first and the last are adopted into the unit of work and committed; then, with LF_HOLD set, it holds the next
// two (a view and a syncpoint get), says "held" and waits to be killed.
func requeuerChild(s *Structure) error {
	o, err := s.Register()
	if err != nil {
		return err
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	if os.Getenv("LF_HOLD") != "" {
		if _, err := o.GetView(q, GetOptions{}); err != nil {
			return err
		}
		var m Message
		if err := o.Get(q, GetOptions{Syncpoint: true}, &m); err != nil {
			return err
		}
		fmt.Println("held")
		select {} // until killed
	}
	switch mode := os.Getenv("LF_MODE"); mode {
	case "requeue":
		v, err := o.GetView(q, GetOptions{})
		if err != nil {
			return err
		}
		return v.Requeue()
	case "backout":
		var m Message
		if err := o.Get(q, GetOptions{Syncpoint: true}, &m); err != nil {
			return err
		}
		return o.Backout()
	case "close":
		if _, err := o.GetView(q, GetOptions{}); err != nil {
			return err
		}
		return o.Close()
	case "adopt":
		// Views of all three; the first and the last adopted into the
		// unit of work and committed, the middle one still held.
		vs := make([]View, 3)
		if n, err := o.GetViewsInto(q, GetOptions{}, vs); err != nil || n != 3 {
			return fmt.Errorf("views: %d %v", n, err)
		}
		for _, i := range []int{0, 2} {
			if err := vs[i].Adopt(); err != nil {
				return err
			}
		}
		return o.Commit()
	default:
		return fmt.Errorf("LF_MODE %q", mode)
	}
}

// requeueSetup makes a structure with queue Q holding M0..M2.
func requeueSetup(t *testing.T, dir string) *Structure {
	s := newStructureIn(t, dir, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	for i := 0; i < 3; i++ {
		put(t, o, q, fmt.Sprintf("M%d", i), 0, false)
	}
	o.Close()
	return s
}

// expectBackouts gets every message of Q and checks them against want
// (body and backout count, in order).
func expectBackouts(t *testing.T, s *Structure, what string, want ...string) {
	t.Helper()
	o := register(t, s)
	defer o.Close()
	q, err := s.LookupQueue("Q")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var m Message
	for o.Get(q, GetOptions{}, &m) == nil {
		got = append(got, fmt.Sprintf("%s/%d", m.Body, m.BackoutCount))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("%s: queue holds %v, want %v", what, got, want)
	}
}

// TestGiveBackCrash: a process SIGKILLed at every step of giving a
// message back (a view requeued, a syncpoint get backed out, a view
// given back by Close) leaves, once repaired, a structure the checker
// passes, with the message at its place and its backout count raised
// exactly once.
func TestGiveBackCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, mode := range []string{"requeue", "backout", "close"} {
		for _, p := range []string{"lockfree.giveback.described", "lockfree.giveback.counted", "lockfree.giveback.avail"} {
			dir := t.TempDir()
			s := requeueSetup(t, dir)
			cmd := spawn(t, dir, "requeuer", "LF_MODE="+mode, crashpoint.EnvVar+"="+p)
			if err := cmd.Run(); !killedBySIGKILL(err) {
				t.Fatalf("%s at %s: not killed at the point: %v", mode, p, err)
			}
			if _, err := s.RepairDead(); err != nil {
				t.Fatalf("%s at %s: repair: %v", mode, p, err)
			}
			checkOK(t, s)
			expectBackouts(t, s, mode+" killed at "+p, "M0/1", "M1/0", "M2/0")
			s.Close()
		}
	}
}

// TestHolderDies: a process SIGKILLed while it holds a view (outside
// syncpoint) and a get under syncpoint: the repair gives both back at
// their places, each with its backout count raised by one.
func TestHolderDies(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	s := requeueSetup(t, dir)
	defer s.Close()
	cmd := spawn(t, dir, "requeuer", "LF_HOLD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("child: %q %v", line, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if reps, err := s.RepairDead(); err != nil || len(reps) != 1 || reps[0].GetsRestored != 2 {
		t.Fatalf("repair: %+v %v", reps, err)
	}
	checkOK(t, s)
	expectBackouts(t, s, "after the holder died", "M0/1", "M1/1", "M2/0")
}
