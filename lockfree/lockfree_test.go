package lockfree

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"testing"
	"time"
)

var smallParams = Params{Owners: 16, Queues: 8, Entries: 2048, Elements: 2048, ElementSize: 128, StatusSlots: 8, StatusSize: 64}

func newStructure(t testing.TB, p Params) *Structure {
	t.Helper()
	return newStructureIn(t, t.TempDir(), p)
}

// newStructureIn creates structure APPL1 in dir (where child processes
// attach it), closed when the test ends.
func newStructureIn(t testing.TB, dir string, p Params) *Structure {
	t.Helper()
	s, created, err := Create(CreateOptions{Dir: dir, Name: "APPL1", Params: p})
	if err != nil || !created {
		t.Fatalf("create: %v %v", err, created)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func register(t testing.TB, s *Structure) *Owner {
	t.Helper()
	o, err := s.Register()
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func mustQueue(t testing.TB, o *Owner, name string, a QueueAttrs) QueueID {
	t.Helper()
	q, err := o.CreateQueue(name, a)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func put(t testing.TB, o *Owner, q QueueID, body string, prio int, sync bool) {
	t.Helper()
	if err := o.Put(q, &Message{Body: []byte(body), Priority: prio}, PutOptions{Syncpoint: sync}); err != nil {
		t.Fatalf("put %q: %v", body, err)
	}
}

func get(t testing.TB, o *Owner, q QueueID, sync bool) string {
	t.Helper()
	var m Message
	if err := o.Get(q, GetOptions{Syncpoint: sync}, &m); err != nil {
		t.Fatalf("get: %v", err)
	}
	return string(m.Body)
}

func expectEmpty(t testing.TB, o *Owner, q QueueID) {
	t.Helper()
	var m Message
	if err := o.Get(q, GetOptions{}, &m); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("expected empty queue, got %q %v", m.Body, err)
	}
}

func checkOK(t testing.TB, s *Structure) {
	t.Helper()
	if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() {
		t.Fatalf("checker: %v", r)
	}
}

func TestGetByID(t *testing.T) {
	for _, indexed := range []bool{false, true} {
		t.Run(fmt.Sprint("indexed=", indexed), func(t *testing.T) {
			s := newStructure(t, smallParams)
			o := register(t, s)
			q := mustQueue(t, o, "Q", QueueAttrs{IndexMsgID: indexed, IndexCorrelID: indexed})
			var ids [][idBytes]byte
			for i := 0; i < 100; i++ {
				m := Message{Body: []byte(fmt.Sprint(i))}
				m.CorrelID[0] = byte(i % 10)
				if err := o.Put(q, &m, PutOptions{}); err != nil {
					t.Fatal(err)
				}
				ids = append(ids, m.MsgID)
			}
			var m Message
			id := ids[42]
			if err := o.Get(q, GetOptions{MsgID: &id}, &m); err != nil || string(m.Body) != "42" {
				t.Fatalf("by msgid: %q %v", m.Body, err)
			}
			if err := o.Get(q, GetOptions{MsgID: &id}, &m); !errors.Is(err, ErrNoMessage) {
				t.Fatalf("msgid got twice: %v", err)
			}
			var c [idBytes]byte
			c[0] = 7
			for _, want := range []string{"7", "17", "27"} {
				if err := o.Get(q, GetOptions{CorrelID: &c}, &m); err != nil || string(m.Body) != want {
					t.Fatalf("by correlid: %q %v want %s", m.Body, err, want)
				}
			}
			var none [idBytes]byte
			none[5] = 1
			if err := o.Get(q, GetOptions{CorrelID: &none}, &m); !errors.Is(err, ErrNoMessage) {
				t.Fatalf("unknown correlid: %v", err)
			}
			if d := s.Depth(q); d != 96 {
				t.Fatalf("depth %d", d)
			}
			checkOK(t, s)
		})
	}
}

func TestLargeMessagesAndViews(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	rng := rand.New(rand.NewSource(1))
	var bodies [][]byte
	for _, n := range []int{0, 1, 100, 128, 129, 1000, 5000, 64 << 10} {
		b := make([]byte, n)
		rng.Read(b)
		bodies = append(bodies, b)
		m := Message{Body: b, Properties: []byte("props"), ReplyToQ: "RQ", ReplyToQMgr: "RQM"}
		m.Format = [8]byte{'M', 'Q', 'S', 'T', 'R'}
		if err := o.Put(q, &m, PutOptions{}); err != nil {
			t.Fatalf("put %d: %v", n, err)
		}
	}
	for i, want := range bodies {
		if i%2 == 0 {
			var m Message
			if err := o.Get(q, GetOptions{}, &m); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m.Body, want) || string(m.Properties) != "props" || m.ReplyToQ != "RQ" || m.ReplyToQMgr != "RQM" || m.Format[0] != 'M' {
				t.Fatalf("message %d: got %d bytes %q %q %q", i, len(m.Body), m.Properties, m.ReplyToQ, m.ReplyToQMgr)
			}
			continue
		}
		v, err := o.GetView(q, GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Join(v.Body, nil); !bytes.Equal(got, want) || v.Len() != len(want) || v.Msg.ReplyToQ != "RQ" || string(v.Msg.Properties) != "props" {
			t.Fatalf("view %d: %d bytes", i, v.Len())
		}
		if d := s.Depth(q); d != int64(len(bodies)-i) {
			t.Fatalf("a view keeps its message until released: depth %d", d)
		}
		if err := v.Release(); err != nil {
			t.Fatal(err)
		}
		if err := v.Release(); !errors.Is(err, ErrViewReleased) {
			t.Fatal("double release")
		}
	}
	// A message larger than the structure can hold.
	if err := o.Put(q, &Message{Body: make([]byte, 3<<20)}, PutOptions{}); !errors.Is(err, ErrMsgTooLong) {
		t.Fatalf("huge: %v", err)
	}
	o.Close()
	checkOK(t, s)
	r := s.Check(CheckOptions{Quiescent: true})
	if r.Elements.Free != smallParams.Elements {
		t.Fatalf("elements leaked: %v", r)
	}
}

func TestSyncpointViewBackout(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	put(t, o, q, "m", 0, false)
	v, err := o.GetView(q, GetOptions{Syncpoint: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Body[0]) != "m" {
		t.Fatal("view body")
	}
	v.Release()
	o.Backout()
	var m Message
	if err := o.Get(q, GetOptions{}, &m); err != nil || m.BackoutCount != 1 {
		t.Fatalf("after backout: %v %d", err, m.BackoutCount)
	}
	checkOK(t, s)
}

// TestGetViewsInto: a batch of views in one scan comes in delivery order
// (priority, then arrival), stops at len(vs) or when the queue has no
// more, reports ErrNoMessage only when it got none, and holds its
// messages in the unit of work (a backout puts them all back); without
// syncpoint, each message goes when its view is released.
func TestGetViewsInto(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	for i, b := range []string{"a", "b", "c", "d", "e"} {
		put(t, o, q, b, i/4*5, false) // e has priority 5
	}
	bodies := func(vs []View) string {
		var got []string
		for _, v := range vs {
			got = append(got, string(v.Body[0]))
		}
		return fmt.Sprint(got)
	}
	vs := make([]View, 3)
	n, err := o.GetViewsInto(q, GetOptions{Syncpoint: true}, vs)
	if err != nil || n != 3 || bodies(vs[:n]) != "[e a b]" {
		t.Fatalf("first batch: %d %s %v", n, bodies(vs[:n]), err)
	}
	n, err = o.GetViewsInto(q, GetOptions{Syncpoint: true}, vs)
	if err != nil || n != 2 || bodies(vs[:n]) != "[c d]" {
		t.Fatalf("second batch: %d %s %v", n, bodies(vs[:n]), err)
	}
	if n, err := o.GetViewsInto(q, GetOptions{Syncpoint: true}, vs); n != 0 || !errors.Is(err, ErrNoMessage) {
		t.Fatalf("empty queue: %d %v", n, err)
	}
	if s.Depth(q) != 5 {
		t.Fatalf("depth %d with five held", s.Depth(q))
	}
	o.Backout()
	vs = make([]View, 10)
	n, err = o.GetViewsInto(q, GetOptions{}, vs)
	if err != nil || n != 5 || bodies(vs[:n]) != "[e a b c d]" {
		t.Fatalf("after the backout, without syncpoint: %d %s %v", n, bodies(vs[:n]), err)
	}
	for i := range vs[:n] {
		if s.Depth(q) != int64(n-i) {
			t.Fatalf("depth %d before releasing view %d", s.Depth(q), i)
		}
		if err := vs[i].Release(); err != nil {
			t.Fatal(err)
		}
	}
	if s.Depth(q) != 0 {
		t.Fatalf("depth %d after every view was released", s.Depth(q))
	}
	checkOK(t, s)
}

func TestWaitWake(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	done := make(chan string)
	go func() {
		var m Message
		err := b.Get(q, GetOptions{Wait: 10 * time.Second}, &m)
		done <- fmt.Sprintf("%s %v", m.Body, err)
	}()
	for s.Waiters(q) == 0 {
		time.Sleep(time.Millisecond)
	}
	t0 := time.Now()
	put(t, a, q, "hello", 0, false)
	if got := <-done; got != "hello <nil>" {
		t.Fatal(got)
	}
	if el := time.Since(t0); el > 40*time.Millisecond {
		// 50 ms is the bounded re-check interval: a woken waiter returns sooner.
		t.Logf("wake took %v", el)
	}
	if s.Waiters(q) != 0 {
		t.Fatal("waiter bit left set")
	}
	// Wait with timeout on an empty queue.
	var m Message
	t1 := time.Now()
	if err := b.Get(q, GetOptions{Wait: 30 * time.Millisecond, Spin: 5 * time.Millisecond}, &m); !errors.Is(err, ErrNoMessage) {
		t.Fatal(err)
	}
	if time.Since(t1) < 30*time.Millisecond {
		t.Fatal("returned before the wait interval")
	}
	// A commit wakes a waiter too.
	go func() {
		var m Message
		err := b.Get(q, GetOptions{Wait: 10 * time.Second}, &m)
		done <- fmt.Sprintf("%s %v", m.Body, err)
	}()
	for s.Waiters(q) == 0 {
		time.Sleep(time.Millisecond)
	}
	put(t, a, q, "committed", 0, true)
	a.Commit()
	if got := <-done; got != "committed <nil>" {
		t.Fatal(got)
	}
	checkOK(t, s)
}

func TestStatusSlots(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	n := s.StatusSize()
	cur := make([]byte, n)
	if v, err := s.ReadStatus(2, cur); err != nil || v != 0 || !bytes.Equal(cur, make([]byte, n)) {
		t.Fatalf("fresh slot: %v %v", v, err)
	}
	if zero, err := s.StatusZero(2); err != nil || !zero {
		t.Fatalf("fresh slot: zero %v, %v", zero, err)
	}
	next := bytes.Repeat([]byte{7}, n)
	if err := a.CompareAndSwapStatus(2, cur, next); err != nil {
		t.Fatal(err)
	}
	if err := b.CompareAndSwapStatus(2, cur, next); !errors.Is(err, ErrStatusChanged) {
		t.Fatalf("stale before-image accepted: %v", err)
	}
	if v, _ := s.ReadStatus(2, cur); v != 1 || cur[0] != 7 {
		t.Fatalf("after update: v%d %d", v, cur[0])
	}
	// Zero in the first 8 bytes only, in the other copy: still zero.
	tail := make([]byte, n)
	tail[8] = 1
	if err := a.CompareAndSwapStatus(2, cur, tail); err != nil {
		t.Fatal(err)
	}
	if zero, _ := s.StatusZero(2); !zero {
		t.Fatal("a record with zero first bytes is not zero")
	}
	if err := a.CompareAndSwapStatus(2, tail, next); err != nil {
		t.Fatal(err)
	}
	if zero, _ := s.StatusZero(2); zero {
		t.Fatal("a set record reads as zero")
	}
	if _, err := s.StatusZero(99); !errors.Is(err, ErrStatusRange) {
		t.Fatal(err)
	}
	if v, _ := s.ReadStatus(2, cur); v != 3 || cur[0] != 7 {
		t.Fatalf("after updates: v%d %d", v, cur[0])
	}
	if err := a.CompareAndSwapStatus(99, cur, next); !errors.Is(err, ErrStatusRange) {
		t.Fatal(err)
	}
	if err := a.CompareAndSwapStatus(1, cur[:3], next); !errors.Is(err, ErrStatusRange) {
		t.Fatal(err)
	}
	// Concurrent increments of two halves that must always sum to 1000.
	init := make([]byte, n)
	init[0] = 0xe8
	init[1] = 0x03 // 1000 little-endian in the first half
	a.CompareAndSwapStatus(3, make([]byte, n), init)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for _, o := range []*Owner{a, b} {
		wg.Add(1)
		go func(o *Owner) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				if err := o.UpdateStatus(3, func(c []byte) []byte {
					x, y := le16(c[0:]), le16(c[2:])
					put16(c[0:], x-1)
					put16(c[2:], y+1)
					return c
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}(o)
	}
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		buf := make([]byte, n)
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.ReadStatus(3, buf)
			if le16(buf)+le16(buf[2:]) != 1000 {
				t.Error("torn status record read")
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	reader.Wait()
	s.ReadStatus(3, cur)
	if le16(cur) != 0 || le16(cur[2:]) != 1000 {
		t.Fatalf("lost updates: %d %d", le16(cur), le16(cur[2:]))
	}
}

func le16(b []byte) int     { return int(b[0]) | int(b[1])<<8 }
func put16(b []byte, v int) { b[0], b[1] = byte(v), byte(v>>8) }

func TestOwnerSlots(t *testing.T) {
	s := newStructure(t, Params{Owners: 2, Queues: 2, Entries: 64, Elements: 64})
	a, b := register(t, s), register(t, s)
	if _, err := s.Register(); !errors.Is(err, ErrNoOwnerSlot) {
		t.Fatalf("third owner: %v", err)
	}
	if !s.OwnerAlive(a.Tag()) || len(s.Owners()) != 2 {
		t.Fatal("owners")
	}
	if _, err := s.Repair(a.Tag()); !errors.Is(err, ErrOwnerAlive) {
		t.Fatalf("repair of a live owner: %v", err)
	}
	at := a.Tag()
	a.Close()
	if s.OwnerAlive(at) {
		t.Fatal("closed owner alive")
	}
	c := register(t, s)
	if c.Tag() == at || c.Tag().Slot() != at.Slot() {
		t.Fatalf("reused slot must get a new incarnation: %v %v", c.Tag(), at)
	}
	if err := a.Put(0, &Message{}, PutOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	_ = b
}

// TestCheckerFindsCorruption proves the checker can fail: each case breaks
// one invariant by hand.
func TestCheckerFindsCorruption(t *testing.T) {
	cases := map[string]func(s *Structure, o *Owner, q QueueID){
		"leaked element": func(s *Structure, o *Owner, q QueueID) {
			s.store(s.elemWordOff(5), mkWord(0, ekOwned, uint32(mkTag(9, 3))))
		},
		"element in message and free": func(s *Structure, o *Owner, q QueueID) {
			o.Put(q, &Message{Body: make([]byte, 500)}, PutOptions{})
			for e := uint32(0); e < uint32(s.p.Elements); e++ {
				if w := s.load(s.elemWordOff(e)); wKind(w) == ekMsg {
					s.store(s.elemWordOff(e), mkWord(wGen(w), ekFree, 0))
					return
				}
			}
		},
		"count mismatch": func(s *Structure, o *Owner, q QueueID) {
			o.setCellDepth(uint32(q), o.cellDepth(uint32(q))+1)
		},
		"lost message behind head": func(s *Structure, o *Owner, q QueueID) {
			put(t, o, q, "x", 0, false)
			sl := s.sublogOff(uint32(q), 0)
			s.store(sl+slHeadPos, s.load(sl+slTailPos))
		},
		"entry owned by dead owner": func(s *Structure, o *Owner, q QueueID) {
			put(t, o, q, "x", 0, false)
			for e := uint32(0); e < uint32(s.p.Entries); e++ {
				if w := s.load(s.entryOff(e)); wKind(w) == stAvail {
					s.store(s.entryOff(e), mkWord(wGen(w), stHeld, uint32(mkTag(9, 3))))
					return
				}
			}
		},
		"segment leaked": func(s *Structure, o *Owner, q QueueID) {
			s.store(s.segOff(uint32(s.p.Segments-1)), mkWord(0, skLink, qpOf(uint32(q), 3)))
		},
		"illegal entry state": func(s *Structure, o *Owner, q QueueID) {
			s.store(s.entryOff(7), mkWord(0, 9, 0))
		},
		"duplicate link": func(s *Structure, o *Owner, q QueueID) {
			put(t, o, q, "x", 0, false)
			put(t, o, q, "y", 0, false)
			sl := s.sublogOff(uint32(q), 0)
			hs := ref(s.load(sl + slHeadSeg))
			s.store(s.slotOff(hs.idx(), 1), s.load(s.slotOff(hs.idx(), 0)))
		},
		"status reserved by dead owner": func(s *Structure, o *Owner, q QueueID) {
			s.store(s.statusOff(1), uint64(mkTag(9, 3)))
		},
		"truncated mapping": nil,
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			s := newStructure(t, smallParams)
			o := register(t, s)
			q := mustQueue(t, o, "Q", QueueAttrs{})
			put(t, o, q, "keep", 0, false)
			checkOK(t, s)
			if corrupt == nil {
				if err := truncate(s); err != nil {
					t.Fatal(err)
				}
			} else {
				corrupt(s, o, q)
			}
			r := s.Check(CheckOptions{Quiescent: true})
			if r.OK() {
				t.Fatalf("checker missed %s: %v", name, r)
			}
			t.Logf("found: %s", r.Problems[0])
		})
	}
}

// TestCountersNearWrap starts every wrapping counter just below its wrap
// point: entry and element generations, owner incarnations, the unit-of-work
// sequence, status versions, the futex word and queue positions.
func TestCountersNearWrap(t *testing.T) {
	s := newStructure(t, smallParams)
	for e := uint32(0); e < uint32(s.p.Entries); e++ {
		s.store(s.entryOff(e), mkWord(genMask-1, stFree, 0))
	}
	for e := uint32(0); e < uint32(s.p.Elements); e++ {
		s.store(s.elemWordOff(e), mkWord(genMask, ekFree, 0))
	}
	for i := uint32(0); i < uint32(s.p.Segments); i++ {
		s.store(s.segOff(i), mkWord(genMask, skFree, 0))
	}
	for slot := 0; slot < s.p.Owners; slot++ {
		s.store(s.ownerOff(slot)+ownState, mkOwnState(0xfffe, osFree, 0))
		s.store(s.ownerOff(slot)+ownUOW, uint64(0xfffffffe)<<32)
	}
	s.store(s.statusOff(0), uint64(1<<31-2)<<33)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	*s.futexWord(uint32(q)) = 0xfffffffe
	const start = uint64(1)<<63 - 100
	for p := 0; p < Priorities; p++ {
		sl := s.sublogOff(uint32(q), p)
		s.store(sl+slHeadPos, start)
		s.store(sl+slTailPos, start)
	}
	// The first segment of each sublog is created at base 0; move the
	// positions into a pre-made segment instead.
	for p := 0; p < Priorities; p++ {
		s.prioUsed(uint32(q), p)
		if err := a.extend(uint32(q), p, 0, start&^(segSlots-1)); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 6; round++ {
		for i := 0; i < 150; i++ {
			body := make([]byte, 1+i%300)
			body[0] = byte(i)
			if err := a.Put(q, &Message{Body: body, Priority: i % 3}, PutOptions{Syncpoint: i%2 == 0}); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 150; i++ {
			var m Message
			if err := b.Get(q, GetOptions{Syncpoint: true}, &m); err != nil {
				t.Fatalf("round %d get %d: %v", round, i, err)
			}
		}
		if round%2 == 0 {
			b.Backout()
			for i := 0; i < 150; i++ {
				get(t, b, q, false)
			}
		} else {
			b.Commit()
		}
		b.Close()
		b = register(t, s)
		c := make([]byte, s.StatusSize())
		s.ReadStatus(0, c)
		n := append([]byte(nil), c...)
		n[0]++
		if err := a.CompareAndSwapStatus(0, c, n); err != nil {
			t.Fatal(err)
		}
		checkOK(t, s)
	}
	if v, _ := s.ReadStatus(0, make([]byte, s.StatusSize())); v < 1<<31-2 {
		// the version is 31 bits: it wrapped, and reads still validate
		t.Logf("status version wrapped to %d", v)
	}
	if g := wGen(s.load(s.entryOff(0))); g > 5 && g < genMask-1 {
		t.Fatalf("entry gen did not wrap: %d", g)
	}
	if inc := b.Tag().Incarnation(); inc == 0 {
		t.Fatal("incarnation 0 handed out")
	}
	expectEmpty(t, b, q)
	checkOK(t, s)
}

// TestHeldMessagePinsOnlyItsSegment: a message held for a long time while
// traffic flows must not keep the segments behind it.
func TestHeldMessagePinsOnlyItsSegment(t *testing.T) {
	p := smallParams
	p.Segments = 40
	s := newStructure(t, p)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "held", 0, false)
	get(t, b, q, true)
	for i := 0; i < 64*200; i++ { // 200 segments' worth of traffic through 40 segments
		put(t, a, q, "x", 0, false)
		get(t, a, q, false)
	}
	r := s.Check(CheckOptions{Quiescent: true})
	if !r.OK() || r.Segments.Linked > 4 {
		t.Fatalf("%v", r)
	}
	b.Backout()
	if got := get(t, a, q, false); got != "held" {
		t.Fatal(got)
	}
	checkOK(t, s)
}

// TestLanesTakeTurnsPastHeld is a channel's lanes: four owners take
// batches in turn under syncpoint, so each new batch is found past the
// other lanes' held messages (several segments of them: a scan resumes in
// its cached segment), and the oldest commits once four are in flight.
// Every few rounds all lanes back out, as when a channel instance ends;
// the messages come back in their places. What is committed is every
// message once, in order, and the structure is sound.
func TestLanesTakeTurnsPastHeld(t *testing.T) {
	const lanes, batch, n = 4, 100, 6000
	p := smallParams
	p.Entries, p.Elements, p.Segments = 8192, 8192, 256
	s := newStructure(t, p)
	var os [lanes]*Owner
	for i := range os {
		os[i] = register(t, s)
	}
	q := mustQueue(t, os[0], "XQ", QueueAttrs{MaxDepth: n})
	for i := 0; i < n; i++ {
		put(t, os[0], q, fmt.Sprint(i), 0, false)
	}
	var got [lanes][]string // each lane's batch in flight
	next, committed, round := 0, 0, 0
	oldest, inFlight := 0, 0
	for committed < n {
		round++
		if inFlight < lanes {
			l := (oldest + inFlight) % lanes
			got[l] = got[l][:0]
			for len(got[l]) < batch {
				var m Message
				err := os[l].Get(q, GetOptions{Syncpoint: true}, &m)
				if errors.Is(err, ErrNoMessage) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got[l] = append(got[l], string(m.Body))
			}
			if len(got[l]) > 0 {
				inFlight++
				continue
			}
		}
		if round%7 == 0 {
			for i := 0; i < inFlight; i++ {
				if err := os[(oldest+i)%lanes].Backout(); err != nil {
					t.Fatal(err)
				}
			}
			inFlight, next = 0, committed
			continue
		}
		for _, body := range got[oldest] {
			if body != fmt.Sprint(next) {
				t.Fatalf("round %d: lane %d committed %s, expected %d", round, oldest, body, next)
			}
			next++
		}
		if err := os[oldest].Commit(); err != nil {
			t.Fatal(err)
		}
		committed += len(got[oldest])
		oldest, inFlight = (oldest+1)%lanes, inFlight-1
	}
	expectEmpty(t, os[0], q)
	checkOK(t, s)
}

func TestConcurrentInProcess(t *testing.T) {
	s := newStructure(t, Params{Owners: 16, Queues: 4, Entries: 4096, Elements: 4096, ElementSize: 64})
	admin := register(t, s)
	q := mustQueue(t, admin, "Q", QueueAttrs{MaxDepth: 500})
	const producers, consumers, per = 4, 4, 3000
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			o := register(t, s)
			defer o.Close()
			for i := 0; i < per; i++ {
				m := Message{Body: []byte(fmt.Sprintf("%d/%d", p, i)), Priority: i % 2}
				for {
					err := o.Put(q, &m, PutOptions{Syncpoint: i%3 == 0})
					if errors.Is(err, ErrQueueFull) {
						o.Commit()
						time.Sleep(10 * time.Microsecond)
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					break
				}
				if i%3 == 0 && i%9 == 0 {
					o.Commit()
				}
			}
			o.Commit()
		}(p)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var last [producers][2]int
	for i := range last {
		last[i] = [2]int{-1, -1}
	}
	var got sync.WaitGroup
	done := make(chan struct{})
	for c := 0; c < consumers; c++ {
		got.Add(1)
		go func(c int) {
			defer got.Done()
			o := register(t, s)
			defer o.Close()
			var m Message
			var batch []string
			for {
				err := o.Get(q, GetOptions{Syncpoint: true, Wait: 20 * time.Millisecond}, &m)
				if errors.Is(err, ErrNoMessage) {
					select {
					case <-done:
						if len(batch) == 0 {
							return
						}
					default:
					}
				} else if err != nil {
					t.Error(err)
					return
				} else {
					batch = append(batch, fmt.Sprintf("%s/%d", m.Body, m.Priority))
				}
				if len(batch) >= 7 || errors.Is(err, ErrNoMessage) && len(batch) > 0 {
					if len(batch) == 7 && rand.Intn(4) == 0 {
						o.Backout() // full batches only: a partial one may be the last
						batch = batch[:0]
						continue
					}
					if err := o.Commit(); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, b := range batch {
						seen[b]++
					}
					mu.Unlock()
					batch = batch[:0]
				}
			}
		}(c)
	}
	wg.Wait()
	close(done)
	got.Wait()
	if len(seen) != producers*per {
		t.Fatalf("got %d distinct messages, want %d", len(seen), producers*per)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("%s got %d times", k, n)
		}
	}
	checkOK(t, s)
}

func truncate(s *Structure) error { return os.Truncate(s.Mapping().Path(), 8192) }

func TestBatches(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	msgs := make([]Message, 150) // crosses segment boundaries inside a run
	for i := range msgs {
		msgs[i] = Message{Body: []byte(fmt.Sprint(i)), Priority: i % 2 * 4}
	}
	if n, err := a.PutBatch(q, msgs, PutOptions{}); err != nil || n != 150 {
		t.Fatalf("put batch: %d %v", n, err)
	}
	dst := make([]Message, 100)
	n, err := b.GetBatch(q, GetOptions{Syncpoint: true}, dst)
	if err != nil || n != 100 {
		t.Fatalf("get batch: %d %v", n, err)
	}
	// Priority 4 first (the odd ones), then priority 0, each in order.
	for i := 0; i < n; i++ {
		want := 2*i + 1
		if i >= 75 {
			want = 2 * (i - 75)
		}
		if string(dst[i].Body) != fmt.Sprint(want) {
			t.Fatalf("batch message %d: %q want %d", i, dst[i].Body, want)
		}
	}
	b.Backout()
	n, _ = b.GetBatch(q, GetOptions{}, make([]Message, 500))
	if n != 150 {
		t.Fatalf("after backout got %d", n)
	}
	if _, err := b.GetBatch(q, GetOptions{}, dst); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("empty: %v", err)
	}
	// A syncpoint batch is invisible until commit.
	a.PutBatch(q, msgs[:10], PutOptions{Syncpoint: true})
	if _, err := b.GetBatch(q, GetOptions{}, dst); !errors.Is(err, ErrNoMessage) {
		t.Fatalf("uncommitted batch visible: %v", err)
	}
	a.Commit()
	if n, _ := b.GetBatch(q, GetOptions{}, dst); n != 10 {
		t.Fatalf("committed batch: %d", n)
	}
	// A bad message stops the batch where it is.
	bad := append(append([]Message{}, msgs[:3]...), Message{Priority: 11})
	if n, err := a.PutBatch(q, bad, PutOptions{}); n != 3 || !errors.Is(err, ErrBadPriority) {
		t.Fatalf("bad batch: %d %v", n, err)
	}
	checkOK(t, s)
}

func TestCreateOptions(t *testing.T) {
	dir := t.TempDir()
	for _, o := range []CreateOptions{
		{Name: "APPL1"},
		{Dir: dir, Name: "bad/name"},
		{Dir: dir, Name: "APPL1", Kind: 7},
		{Dir: dir, Name: "APPL1", Params: Params{Owners: 1 << 20}},
		{Dir: dir, Name: "APPL1", Size: 8192},
		{Dir: dir, Name: "APPL1", Params: Params{ElementSize: 100}},
	} {
		if _, _, err := Create(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
	// A size budget derives the counts, and the structure fits in it.
	s, _, err := Create(CreateOptions{Dir: dir, Name: "SIZED", Size: 32 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if p := s.Params(); p.Size() > 32<<20 || p.Entries < 10000 || p.Elements != p.Entries {
		t.Fatalf("params for 32 MiB: %+v (size %d)", p, p.Size())
	}
}

// TestStaleReferenceWithWrappedGen: a slot keeps a reference to a consumed
// message while something before it pins the head; the entry is reused
// until its 24-bit gen comes round to the same value (simulated) for a
// message at a later position. Scans must treat the old slot as dead.
func TestStaleReferenceWithWrappedGen(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b, c := register(t, s), register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "pin", 0, false)
	get(t, b, q, true) // held at position 0: the head stays there
	put(t, a, q, "X", 0, false)
	sl := s.sublogOff(uint32(q), 0)
	hs := ref(s.load(sl + slHeadSeg))
	stale := ref(s.load(s.slotOff(hs.idx(), 1)))
	get(t, a, q, false) // X consumed: its entry goes back to a's cache (LIFO)
	// Fast-forward 2^24 reuses of the cached entry: its gen comes round to
	// the one the stale slot names.
	if e := a.entries[len(a.entries)-1]; e != stale.idx() {
		t.Fatalf("entry %d not on top of the cache (%d): the test needs LIFO caches", stale.idx(), e)
	}
	w := s.load(s.entryOff(stale.idx()))
	s.store(s.entryOff(stale.idx()), mkWord(stale.gen(), wKind(w), wVal(w)))
	put(t, a, q, "Y", 0, false)
	if y := ref(s.load(s.slotOff(hs.idx(), 2))); y != stale {
		t.Fatalf("Y is at %v, want the wrapped reference %v", y, stale)
	}
	if got := get(t, c, q, false); got != "Y" {
		t.Fatalf("got %q", got)
	}
	expectEmpty(t, c, q)
	b.Backout()
	if got := get(t, c, q, false); got != "pin" {
		t.Fatalf("got %q", got)
	}
	checkOK(t, s)
}

// TestViewsOutsideSyncpoint: a view got without syncpoint is outside any
// unit of work: Close and Repair (whatever the outcome) put its message
// back instead of losing or consuming it.
func TestViewsOutsideSyncpoint(t *testing.T) {
	s := newStructure(t, smallParams)
	a, b := register(t, s), register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "M", 0, false)
	put(t, a, q, "N", 0, false)
	if _, err := b.GetView(q, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.QueueInfo(q); info.Depth != 2 || info.Uncom != 0 {
		t.Fatalf("a view is not uncommitted work: %+v", info)
	}
	get(t, b, q, true) // N, in the unit of work
	b.Commit()         // consumes N, not the view's M
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := a.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "M" || m.BackoutCount != 1 {
		t.Fatalf("after close: %q %d %v", m.Body, m.BackoutCount, err)
	}
	checkOK(t, s)
	// Repair with a commit imposed still puts a view's message back.
	put(t, a, q, "V", 0, false)
	c := register(t, s)
	if _, err := c.GetView(q, GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.RepairWith(c.Tag(), OutcomeCommit, true); err != nil || rep.GetsRestored != 1 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	if got := get(t, a, q, false); got != "V" {
		t.Fatalf("got %q", got)
	}
	checkOK(t, s)
}

func TestIndexTypeChangesOnlyWhenEmpty(t *testing.T) {
	s := newStructure(t, smallParams)
	a := register(t, s)
	q := mustQueue(t, a, "Q", QueueAttrs{})
	put(t, a, q, "M", 0, false)
	if err := s.SetQueueAttrs(q, QueueAttrs{IndexMsgID: true}); !errors.Is(err, ErrQueueNotEmpty) {
		t.Fatalf("index enabled on a non-empty queue: %v", err)
	}
	if err := s.SetQueueAttrs(q, QueueAttrs{MaxDepth: 10}); err != nil {
		t.Fatalf("other attributes change any time: %v", err)
	}
	get(t, a, q, false)
	if err := s.SetQueueAttrs(q, QueueAttrs{IndexMsgID: true}); err != nil {
		t.Fatal(err)
	}
	m := Message{Body: []byte("X")}
	a.Put(q, &m, PutOptions{})
	id := m.MsgID
	var g Message
	if err := a.Get(q, GetOptions{MsgID: &id}, &g); err != nil || string(g.Body) != "X" {
		t.Fatalf("get by id through the new index: %v", err)
	}
}

// TestAppendPiece: adjacent pieces of a view merge, others stay apart.
func TestAppendPiece(t *testing.T) {
	buf := []byte("abcdefghij")
	p := appendPiece(nil, buf[0:3])
	p = appendPiece(p, buf[3:5])  // adjacent: merged
	p = appendPiece(p, buf[6:8])  // a gap: a new piece
	p = appendPiece(p, buf[8:10]) // adjacent to that one
	if len(p) != 2 || string(p[0]) != "abcde" || string(p[1]) != "ghij" {
		t.Fatalf("pieces %q", p)
	}
}

// TestStructureOutOfService: a failed structure refuses every operation
// but its recoverer's until it is put back in service.
func TestStructureOutOfService(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	put(t, o, q, "a", 1, false)
	if !s.InService() || !s.Fail() || s.Fail() || s.InService() {
		t.Fatal("Fail: in service before, out after, once")
	}
	var m Message
	if err := o.Get(q, GetOptions{}, &m); !errors.Is(err, ErrStructureFailed) {
		t.Fatalf("get from a failed structure: %v", err)
	}
	if err := o.Put(q, &Message{Body: []byte("b")}, PutOptions{}); !errors.Is(err, ErrStructureFailed) {
		t.Fatalf("put to a failed structure: %v", err)
	}
	r := register(t, s)
	r.SetRecoverer(true)
	if err := r.Put(q, &Message{Body: []byte("c")}, PutOptions{}); err != nil {
		t.Fatalf("the recoverer's put: %v", err)
	}
	s.PutInService()
	if err := o.Get(q, GetOptions{}, &m); err != nil || string(m.Body) != "a" {
		t.Fatalf("get after the recovery: %q %v", m.Body, err)
	}
}

// SlotTag is the tag Owner reports, without looking at the process, and
// nothing for a free slot.
func TestSlotTag(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	if tag, ok := s.SlotTag(o.Tag().Slot()); !ok || tag != o.Tag() {
		t.Fatalf("SlotTag %v %v, want %v", tag, ok, o.Tag())
	}
	if info, _ := s.Owner(o.Tag().Slot()); info.Tag != o.Tag() {
		t.Fatalf("Owner's tag %v", info.Tag)
	}
	slot := o.Tag().Slot()
	o.Close()
	if tag, ok := s.SlotTag(slot); ok {
		t.Fatalf("closed owner's slot: %v", tag)
	}
	o2, err := s.RegisterSlot(slot)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.Close()
	if tag, ok := s.SlotTag(slot); !ok || tag != o2.Tag() || tag == o.Tag() {
		t.Fatalf("re-registered slot: %v %v (first owner %v, second %v)", tag, ok, o.Tag(), o2.Tag())
	}
	for _, bad := range []int{-1, s.Params().Owners} {
		if _, ok := s.SlotTag(bad); ok {
			t.Fatalf("slot %d reported", bad)
		}
	}
}

// A queue whose first segment is installed and whose tail segment is not
// yet (an owner between the two, alive or killed there) is in flight for a
// check while others run, a problem for a quiescent one, and the next put
// finishes it. The torture's checker once failed on it.
func TestCheckFirstSegmentInFlight(t *testing.T) {
	s := newStructure(t, smallParams)
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	if err := o.Put(q, &Message{Body: []byte("a")}, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	sl := s.sublogOff(uint32(q), 0)
	if ref(s.load(sl+slHeadSeg)).nil() || ref(s.load(sl+slTailSeg)).nil() {
		t.Fatal("the put installed no segment")
	}
	s.store(sl+slTailSeg, 0)
	if r := s.Check(CheckOptions{}); !r.OK() {
		t.Fatalf("while others run: %v", r)
	}
	if r := s.Check(CheckOptions{Quiescent: true}); r.OK() {
		t.Fatal("quiescent check passed a queue without a tail segment")
	}
	if err := o.Put(q, &Message{Body: []byte("b")}, PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() {
		t.Fatalf("after the next put: %v", r)
	}
}
