package qm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/recovery/backup"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/vfs"
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
	c := connect(t, cfg, "QM1")
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

// TestCFLostRecoveredFromLogs: the group stops, its CF directory is
// removed (a host reboot), and the member that starts it again puts back
// every committed persistent message from the log, in order, and nothing
// else; twice, so that gets of recovered messages are logged too.
func TestCFLostRecoveredFromLogs(t *testing.T) {
	cfg := testConfig(t, "QM1")
	start := func() (*Member, *mq.Conn) { return startConnected(t, cfg) }
	open := func(c *mq.Conn, q string) *mq.Queue {
		t.Helper()
		h, err := c.Open(q, mq.OpenOptions{Input: true, Output: true, Browse: true})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	put := func(h *mq.Queue, prefix string, n int, p mq.Persistence, sync bool) {
		t.Helper()
		for i := range n {
			m := &mq.Message{Body: []byte(fmt.Sprintf("%s%03d", prefix, i)), Persistence: p, Priority: mq.PriorityAsQDef, Format: "MQSTR"}
			if err := h.Put(m, mq.PutOptions{Syncpoint: sync}); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func(h *mq.Queue, n int, sync bool) {
		t.Helper()
		for range n {
			if _, err := h.Get(mq.GetOptions{Syncpoint: sync}); err != nil {
				t.Fatal(err)
			}
		}
	}
	contents := func(h *mq.Queue) string {
		t.Helper()
		cur, err := h.Browse()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for {
			m, err := cur.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if !m.Persistent || m.Format != "MQSTR" {
				t.Fatalf("message %s: persistent %v, format %q", m.Body, m.Persistent, m.Format)
			}
			out = append(out, string(m.Body))
		}
		if len(out) == 0 {
			return ""
		}
		return out[0] + ".." + out[len(out)-1] + fmt.Sprintf(" (%d)", len(out))
	}
	reboot := func(m *Member, c *mq.Conn) (*Member, *mq.Conn) {
		t.Helper()
		c.Disconnect()
		m.Stop()
		if err := os.RemoveAll(cfg.Group.CFDir); err != nil {
			t.Fatal(err)
		}
		return start()
	}

	m, c := start()
	mustExec(t, m, "DEFINE QLOCAL(P) MAXDEPTH(100000)")
	mustExec(t, m, "DEFINE QLOCAL(P2)")
	p, p2 := open(c, "P"), open(c, "P2")
	put(p, "m", 100, mq.Persistent, false)
	put(p, "n", 50, mq.NotPersistent, false)
	put(p, "u", 20, mq.Persistent, true)
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	put(p, "x", 10, mq.Persistent, true)
	c.Backout()
	get(p, 30, true) // m000..m029
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	get(p, 10, false) // m030..m039
	get(p, 5, true)   // m040..m044, backed out: they stay
	c.Backout()
	put(p2, "q", 5, mq.Persistent, false)
	// A cleared queue stays cleared.
	mustExec(t, m, "DEFINE QLOCAL(P3)")
	p3 := open(c, "P3")
	put(p3, "k", 4, mq.Persistent, false)
	p3.Close()
	mustExec(t, m, "CLEAR QLOCAL(P3)")
	p3 = open(c, "P3")
	put(p3, "l", 1, mq.Persistent, false)
	put(p, "y", 3, mq.Persistent, true) // in flight when the group stops

	m, c = reboot(m, c)
	p, p2 = open(c, "P"), open(c, "P2")
	want := "m040..u019 (80)"
	if got := contents(p); got != want {
		t.Fatalf("P after the CF was lost: %s, want %s", got, want)
	}
	if got := contents(p2); got != "q000..q004 (5)" {
		t.Fatalf("P2 after the CF was lost: %s", got)
	}
	if got := contents(open(c, "P3")); got != "l000..l000 (1)" {
		t.Fatalf("P3, cleared, after the CF was lost: %s", got)
	}
	// Gets of recovered messages are logged by their keys; new puts get
	// new keys.
	get(p, 10, false) // m040..m049
	put(p, "z", 2, mq.Persistent, false)
	m, c = reboot(m, c)
	p = open(c, "P")
	if got := contents(p); got != "m050..z001 (72)" {
		t.Fatalf("P after the CF was lost again: %s", got)
	}
	c.Disconnect()
	m.Stop()
}

// TestBackupThenCFLost: a fuzzy backup taken while a unit of work is in
// flight (its put logged before the backup, its commit after), the log
// segments below the backup released, then the CF lost: the backup and the
// logs after it give back exactly what was committed.
func TestBackupThenCFLost(t *testing.T) {
	cfg := testConfig(t, "QM1")
	cfg.LogSegmentSize = 16 << 10 // many segments, so some are released
	cfg.LogArchiveDir = t.TempDir()
	start := func() (*Member, *mq.Conn) { return startConnected(t, cfg) }
	m, c := start()
	mustExec(t, m, "DEFINE QLOCAL(P) MAXDEPTH(100000)")
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	put := func(conn *mq.Conn, q *mq.Queue, prefix string, n int, sync bool) {
		t.Helper()
		for i := range n {
			if err := q.Put(&mq.Message{Body: []byte(fmt.Sprintf("%s%03d", prefix, i)), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: sync}); err != nil {
				t.Fatal(err)
			}
		}
	}
	get := func(q *mq.Queue, n int) {
		t.Helper()
		for range n {
			if _, err := q.Get(mq.GetOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put(c, h, "a", 300, false)
	get(h, 10) // a000..a009
	if r := mustExec(t, m, "DISPLAY CFSTATUS(APPL1) TYPE(BACKUP)"); !strings.Contains(r.Text, "BKUPLRSN(0)") || strings.Contains(r.Text, "LOGBYTES(0)") {
		t.Fatalf("backup status before any backup:\n%s", r.Text)
	}
	// Two backups before the one that matters: the second newest (the
	// fallback if the newest is damaged) bounds what the log keeps, and
	// only the two newest are kept.
	segsBefore, _ := os.ReadDir(LogDir(cfg.Group, "QM1"))
	mustExec(t, m, "BACKUP CFSTRUCT(APPL1)")
	mustExec(t, m, "BACKUP CFSTRUCT(APPL1)")
	// A unit of work in flight across the backup, on another connection.
	c2 := connect(t, cfg, "QM1")
	h2, _ := c2.Open("P", mq.OpenOptions{Output: true})
	put(c2, h2, "u", 5, true)
	// A put outside syncpoint waits until it is durable, and with it the
	// unit of work's puts before it: their LRSNs are below the backup's
	// start.
	put(c2, h2, "v", 1, false)
	r := mustExec(t, m, "BACKUP CFSTRUCT(APPL1)")
	t.Log(r.Text)
	if st := mustExec(t, m, "DISPLAY CFSTATUS(APPL1) TYPE(BACKUP)"); !strings.Contains(st.Text, "BKUPMSGS(291)") {
		t.Fatalf("backup status after the backup:\n%s", st.Text)
	} else {
		t.Log(st.Text)
	}
	segsAfter, _ := os.ReadDir(LogDir(cfg.Group, "QM1"))
	if len(segsAfter) >= len(segsBefore) {
		t.Fatalf("no log segment released by the backup: %d before, %d after", len(segsBefore), len(segsAfter))
	}
	if archived, _ := os.ReadDir(cfg.LogArchiveDir + "/QM1"); len(archived) == 0 {
		t.Fatal("released segments were not archived")
	}
	if list, _ := backup.List(cfg.Group.DataDir, "APPL1"); len(list) != 2 {
		t.Fatalf("%d backups kept, want 2", len(list))
	}
	var recorded []defs.Backup
	m.Repo().View(func(tx *defs.Tx) error { var err error; recorded, err = tx.Backups("APPL1"); return err })
	if len(recorded) != 2 || recorded[0].Messages != 291 || recorded[0].Start <= recorded[1].Start {
		t.Fatalf("backups recorded in the repository: %+v", recorded)
	}
	if err := c2.Commit(); err != nil {
		t.Fatal(err)
	}
	c2.Disconnect()
	get(h, 5) // a010..a014
	put(c, h, "b", 5, false)
	c.Disconnect()
	m.Stop()
	if err := os.RemoveAll(cfg.Group.CFDir); err != nil {
		t.Fatal(err)
	}
	m, c = start()
	defer m.Stop()
	defer c.Disconnect()
	h, _ = c.Open("P", mq.OpenOptions{Input: true})
	got := drainBodies(t, h)
	var want []string
	for i := 15; i < 300; i++ {
		want = append(want, fmt.Sprintf("a%03d", i))
	}
	// The backup found the unit of work's puts uncommitted and kept their
	// places, before v000, where the CF held them.
	for i := range 5 {
		want = append(want, fmt.Sprintf("u%03d", i))
	}
	want = append(want, "v000")
	for i := range 5 {
		want = append(want, fmt.Sprintf("b%03d", i))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the CF was lost: %d messages %v\nwant %d %v", len(got), got, len(want), want)
	}
	if r := m.Exec("BACKUP CFSTRUCT(NOSUCH)"); r.OK {
		t.Fatal("backup of an unknown structure")
	}
}

// TestRecoverCommand: RECOVER of a structure in service changes nothing;
// after its file is removed, RECOVER (or the member by itself) brings its
// persistent messages back, and applications carry on after reopening.
func TestRecoverCommand(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, _ := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	for i := range 20 {
		p := mq.Persistent
		if i%2 == 1 {
			p = mq.NotPersistent
		}
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("m%02d", i)), Persistence: p}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if r := mustExec(t, m, "RECOVER CFSTRUCT(APPL1)"); !strings.Contains(r.Text, "nothing was changed") {
		t.Fatalf("recover of a structure in service: %s", r.Text)
	}
	if err := os.Remove(cfg.Group.CFDir + "/APPL1"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, m, "RECOVER CFSTRUCT(APPL1)")
	if _, err := h.Get(mq.GetOptions{}); mq.ReasonOf(err) != mq.RCCFStructFailed {
		t.Fatalf("get through a handle on the failed structure: %v", err)
	}
	h.Close()
	h, err := c.Open("P", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	got := drainBodies(t, h)
	if fmt.Sprint(got) != "[m00 m02 m04 m06 m08 m10 m12 m14 m16 m18]" {
		t.Fatalf("after the recovery: %v", got)
	}
}

// TestLogFailureFailsPersistentWork: when the log's disk fails, a
// persistent put outside syncpoint and a commit of persistent work fail
// with a clear reason instead of claiming durability, and nothing of them
// becomes visible; a get of a persistent message fails and leaves it in
// place; non-persistent work goes on; all works again with the disk.
func TestLogFailureFailsPersistentWork(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(1)
	cfg.LogFS = disk
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, _ := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	put := func(body string, p mq.Persistence, sync bool) error {
		return h.Put(&mq.Message{Body: []byte(body), Persistence: p}, mq.PutOptions{Syncpoint: sync})
	}
	if err := put("before", mq.Persistent, false); err != nil {
		t.Fatal(err)
	}
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			return 0, errors.New("EIO")
		}
		return n, nil
	})
	if err := put("lost", mq.Persistent, false); mq.ReasonOf(err) != mq.RCResourceProblem {
		t.Fatalf("persistent put with a failed log: %v", err)
	}
	if err := put("uow", mq.Persistent, true); err != nil && mq.ReasonOf(err) != mq.RCResourceProblem {
		t.Fatalf("persistent put under syncpoint with a failed log: %v", err)
	}
	if err := c.Commit(); err == nil {
		t.Fatal("a commit of persistent work with a failed log succeeded")
	} else {
		t.Log(err)
	}
	if err := put("np", mq.NotPersistent, false); err != nil {
		t.Fatalf("non-persistent put with a failed log: %v", err)
	}
	if got := fmt.Sprint(browseBodies(t, c, "P")); got != "[before np]" {
		t.Fatalf("visible after the log failed: %v", got)
	}
	// A get of a persistent message is made only once its record is
	// durable: with the log failed it fails and the message stays; a
	// non-persistent one is got.
	if _, err := h.Get(mq.GetOptions{}); mq.ReasonOf(err) != mq.RCResourceProblem {
		t.Fatalf("get of a persistent message with a failed log: %v", err)
	}
	if got := fmt.Sprint(browseBodies(t, c, "P")); got != "[before np]" {
		t.Fatalf("after a get that failed: %v", got)
	}
	// Once the disk works again, so does the log, and the get.
	disk.SetFault(nil)
	eventually(t, "a persistent get once the log writes again", func() bool {
		m, err := h.Get(mq.GetOptions{})
		return err == nil && string(m.Body) == "before"
	})
	if m, err := h.Get(mq.GetOptions{}); err != nil || string(m.Body) != "np" {
		t.Fatalf("get of the non-persistent message: %v", err)
	}
}

// TestRecAutoNo: a structure defined RECAUTO(NO) stays failed after its
// file is removed until RECOVER CFSTRUCT.
func TestRecAutoNo(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE CFSTRUCT(MANUAL) SIZE(24) RECAUTO(NO)")
	if r := mustExec(t, m, "DISPLAY CFSTRUCT(MANUAL)"); !strings.Contains(r.Text, "RECAUTO(NO)") {
		t.Fatalf("display: %s", r.Text)
	}
	mustExec(t, m, "DEFINE QLOCAL(M) CFSTRUCT(MANUAL)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, _ := c.Open("M", mq.OpenOptions{Input: true, Output: true})
	if err := h.Put(&mq.Message{Body: []byte("kept"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cfg.Group.CFDir + "/MANUAL"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // several checks of the member
	if _, err := os.Stat(cfg.Group.CFDir + "/MANUAL"); err == nil {
		t.Fatal("a RECAUTO(NO) structure was recovered by itself")
	}
	m.Exec("DISPLAY QLOCAL(M)") // a command that needs the structure
	m.Exec("DISPLAY CFSTATUS(MANUAL)")
	if _, err := os.Stat(cfg.Group.CFDir + "/MANUAL"); err == nil {
		t.Fatal("a command recreated a RECAUTO(NO) structure")
	}
	mustExec(t, m, "RECOVER CFSTRUCT(MANUAL)")
	h.Close()
	h, err := c.Open("M", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := h.Get(mq.GetOptions{}); err != nil || string(msg.Body) != "kept" {
		t.Fatalf("after RECOVER: %v %v", msg, err)
	}
}

// TestFailedByCheckerIsRecovered: a structure taken out of service as
// failed (what qmgr check --fail does to one the checker finds damaged)
// is recovered by the member, persistent messages and all.
func TestFailedByCheckerIsRecovered(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, _ := c.Open("P", mq.OpenOptions{Output: true})
	for i := range 5 {
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprint(i)), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := m.Group().Structure("APPL1", false)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Fail() {
		t.Fatal("Fail")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, err := m.Group().Structure("APPL1", false)
		if err == nil && ns != s && ns.InService() {
			id, _ := ns.LookupQueue("P")
			if d := ns.Depth(id); d != 5 {
				t.Fatalf("recovered structure holds %d messages, want 5", d)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed structure was not recovered; the member's log:\n%s", logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startConnected starts a member whose test stops it (and may start it
// again on the same directories) and connects to it.
func startConnected(t *testing.T, cfg Config) (*Member, *mq.Conn) {
	t.Helper()
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(t.Context())
	return m, connect(t, cfg, "QM1")
}

// TestFailedRecoveryIsRetried: an automatic structure recovery that fails
// is tried again until it succeeds.
func TestFailedRecoveryIsRetried(t *testing.T) {
	var calls atomic.Int32
	testHookRecover = func(string) error {
		if calls.Add(1) == 1 {
			return errors.New("injected: the first recovery fails")
		}
		return nil
	}
	// Reset after the member stops (cleanups run last first).
	t.Cleanup(func() { testHookRecover = func(string) error { return nil } })
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	putOne(t, cfg, "QM1", "P", "kept")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("persistent"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := m.Group().Structure("APPL1", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ns, err := m.Group().Structure("APPL1", false)
		if err == nil && ns != s && ns.InService() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not recovered after a failed attempt; the member's log:\n%s", logs())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := calls.Load(); n < 2 {
		t.Fatalf("%d recovery attempts", n)
	}
	if !strings.Contains(logs(), "trying again") {
		t.Fatal("the failed attempt was not logged")
	}
}

// drainBodies gets every message of h (outside syncpoint) and returns
// their bodies in order.
func drainBodies(t *testing.T, h *mq.Queue) []string {
	t.Helper()
	var got []string
	for {
		msg, err := h.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(msg.Body))
	}
}
