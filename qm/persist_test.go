package qm

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/rlog"
)

// readPlog decodes a member's recovery log.
func readPlog(t *testing.T, cfg Config, name string) []plog.Record {
	t.Helper()
	r, err := rlog.NewReader(nil, LogDir(cfg.Group, name), 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []plog.Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		pr, err := plog.Decode(plog.Type(rec.Type), rec.Payload)
		if err != nil {
			t.Fatalf("record at LRSN %d: %v", rec.LRSN, err)
		}
		pr.Body = append([]byte(nil), pr.Body...)
		pr.Properties = append([]byte(nil), pr.Properties...)
		out = append(out, pr)
	}
}

// TestPersistentWorkIsLogged: persistent puts and destructive gets reach
// the member's log, durable when the put (outside syncpoint) or the commit
// returns; non-persistent messages never do; units of work are named by
// their commit or backout record.
func TestPersistentWorkIsLogged(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	put := func(body string, p mq.Persistence, sync bool) {
		t.Helper()
		if err := h.Put(&mq.Message{Body: []byte(body), Persistence: p, Priority: mq.PriorityAsQDef}, mq.PutOptions{Syncpoint: sync}); err != nil {
			t.Fatal(err)
		}
	}
	put("np1", mq.NotPersistent, false)
	put("p1", mq.Persistent, false) // durable when Put returns
	if n := len(readPlog(t, cfg, "QM1")); n != 1 {
		t.Fatalf("after one persistent put outside syncpoint the log holds %d records", n)
	}
	put("p2", mq.Persistent, true)
	put("np2", mq.NotPersistent, true)
	put("p3", mq.Persistent, true)
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	recs := readPlog(t, cfg, "QM1")
	if len(recs) != 4 || recs[3].Type != plog.TypeCommit || recs[1].UOW != recs[3].UOW || recs[2].UOW != recs[3].UOW {
		t.Fatalf("after a committed unit of work of two persistent puts: %+v", recs)
	}
	put("p4", mq.Persistent, true)
	if err := c.Backout(); err != nil {
		t.Fatal(err)
	}
	// Get everything: np1, p1 outside syncpoint, np2, p2, p3 in a unit of work.
	var got []string
	for i := range 5 {
		m, err := h.Get(mq.GetOptions{Syncpoint: i >= 2})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.Body))
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[np1 p1 p2 np2 p3]" {
		t.Fatalf("got %v", got)
	}
	if _, err := h.Get(mq.GetOptions{}); !errors.Is(err, mq.ErrNoMessage) {
		t.Fatalf("backed-out put came back: %v", err)
	}
	recs = readPlog(t, cfg, "QM1")
	var summary []string
	keys := map[uint64]string{}
	for _, r := range recs {
		switch r.Type {
		case plog.TypePut:
			keys[r.Key] = string(r.Body)
			summary = append(summary, fmt.Sprintf("put %s committed=%v", r.Body, r.Committed()))
		case plog.TypeGet:
			summary = append(summary, fmt.Sprintf("get %s committed=%v", keys[r.Key], r.Committed()))
		default:
			summary = append(summary, r.Type.String())
		}
	}
	want := "[put p1 committed=true put p2 committed=false put p3 committed=false commit put p4 committed=false backout " +
		"get p1 committed=true get p2 committed=false get p3 committed=false commit]"
	if fmt.Sprint(summary) != want {
		t.Fatalf("log:\n%v\nwant\n%v", summary, want)
	}
}
