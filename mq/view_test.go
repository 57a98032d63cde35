package mq_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// member starts member QM1 of a fresh group in this process, defines
// the queues of mqsc and returns the group's configuration.
func member(t testing.TB, mqsc ...string) group.Config {
	t.Helper()
	return memberWith(t, func(*qm.Config) {}, mqsc...)
}

// memberWith is member with its configuration changed by opt first.
func memberWith(t testing.TB, opt func(*qm.Config), mqsc ...string) group.Config {
	t.Helper()
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opt(&cfg)
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	for _, c := range mqsc {
		if r := m.Exec(c); !r.OK {
			t.Fatalf("%s: %s", c, r.Error)
		}
	}
	return cfg.Group
}

// connect connects to QM1 of group g.
func connect(t testing.TB, g group.Config) *mq.Conn {
	t.Helper()
	c, err := mq.Connect(mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	return c
}

func open(t testing.TB, c *mq.Conn, name string) *mq.Queue {
	t.Helper()
	q, err := c.Open(name, mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func put(t testing.TB, q *mq.Queue, m *mq.Message) {
	t.Helper()
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestViewCarriesHeader: a view has every header field a get has.
func TestViewCarriesHeader(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	exp := time.Now().Add(time.Hour).Round(0)
	for _, psist := range []mq.Persistence{mq.NotPersistent, mq.Persistent} {
		in := mq.Message{CorrelID: [24]byte{7}, Format: "MQSTR", Priority: 6, Persistence: psist, Expiry: exp,
			ReplyToQ: "REPLY.Q", ReplyToQMgr: "QMX", Properties: []byte("content-type=text/plain"), Body: []byte("body")}
		for _, sync := range []bool{false, true} {
			put(t, q, &in)
			v, err := q.GetView(mq.GetOptions{Syncpoint: sync})
			if err != nil {
				t.Fatal(err)
			}
			if v.MsgID != in.MsgID || v.CorrelID != in.CorrelID || v.Format != "MQSTR" || v.Priority != 6 || v.Persistence != psist ||
				v.BackoutCount != 0 || v.ReplyToQ != "REPLY.Q" || v.ReplyToQMgr != "QMX" || string(v.Properties) != "content-type=text/plain" ||
				!v.Expiry.Equal(exp) || time.Since(v.PutTime).Abs() > time.Minute || string(v.Bytes()) != "body" {
				t.Fatalf("persistence %d syncpoint %v: view %+v, put %+v", psist, sync, v, in)
			}
			if sync {
				if err := c.Commit(); err != nil {
					t.Fatal(err)
				}
			} else if err := v.Release(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// No expiry: the zero time, as Message.Expiry.
	put(t, q, &mq.Message{Body: []byte("x")})
	v, err := q.GetView(mq.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.Expiry.IsZero() || len(v.Properties) != 0 || v.ReplyToQ != "" {
		t.Fatalf("view of a bare message: %+v", v)
	}
	v.Release()
}

// TestViewAllocations: a view into a reused View costs no allocation,
// with or without properties.
func TestViewAllocations(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q) MAXDEPTH(5000)")
	c := connect(t, g)
	q := open(t, c, "Q")
	const runs = 200
	// AllocsPerRun counts every goroutine's allocations, the member's
	// (heartbeats, the unit supervisor's pass) too: the least of three
	// measurements is the view's own.
	measure := func(props []byte) float64 {
		least := -1.0
		for range 3 {
			n := measureOnce(t, q, runs, props)
			if least < 0 || n < least {
				least = n
			}
		}
		return least
	}
	if n := measure(nil); n != 0 {
		t.Errorf("a view of a message without properties: %v allocations, want 0", n)
	}
	if n := measure([]byte("content-type=text/plain")); n != 0 {
		t.Errorf("a view of a message with properties, into a reused View: %v allocations, want 0 (the properties' storage is reused)", n)
	}
}

// measureOnce puts runs+1 messages with props and returns the allocations
// per view of one of them into a reused View.
func measureOnce(t *testing.T, q *mq.Queue, runs int, props []byte) float64 {
	t.Helper()
	for i := 0; i < runs+1; i++ { // AllocsPerRun runs once more to warm up
		put(t, q, &mq.Message{Body: bytes.Repeat([]byte("b"), 300), Properties: props})
	}
	var v mq.View
	var failed error
	n := testing.AllocsPerRun(runs, func() {
		if err := q.GetViewInto(mq.GetOptions{}, &v); err != nil {
			failed = err
			return
		}
		if err := v.Release(); err != nil {
			failed = err
		}
	})
	if failed != nil {
		t.Fatal(failed)
	}
	return n
}

// TestGetsSkipExpired: an expired message is neither got nor viewed,
// and the get removes it.
func TestGetsSkipExpired(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	past := time.Now().Add(-time.Second)
	for _, sync := range []bool{false, true} {
		for _, psist := range []mq.Persistence{mq.NotPersistent, mq.Persistent} {
			put(t, q, &mq.Message{Body: []byte("old"), Expiry: past, Persistence: psist})
			put(t, q, &mq.Message{Body: []byte("new"), Persistence: psist})
			m, err := q.Get(mq.GetOptions{Syncpoint: sync})
			if err != nil || string(m.Body) != "new" {
				t.Fatalf("get (syncpoint %v, persistence %d): %v %+v", sync, psist, err, m)
			}
			put(t, q, &mq.Message{Body: []byte("old"), Expiry: past, Persistence: psist})
			put(t, q, &mq.Message{Body: []byte("new"), Persistence: psist})
			v, err := q.GetView(mq.GetOptions{Syncpoint: sync})
			if err != nil || string(v.Bytes()) != "new" {
				t.Fatalf("view (syncpoint %v, persistence %d): %v", sync, psist, err)
			}
			if !sync {
				v.Release()
			}
			if err := c.Commit(); err != nil {
				t.Fatal(err)
			}
			// Removed, not just skipped (a browse skips them too): the
			// depth counts every message on the queue, expired or not.
			if info := queueInfo(t, c, q); info.Depth != 0 {
				t.Fatalf("syncpoint %v, persistence %d: %d messages left on the queue", sync, psist, info.Depth)
			}
		}
	}
}

// queueInfo is the structure's record of q's depths.
func queueInfo(t *testing.T, c *mq.Conn, q *mq.Queue) lockfree.QueueInfo {
	t.Helper()
	s, err := mqconn.Of(c).Group.Structure(q.Def().CFStruct, false)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.LookupQueue(q.Name())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.QueueInfo(id)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// TestGetPriorityOrder: gets take priority 9 first, down to 0, and
// within a priority in the order of the puts.
func TestGetPriorityOrder(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	for i := 0; i < 30; i++ {
		put(t, q, &mq.Message{Body: []byte{byte(i)}, Priority: (i * 7) % 10})
	}
	for _, view := range []bool{false, true} {
		lastPrio, lastSeq := 10, -1
		for k := 0; k < 30; k++ {
			var prio, seq int
			if view {
				v, err := q.GetView(mq.GetOptions{Syncpoint: true})
				if err != nil {
					t.Fatal(err)
				}
				prio, seq = v.Priority, int(v.Bytes()[0])
			} else {
				m, err := q.Get(mq.GetOptions{Syncpoint: true})
				if err != nil {
					t.Fatal(err)
				}
				prio, seq = m.Priority, int(m.Body[0])
			}
			if prio != (seq*7)%10 || prio > lastPrio || prio == lastPrio && seq < lastSeq {
				t.Fatalf("view %v, get %d: priority %d message %d after priority %d message %d", view, k, prio, seq, lastPrio, lastSeq)
			}
			lastPrio, lastSeq = prio, seq
		}
		if err := c.Backout(); err != nil { // all back, for the views' round
			t.Fatal(err)
		}
	}
}

// TestGetPropertiesAreTheMessages: a get outside syncpoint of persistent
// messages (claimed as a view inside) hands each message properties of
// its own, not the reused view's storage.
func TestGetPropertiesAreTheMessages(t *testing.T) {
	g := member(t, "DEFINE QLOCAL(Q)")
	c := connect(t, g)
	q := open(t, c, "Q")
	put(t, q, &mq.Message{Body: []byte("1"), Persistence: mq.Persistent, Properties: []byte("first")})
	put(t, q, &mq.Message{Body: []byte("2"), Persistence: mq.Persistent, Properties: []byte("other")})
	m1, err := q.Get(mq.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := q.Get(mq.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(m1.Properties) != "first" || string(m2.Properties) != "other" {
		t.Fatalf("properties %q and %q, want first and other", m1.Properties, m2.Properties)
	}
}
