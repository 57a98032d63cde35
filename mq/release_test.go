package mq_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// viewsOf gets n views outside syncpoint from q.
func viewsOf(t testing.TB, q *mq.Queue, n int) []*mq.View {
	t.Helper()
	vs := make([]mq.View, n)
	if got, err := q.GetViewsInto(mq.GetOptions{}, vs); err != nil || got != n {
		t.Fatalf("views: %d of %d, %v", got, n, err)
	}
	out := make([]*mq.View, n)
	for i := range vs {
		out[i] = &vs[i]
	}
	return out
}

// bodies gets every message of q outside syncpoint, as body/backout count.
func bodies(t testing.TB, q *mq.Queue) string {
	t.Helper()
	var out []string
	for {
		m, err := q.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return fmt.Sprint(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s/%d", m.Body, m.BackoutCount))
	}
}

func putBodies(t testing.TB, q *mq.Queue, p mq.Persistence, bs ...string) {
	t.Helper()
	for _, b := range bs {
		put(t, q, &mq.Message{Body: []byte(b), Persistence: p})
	}
}

// TestReleaseViews: views of persistent and non-persistent messages of
// two queues in two structures are removed by one ReleaseViews (a view
// given twice counts once), while views of the connection not in the
// batch stay held and valid.
func TestReleaseViews(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(A)", "DEFINE CFSTRUCT(APP2) SIZE(32)", "DEFINE QLOCAL(B) CFSTRUCT(APP2)")
	c := connect(t, g)
	a, b := open(t, c, "A"), open(t, c, "B")
	putBodies(t, a, mq.Persistent, "a0", "a1")
	putBodies(t, a, mq.NotPersistent, "a2")
	putBodies(t, a, mq.Persistent, "a3")
	putBodies(t, b, mq.Persistent, "b0", "b1")
	va, vb := viewsOf(t, a, 4), viewsOf(t, b, 2)
	batch := []*mq.View{va[0], va[2], va[3], vb[1], va[0]}
	if err := c.ReleaseViews(batch); err != nil {
		t.Fatal(err)
	}
	for i, v := range batch {
		if v.Pieces != nil {
			t.Fatalf("view %d still has its body after ReleaseViews", i)
		}
	}
	if string(va[1].Bytes()) != "a1" || string(vb[0].Bytes()) != "b0" {
		t.Fatalf("views not in the batch: %q %q", va[1].Bytes(), vb[0].Bytes())
	}
	if got := bodies(t, a) + bodies(t, b); got != "[][]" {
		t.Fatalf("while a1 and b0 are held, the queues hold %s", got)
	}
	if err := c.ReleaseViews([]*mq.View{va[1]}); err != nil {
		t.Fatal(err)
	}
	if err := vb[0].Requeue(); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, a) + bodies(t, b); got != "[][b0/1]" {
		t.Fatalf("after a1 released and b0 requeued: %s", got)
	}
	if err := c.ReleaseViews(nil); err != nil {
		t.Fatalf("an empty batch: %v", err)
	}
}

// TestReleaseViewsRefuses: a batch with a view already released or
// requeued, got under syncpoint, of another connection, or on a
// connection whose unit of work holds work is refused with RCOptionError
// and changes nothing: every view is still held, and released after.
func TestReleaseViewsRefuses(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(A)")
	c, other := connect(t, g), connect(t, g)
	a, oa := open(t, c, "A"), open(t, other, "A")
	putBodies(t, a, mq.Persistent, "m0", "m1", "m2", "m3", "m4")
	vs := viewsOf(t, a, 3)
	ended := viewsOf(t, a, 2)
	if err := ended[0].Release(); err != nil {
		t.Fatal(err)
	}
	if err := ended[1].Requeue(); err != nil { // m4 back, count 1
		t.Fatal(err)
	}
	putBodies(t, oa, mq.Persistent, "o0", "s0")
	foreign := viewsOf(t, oa, 1)[0] // m4, the other connection's
	var sp mq.View
	if err := a.GetViewInto(mq.GetOptions{Syncpoint: true}, &sp); err != nil { // o0
		t.Fatal(err)
	}
	for _, tc := range []struct {
		what string
		odd  *mq.View
	}{{"released", ended[0]}, {"requeued", ended[1]}, {"of another connection", foreign}, {"got under syncpoint", &sp}, {"nil", nil}} {
		err := c.ReleaseViews(append(append([]*mq.View{}, vs...), tc.odd))
		if mq.ReasonOf(err) != mq.RCOptionError {
			t.Fatalf("a batch with a view %s: %v", tc.what, err)
		}
	}
	if err := c.Backout(); err != nil { // o0 back, count 1
		t.Fatal(err)
	}
	// A unit of work holding a put: refused, the put is not committed.
	if err := a.Put(&mq.Message{Body: []byte("u0"), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseViews(vs); mq.ReasonOf(err) != mq.RCOptionError {
		t.Fatalf("with a unit of work holding a put: %v", err)
	}
	if err := c.Backout(); err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if want := fmt.Sprint("m", i); string(v.Bytes()) != want {
			t.Fatalf("view %d after the refusals: %q, want %q", i, v.Bytes(), want)
		}
	}
	if err := c.ReleaseViews(vs); err != nil {
		t.Fatal(err)
	}
	if err := foreign.Release(); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, a); got != "[o0/1 s0/0]" {
		t.Fatalf("left on the queue: %s", got)
	}
}

// TestAdoptedViewsCommitAndBackOut: views adopted into a unit of work
// that also holds a put are committed with it in one commit, or given
// back by its backout with their backout counts raised; Requeue refuses
// an adopted view.
func TestAdoptedViewsCommitAndBackOut(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(A)", "DEFINE QLOCAL(OUT)")
	c := connect(t, g)
	a, out := open(t, c, "A"), open(t, c, "OUT")
	putBodies(t, a, mq.Persistent, "m0", "m1")
	putBodies(t, a, mq.NotPersistent, "m2")
	vs := viewsOf(t, a, 3)
	for _, v := range vs {
		if err := v.Adopt(); err != nil {
			t.Fatal(err)
		}
	}
	if err := vs[0].Requeue(); mq.ReasonOf(err) != mq.RCOptionError {
		t.Fatalf("requeue of an adopted view: %v", err)
	}
	if err := out.Put(&mq.Message{Body: []byte("r0"), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Backout(); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, a) + bodies(t, out); got != "[m0/1 m1/1 m2/1][]" {
		t.Fatalf("after the backout: %s", got)
	}
	putBodies(t, a, mq.Persistent, "n0", "n1")
	vs = viewsOf(t, a, 2)
	if err := vs[1].Adopt(); err != nil {
		t.Fatal(err)
	}
	if err := out.Put(&mq.Message{Body: []byte("r1"), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := vs[0].Release(); err != nil {
		t.Fatal(err)
	}
	if got := bodies(t, a) + bodies(t, out); got != "[][r1/0]" {
		t.Fatalf("after the commit: %s", got)
	}
}
