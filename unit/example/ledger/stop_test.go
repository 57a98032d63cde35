package ledger_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// TestStopStart: STOP SERVICE under load, then START SERVICE (design
// 6.3, 14 step 13). Transfers are put before the stop, while it is
// stopping, while it is stopped (they wait on the input queue) and after
// the start. The stop ends with the unit resting: every replica gone and
// not restarted, both having written the same state, the log empty and
// the SNAP queue holding the resting snapshot only (one transfer id, its
// last chunk there), SVSTATUS showing it STOPPED with RESTING(YES). START
// restores it at the same generation: every transfer is confirmed exactly
// once, with output ids 1..n of generation 1 in order across the restart;
// the restored replica's first batch removes the resting snapshot (no
// chunk is left); a second stop leaves the state of the reference run;
// the checker is clean.
func TestStopStart(t *testing.T) { stopStart(t, "") }

// TestStopPrimaryKilledWritingResting: the primary is SIGKILLed in the
// middle of writing the resting snapshot (its 20th chunk of 6 bytes, crash
// point unit.resting.chunk: the first 16 committed, the rest backed out).
// Its death promotes the secondary, still stopping, which removes the
// partial snapshot and writes its own: the stop completes, and the rest
// goes as TestStopStart, nothing lost or duplicated.
func TestStopPrimaryKilledWritingResting(t *testing.T) {
	t.Setenv("LEDGER_CHUNK_SIZE", "6")
	stopStart(t, "unit.resting.chunk:20")
}

// putTransfers puts transfers[lo:hi], 20 per commit, pace between commits.
func putTransfers(prod *mq.Conn, in *mq.Queue, transfers []ledger.Transfer, lo, hi int, pace time.Duration) error {
	for i := lo; i < hi; i++ {
		tr := transfers[i]
		body := fmt.Appendf(nil, "%d %s %s %d", tr.ID, tr.From, tr.To, tr.Amount)
		if err := in.Put(&mq.Message{Body: body}, mq.PutOptions{Syncpoint: true}); err != nil {
			return fmt.Errorf("put transfer %d: %w", i, err)
		}
		if i%20 == 19 || i == hi-1 {
			if err := prod.Commit(); err != nil {
				return fmt.Errorf("commit transfer %d: %w", i, err)
			}
			time.Sleep(pace)
		}
	}
	return nil
}

// browseAll returns the messages on queue name.
// procState is the state letter of process pid (/proc/pid/stat), "" if
// it cannot be read.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	return string(b[i+2])
}

func browseAll(t *testing.T, c *mq.Conn, name string) []*mq.Message {
	t.Helper()
	q, err := c.Open(name, mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		t.Fatal(err)
	}
	var out []*mq.Message
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

// heldToo counts the messages on queue name, held ones included (got
// under syncpoint and not committed, or held as views): with
// LOGGING(INDEPENDENT) the primary holds each input on IN until every
// replica has applied it, and the trim removes it.
func heldToo(t *testing.T, c *mq.Conn, name string) int {
	t.Helper()
	q, err := c.Open(name, mq.OpenOptions{Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; ; n++ {
		_, err := cur.NextWith(mq.GetOptions{}, mq.BrowseOptions{IncludeHeld: true})
		if errors.Is(err, mq.ErrNoMessage) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// svstatus returns DISPLAY SVSTATUS(LEDGER)'s objects.
func svstatus(t *testing.T, m *qm.Member) []map[string]any {
	t.Helper()
	resp := m.Exec("DISPLAY SVSTATUS(LEDGER)")
	if !resp.OK {
		t.Fatalf("DISPLAY SVSTATUS: %s", resp.Error)
	}
	var objs []map[string]any
	for _, raw := range resp.Objects {
		var o map[string]any
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	return objs
}

// stateFile waits for the state replica pid of position k writes when it
// stops cleanly.
func stateFile(t *testing.T, dir string, k int, pid uint32) string {
	t.Helper()
	file := filepath.Join(dir, fmt.Sprintf("state-%d-%d", k, pid))
	var state []byte
	var err error
	waitFor(t, "the state of "+file, nil, func() bool { state, err = os.ReadFile(file); return err == nil })
	return string(state)
}

func stopStart(t *testing.T, cp string) { stopStartWith(t, cp, "") }

// stopStartWith is stopStart with attrs added to the DEFINE SERVICE.
func stopStartWith(t *testing.T, cp, attrs string) { stopStartRun(t, cp, attrs, "") }

// stopStartRun is stopStartWith; with a crash point pause (a ':stop' one,
// armed instead of cp) STOP SERVICE is made while the primary is stopped
// there (SIGSTOP), and it is then continued.
func stopStartRun(t *testing.T, cp, attrs, pause string) {
	const n = 2000
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	states := t.TempDir()
	t.Setenv("LEDGER_STATE_DIR", states)
	if cp != "" || pause != "" {
		t.Setenv(crashpoint.EnvVar, cp+pause)
		t.Setenv(crashpoint.OnceVar, filepath.Join(t.TempDir(), "crashpoint-once"))
	}
	m, g := startMember(t, false, "DEFINE QLOCAL(IN) MAXDEPTH(100000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(100000)",
		fmt.Sprintf("DEFINE SERVICE(LEDGER) STARTCMD('%s') STARTARG('ledger-replica') INPUT(IN) REPLICAS(2) %s", bin, attrs))
	opts := mq.ConnectOptions{Group: g.Name, QMgr: "QM1", DataDir: g.DataDir, CFDir: g.CFDir}
	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	_, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	running := func(what string) *role.Role {
		var r *role.Role
		waitFor(t, what, nil, func() bool {
			r = roleOf(t, s)
			return r.State == role.Running && r.Primary != role.None && r.Sender != role.None && r.Sender != r.Primary &&
				r.Pos[r.Primary].State == role.Active && r.Pos[r.Sender].State == role.Active
		})
		return r
	}
	r0 := running("the member to start a primary and a sender")

	prod, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Disconnect()
	in, err := prod.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	accounts := []string{"a", "b", "c", "d", "e"}
	transfers := make([]ledger.Transfer, n)
	for i := range transfers {
		transfers[i] = ledger.Transfer{ID: int64(i), From: accounts[i%5], To: accounts[(i/5+1+i)%5], Amount: int64(1 + i*7%400)}
	}
	var wg sync.WaitGroup
	var perr error
	wg.Go(func() { perr = putTransfers(prod, in, transfers, 0, n/2, 5*time.Millisecond) })

	// STOP under load: the producer goes on putting.
	pid := int(r0.Pos[r0.Primary].Pid)
	if pause == "" {
		waitFor(t, "the primary to process some input", nil, func() bool { return appliedOf(t, s, int(r0.Primary)) >= n/8 })
	} else {
		waitFor(t, "the primary to stop at "+pause, nil, func() bool { return procState(pid) == "T" })
	}
	if resp := m.Exec("STOP SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("STOP SERVICE: %s", resp.Error)
	}
	if pause != "" {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the unit to rest", nil, func() bool { return roleOf(t, s).State == role.Resting })
	wg.Wait()
	if perr != nil {
		t.Fatal(perr)
	}
	// Stopped: transfers wait on the input queue.
	if err := putTransfers(prod, in, transfers, n/2, 3*n/4, 0); err != nil {
		t.Fatal(err)
	}
	r1 := roleOf(t, s)
	for k := range r1.Pos {
		if r1.Pos[k].State != role.Vacant {
			t.Fatalf("resting: position %d %v", k, r1.Pos[k].State)
		}
	}
	if r1.Gen != 1 {
		t.Fatalf("resting at generation %d", r1.Gen)
	}
	// Each replica that stopped cleanly wrote its state: the same. In the
	// crash case the primary was killed and wrote none.
	var stopped []string
	for _, k := range []uint8{r0.Primary, r0.Sender} {
		if cp != "" && k == r0.Primary {
			continue
		}
		stopped = append(stopped, stateFile(t, states, int(k), r0.Pos[k].Pid))
	}
	if cp != "" {
		// The primary was killed writing: it wrote no state.
		file := filepath.Join(states, fmt.Sprintf("state-%d-%d", r0.Primary, r0.Pos[r0.Primary].Pid))
		if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the primary was not killed writing the resting snapshot: its state %s: %v", file, err)
		}
	}
	if len(stopped) == 2 && stopped[0] != stopped[1] {
		t.Fatalf("the stopped replicas' states differ:\n%s\n%s", stopped[0], stopped[1])
	}
	if msgs := browseAll(t, c, "SYSTEM.UNIT.LEDGER.LOG"); len(msgs) != 0 {
		t.Fatalf("resting: %d log messages left", len(msgs))
	}
	snap := browseAll(t, c, "SYSTEM.UNIT.LEDGER.SNAP")
	var restingID [24]byte
	last := false
	for i, msg := range snap {
		tr, err := logrec.ParseTransfer(msg.CorrelID)
		if err != nil || tr.Joiner != logrec.RestingJoiner || tr.Gen != 1 {
			t.Fatalf("SNAP message %d: transfer %+v (%v), want the resting snapshot's", i, tr, err)
		}
		if i == 0 {
			restingID = msg.CorrelID
		} else if msg.CorrelID != restingID {
			t.Fatalf("SNAP message %d: transfer %x, the first's %x: two resting snapshots", i, msg.CorrelID, restingID)
		}
		ch, err := logrec.DecodeChunk(msg.Body)
		if err != nil || ch.Index != uint32(i) {
			t.Fatalf("SNAP message %d: chunk %+v (%v)", i, ch, err)
		}
		last = last || ch.Last
		if msg.Persistence != mq.Persistent && !msg.Persistent {
			t.Fatalf("SNAP message %d is not persistent", i)
		}
	}
	if cp != "" && len(snap) < 20 {
		t.Fatalf("resting snapshot of %d chunks: the crash point at the 20th is never hit", len(snap))
	}
	if !last {
		t.Fatalf("resting: %d SNAP messages without the last chunk", len(snap))
	}
	if in := browseAll(t, c, "IN"); len(in) < n/4 {
		t.Fatalf("stopped: %d inputs wait on IN, want at least %d", len(in), n/4)
	}
	for _, o := range svstatus(t, m) {
		if o["UNITSTATE"] != "STOPPED" || o["RESTING"] != "YES" || o["ROLE"] != "VACANT" {
			t.Fatalf("SVSTATUS while resting: %v", o)
		}
	}
	// The members restart nothing while the unit is stopped.
	time.Sleep(time.Second)
	if r := roleOf(t, s); r.State != role.Resting || r.Pos[0].State != role.Vacant || r.Pos[1].State != role.Vacant {
		t.Fatalf("a replica started while stopped: %+v", r)
	}

	// START: the resting snapshot is restored at generation 1.
	if resp := m.Exec("START SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("START SERVICE: %s", resp.Error)
	}
	wg.Go(func() { perr = putTransfers(prod, in, transfers, 3*n/4, n, 2*time.Millisecond) })
	r2 := running("the members to start the unit again")
	if r2.Gen != 1 {
		t.Fatalf("restarted at generation %d, want 1 (the resting snapshot's)", r2.Gen)
	}
	wg.Wait()
	if perr != nil {
		t.Fatal(perr)
	}
	got := confirmations(t, c, n)
	ref := reference(t, got, transfers)
	waitFor(t, "the resting snapshot's removal", nil, func() bool { return len(browseAll(t, c, "SYSTEM.UNIT.LEDGER.SNAP")) == 0 })

	// A second stop: the replicas' states are the reference's.
	r2 = running("both replicas active")
	if resp := m.Exec("STOP SERVICE(LEDGER)"); !resp.OK {
		t.Fatalf("STOP SERVICE: %s", resp.Error)
	}
	waitFor(t, "the unit to rest again", nil, func() bool { return roleOf(t, s).State == role.Resting })
	for _, k := range []uint8{r2.Primary, r2.Sender} {
		if st := stateFile(t, states, int(k), r2.Pos[k].Pid); st != ref {
			t.Fatalf("position %d's state differs from the reference:\nreplica   %s\nreference %s", k, st, ref)
		}
	}
	if err := roleOf(t, s).Check(); err != nil {
		t.Fatalf("role record: %v", err)
	}
	if r := s.Check(lockfree.CheckOptions{}); !r.OK() {
		t.Fatalf("checker: %s", r)
	}
}
