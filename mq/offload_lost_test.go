package mq_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// damageBody flips one byte in the body of message i (offloadBody) in
// the data set file of slot and returns the file's path.
func damageBody(t *testing.T, g group.Config, slot, i int) string {
	t.Helper()
	path := filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", slot))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte(fmt.Sprintf("msg %06d ", i)))
	if at < 0 {
		t.Fatalf("message %d's body is not in the data set file", i)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{data[at+5000] ^ 0xff}, int64(at+5000)); err != nil {
		t.Fatal(err)
	}
	return path
}

// wantLostReport gets the next message of dlq and checks it is the report
// of message id of queue dest whose body was lost in data set path: the
// original header, a DLH with RCMsgBodyLost, and a body naming the data
// set and the offset; never the damaged bytes.
func wantLostReport(t *testing.T, dlq *mq.Queue, id [24]byte, dest, path string, persistent bool) {
	t.Helper()
	m, err := dlq.Get(mq.GetOptions{})
	if err != nil {
		t.Fatalf("get of the report of a lost body from the dead-letter queue: %v", err)
	}
	if m.MsgID != id || m.Format != mq.FormatDeadLetter || m.Persistent != persistent {
		t.Fatalf("report: id %x format %q persistent %v, want %x %q %v", m.MsgID, m.Format, m.Persistent, id, mq.FormatDeadLetter, persistent)
	}
	d, rest, err := mq.ParseDLH(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != mq.RCMsgBodyLost || d.DestQ != dest {
		t.Fatalf("report's DLH: %+v, want reason %v, queue %s", d, mq.RCMsgBodyLost, dest)
	}
	if s := string(rest); !strings.Contains(s, path) || !strings.Contains(s, "offset") || len(rest) > 4096 {
		t.Fatalf("report's body %q does not name the data set %s and the offset", s, path)
	}
}

// TestOffloadDamagedBodyDeadLettered: with a dead-letter queue, a message
// whose offloaded body is damaged does not block its queue: a get moves
// it to the dead-letter queue (a DLH with RCMsgBodyLost and a body naming
// the data set and offset, no damaged bytes) in the getter's unit of work
// and goes on to the next message, outside and under syncpoint,
// persistent or not; with BOQNAME it goes there instead. Healthy messages
// are all got, in order, and the damaged runs are freed.
func TestOffloadDamagedBodyDeadLettered(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)",
		"DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)", "DEFINE QLOCAL(BQ)", "DEFINE QLOCAL(Q2) CFSTRUCT(OFF) BOQNAME(BQ)")
	c := connect(t, g)
	q, q2, dlq, bq := open(t, c, "Q"), open(t, c, "Q2"), open(t, c, "DLQ"), open(t, c, "BQ")
	var ids [8][24]byte
	for i := range ids {
		m := &mq.Message{Body: offloadBody(i, 100<<10), Persistence: mq.NotPersistent}
		if i == 2 || i == 6 {
			m.Persistence = mq.Persistent
		}
		to := q
		if i == 7 {
			to = q2
		}
		put(t, to, m)
		ids[i] = m.MsgID
	}
	slot := c.Member().Slot
	var path string
	for _, i := range []int{1, 2, 5, 7} {
		path = damageBody(t, g, slot, i)
	}
	// Outside syncpoint: 0, then 3 (1 and 2 moved).
	for _, want := range []int{0, 3} {
		m, err := q.Get(mq.GetOptions{})
		if err != nil || !bytes.Equal(m.Body, offloadBody(want, 100<<10)) {
			t.Fatalf("get outside syncpoint, want message %d: %v", want, err)
		}
	}
	wantLostReport(t, dlq, ids[1], "Q", path, false)
	wantLostReport(t, dlq, ids[2], "Q", path, true)
	// Under syncpoint: 4, then 6 (5 moved), in the unit of work.
	for _, want := range []int{4, 6} {
		m, err := q.Get(mq.GetOptions{Syncpoint: true})
		if err != nil || !bytes.Equal(m.Body, offloadBody(want, 100<<10)) {
			t.Fatalf("get under syncpoint, want message %d: %v", want, err)
		}
	}
	if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("the report of message 5 is visible before the commit: %v", err)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	wantLostReport(t, dlq, ids[5], "Q", path, false)
	if _, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("Q after the gets: %v", err)
	}
	// BOQNAME first.
	if _, err := q2.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("Q2's damaged message: %v, want it moved and no message", err)
	}
	wantLostReport(t, bq, ids[7], "Q2", path, false)
	if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("DLQ: %v, want empty", err)
	}
	st, err := mq.CheckOffload(c, "OFF", slot)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Runs != 0 {
		t.Fatalf("the data set still holds %d runs", st[0].Runs)
	}
}

// TestOffloadTruncatedDataSetDeadLettered: a data set truncated in the
// middle of a body: that message's get moves it to the dead-letter queue
// (smds.ErrTruncated) and returns the next one, held in the CF.
func TestOffloadTruncatedDataSetDeadLettered(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)",
		"DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)")
	c := connect(t, g)
	q, dlq := open(t, c, "Q"), open(t, c, "DLQ")
	big := &mq.Message{Body: offloadBody(1, 100<<10)}
	put(t, q, big)
	put(t, q, &mq.Message{Body: []byte("small")})
	path := filepath.Join(g.DataDir, "smds", fmt.Sprintf("OFF.M%d.smds", c.Member().Slot))
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte("msg 000001 "))
	if at < 0 {
		t.Fatal("message 1's body is not in the data set file")
	}
	if err := os.Truncate(path, int64(at+1000)); err != nil {
		t.Fatal(err)
	}
	if m, err := q.Get(mq.GetOptions{}); err != nil || string(m.Body) != "small" {
		t.Fatalf("get after the truncation: %v, want the small message", err)
	}
	wantLostReport(t, dlq, big.MsgID, "Q", path, false)
	if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("DLQ: %v, want empty", err)
	}
}

// TestOffloadDamagedViewsDeadLettered: GetViewsInto (a channel sender's
// batch, AMQP's consumer) moves a message whose offloaded body is damaged
// as Get does, under the caller's unit of work when syncpoint (its report
// visible at the commit), at once outside it, and goes on: the views
// returned are the healthy messages, in order, and a batch whose first
// message is lost gives the next one, not an error that leaves the lost
// message first on the queue (a channel backing its batch out and
// retrying for ever).
func TestOffloadDamagedViewsDeadLettered(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)",
		"DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)")
	c := connect(t, g)
	q, dlq := open(t, c, "Q"), open(t, c, "DLQ")
	var ids [12][24]byte
	for i := range ids {
		m := &mq.Message{Body: offloadBody(i, 100<<10), Persistence: mq.NotPersistent}
		if i == 2 || i == 9 {
			m.Persistence = mq.Persistent
		}
		put(t, q, m)
		ids[i] = m.MsgID
	}
	slot := c.Member().Slot
	var path string
	for _, i := range []int{1, 2, 4, 6, 9} {
		path = damageBody(t, g, slot, i)
	}
	wantViews := func(vs []mq.View, want ...int) {
		t.Helper()
		for j, i := range want {
			if !bytes.Equal(vs[j].Bytes(), offloadBody(i, 100<<10)) || vs[j].MsgID != ids[i] {
				t.Fatalf("view %d: not message %d", j, i)
			}
		}
	}
	// Under syncpoint: 0, 3, 5 of 0..5 (1, 2 and 4 moved at the commit).
	vs := make([]mq.View, 6)
	k, err := q.GetViewsInto(mq.GetOptions{Syncpoint: true}, vs)
	if err != nil || k != 3 {
		t.Fatalf("views under syncpoint of messages 0 to 5, 1, 2 and 4 damaged: %d, %v, want 3 and no error", k, err)
	}
	wantViews(vs, 0, 3, 5)
	if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("a report is visible before the commit: %v", err)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	wantLostReport(t, dlq, ids[1], "Q", path, false)
	wantLostReport(t, dlq, ids[2], "Q", path, true)
	wantLostReport(t, dlq, ids[4], "Q", path, false)
	// A batch of one whose message is lost gives the next: 7 (6 moved).
	k, err = q.GetViewsInto(mq.GetOptions{Syncpoint: true}, vs[:1])
	if err != nil || k != 1 {
		t.Fatalf("a view under syncpoint, message 6 damaged: %d, %v", k, err)
	}
	wantViews(vs, 7)
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	wantLostReport(t, dlq, ids[6], "Q", path, false)
	// Outside syncpoint: 8, 10, 11 (9 moved at once).
	k, err = q.GetViewsInto(mq.GetOptions{}, vs)
	if err != nil || k != 3 {
		t.Fatalf("views outside syncpoint of messages 8 to 11, 9 damaged: %d, %v, want 3 and no error", k, err)
	}
	wantViews(vs, 8, 10, 11)
	wantLostReport(t, dlq, ids[9], "Q", path, true)
	for j := range vs[:k] {
		if err := vs[j].Release(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := q.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("Q after the views: %v", err)
	}
	if _, err := dlq.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("DLQ: %v, want empty", err)
	}
	st, err := mq.CheckOffload(c, "OFF", slot)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Runs != 0 {
		t.Fatalf("the data set still holds %d runs", st[0].Runs)
	}
}

// TestOffloadBrowseLostBody: a browse passes a message whose offloaded
// body is lost (damaged, or past the end of a truncated data set): Next
// and NextWith return the healthy messages in order, then no message,
// never an error (a browser that retries would fail on it for ever); the
// lost ones stay on the queue for a get to move.
func TestOffloadBrowseLostBody(t *testing.T) {
	mq.SmallDataSets()
	g := member(t, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)",
		"DEFINE QLOCAL(DLQ)", "ALTER QMGR DEADQ(DLQ)")
	c := connect(t, g)
	q, dlq := open(t, c, "Q"), open(t, c, "DLQ")
	var ids [5][24]byte
	for i := range ids {
		m := &mq.Message{Body: offloadBody(i, 100<<10)}
		put(t, q, m)
		ids[i] = m.MsgID
	}
	slot := c.Member().Slot
	path := damageBody(t, g, slot, 1)
	damageBody(t, g, slot, 3)
	for _, with := range []bool{false, true} {
		b, err := q.Browse()
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for range 10 {
			var m *mq.Message
			if with {
				m, err = b.NextWith(mq.GetOptions{}, mq.BrowseOptions{})
			} else {
				m, err = b.Next(mq.GetOptions{})
			}
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				t.Fatalf("browse (NextWith %v) after messages %v, 1 and 3 damaged: %v", with, got, err)
			}
			i := -1
			for k := range ids {
				if ids[k] == m.MsgID {
					i = k
				}
			}
			if i < 0 || !bytes.Equal(m.Body, offloadBody(i, 100<<10)) {
				t.Fatalf("browse (NextWith %v): message %d not the one put", with, i)
			}
			got = append(got, i)
		}
		if fmt.Sprint(got) != "[0 2 4]" {
			t.Fatalf("browse (NextWith %v): messages %v, want [0 2 4]", with, got)
		}
	}
	// A get moves them.
	for _, want := range []int{0, 2, 4} {
		if m, err := q.Get(mq.GetOptions{}); err != nil || !bytes.Equal(m.Body, offloadBody(want, 100<<10)) {
			t.Fatalf("get, want message %d: %v", want, err)
		}
	}
	wantLostReport(t, dlq, ids[1], "Q", path, false)
	wantLostReport(t, dlq, ids[3], "Q", path, false)
}

// TestOffloadExpiredLostBodyFreed: the expiry scan removes an expired
// message whose offloaded body is damaged and frees its run (the free is
// the space map's alone, it never reads the body), like any other expired
// message's. The member's own scan is put off (its 5 s interval could
// come due on a slow machine between the expiry and the test's scan, which
// would then find nothing): the test's scan is the only one.
func TestOffloadExpiredLostBodyFreed(t *testing.T) {
	mq.SmallDataSets()
	g := memberWith(t, func(c *qm.Config) { c.ExpiryInterval = time.Hour },
		"DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)", "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	c := connect(t, g)
	q := open(t, c, "Q")
	exp := time.Now().Add(300 * time.Millisecond)
	for i := range 3 {
		m := &mq.Message{Body: offloadBody(i, 100<<10), Expiry: exp}
		if i == 1 {
			m.Persistence = mq.Persistent
		}
		put(t, q, m)
	}
	slot := c.Member().Slot
	damageBody(t, g, slot, 0)
	damageBody(t, g, slot, 1)
	time.Sleep(time.Until(exp) + 1100*time.Millisecond) // past the expiry, with the scan's coarse clock
	n, err := mq.RemoveExpired(c, "Q")
	if err != nil || n != 3 {
		t.Fatalf("expiry scan: %d removed, %v; want 3", n, err)
	}
	st, err := mq.CheckOffload(c, "OFF", slot)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Runs != 0 {
		t.Fatalf("the data set holds %d runs after the expiry scan removed every message", st[0].Runs)
	}
	if fe := mq.OffloadFreeErrors(c.Group(), "OFF"); fe.Count != 0 {
		t.Fatalf("failed frees: %d, the last %v", fe.Count, fe.Last)
	}
}
