package cli

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/recovery/backup"
)

// appPersist is a child application of the persistence tests. Args: role
// (producer, np-producer or consumer), group, data dir, CF dir, member,
// queue, name, commit interval, pause after each commit. A producer puts messages "name-i" under
// syncpoint, persistent (np-producer: not persistent), and prints "c i"
// once the commit that includes message i returned; a consumer gets under
// syncpoint and prints "g body body..." once the commit returned. Both run
// until they are killed or their connection breaks.
func appPersist(args []string) {
	role, name := args[0], args[6]
	commit, _ := strconv.Atoi(args[7])
	pause, _ := time.ParseDuration(args[8])
	c, err := mq.Connect(mq.ConnectOptions{Group: args[1], DataDir: args[2], CFDir: args[3], QMgr: args[4]})
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(1)
	}
	input := strings.HasSuffix(role, "consumer")
	q, err := c.Open(args[5], mq.OpenOptions{Input: input, Output: !input})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Println("ready")
	out := bufio.NewWriter(os.Stdout)
	var got []string
	acked := 0 // producer: the next message after the last committed batch
	// A structure that fails (and is recovered) breaks the handle and
	// backs out the unit of work: open again and redo the batch.
	retry := func(what string, err error) {
		r := mq.ReasonOf(err)
		if r != mq.RCCFStructFailed && r != mq.RCBackedOut {
			fmt.Println(what+":", err)
			os.Exit(1)
		}
		fmt.Fprintln(out, "failed", r)
		out.Flush()
		c.Backout()
		q.Close()
		for {
			time.Sleep(10 * time.Millisecond)
			if q, err = c.Open(args[5], mq.OpenOptions{Input: input, Output: !input}); err == nil {
				return
			}
		}
	}
	for i := 0; ; i++ {
		switch role {
		case "nosync-consumer":
			// Gets outside syncpoint: each is the application's when Get
			// returns. SIGTERM ends it between gets.
			select {
			case <-term:
				out.Flush()
				os.Exit(0)
			default:
			}
			m, err := q.Get(mq.GetOptions{Wait: 100 * time.Millisecond})
			if err != nil && !errors.Is(err, mq.ErrNoMessage) {
				retry("get", err)
				continue
			}
			if err == nil {
				fmt.Fprintln(out, "g", string(m.Body))
				out.Flush()
			}
			time.Sleep(pause)
			continue
		case "consumer":
			m, err := q.Get(mq.GetOptions{Syncpoint: true, Wait: 100 * time.Millisecond})
			if err != nil && !errors.Is(err, mq.ErrNoMessage) {
				retry("get", err)
				got = got[:0]
				continue
			}
			if err == nil {
				got = append(got, string(m.Body))
				fmt.Fprintln(out, "t", string(m.Body)) // got, not yet committed
			}
		default:
			p := mq.Persistent
			if role == "np-producer" {
				p = mq.NotPersistent
			}
			if err := q.Put(&mq.Message{Body: []byte(fmt.Sprintf("%s-%d", name, i)), Persistence: p}, mq.PutOptions{Syncpoint: true}); err != nil {
				retry("put", err)
				i = acked - 1
				continue
			}
		}
		if i%commit == commit-1 {
			out.Flush() // what is in doubt if the commit is cut short
			if err := c.Commit(); err != nil {
				retry("commit", err)
				if role == "consumer" {
					got = got[:0]
				} else {
					i = acked - 1
				}
				continue
			}
			time.Sleep(pause)
			if role == "consumer" {
				if len(got) > 0 {
					fmt.Fprintln(out, "g", strings.Join(got, " "))
				}
				got = got[:0]
			} else {
				fmt.Fprintln(out, "c", i)
				acked = i + 1
			}
			out.Flush()
		}
	}
}

// persistApp is a running appPersist child and what it was told.
type persistApp struct {
	cmd      *testproc.Proc
	mu       sync.Mutex
	acked    int             // producer: messages 0..acked-1 are committed
	got      map[string]bool // consumer: bodies whose get is committed
	inDoubt  map[string]bool // consumer: got since its last commit was acknowledged (the commit in flight when it was killed may have happened)
	failures int             // units of work backed out by a structure failure
	done     chan struct{}
}

func (g *testGroup) startPersistApp(role, via, queue, name string, commit int, pause time.Duration) *persistApp {
	g.t.Helper()
	cmd := g.role("app-persist", role, g.cfg.Name, g.cfg.DataDir, g.cfg.CFDir, via, queue, name, strconv.Itoa(commit), pause.String())
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		g.t.Fatal(err)
	}
	a := &persistApp{cmd: cmd, got: map[string]bool{}, inDoubt: map[string]bool{}, done: make(chan struct{})}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	if !sc.Scan() || sc.Text() != "ready" {
		g.t.Fatalf("%s %s: %q", role, name, sc.Text())
	}
	go func() {
		defer close(a.done)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			a.mu.Lock()
			switch {
			case len(f) == 2 && f[0] == "c":
				n, _ := strconv.Atoi(f[1])
				a.acked = n + 1
			case len(f) == 2 && f[0] == "t":
				a.inDoubt[f[1]] = true
			case len(f) > 1 && f[0] == "g":
				for _, b := range f[1:] {
					a.got[b] = true
				}
				clear(a.inDoubt)
			case len(f) > 0 && f[0] == "failed":
				a.failures++
				clear(a.inDoubt)
			}
			a.mu.Unlock()
		}
		cmd.Wait()
	}()
	return a
}

// TestGroupKilledAndCFLost: three members with producers (persistent and
// not) and a consumer, all SIGKILLed at once and the CF directory removed;
// the group restarts and recovers from the logs. Every acknowledged
// persistent message not acknowledged as got is back exactly once, in its
// producer's order; no acknowledged get comes back; no non-persistent
// message comes back; the checker finds the structures clean.
func TestGroupKilledAndCFLost(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, names := persistGroup(t)
	prods := map[string]*persistApp{
		"A": g.startPersistApp("producer", "QM1", "PQ", "A", 10, 0),
		"B": g.startPersistApp("producer", "QM2", "PQ", "B", 7, 0),
	}
	np := g.startPersistApp("np-producer", "QM2", "PQ", "N", 10, time.Millisecond)
	// The consumer takes less than the producers put, so that much is
	// left to recover.
	cons := g.startPersistApp("consumer", "QM3", "PQ", "C", 5, 2*time.Millisecond)
	// Traffic for a while, and until the logs hold enough for the
	// recovery to measure its replay rate (it does from 1 MiB replayed
	// on; 20,000 puts log about 2 MiB): on a busy machine 1.5 s of it was
	// not enough.
	time.Sleep(1500 * time.Millisecond)
	waitFor(t, "20,000 persistent messages put", 2*time.Minute, func() bool { return prods["A"].committed()+prods["B"].committed() >= 20000 })
	for _, n := range names {
		g.member(n).Process.Signal(syscall.SIGKILL)
	}
	for _, a := range append([]*persistApp{np, cons}, prods["A"], prods["B"]) {
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
	}
	for _, n := range names {
		g.member(n).Wait()
	}
	if err := os.RemoveAll(g.cfg.CFDir); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		g.start(n)
	}

	checkRecovered(t, g, prods, cons)
	// The recovery measured its replay rate for the backup schedule.
	repo, err := defs.Open(g.cfg.DataDir, false)
	if err != nil {
		t.Fatal(err)
	}
	var rate defs.ReplayRate
	repo.View(func(tx *defs.Tx) error { var err error; rate, err = tx.Replay(); return err })
	repo.Close()
	if rate.Measured.IsZero() || rate.BytesPerSec <= 0 {
		t.Fatalf("no replay rate recorded: %+v", rate)
	}
	t.Logf("replay measured at %.1f MB/s, %.0f records/s", rate.BytesPerSec/1e6, rate.RecordsPerSec)
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check after recovery: %d\n%s%s", code, out, errs)
	}
}

// persistGroup is the group of the persistence tests: members QM1 to QM3
// and queue PQ.
func persistGroup(t *testing.T) (*testGroup, []string) {
	g := newTestGroupSized(t, 64<<20)
	names := []string{"QM1", "QM2", "QM3"}
	for _, n := range names {
		g.start(n)
	}
	g.mqsc("DEFINE QLOCAL(PQ) MAXDEPTH(999999)")
	return g, names
}

// checkRecovered gets everything from PQ and checks it against what the
// producers and the consumer were told: every committed put not got is
// there once, in its producer's order, no committed get is, nothing
// non-persistent is.
func checkRecovered(t *testing.T, g *testGroup, prods map[string]*persistApp, cons *persistApp) {
	t.Helper()
	// The applications were just killed: their units of work are backed
	// out when their members recover their connections. Draining before
	// that would pass over a message a dead consumer still holds, and find
	// it later, out of order.
	waitFor(t, "the killed applications' connections recovered", 30*time.Second, func() bool {
		gr, err := group.Open(g.cfg, false)
		if err != nil {
			return false
		}
		defer gr.Close()
		for _, o := range gr.Admin().Owners() {
			if o.State != "active" || !o.Alive {
				return false
			}
		}
		return true
	})
	c := g.connect("QM1")
	defer c.Disconnect()
	q, err := c.Open("PQ", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	present := map[string]bool{}
	last := map[string]int{}
	for p := range prods {
		last[p] = -1
	}
	for {
		m, err := q.Get(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body := string(m.Body)
		if present[body] {
			t.Fatalf("%s twice after recovery", body)
		}
		present[body] = true
		p, num, _ := strings.Cut(body, "-")
		i, _ := strconv.Atoi(num)
		if p == "N" {
			t.Fatalf("non-persistent %s came back", body)
		}
		if !m.Persistent {
			t.Fatalf("%s is not persistent after recovery", body)
		}
		if i <= last[p] {
			t.Fatalf("%s after %s-%d", body, p, last[p])
		}
		last[p] = i
		if cons.got[body] {
			t.Fatalf("%s came back though its get was committed", body)
		}
	}
	total := 0
	for p, a := range prods {
		for i := range a.acked {
			body := fmt.Sprintf("%s-%d", p, i)
			if !present[body] && !cons.got[body] && !cons.inDoubt[body] {
				t.Fatalf("%s was committed (%d acknowledged) and is lost", body, a.acked)
			}
		}
		total += a.acked
		t.Logf("producer %s: %d committed, the last recovered is %d", p, a.acked, last[p])
		if last[p] >= a.acked+20 {
			t.Errorf("producer %s: message %d recovered, but only %d were committed (one commit may be in doubt)", p, last[p], a.acked)
		}
	}
	t.Logf("%d committed in all, %d got by the consumer, %d back after recovery", total, len(cons.got), len(present))
	if total < 100 || len(cons.got) < 20 || len(present) < 50 {
		t.Fatalf("too little traffic to test anything: %d puts, %d gets committed, %d recovered", total, len(cons.got), len(present))
	}
}

// TestAutomaticBackupSurvivesLeaseHolder: with a tiny recovery time
// target, the member holding the backup lease backs up the structure
// while producers run; it is SIGKILLed, and another member takes the
// lease and goes on taking backups.
func TestAutomaticBackupSurvivesLeaseHolder(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, names := persistGroup(t)
	g.mqsc("ALTER QMGR CFRECTIME(2)") // 2 ms: about 2,000 log records
	for _, n := range names {
		g.startPersistApp("producer", n, "PQ", n, 10, time.Millisecond)
	}
	newest := func() uint64 {
		list, _ := backup.List(g.cfg.DataDir, "APPL1")
		if len(list) == 0 {
			return 0
		}
		return list[0].Start
	}
	holder := func() string {
		gr, err := group.Open(g.cfg, false)
		if err != nil {
			return ""
		}
		defer gr.Close()
		l, err := gr.LeaseHolder(group.LeaseBackup)
		if err != nil || l.Holder < 0 {
			return ""
		}
		p, err := gr.Peer(l.Holder)
		if err != nil {
			return ""
		}
		return p.Name
	}
	waitFor(t, "a first automatic backup", 20*time.Second, func() bool { return newest() > 0 })
	first, h := newest(), holder()
	if h == "" {
		t.Fatal("no holder of the backup lease after a backup")
	}
	t.Logf("%s took the backup at LRSN %d; killing it", h, first)
	g.kill(h)
	waitFor(t, "a backup by another member", 30*time.Second, func() bool { return newest() > first && holder() != h && holder() != "" })
	t.Logf("%s took over: newest backup at LRSN %d", holder(), newest())
	// The backups are whole.
	if _, _, err := backup.Latest(g.cfg.DataDir, "APPL1", 0, func(p string, err error) { t.Errorf("damaged backup %s: %v", p, err) }); err != nil {
		t.Fatal(err)
	}
}

// TestStructureDeletedWhileTrafficRuns: three members with producers and
// a consumer of persistent messages; the structure's file is deleted while
// they run. The members notice, take the structure out of service (the
// applications get 2373 and redo their unit of work) and recover it from
// its backup and the logs; traffic goes on. Every committed put not got is
// there once and in order, no committed get comes back.
func TestStructureDeletedWhileTrafficRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g, _ := persistGroup(t)
	prods := map[string]*persistApp{
		"A": g.startPersistApp("producer", "QM1", "PQ", "A", 10, 0),
		"B": g.startPersistApp("producer", "QM2", "PQ", "B", 7, 0),
	}
	cons := g.startPersistApp("consumer", "QM3", "PQ", "C", 5, 2*time.Millisecond)
	// And one getting outside syncpoint: its gets are logged only after
	// the message left the CF, so a recovery must wait for them.
	ncons := g.startPersistApp("nosync-consumer", "QM2", "PQ", "D", 1, time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	g.mqsc("BACKUP CFSTRUCT(APPL1)")
	time.Sleep(500 * time.Millisecond)
	before := map[string]int{}
	for p, a := range prods {
		a.mu.Lock()
		before[p] = a.acked
		a.mu.Unlock()
	}
	if err := os.Remove(filepath.Join(g.cfg.CFDir, "APPL1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the structure recovered", 30*time.Second, func() bool {
		gr, err := group.Open(g.cfg, false)
		if err != nil {
			return false
		}
		defer gr.Close()
		s, err := gr.Structure("APPL1", false)
		return err == nil && s.InService()
	})
	for p, a := range prods {
		a.mu.Lock()
		before[p] = a.acked
		a.mu.Unlock()
	}
	// Traffic goes on after the recovery.
	waitFor(t, "producers committing again after the recovery", 30*time.Second, func() bool {
		for p, a := range prods {
			a.mu.Lock()
			n := a.acked
			a.mu.Unlock()
			if n < before[p]+200 {
				return false
			}
		}
		return true
	})
	ncons.cmd.Process.Signal(syscall.SIGTERM) // ends between gets: every get it made is reported
	<-ncons.done
	for _, a := range append([]*persistApp{cons}, prods["A"], prods["B"]) {
		a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.done
	}
	for b := range ncons.got {
		if cons.got[b] {
			t.Fatalf("%s got by both consumers", b)
		}
		cons.got[b] = true
	}
	t.Logf("%d got outside syncpoint", len(ncons.got))
	failures := cons.failures + ncons.failures
	for _, a := range prods {
		failures += a.failures
	}
	t.Logf("%d units of work backed out by the failure", failures)
	checkRecovered(t, g, prods, cons)
	if code, out, errs := g.run("", "check"); code != 0 {
		t.Fatalf("check after recovery: %d\n%s%s", code, out, errs)
	}
}

// TestPersistentChannelAndRemoteCFLost: persistent messages go through a
// shared channel (the sender's gets and the receiver's puts are logged,
// with persistent sync records) while the member running the channel is
// SIGKILLed; then the remote side is SIGKILLed and its CF directory
// removed: its recovery brings back every message, exactly once, in order.
func TestPersistentChannelAndRemoteCFLost(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	const n = 3000
	g, r, _ := remoteSetup(t)
	c := g.connect("QM1")
	q, err := c.Open("RQ", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 64)
	for i := range n {
		binary.BigEndian.PutUint64(body, uint64(i))
		if err := q.Put(&mq.Message{Body: body, Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if err := c.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	c.Disconnect()
	g.mqsc("START CHANNEL(TO.R)")
	waitFor(t, "a third of the messages at the remote side", 60*time.Second, func() bool { return r.depth("TARGET") >= n/3 })
	st, _ := g.chStatus("TO.R")
	owner := g.peerName(st.Owner)
	if owner == "" {
		t.Fatalf("channel status %+v: no owner", st)
	}
	g.kill(owner)
	t.Logf("killed %s, which ran the channel", owner)
	waitFor(t, "every message at the remote side", 120*time.Second, func() bool { return r.depth("TARGET") >= n && g.depth("XQ") == 0 })
	r.kill("RQM")
	if err := os.RemoveAll(r.cfg.CFDir); err != nil {
		t.Fatal(err)
	}
	r.startWith("RQM", "--port", strconv.Itoa(r.port))
	checkSeq(t, r, n)
}

// committed is how many messages a producer has committed so far.
func (a *persistApp) committed() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked
}
