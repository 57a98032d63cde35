package audit_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/audit"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestMain runs a replica instead of the tests when the test binary is
// started as one by a member (STARTCMD this binary, STARTARG
// 'audit-replica' or 'ledger-replica'). A replica's state is written,
// when it stops cleanly, to state-<pos>-<pid> in AUDIT_STATE_DIR.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && (os.Args[1] == "audit-replica" || os.Args[1] == "ledger-replica") {
		if d := os.Getenv("AUDIT_STATE_DIR"); d != "" {
			f := filepath.Join(d, fmt.Sprintf("state-%s-%d", os.Getenv("QMGR_UNIT_POS"), os.Getpid()))
			os.Setenv("AUDIT_STATE_FILE", f)
			os.Setenv("LEDGER_STATE_FILE", f)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		run := audit.RunFromEnv
		if os.Args[1] == "ledger-replica" {
			run = ledger.RunFromEnv
		}
		err := run(ctx)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, os.Args[1]+":", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// env is a member supervising the units of a test, and a connection.
type env struct {
	t      *testing.T
	m      *qm.Member
	c      *mq.Conn
	opts   mq.ConnectOptions
	s      *lockfree.Structure
	states string // AUDIT_STATE_DIR
	bin    string // this test binary
	attrs  string // added to every DEFINE SERVICE of service
}

// start starts a member supervising the replicas it starts itself
// (STARTCMD this test binary), then runs mqsc.
func start(t *testing.T, mqsc ...string) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: starts replica processes")
	}
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, states: t.TempDir(), bin: bin}
	t.Setenv("AUDIT_STATE_DIR", e.states)
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "T", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, UnitHeartbeatTimeout: 3 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if os.Getenv("AUDIT_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if e.m, err = qm.Start(cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go e.m.Run(ctx)
	t.Cleanup(func() { cancel(); e.m.Stop() })
	e.exec(mqsc...)
	e.opts = mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir}
	if e.c, err = mq.Connect(e.opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.c.Disconnect() })
	if _, e.s, err = mqconn.Of(e.c).OwnerIn("APPL1"); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) exec(mqsc ...string) {
	e.t.Helper()
	for _, c := range mqsc {
		if r := e.m.Exec(c); !r.OK {
			e.t.Fatalf("%s: %s", c, r.Error)
		}
	}
}

// service defines a supervised unit of two replicas of this binary
// (LOGGING(INDEPENDENT): its input queue indexed by MsgID first, as
// DEFINE SERVICE requires).
func (e *env) service(name, arg, input string) {
	e.t.Helper()
	if strings.Contains(e.attrs, "LOGGING(INDEPENDENT)") {
		e.exec(fmt.Sprintf("ALTER QLOCAL(%s) INDXTYPE(MSGID)", input))
	}
	e.exec(fmt.Sprintf("DEFINE SERVICE(%s) STARTCMD('%s') STARTARG('%s') INPUT(%s) REPLICAS(2) %s", name, e.bin, arg, input, e.attrs))
}

// base is the unit's first status slot (its role record).
func (e *env) base(name string) int {
	e.t.Helper()
	var svc defs.Service
	if err := mqconn.Of(e.c).Defs.View(func(tx *defs.Tx) error { var err error; svc, err = tx.Service(name); return err }); err != nil {
		e.t.Fatal(err)
	}
	return svc.StatusBase
}

func (e *env) role(base int) *role.Role {
	e.t.Helper()
	buf := make([]byte, e.s.StatusSize())
	if _, err := e.s.ReadStatus(base, buf); err != nil {
		e.t.Fatal(err)
	}
	r, err := role.Decode(buf)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// progress is position k's progress record (zero if none or stale).
func (e *env) progress(base, k int) role.Progress {
	e.t.Helper()
	buf := make([]byte, e.s.StatusSize())
	if _, err := e.s.ReadStatus(base+1+k, buf); err != nil {
		e.t.Fatal(err)
	}
	p, err := role.DecodeProgress(buf)
	if err != nil || p.Tag != e.role(base).Pos[k].Tag {
		return role.Progress{}
	}
	return *p
}

// running waits until the unit has an active primary and another active
// replica as sender, and returns the role record.
func (e *env) running(base int) *role.Role {
	e.t.Helper()
	var r *role.Role
	waitFor(e.t, "a primary and a sender", func() bool {
		r = e.role(base)
		return r.Primary != role.None && r.Sender != role.None && r.Sender != r.Primary &&
			r.Pos[r.Primary].State == role.Active && r.Pos[r.Sender].State == role.Active
	})
	return r
}

// primaryApplied is the applied LSN of the unit's primary.
func (e *env) primaryApplied(base int) uint64 {
	r := e.role(base)
	if r.Primary == role.None {
		return 0
	}
	return e.progress(base, int(r.Primary)).Applied
}

// kill SIGKILLs position k of the unit and waits for its death to be
// made (the position vacant or another process in it).
func (e *env) kill(base, k int) {
	e.t.Helper()
	pid := e.role(base).Pos[k].Pid
	if pid == 0 {
		e.t.Fatalf("position %d has no process", k)
	}
	if err := syscall.Kill(int(pid), syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	waitFor(e.t, fmt.Sprintf("the death of position %d (pid %d)", k, pid), func() bool { return e.role(base).Pos[k].Pid != pid })
}

// stopPrimary SIGTERMs the unit's primary and returns the audit state it
// writes.
func (e *env) stopPrimary(base int) *audit.Audit {
	e.t.Helper()
	return e.stop(base, int(e.role(base).Primary))
}

// stop SIGTERMs position pos of the unit and returns the audit state its
// replica writes.
func (e *env) stop(base, pos int) *audit.Audit {
	e.t.Helper()
	pid := e.role(base).Pos[pos].Pid
	if err := syscall.Kill(int(pid), syscall.SIGTERM); err != nil {
		e.t.Fatal(err)
	}
	file := filepath.Join(e.states, fmt.Sprintf("state-%d-%d", pos, pid))
	var b []byte
	waitFor(e.t, "the primary's state", func() bool { var err error; b, err = os.ReadFile(file); return err == nil })
	a := audit.New()
	if err := a.Restore(bytes.NewReader(b)); err != nil {
		e.t.Fatal(err)
	}
	return a
}

// early is the sequence numbers on the unit's EARLY queue, per source
// key, sorted.
func (e *env) early(name string) map[string][]uint64 {
	e.t.Helper()
	q, err := e.c.Open(defs.UnitQueue(name, defs.UnitEarly), mq.OpenOptions{Browse: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[string][]uint64{}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			e.t.Fatal(err)
		}
		id, err := logrec.ParseOutputID(m.MsgID)
		if err != nil {
			e.t.Fatalf("EARLY holds %x: %v", m.MsgID, err)
		}
		k := audit.SourceKey(id.Source, id.Gen)
		got[k] = append(got[k], id.Seq)
	}
	for _, s := range got {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	}
	return got
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for t0 := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}
