package qm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/procid"
	"github.com/qmgr/qmgr/vfs"
)

// rebuiltFromLogs removes structure APPL1's file, has member m recover it
// (from the newest backup and the logs), and browses queue q through c.
func rebuiltFromLogs(t *testing.T, cfg Config, m *Member, c *mq.Conn, q string) []string {
	t.Helper()
	if err := os.Remove(cfg.Group.CFDir + "/APPL1"); err != nil {
		t.Fatal(err)
	}
	mustExec(t, m, "RECOVER CFSTRUCT(APPL1)")
	return browseBodies(t, c, q)
}

// startLoneOp starts a member with queue P holding persistent message g0,
// a connection of the test's, and an application armed to be killed at
// crash point, which opens P and runs cmds but the last (see killAt).
func startLoneOp(t *testing.T, point string, cmds []string) (Config, func() string, *Member, *mq.Conn, *testProc) {
	t.Helper()
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	t.Cleanup(func() { c.Disconnect() })
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("g0"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT="+point)
	for _, cmd := range append([]string{"open P"}, cmds[:len(cmds)-1]...) {
		if r := app.do(cmd); r != "reason 0 <nil>" {
			t.Fatalf("%s: %s", cmd, r)
		}
	}
	return cfg, logs, m, c, app
}

// killAt sends app its last command, cmd, and waits until it was killed
// at crash point.
func killAt(t *testing.T, app *testProc, point, cmd string) {
	t.Helper()
	fmt.Fprintln(app.in, cmd)
	app.in.Close() // an application not killed at the point ends after cmd, instead of waiting for more
	if err := app.cmd.Wait(); err == nil {
		t.Fatalf("the application was not killed at %s", point)
	}
}

// browseBodies lists the bodies on queue q, in order, without getting them.
func browseBodies(t *testing.T, c *mq.Conn, q string) []string {
	t.Helper()
	h, err := c.Open(q, mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cur, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(m.Body))
	}
}

// TestCommitCrashKeepsCFAndLogAgreeing: an application is SIGKILLed at each
// step of the commit of a persistent unit of work (a get and two puts).
// Once its member recovered the connection, the queue must hold exactly
// what a rebuild of the structure from the recovery log gives: a unit of
// work is committed in the CF only if its commit is durable, and backed
// out in the CF only if the log will never say it committed. Before the
// commit is known durable the unit of work backs out; once the decision
// is recorded it commits.
func TestCommitCrashKeepsCFAndLogAgreeing(t *testing.T) {
	for _, tc := range []struct {
		point     string
		committed bool
	}{
		{"mq.commit.appended", false},
		{"mq.commit.durable", false},
		{"mq.commit.decided", true},
		{"lockfree.commit.put", true},
	} {
		t.Run(tc.point, func(t *testing.T) {
			cfg := testConfig(t, "QM1")
			logs := logTo(t, &cfg)
			m := startMember(t, cfg)
			mustExec(t, m, "DEFINE QLOCAL(P)")
			c := connect(t, cfg, "QM1")
			defer c.Disconnect()
			h, err := c.Open("P", mq.OpenOptions{Output: true})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("g%d", i)), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			h.Close()

			app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT="+tc.point)
			for _, cmd := range []string{"open P", "getsp P", "pput P u0", "pput P u1"} {
				if r := app.do(cmd); r != "reason 0 <nil>" && r != "got g0" {
					t.Fatalf("%s: %s", cmd, r)
				}
			}
			fmt.Fprintln(app.in, "commit")
			if err := app.cmd.Wait(); err == nil {
				t.Fatalf("the application was not killed at %s", tc.point)
			}
			eventually(t, "the member recovers the connection", func() bool {
				_, held := m.g.Admin().Owner(app.slot)
				return !held
			})
			inCF := browseBodies(t, c, "P")

			fromLog := rebuiltFromLogs(t, cfg, m, c, "P")
			if fmt.Sprint(inCF) != fmt.Sprint(fromLog) {
				t.Fatalf("killed at %s: the CF held %v after the connection's recovery, the log gives back %v\n%s", tc.point, inCF, fromLog, logs())
			}
			want := "[g0 g1 g2]"
			if tc.committed {
				want = "[g1 g2 u0 u1]"
			}
			if got := fmt.Sprint(inCF); got != want {
				t.Fatalf("killed at %s: the queue holds %s, want %s", tc.point, got, want)
			}
		})
	}
}

// TestCommitWithFailedLogIsBackedOut: the log's disk fails while a commit
// of persistent work waits for its record. The commit is not known durable,
// so it must not happen in the CF: it is backed out and says so. After a
// power cut of the log's disk, the structure rebuilt from the log holds
// what the CF held.
func TestCommitWithFailedLogIsBackedOut(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(1)
	cfg.LogFS = disk
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(t.Context())
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("g0"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("u0"), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			return 0, errors.New("EIO")
		}
		return n, nil
	})
	if err := c.Commit(); mq.ReasonOf(err) != mq.RCBackedOut {
		t.Fatalf("commit whose record could not be made durable: %v, want backed out (%d)", err, mq.RCBackedOut)
	}
	inCF := browseBodies(t, c, "P")
	if fmt.Sprint(inCF) != "[g0]" {
		t.Fatalf("after a commit that failed: the queue holds %v, want [g0]", inCF)
	}
	c.Disconnect()
	m.Stop()

	disk.Crash(false)
	disk.Restart()
	disk.SetFault(nil)
	if err := os.RemoveAll(cfg.Group.CFDir); err != nil {
		t.Fatal(err)
	}
	m = startMember(t, cfg)
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	if fromLog := browseBodies(t, c, "P"); fmt.Sprint(fromLog) != fmt.Sprint(inCF) {
		t.Fatalf("the CF held %v, the log gives back %v", inCF, fromLog)
	}
}

// TestCommitWithFailedSyncIsBackedOut: TestCommitWithFailedLogIsBackedOut
// without the power cut: the fsync failed, but the commit record's bytes
// reached the file anyway (as they may after EIO on a real disk). Only the
// recorded abort keeps the rebuild from committing the unit of work.
func TestCommitWithFailedSyncIsBackedOut(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(1)
	cfg.LogFS = disk
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(t.Context())
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("g0"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("u0"), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			return 0, errors.New("EIO")
		}
		return n, nil
	})
	if err := c.Commit(); mq.ReasonOf(err) != mq.RCBackedOut {
		t.Fatalf("commit: %v", err)
	}
	inCF := browseBodies(t, c, "P")
	c.Disconnect()
	m.Stop()
	disk.SetFault(nil)
	if err := os.RemoveAll(cfg.Group.CFDir); err != nil {
		t.Fatal(err)
	}
	logs := logTo(t, &cfg)
	m = startMember(t, cfg)
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	if fromLog := browseBodies(t, c, "P"); fmt.Sprint(fromLog) != fmt.Sprint(inCF) {
		t.Fatalf("the CF held %v, the log gives back %v\n%s", inCF, fromLog, logs())
	}
}

// TestRecoveryDoesNotReplayAnUndecidedCommit: an application dies between its
// durable commit record and its decision. Its member's recovery of the
// connection must record the abort before anyone replays the log; a
// structure recovery that runs meanwhile does not wait for that (waitOps
// stops waiting as soon as the owner is not "active and alive") and
// replays the commit. Here the member's repository write is held up by
// another writer (SQLite busy) to make the window wide.
func TestRecoveryDoesNotReplayAnUndecidedCommit(t *testing.T) {
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("g%d", i)), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()

	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT=mq.commit.durable")
	for _, cmd := range []string{"open P", "getsp P", "pput P u0", "pput P u1"} {
		if r := app.do(cmd); r != "reason 0 <nil>" && r != "got g0" {
			t.Fatalf("%s: %s", cmd, r)
		}
	}
	// Another writer holds the repository: the member's AbortUOW waits.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(cfg.Group.DataDir, defs.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(app.in, "commit")
	if err := app.cmd.Wait(); err == nil {
		t.Fatal("the application was not killed")
	}
	// The structure fails now and is recovered from the log.
	if err := os.Remove(cfg.Group.CFDir + "/APPL1"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if r := m.Exec("RECOVER CFSTRUCT(APPL1)"); !r.OK && !strings.Contains(r.Error, "nothing") {
		t.Logf("recover: %s", r.Error)
	}
	t.Logf("recover took %v", time.Since(t0))
	afterRecover := browseBodies(t, c, "P")
	conn.ExecContext(context.Background(), "ROLLBACK")
	conn.Close()
	eventually(t, "the member recovers the connection", func() bool {
		_, held := m.g.Admin().Owner(app.slot)
		return !held
	})
	inCF := browseBodies(t, c, "P")
	fromLog := rebuiltFromLogs(t, cfg, m, c, "P")
	t.Logf("after the racing recovery: %v; after the connection's recovery: %v; rebuilt from the log again: %v", afterRecover, inCF, fromLog)
	if fmt.Sprint(inCF) != fmt.Sprint(fromLog) {
		t.Fatalf("CF and log disagree: the CF holds %v, the log gives back %v\n%s", inCF, fromLog, logs())
	}
}

// TestAbortedKeyIsNeverReused: after the log failed under a commit (its
// key recorded aborted) and the CF is lost (host reboot), the LRSN counter
// is rebuilt from the logs only; the aborted key, never logged durably,
// is handed out again to a new unit of work, whose commit a later rebuild
// then skips.
func TestAbortedKeyIsNeverReused(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(1)
	cfg.LogFS = disk
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(t.Context())
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("g0"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			return 0, errors.New("EIO")
		}
		return n, nil
	})
	if err := c.Commit(); mq.ReasonOf(err) != mq.RCBackedOut {
		t.Fatalf("commit: %v", err)
	}
	c.Disconnect()
	m.Stop()
	disk.Crash(false)
	disk.Restart()
	disk.SetFault(nil)
	if err := os.RemoveAll(cfg.Group.CFDir); err != nil { // a host reboot
		t.Fatal(err)
	}
	logs := logTo(t, &cfg)
	m = startMember(t, cfg)
	var aborted map[uint64]bool
	m.repo.View(func(tx *defs.Tx) error { var err error; aborted, err = tx.AbortedUOWs(0); return err })
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err = c.Open("P", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	if msg, err := h.Get(mq.GetOptions{Syncpoint: true}); err != nil || string(msg.Body) != "g0" {
		t.Fatalf("get: %v", err)
	}
	if err := c.Commit(); err != nil {
		t.Fatal(err)
	}
	h.Close()
	inCF := browseBodies(t, c, "P")
	fromLog := rebuiltFromLogs(t, cfg, m, c, "P")
	t.Logf("aborted keys %v; CF %v; rebuilt %v", aborted, inCF, fromLog)
	if fmt.Sprint(inCF) != fmt.Sprint(fromLog) {
		t.Fatalf("a committed unit of work was dropped by the rebuild: the CF held %v, the log gives back %v\n%s", inCF, fromLog, logs())
	}
}

// TestAbandonedCommitIsResolved: the log fails under a commit and the
// abort cannot be recorded either (the repository fails three times). The
// commit answers "connection broken" and changes nothing; the connection
// keeps trying, and once the abort is recorded the unit of work is backed
// out while the application still runs; the rebuild from the log agrees.
func TestAbandonedCommitIsResolved(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(1)
	cfg.LogFS = disk
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	putOne(t, cfg, "QM1", "P", "g0")
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT=mq.commit.abort:1:fail:3")
	for _, cmd := range []string{"open P", "getsp P", "pput P u0"} {
		if r := app.do(cmd); r != "reason 0 <nil>" && r != "got g0" {
			t.Fatalf("%s: %s", cmd, r)
		}
	}
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			return 0, errors.New("EIO")
		}
		return n, nil
	})
	if r := app.do("commit"); !strings.HasPrefix(r, fmt.Sprintf("reason %d ", mq.RCConnectionBroken)) {
		t.Fatalf("commit with a failed log and repository: %s", r)
	}
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	if got := fmt.Sprint(browseBodies(t, c, "P")); got != "[]" {
		t.Fatalf("P holds %s while the commit is unresolved, want nothing visible", got)
	}
	eventually(t, "the abandoned unit of work is backed out", func() bool { return fmt.Sprint(browseBodies(t, c, "P")) == "[g0]" })
	if r := app.do("commit"); !strings.HasPrefix(r, fmt.Sprintf("reason %d ", mq.RCConnectionBroken)) {
		t.Fatalf("a call on the broken connection: %s", r)
	}
	var aborted map[uint64]bool
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; aborted, err = tx.AbortedUOWs(0); return err }); err != nil || len(aborted) != 1 {
		t.Fatalf("aborted units of work: %v %v", aborted, err)
	}
}

// TestLoneOpCrashKeepsCFAndLogAgreeing: an application is SIGKILLed at the
// steps of a persistent put or get outside syncpoint. Before its record is
// known durable the put must not happen and the get must leave the message;
// once it is decided, both must happen; in the CF after the member
// recovered the connection and in a rebuild of the structure from the log
// alike (before, a get outside syncpoint removed the message whatever
// became of its record, and a rebuild brought it back; and a decided one
// killed before it reached the CF was undone there and kept in the log).
func TestLoneOpCrashKeepsCFAndLogAgreeing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a child process killed at each crash point")
	}
	for _, tc := range []struct {
		point string
		cmds  []string // the last is killed at point
		want  string
	}{
		{"mq.put.appended", []string{"pputnow P x"}, "[g0]"},
		{"mq.put.durable", []string{"pputnow P x"}, "[g0]"},
		// A persistent put first: the connection logs from then on (the
		// get points are not armed for it).
		{"mq.get.appended", []string{"pputnow P y", "getnow P"}, "[g0 y]"},
		{"mq.get.durable", []string{"pputnow P y", "getnow P"}, "[g0 y]"},
		// The first get of a connection that never logged anything
		// (the point's second spelling: a subtest of its own).
		{"mq.get.durable:1", []string{"getnow P"}, "[g0]"},
		// Decided (the record is durable) but not yet carried out in the
		// CF: the recovery rolls it forward.
		{"mq.put.decided", []string{"pputnow P x"}, "[g0 x]"},
		{"mq.get.decided", []string{"pputnow P y", "getnow P"}, "[y]"},
		{"mq.get.decided:1", []string{"getnow P"}, "[]"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			cfg, logs, m, c, app := startLoneOp(t, tc.point, tc.cmds)
			killAt(t, app, tc.point, tc.cmds[len(tc.cmds)-1])
			eventually(t, "the member recovers the connection", func() bool {
				_, held := m.g.Admin().Owner(app.slot)
				return !held
			})
			inCF := browseBodies(t, c, "P")
			fromLog := rebuiltFromLogs(t, cfg, m, c, "P")
			if fmt.Sprint(inCF) != fmt.Sprint(fromLog) {
				t.Fatalf("killed at %s: the CF held %v after the connection's recovery, the log gives back %v\n%s", tc.point, inCF, fromLog, logs())
			}
			if got := fmt.Sprint(inCF); got != tc.want {
				t.Fatalf("killed at %s: the queue holds %s, want %s", tc.point, got, tc.want)
			}
		})
	}
}

// TestReleaseViewsCrashKeepsCFAndLogAgreeing: an application holding
// views of three persistent messages releases the first and the last with
// one ReleaseViews and is SIGKILLed at each of its steps (adopting each
// view into the unit of work, the commit's). Before the commit is decided
// every message must stay; once it is, both released ones must be gone;
// in the CF after the member recovered the connection (which the checker
// passes) and in a rebuild of the structure from the log alike.
func TestReleaseViewsCrashKeepsCFAndLogAgreeing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a child process killed at each crash point")
	}
	cmds := []string{"pputnow P y", "pputnow P z", "views P 3", "release 0 2"}
	for _, tc := range []struct{ point, want string }{
		{"lockfree.adopt.held:1", "[g0 y z]"},
		{"lockfree.adopt.counted:1", "[g0 y z]"},
		{"lockfree.adopt.held:2", "[g0 y z]"},
		{"lockfree.adopt.counted:2", "[g0 y z]"},
		{"mq.commit.begin", "[g0 y z]"},
		{"mq.commit.appended", "[g0 y z]"},
		{"mq.commit.durable", "[g0 y z]"},
		{"mq.commit.decided", "[y]"},
		{"lockfree.commit.get:1", "[y]"},
		{"lockfree.commit.done", "[y]"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			cfg, logs, m, c, app := startLoneOp(t, tc.point, cmds)
			killAt(t, app, tc.point, cmds[len(cmds)-1])
			eventually(t, "the member recovers the connection", func() bool {
				_, held := m.g.Admin().Owner(app.slot)
				return !held
			})
			s, err := m.g.Structure("APPL1", false)
			if err != nil {
				t.Fatal(err)
			}
			if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
				t.Fatalf("killed at %s: %v", tc.point, r)
			}
			inCF := browseBodies(t, c, "P")
			fromLog := rebuiltFromLogs(t, cfg, m, c, "P")
			if fmt.Sprint(inCF) != fmt.Sprint(fromLog) {
				t.Fatalf("killed at %s: the CF held %v after the connection's recovery, the log gives back %v\n%s", tc.point, inCF, fromLog, logs())
			}
			if got := fmt.Sprint(inCF); got != tc.want {
				t.Fatalf("killed at %s: the queue holds %s, want %s", tc.point, got, tc.want)
			}
		})
	}
}

// TestReleaseViewsAcrossStructuresCrash: one ReleaseViews of views of
// queues in two structures (P in APPL1, Q2 in APP2), the application
// SIGKILLed at its steps, among them between the commit in the first
// structure and the second: both structures end the same way (kept before
// the commit is decided, removed after), pass the checker, and agree with
// their rebuilds from the log.
func TestReleaseViewsAcrossStructuresCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a child process killed at each crash point")
	}
	for _, tc := range []struct{ point, want string }{
		{"lockfree.adopt.counted:2", "[g0] [h0]"},
		{"mq.commit.durable", "[g0] [h0]"},
		{"mq.commit.decided", "[] []"},
		{"lockfree.commit.done:1", "[] []"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			cfg := testConfig(t, "QM1")
			logs := logTo(t, &cfg)
			m := startMember(t, cfg)
			mustExec(t, m, "DEFINE QLOCAL(P)")
			mustExec(t, m, "DEFINE CFSTRUCT(APP2) SIZE(32)")
			mustExec(t, m, "DEFINE QLOCAL(Q2) CFSTRUCT(APP2)")
			c := connect(t, cfg, "QM1")
			t.Cleanup(func() { c.Disconnect() })
			for q, body := range map[string]string{"P": "g0", "Q2": "h0"} {
				h, err := c.Open(q, mq.OpenOptions{Output: true})
				if err != nil {
					t.Fatal(err)
				}
				if err := h.Put(&mq.Message{Body: []byte(body), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
					t.Fatal(err)
				}
				h.Close()
			}
			app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT="+tc.point)
			for _, cmd := range []string{"open P", "open Q2", "views P 1", "views Q2 1"} {
				if r := app.do(cmd); r != "reason 0 <nil>" {
					t.Fatalf("%s: %s", cmd, r)
				}
			}
			killAt(t, app, tc.point, "release 0 1")
			eventually(t, "the member recovers the connection", func() bool {
				_, held := m.g.Admin().Owner(app.slot)
				return !held
			})
			var inCF, fromLog []string
			for _, st := range []struct{ name, q string }{{"APPL1", "P"}, {"APP2", "Q2"}} {
				s, err := m.g.Structure(st.name, false)
				if err != nil {
					t.Fatal(err)
				}
				if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
					t.Fatalf("killed at %s: %s: %v", tc.point, st.name, r)
				}
				inCF = append(inCF, fmt.Sprint(browseBodies(t, c, st.q)))
				if err := os.Remove(cfg.Group.CFDir + "/" + st.name); err != nil {
					t.Fatal(err)
				}
				mustExec(t, m, "RECOVER CFSTRUCT("+st.name+")")
				fromLog = append(fromLog, fmt.Sprint(browseBodies(t, c, st.q)))
			}
			if got, rebuilt := strings.Join(inCF, " "), strings.Join(fromLog, " "); got != rebuilt || got != tc.want {
				t.Fatalf("killed at %s: the CF held %s after the connection's recovery, the log gives back %s, want %s\n%s", tc.point, got, rebuilt, tc.want, logs())
			}
		})
	}
}

// TestReleaseViewsWithFailedSyncGivesViewsBack: the log's fsync fails
// under a ReleaseViews of two of three held views of persistent messages.
// It answers backed out; the two are back on the queue with their backout
// counts raised (the acks lost, the messages redelivered), the third is
// still held, and a rebuild from the log (whose bytes may have reached the
// file) agrees with the CF.
func TestReleaseViewsWithFailedSyncGivesViewsBack(t *testing.T) {
	cfg := testConfig(t, "QM1")
	disk := vfs.NewMem(1)
	cfg.LogFS = disk
	m, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	go m.Run(t.Context())
	mustExec(t, m, "DEFINE QLOCAL(P)")
	c := connect(t, cfg, "QM1")
	h, err := c.Open("P", mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"g0", "y", "z"} {
		if err := h.Put(&mq.Message{Body: []byte(b), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	vs := make([]mq.View, 3)
	if n, err := h.GetViewsInto(mq.GetOptions{}, vs); err != nil || n != 3 {
		t.Fatalf("views: %d %v", n, err)
	}
	disk.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			return 0, errors.New("EIO")
		}
		return n, nil
	})
	if err := c.ReleaseViews([]*mq.View{&vs[0], &vs[2]}); mq.ReasonOf(err) != mq.RCBackedOut {
		t.Fatalf("ReleaseViews whose commit record could not be made durable: %v, want backed out (%d)", err, mq.RCBackedOut)
	}
	if vs[0].Pieces != nil || vs[2].Pieces != nil || string(vs[1].Bytes()) != "y" {
		t.Fatalf("after the failed ReleaseViews: released views with bodies %q %q, the other %q", vs[0].Pieces, vs[2].Pieces, vs[1].Bytes())
	}
	b, err := h.Browse()
	if err != nil {
		t.Fatal(err)
	}
	var back []string
	for {
		msg, err := b.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, fmt.Sprintf("%s/%d", msg.Body, msg.BackoutCount))
	}
	if got := fmt.Sprint(back); got != "[g0/1 z/1]" {
		t.Fatalf("after the failed ReleaseViews the queue holds %s, want [g0/1 z/1] (y still held)", got)
	}
	if err := vs[1].Requeue(); err != nil {
		t.Fatal(err)
	}
	inCF := browseBodies(t, c, "P")
	c.Disconnect()
	m.Stop()
	disk.SetFault(nil)
	if err := os.RemoveAll(cfg.Group.CFDir); err != nil {
		t.Fatal(err)
	}
	logs := logTo(t, &cfg)
	m = startMember(t, cfg)
	c = connect(t, cfg, "QM1")
	defer c.Disconnect()
	if fromLog := browseBodies(t, c, "P"); fmt.Sprint(fromLog) != fmt.Sprint(inCF) || fmt.Sprint(inCF) != "[g0 y z]" {
		t.Fatalf("the CF held %v, the log gives back %v, want [g0 y z]\n%s", inCF, fromLog, logs())
	}
}

// TestRefusedPersistentPutIsUndoneInTheLog: a persistent put outside
// syncpoint to a full queue is refused, before anything is logged (no
// aborted key in the repository either: a full queue is routine), and a
// rebuild from the log agrees with the CF.
func TestRefusedPersistentPutIsUndoneInTheLog(t *testing.T) {
	cfg := testConfig(t, "QM1")
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P) MAXDEPTH(1)")
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("g0"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.Put(&mq.Message{Body: []byte("refused"), Persistence: mq.Persistent}, mq.PutOptions{}); mq.ReasonOf(err) != mq.RCQFull {
		t.Fatalf("put to a full queue: %v", err)
	}
	var aborted map[uint64]bool
	if err := m.repo.View(func(tx *defs.Tx) error { var err error; aborted, err = tx.AbortedUOWs(0); return err }); err != nil || len(aborted) != 0 {
		t.Fatalf("aborted units of work after a refused put: %v %v", aborted, err)
	}
	if got := fmt.Sprint(rebuiltFromLogs(t, cfg, m, c, "P")); got != "[g0]" {
		t.Fatalf("rebuilt from the log: %s, want [g0]", got)
	}
}

// TestBackupWaitsForADecidedLoneOpsRecovery: an application is killed after
// deciding a persistent put or get outside syncpoint and before carrying it
// out in the CF, and a backup runs before the member recovered its
// connection. The backup must wait for that recovery: its scan would miss
// the put (or keep the got message) while the record's LRSN lies below the
// backup's start, so a rebuild from the backup and the log lost the put
// (or delivered the got message again).
func TestBackupWaitsForADecidedLoneOpsRecovery(t *testing.T) {
	for _, tc := range []struct {
		point string
		cmds  []string
		want  string
	}{
		{"mq.put.decided", []string{"pputnow P x"}, "[g0 x]"},
		{"mq.get.decided", []string{"pputnow P y", "getnow P"}, "[y]"},
	} {
		t.Run(tc.point, func(t *testing.T) {
			cfg, logs, m, c, app := startLoneOp(t, tc.point, tc.cmds)
			// The connection's recovery is held back (its busy key) until
			// the backup waits for it, or finished without waiting.
			held, release := make(chan struct{}), make(chan struct{})
			go m.withKey(connBusyKey(lockfree.OwnerTag(uint32(app.slot)<<16)), func() { close(held); <-release })
			<-held
			waiting := make(chan struct{})
			var once sync.Once
			testHookWaitsForRecovery = func(slot int) {
				if slot == app.slot {
					once.Do(func() { close(waiting) })
				}
			}
			defer func() { testHookWaitsForRecovery = func(int) {} }()
			killAt(t, app, tc.point, tc.cmds[len(tc.cmds)-1])
			backedUp := make(chan error, 1)
			go func() {
				var err error
				if r := m.Exec("BACKUP CFSTRUCT(APPL1)"); !r.OK {
					err = errors.New(r.Error)
				}
				backedUp <- err
			}()
			select {
			case <-waiting:
			case err := <-backedUp:
				backedUp <- err
			}
			close(release)
			if err := <-backedUp; err != nil {
				t.Fatal(err)
			}
			eventually(t, "the member recovers the connection", func() bool {
				_, held := m.g.Admin().Owner(app.slot)
				return !held
			})
			inCF := browseBodies(t, c, "P")
			fromBackup := rebuiltFromLogs(t, cfg, m, c, "P")
			if fmt.Sprint(inCF) != tc.want || fmt.Sprint(fromBackup) != tc.want {
				t.Fatalf("killed at %s, backed up before its recovery: the CF holds %v, the backup and the log give back %v, want %s\n%s", tc.point, inCF, fromBackup, tc.want, logs())
			}
		})
	}
}

// TestCommitIntoARemovedStructureIsBackedOut: a structure's file is removed
// and a member that never mapped it (started after) recovers it from the
// logs, while the member whose application commits has not noticed yet
// (nobody marked the old mapping failed). The application's commit of
// persistent work must not succeed in the old mapping: its record is not
// in the rebuild, so the acknowledged commit would be lost (and come back
// at the next rebuild, delivering its messages twice after a channel had
// resent them). It is backed out, and a later rebuild agrees.
func TestCommitIntoARemovedStructureIsBackedOut(t *testing.T) {
	testHookNoStructureChecks.Store(true)
	defer testHookNoStructureChecks.Store(false)
	cfg := testConfig(t, "QM1")
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	app := startApp(t, cfg, "QM1", "QMGR_CRASHPOINT=mq.commit.begin:1:stop")
	for _, cmd := range []string{"open P", "pput P x"} {
		if r := app.do(cmd); r != "reason 0 <nil>" {
			t.Fatalf("%s: %s", cmd, r)
		}
	}
	fmt.Fprintln(app.in, "commit")
	id, err := procid.Of(app.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the application stops at the start of its commit", func() bool { return procid.Stopped(id) })
	if err := os.Remove(cfg.Group.CFDir + "/APPL1"); err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.Name = "QM2"
	startMember(t, cfg2) // recovers APPL1 at its start, from the logs
	c := connect(t, cfg2, "QM2")
	defer c.Disconnect()
	if got := fmt.Sprint(browseBodies(t, c, "P")); got != "[]" {
		t.Fatalf("the recovered structure holds %s before the commit", got)
	}
	app.cmd.Process.Signal(syscall.SIGCONT)
	r := app.line()
	inCF := fmt.Sprint(browseBodies(t, c, "P"))
	if !strings.HasPrefix(r, fmt.Sprintf("reason %d ", mq.RCBackedOut)) || inCF != "[]" {
		t.Fatalf("commit answered %q and the recovered structure holds %s; want it backed out (2003) and nothing\n%s", r, inCF, logs())
	}
	if fromLog := fmt.Sprint(rebuiltFromLogs(t, cfg, m, c, "P")); fromLog != inCF {
		t.Fatalf("commit answered %q; the structure held %s, rebuilt from the logs %s\n%s", r, inCF, fromLog, logs())
	}
}
