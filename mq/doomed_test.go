package mq_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// startQM1 is member, returning the member too, for the tests that run
// RECOVER CFSTRUCT.
func startQM1(t *testing.T, mqsc ...string) (*qm.Member, group.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	for _, c := range mqsc {
		mustRun(t, m, c)
	}
	return m, cfg.Group
}

func mustRun(t *testing.T, m *qm.Member, cmd string) {
	t.Helper()
	if r := m.Exec(cmd); !r.OK {
		t.Fatalf("%s: %s", cmd, r.Error)
	}
}

// failAndRecover takes structure APPL1 out of service as failed, through
// c's mapping, and has member m recover it (RECOVER CFSTRUCT: a new file,
// filled from the logs).
func failAndRecover(t *testing.T, m *qm.Member, c *mq.Conn) {
	t.Helper()
	s, err := mqconn.Of(c).Group.Structure("APPL1", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	mustRun(t, m, "RECOVER CFSTRUCT(APPL1)") // "nothing was changed" when the member recovered it first
	if s.InService() {
		t.Fatal("the failed structure's old mapping is in service again")
	}
}

// TestCommitAfterStructureRecoveryBacksOut: a connection puts under
// syncpoint to a queue of APPL1; APPL1 fails and is recovered (the put,
// uncommitted, is gone with it); the connection opens the queue again in
// the recovered structure and puts again, then commits. Part of its unit
// of work was lost, so the commit must not succeed: it answers backed out,
// the put made after the recovery is backed out too, and the connection
// works on. A persistent unit of work writes no commit record: a rebuild
// of APPL1 from the logs gives neither put back.
func TestCommitAfterStructureRecoveryBacksOut(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    mq.Persistence
	}{{"nonpersistent", mq.NotPersistent}, {"persistent", mq.Persistent}} {
		t.Run(tc.name, func(t *testing.T) {
			m, g := startQM1(t, "DEFINE QLOCAL(Q)")
			c := connect(t, g)
			q := open(t, c, "Q")
			if err := q.Put(&mq.Message{Body: []byte("before"), Persistence: tc.p}, mq.PutOptions{Syncpoint: true}); err != nil {
				t.Fatal(err)
			}
			failAndRecover(t, m, c)
			q2 := open(t, c, "Q") // the connection's owner in the recovered APPL1
			if err := q2.Put(&mq.Message{Body: []byte("after"), Persistence: tc.p}, mq.PutOptions{Syncpoint: true}); err != nil {
				t.Fatal(err)
			}
			err := c.Commit()
			if mq.ReasonOf(err) != mq.RCBackedOut {
				t.Fatalf("commit of a unit of work whose put before APPL1's recovery was lost: %v (reason %v), want %v", err, mq.ReasonOf(err), mq.RCBackedOut)
			}
			reader := connect(t, g)
			rq := open(t, reader, "Q")
			if got := bodies(t, rq); got != "[]" {
				t.Fatalf("after the backed-out commit Q holds %s, want nothing", got)
			}
			// The connection works on: its next unit of work commits.
			if err := q2.Put(&mq.Message{Body: []byte("next"), Persistence: tc.p}, mq.PutOptions{Syncpoint: true}); err != nil {
				t.Fatal(err)
			}
			if err := c.Commit(); err != nil {
				t.Fatalf("commit of the next unit of work: %v", err)
			}
			if got := bodies(t, rq); got != "[next/0]" {
				t.Fatalf("after the next commit Q holds %s, want [next/0]", got)
			}
			if tc.p != mq.Persistent {
				return
			}
			// Put "next" back, committed, and rebuild APPL1 from the logs:
			// only it comes back.
			if err := q2.Put(&mq.Message{Body: []byte("next"), Persistence: tc.p}, mq.PutOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(g.CFDir + "/APPL1"); err != nil {
				t.Fatal(err)
			}
			mustRun(t, m, "RECOVER CFSTRUCT(APPL1)")
			if got := bodies(t, open(t, reader, "Q")); got != "[next/0]" {
				t.Fatalf("APPL1 rebuilt from the logs holds %s, want [next/0]", got)
			}
		})
	}
}

// TestCommitWithAFailedStructureBacksOut: a unit of work of
// non-persistent puts to queues of two structures; one structure fails
// before the commit (the connection has not used its recovered successor
// yet). Its share is lost, so the commit must not commit the other's: it
// backs the unit of work out and answers backed out.
func TestCommitWithAFailedStructureBacksOut(t *testing.T) {
	m, g := startQM1(t, "DEFINE QLOCAL(A)", "DEFINE CFSTRUCT(APP2) SIZE(32)", "DEFINE QLOCAL(B) CFSTRUCT(APP2)")
	c := connect(t, g)
	qa, qb := open(t, c, "A"), open(t, c, "B")
	for _, q := range []*mq.Queue{qa, qb} {
		if err := q.Put(&mq.Message{Body: []byte("m"), Persistence: mq.NotPersistent}, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := mqconn.Of(c).Group.Structure("APPL1", false)
	if err != nil {
		t.Fatal(err)
	}
	s.Fail()
	err = c.Commit()
	if mq.ReasonOf(err) != mq.RCBackedOut {
		t.Fatalf("commit of a unit of work whose share in failed APPL1 was lost: %v (reason %v), want %v", err, mq.ReasonOf(err), mq.RCBackedOut)
	}
	reader := connect(t, g)
	rb := open(t, reader, "B")
	if got := bodies(t, rb); got != "[]" {
		t.Fatalf("after the backed-out commit B (in APP2) holds %s, want nothing", got)
	}
	// The lost share was answered for once: the next units of work, in
	// APP2 and then in the recovered APPL1, commit.
	if err := qb.Put(&mq.Message{Body: []byte("next")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(); err != nil {
		t.Fatalf("commit of the next unit of work, in APP2: %v", err)
	}
	if got := bodies(t, rb); got != "[next/0]" {
		t.Fatalf("after the next commit B holds %s, want [next/0]", got)
	}
	mustRun(t, m, "RECOVER CFSTRUCT(APPL1)")
	qa2 := open(t, c, "A") // the connection's owner in the recovered APPL1
	if err := qa2.Put(&mq.Message{Body: []byte("again")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(); err != nil {
		t.Fatalf("commit of a unit of work in the recovered APPL1: %v", err)
	}
	if got := bodies(t, open(t, reader, "A")); got != "[again/0]" {
		t.Fatalf("after the commit in the recovered APPL1 A holds %s, want [again/0]", got)
	}
}

// TestCommitOfARevokedConnectionDecidesNothing: a unit of work spanning
// two structures records its commit decision in the connection's admin
// slot first (DecideCommit). When that fails, the connection was revoked
// (its slot fenced, as its recoverer does first): Commit answers
// connection broken, records no commit decision (the recoverer reads
// backout) and commits nothing in either structure, and a commit again
// fails the same way.
func TestCommitOfARevokedConnectionDecidesNothing(t *testing.T) {
	_, g := startQM1(t, "DEFINE QLOCAL(A)", "DEFINE CFSTRUCT(APP2) SIZE(32)", "DEFINE QLOCAL(B) CFSTRUCT(APP2)")
	c := connect(t, g)
	qa, qb := open(t, c, "A"), open(t, c, "B")
	for _, q := range []*mq.Queue{qa, qb} {
		if err := q.Put(&mq.Message{Body: []byte("m"), Persistence: mq.NotPersistent}, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
	}
	admin := mqconn.Of(c).Group.Admin()
	if err := admin.Fence(c.Tag()); err != nil { // a recoverer's first step
		t.Fatal(err)
	}
	if err := c.Commit(); mq.ReasonOf(err) != mq.RCConnectionBroken {
		t.Fatalf("commit of a revoked connection: %v (reason %v), want %v", err, mq.ReasonOf(err), mq.RCConnectionBroken)
	}
	if d := admin.Decision(c.Tag()); d != lockfree.OutcomeBackout {
		t.Fatalf("decision recorded for the revoked connection: %v, want backout", d)
	}
	reader := connect(t, g)
	for _, q := range []string{"A", "B"} {
		if got := bodies(t, open(t, reader, q)); got != "[]" {
			t.Fatalf("after the failed commit %s holds %s, want nothing", q, got)
		}
	}
	if err := c.Commit(); mq.ReasonOf(err) != mq.RCConnectionBroken {
		t.Fatalf("commit again: %v, want %v", err, mq.RCConnectionBroken)
	}
}
