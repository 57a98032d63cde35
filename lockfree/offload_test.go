package lockfree

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// offloadRefFor is a made-up reference of data set ds: the CF treats it as
// opaque bytes, except its first two (the data set number).
func offloadRefFor(ds uint16, n byte) []byte {
	b := bytes.Repeat([]byte{n}, OffloadRefSize)
	b[0], b[1] = byte(ds), byte(ds>>8)
	return b
}

// freedRefs records what the offload-free hook was called with.
type freedRefs struct {
	mu   sync.Mutex
	refs [][]byte
}

func (f *freedRefs) hook(ref []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refs = append(f.refs, append([]byte(nil), ref...))
	return nil
}

func (f *freedRefs) take() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.refs
	f.refs = nil
	return r
}

// TestOffloadedEntries: an offloaded message keeps its reference (inline,
// or in data elements behind long properties) and its body length, comes
// back with them from a get, a browse and a view, is listed by
// OffloadRefs while it needs its body, and the hook frees its run exactly
// when its entry is freed: a get outside syncpoint, a commit, a view's
// release, a repair that commits; never a backout.
func TestOffloadedEntries(t *testing.T) {
	s := newStructure(t, smallParams)
	var fr freedRefs
	s.SetOffloadFree(fr.hook)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	props := bytes.Repeat([]byte("p"), 300) // the variable part goes to elements
	msgs := []Message{
		{Offload: offloadRefFor(7, 1), OffloadLen: 1 << 20},
		{Offload: offloadRefFor(7, 2), OffloadLen: 70000, Properties: props, ReplyToQ: "RQ"},
		{Body: []byte("small")},
		{Offload: offloadRefFor(8, 3), OffloadLen: 5},
	}
	for i := range msgs {
		if err := o.Put(q, &msgs[i], PutOptions{}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if refs, err := s.OffloadRefs(7); err != nil || len(refs) != 2 || !bytes.Equal(refs[0], msgs[0].Offload) && !bytes.Equal(refs[1], msgs[0].Offload) {
		t.Fatalf("OffloadRefs(7) = %x, %v", refs, err)
	}
	if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() || len(r.Offloaded) != 3 {
		t.Fatalf("check: %d offloaded, want 3: %v", len(r.Offloaded), r)
	}
	cur := o.NewBrowseCursor(q)
	var m Message
	if err := o.BrowseNext(cur, GetOptions{}, &m); err != nil || !bytes.Equal(m.Offload, msgs[0].Offload) || m.OffloadLen != 1<<20 || len(m.Body) != 0 {
		t.Fatalf("browse: %x %d %q %v", m.Offload, m.OffloadLen, m.Body, err)
	}
	if got := fr.take(); len(got) != 0 {
		t.Fatalf("a browse freed %x", got)
	}
	for i, want := range msgs {
		var m Message
		if err := o.Get(q, GetOptions{}, &m); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		if !bytes.Equal(m.Offload, want.Offload) || m.OffloadLen != want.OffloadLen || string(m.Body) != string(want.Body) ||
			!bytes.Equal(m.Properties, want.Properties) || m.ReplyToQ != want.ReplyToQ {
			t.Fatalf("get %d: offload %x len %d body %q props %d rq %q", i, m.Offload, m.OffloadLen, m.Body, len(m.Properties), m.ReplyToQ)
		}
		got := fr.take()
		switch {
		case want.Offload == nil && len(got) != 0:
			t.Fatalf("get %d of a message in the CF freed %x", i, got)
		case want.Offload != nil && (len(got) != 1 || !bytes.Equal(got[0], want.Offload)):
			t.Fatalf("get %d freed %x, want %x", i, got, want.Offload)
		}
	}
	if refs, err := s.OffloadRefs(7); err != nil || len(refs) != 0 {
		t.Fatalf("OffloadRefs(7) after the gets = %x, %v", refs, err)
	}
	checkOK(t, s)

	// Under syncpoint: a backout keeps the run, a commit frees it.
	m0 := Message{Offload: offloadRefFor(7, 9), OffloadLen: 100000, Properties: props}
	if err := o.Put(q, &m0, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := o.Get(q, GetOptions{Syncpoint: true}, &m); err != nil || !bytes.Equal(m.Offload, m0.Offload) {
		t.Fatalf("get: %x %v", m.Offload, err)
	}
	if err := o.Backout(); err != nil {
		t.Fatal(err)
	}
	if got := fr.take(); len(got) != 0 {
		t.Fatalf("a backout freed %x", got)
	}
	if err := o.Get(q, GetOptions{Syncpoint: true}, &m); err != nil || m.BackoutCount != 1 {
		t.Fatalf("get again: %d %v", m.BackoutCount, err)
	}
	if err := o.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := fr.take(); len(got) != 1 || !bytes.Equal(got[0], m0.Offload) {
		t.Fatalf("commit freed %x", got)
	}

	// A view: its reference, and freed at its release.
	if err := o.Put(q, &m0, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := o.GetView(q, GetOptions{})
	if err != nil || !bytes.Equal(v.Msg.Offload, m0.Offload) || v.Msg.OffloadLen != m0.OffloadLen || v.Len() != 0 {
		t.Fatalf("view: %x %d %d %v", v.Msg.Offload, v.Msg.OffloadLen, v.Len(), err)
	}
	if got := fr.take(); len(got) != 0 {
		t.Fatalf("taking a view freed %x", got)
	}
	if err := v.Release(); err != nil {
		t.Fatal(err)
	}
	if got := fr.take(); len(got) != 1 || !bytes.Equal(got[0], m0.Offload) {
		t.Fatalf("release freed %x", got)
	}

	// A repair that commits a held one frees its run.
	o2 := register(t, s)
	if err := o.Put(q, &m0, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := o2.Get(q, GetOptions{Syncpoint: true}, &m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RepairWith(o2.Tag(), OutcomeCommit, true); err != nil {
		t.Fatal(err)
	}
	if got := fr.take(); len(got) != 1 || !bytes.Equal(got[0], m0.Offload) {
		t.Fatalf("repair freed %x", got)
	}
	checkOK(t, s)
	if n, err := s.OffloadFreeErrors(); n != 0 {
		t.Fatalf("%d offload-free errors: %v", n, err)
	}

	// Malformed offloaded messages are refused.
	for _, bad := range []Message{
		{Offload: offloadRefFor(7, 1), OffloadLen: 10, Body: []byte("both")},
		{Offload: []byte("short"), OffloadLen: 10},
	} {
		if err := o.Put(q, &bad, PutOptions{}); !errors.Is(err, ErrBadMessage) {
			t.Fatalf("put of %+v: %v, want ErrBadMessage", bad, err)
		}
	}
}

// TestOffloadRefsEntryChangingWhileRead: OffloadRefs is the set of
// references an in-service space-map rebuild (smds.RebuildFrom, through
// mq's structureRefs) keeps, and a data set repair's Resolver: a reference
// it leaves out is a run the new map gives to the next put while its
// message is still on its queue (two live bodies in the same blocks), or
// a run a repair frees under its message. A message got (avail -> held)
// while the walk reads its entry is still live and must be listed.
func TestOffloadRefsEntryChangingWhileRead(t *testing.T) {
	s := newStructure(t, smallParams)
	var fr freedRefs
	s.SetOffloadFree(fr.hook)
	o := register(t, s)
	o2 := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	m0 := Message{Offload: offloadRefFor(7, 1), OffloadLen: 1 << 20}
	if err := o.Put(q, &m0, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	fired := false
	testHookOffloadRefRead = func(uint32) {
		if fired {
			return
		}
		fired = true
		var m Message
		if err := o2.Get(q, GetOptions{Syncpoint: true}, &m); err != nil {
			t.Errorf("get in the walk: %v", err)
		}
	}
	defer func() { testHookOffloadRefRead = func(uint32) {} }()
	refs, err := s.OffloadRefs(7)
	testHookOffloadRefRead = func(uint32) {}
	if err != nil || len(refs) != 1 || !bytes.Equal(refs[0], m0.Offload) {
		t.Fatalf("OffloadRefs(7) while its message was got under syncpoint = %x, %v; want [%x] (the message is live: held in a unit of work)", refs, err, m0.Offload)
	}
	if err := o2.Backout(); err != nil {
		t.Fatal(err)
	}
	if got := fr.take(); len(got) != 0 {
		t.Fatalf("a backout freed %x", got)
	}
}
