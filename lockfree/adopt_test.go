package lockfree

import (
	"errors"
	"testing"

	"github.com/qmgr/qmgr/crashpoint"
)

// TestViewAdopt: views got without syncpoint and adopted into the unit of
// work are removed by Commit and given back by Backout (backout count + 1,
// at their places), while a view the owner still holds stays held; a view
// ends once, and neither an ended view, a syncpoint view nor the lone
// operation is adopted.
func TestViewAdopt(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	for _, body := range []string{"M", "N", "O", "P"} {
		put(t, a, q, body, 0, false)
	}
	vs := make([]View, 4)
	if n, err := b.GetViewsInto(q, GetOptions{}, vs); err != nil || n != 4 {
		t.Fatalf("views: %d %v", n, err)
	}
	for _, i := range []int{0, 2} {
		if err := vs[i].Adopt(); err != nil {
			t.Fatal(err)
		}
		if !vs[i].InUOW() || vs[i].Ended() {
			t.Fatalf("view %d after Adopt: in the unit of work %v, ended %v", i, vs[i].InUOW(), vs[i].Ended())
		}
	}
	if err := vs[0].Adopt(); !errors.Is(err, ErrViewInUOW) {
		t.Fatalf("adopting an adopted view: %v", err)
	}
	if err := vs[2].Requeue(); !errors.Is(err, ErrViewInUOW) {
		t.Fatalf("requeue of an adopted view: %v", err)
	}
	if err := b.MarkLone(&vs[3], 7); err != nil {
		t.Fatal(err)
	}
	if err := vs[3].Adopt(); !errors.Is(err, ErrViewLone) {
		t.Fatalf("adopting the lone operation: %v", err)
	}
	b.EndLone()
	if err := vs[3].Release(); err != nil {
		t.Fatal(err)
	}
	if err := vs[3].Adopt(); !errors.Is(err, ErrViewReleased) {
		t.Fatalf("adopting a released view: %v", err)
	}
	if info, err := s.QueueInfo(q); err != nil || info.Uncom != 2 {
		t.Fatalf("uncommitted after two adopted: %+v %v", info, err)
	}
	checkOK(t, s)

	// Backed out: both back at their places, count + 1; N still held.
	if err := b.Backout(); err != nil {
		t.Fatal(err)
	}
	checkOK(t, s)
	var m Message
	if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "M" || m.BackoutCount != 1 {
		t.Fatalf("first after the backout: %q %d %v", m.Body, m.BackoutCount, err)
	}
	if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "O" || m.BackoutCount != 1 {
		t.Fatalf("second after the backout: %q %d %v", m.Body, m.BackoutCount, err)
	}
	expectEmpty(t, a, q)

	// Committed: removed; N still held, then released.
	for _, body := range []string{"X", "Y"} {
		put(t, a, q, body, 0, false)
	}
	ws := make([]View, 2)
	if n, err := b.GetViewsInto(q, GetOptions{}, ws); err != nil || n != 2 {
		t.Fatalf("views: %d %v", n, err)
	}
	for i := range ws {
		if err := ws[i].Adopt(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := ws[0].Release(); err != nil { // a syncpoint view's Release ends it and removes nothing
		t.Fatal(err)
	}
	expectEmpty(t, a, q)
	if vs[1].Ended() || string(vs[1].Body[0]) != "N" {
		t.Fatalf("the view not adopted: ended %v", vs[1].Ended())
	}
	if err := vs[1].Requeue(); err != nil {
		t.Fatal(err)
	}
	if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "N" || m.BackoutCount != 1 {
		t.Fatalf("the view not adopted, requeued: %q %d %v", m.Body, m.BackoutCount, err)
	}
	checkOK(t, s)
}

// TestAdoptCrash: a process holding views of M0, M1 and M2, adopting M0
// and M2 into its unit of work and committing, is SIGKILLed at each step.
// Once repaired the checker passes, and the messages are where the unit
// of work's fate puts them: before the commit is decided all three come
// back with their backout counts raised once (the adopted ones as held
// messages backed out, M1 as a view given back); once it is decided, only
// M1 comes back.
func TestAdoptCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, tc := range []struct {
		point string
		want  []string
	}{
		{"lockfree.adopt.held:1", []string{"M0/1", "M1/1", "M2/1"}},
		{"lockfree.adopt.counted:1", []string{"M0/1", "M1/1", "M2/1"}},
		{"lockfree.adopt.held:2", []string{"M0/1", "M1/1", "M2/1"}},
		{"lockfree.adopt.counted:2", []string{"M0/1", "M1/1", "M2/1"}},
		{"lockfree.commit.decided", []string{"M1/1"}},
		{"lockfree.commit.get:1", []string{"M1/1"}},
		{"lockfree.remove.dead:1", []string{"M1/1"}},
		{"lockfree.commit.done", []string{"M1/1"}},
	} {
		dir := t.TempDir()
		s := requeueSetup(t, dir)
		cmd := spawn(t, dir, "requeuer", "LF_MODE=adopt", crashpoint.EnvVar+"="+tc.point)
		if err := cmd.Run(); !killedBySIGKILL(err) {
			t.Fatalf("adopt at %s: not killed at the point: %v", tc.point, err)
		}
		if _, err := s.RepairDead(); err != nil {
			t.Fatalf("adopt at %s: repair: %v", tc.point, err)
		}
		checkOK(t, s)
		expectBackouts(t, s, "adopt killed at "+tc.point, tc.want...)
		s.Close()
	}
}
