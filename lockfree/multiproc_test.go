package lockfree

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/internal/testproc"
)

// The test binary re-executes itself as child processes (spawn): one
// role per kind of child; the structure from LF_DIR.
func TestMain(m *testing.M) {
	for _, role := range []string{"midop", "producer", "consumer", "mover", "repairer", "depthworker",
		"idleconsumer", "poolproducer", "corrupter", "survivor", "requeuer"} {
		testproc.Register(role, func([]string) int { return childMain(role) })
	}
	testproc.Main(m)
}

// childMain runs a child in role; with crashpoints counting it prints
// the counts.
func childMain(role string) int {
	if err := runChild(role); err != nil {
		fmt.Fprintln(os.Stderr, "child", role, "error:", err)
		return 3
	}
	if crashpoint.Armed() && os.Getenv(crashpoint.EnvVar) == "count" {
		counts := crashpoint.Counts()
		names := make([]string, 0, len(counts))
		for n := range counts {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Printf("count %s %d\n", n, counts[n])
		}
	}
	return 0
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func runChild(role string) error {
	s, err := Attach(os.Getenv("LF_DIR"), "APPL1")
	if err != nil {
		return err
	}
	defer s.Close()
	switch role {
	case "midop":
		return midOpChild(s)
	case "producer":
		return childProducer(s)
	case "consumer":
		return childConsumer(s)
	case "mover":
		return childMover(s)
	case "repairer":
		_, err := s.RepairDead()
		return err
	case "depthworker":
		return depthWorkerChild(s)
	case "idleconsumer":
		return idleConsumerChild(s)
	case "poolproducer":
		return poolProducerChild(s)
	case "corrupter":
		return corrupterChild(s)
	case "survivor":
		return survivorChild(s)
	case "requeuer":
		return requeuerChild(s)
	}
	return fmt.Errorf("unknown role %q", role)
}

// Producer/consumer messages carry (producer, sequence) in the body and use
// priorities 0..2.
func childProducer(s *Structure) error {
	id, n, every := envInt("LF_ID", 0), envInt("LF_N", 1000), envInt("LF_COMMIT", 1)
	o, err := s.Register()
	if err != nil {
		return err
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	body := make([]byte, 16)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(body, uint64(id))
		binary.LittleEndian.PutUint64(body[8:], uint64(i))
		m := Message{Body: body, Priority: 1 + i%3}
		for {
			err := o.Put(q, &m, PutOptions{Syncpoint: every > 1})
			if errors.Is(err, ErrQueueFull) {
				if err := o.Commit(); err != nil {
					return err
				}
				time.Sleep(50 * time.Microsecond)
				continue
			}
			if err != nil {
				return err
			}
			break
		}
		if every > 1 && i%every == every-1 {
			if err := o.Commit(); err != nil {
				return err
			}
		}
	}
	if err := o.Commit(); err != nil {
		return err
	}
	return o.Close()
}

func childConsumer(s *Structure) error {
	every := envInt("LF_COMMIT", 10)
	o, err := s.Register()
	if err != nil {
		return err
	}
	q, err := s.LookupQueue("Q")
	if err != nil {
		return err
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	var m Message
	var batch []string
	flush := func() error {
		if err := o.Commit(); err != nil {
			return err
		}
		for _, b := range batch {
			out.WriteString(b)
		}
		batch = batch[:0]
		return nil
	}
	for {
		err := o.Get(q, GetOptions{Syncpoint: true, Wait: 5 * time.Second}, &m)
		if err != nil {
			return fmt.Errorf("get: %w", err)
		}
		if string(m.Body) == "STOP" {
			if err := flush(); err != nil {
				return err
			}
			return o.Close()
		}
		p, i := binary.LittleEndian.Uint64(m.Body), binary.LittleEndian.Uint64(m.Body[8:])
		batch = append(batch, fmt.Sprintf("%d %d %d\n", p, i, m.Priority))
		if len(batch) >= every {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// spawn prepares a child (testproc: it dies with the test process and is
// killed when the test ends, failed or not, so a failing test never
// leaves workers running).
func spawn(t testing.TB, dir, role string, env ...string) *testproc.Proc {
	t.Helper()
	cmd := testproc.Command(t, role)
	cmd.Env = append(append(cmd.Env, "LF_DIR="+dir), env...)
	return cmd
}

func TestMultiProcessProducersConsumers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, c := range []struct{ producers, consumers, n, commit int }{{1, 1, 20000, 1}, {3, 2, 8000, 7}, {2, 3, 6000, 1}} {
		t.Run(fmt.Sprintf("%dx%d", c.producers, c.consumers), func(t *testing.T) {
			dir := t.TempDir()
			s := newStructureIn(t, dir, Params{Owners: 16, Queues: 4, Entries: 4096, Elements: 1024, ElementSize: 64})
			admin := register(t, s)
			q := mustQueue(t, admin, "Q", QueueAttrs{MaxDepth: 1000})
			var cons []*testproc.Proc
			var outs []*bytes.Buffer
			for i := 0; i < c.consumers; i++ {
				cmd := spawn(t, dir, "consumer", "LF_COMMIT=13")
				b := &bytes.Buffer{}
				cmd.Stdout, cmd.Stderr = b, os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cons, outs = append(cons, cmd), append(outs, b)
			}
			var prods []*testproc.Proc
			for i := 0; i < c.producers; i++ {
				cmd := spawn(t, dir, "producer", fmt.Sprintf("LF_ID=%d", i), fmt.Sprintf("LF_N=%d", c.n), fmt.Sprintf("LF_COMMIT=%d", c.commit))
				cmd.Stderr = os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				prods = append(prods, cmd)
			}
			for _, p := range prods {
				if err := p.Wait(); err != nil {
					t.Fatalf("producer: %v", err)
				}
			}
			for range cons {
				for {
					err := admin.Put(q, &Message{Body: []byte("STOP")}, PutOptions{})
					if !errors.Is(err, ErrQueueFull) {
						if err != nil {
							t.Fatal(err)
						}
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			for _, cmd := range cons {
				if err := cmd.Wait(); err != nil {
					t.Fatalf("consumer: %v", err)
				}
			}
			seen := make(map[[2]int]int)
			for ci, b := range outs {
				last := map[[2]int]int{} // (producer, priority) -> last sequence
				for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
					if line == "" {
						continue
					}
					var p, i, prio int
					if _, err := fmt.Sscan(line, &p, &i, &prio); err != nil {
						t.Fatalf("consumer %d line %q", ci, line)
					}
					seen[[2]int{p, i}]++
					k := [2]int{p, prio}
					if l, ok := last[k]; ok && i <= l {
						t.Fatalf("consumer %d got producer %d seq %d after %d at priority %d", ci, p, i, l, prio)
					}
					last[k] = i
				}
			}
			for p := 0; p < c.producers; p++ {
				for i := 0; i < c.n; i++ {
					if n := seen[[2]int{p, i}]; n != 1 {
						t.Fatalf("producer %d seq %d got %d times", p, i, n)
					}
				}
			}
			if len(seen) != c.producers*c.n {
				t.Fatalf("%d distinct messages", len(seen))
			}
			if d := s.Depth(q); d != 0 {
				t.Fatalf("depth %d after all consumed", d)
			}
			admin.Close()
			checkOK(t, s)
		})
	}
}

// The mover workload: messages "m<i>" are only ever moved between queues A
// and B inside units of work, so however a mover dies, after repair every
// message is in exactly one of them. Status slot 0 holds two counters that
// always sum to statusTotal. Around that it exercises every other operation
// on scratch queues.
const (
	moverMessages = 300
	statusTotal   = 1 << 20
)

func childMover(s *Structure) error {
	iters := envInt("LF_ITERS", 400)
	seed := int64(envInt("LF_SEED", 1))
	rng := rand.New(rand.NewSource(seed))
	o, err := s.Register()
	if err != nil {
		return err
	}
	qa, err := s.LookupQueue("A")
	if err != nil {
		return err
	}
	qb, _ := s.LookupQueue("B")
	qc, _ := s.LookupQueue("C")
	var m Message
	for it := 0; iters <= 0 || it < iters; it++ {
		switch op := rng.Intn(20); {
		case op < 10: // move 1..4 messages under syncpoint
			from, to := qa, qb
			if rng.Intn(2) == 0 {
				from, to = qb, qa
			}
			n := 1 + rng.Intn(4)
			if rng.Intn(8) == 0 { // a view outside syncpoint given back (an AMQP nack with requeue)
				if v, err := o.GetView(from, GetOptions{}); err == nil {
					if err := v.Requeue(); err != nil {
						return err
					}
				} else if !errors.Is(err, ErrNoMessage) {
					return err
				}
			}
			for k := 0; k < n; k++ {
				opt := GetOptions{Syncpoint: true}
				if rng.Intn(6) == 0 {
					var c [idBytes]byte
					c[0] = byte(rng.Intn(16))
					opt.CorrelID = &c
				}
				if rng.Intn(5) == 0 {
					// A view under syncpoint, or one got outside it and
					// adopted into the unit of work (a batch of acks).
					vopt, adopt := opt, rng.Intn(3) == 0
					vopt.Syncpoint = !adopt
					v, err := o.GetView(from, vopt)
					if errors.Is(err, ErrNoMessage) {
						continue
					}
					if err != nil {
						return err
					}
					if adopt {
						if err := v.Adopt(); err != nil {
							return err
						}
					}
					m.Body = append(m.Body[:0], bytes.Join(v.Body, nil)...)
					m.CorrelID, m.Priority, m.Properties = v.Msg.CorrelID, v.Msg.Priority, v.Msg.Properties
					v.Release()
				} else if err := o.Get(from, opt, &m); errors.Is(err, ErrNoMessage) {
					continue
				} else if err != nil {
					return err
				}
				nm := Message{Body: m.Body, CorrelID: m.CorrelID, Priority: rng.Intn(3), Properties: m.Properties}
				if err := o.Put(to, &nm, PutOptions{Syncpoint: true}); err != nil {
					return err
				}
			}
			if rng.Intn(5) == 0 {
				err = o.Backout()
			} else {
				err = o.Commit()
			}
			if err != nil {
				return err
			}
		case op < 13: // scratch traffic outside syncpoint, large and small
			body := make([]byte, rng.Intn(700))
			exp := int64(0)
			if rng.Intn(4) == 0 {
				exp = time.Now().Add(-time.Second).UnixNano()
			}
			if err := o.Put(qc, &Message{Body: body, Expiry: exp, Priority: rng.Intn(10)}, PutOptions{}); err != nil && !errors.Is(err, ErrQueueFull) {
				return err
			}
			if rng.Intn(3) == 0 { // a batch that fills consecutive positions
				batch := make([]Message, 2+rng.Intn(6))
				for i := range batch {
					batch[i] = Message{Body: body[:rng.Intn(len(body)+1)], Priority: 3}
				}
				if _, err := o.PutBatch(qc, batch, PutOptions{Syncpoint: rng.Intn(2) == 0}); err != nil && !errors.Is(err, ErrQueueFull) {
					return err
				}
				if err := o.Commit(); err != nil {
					return err
				}
			}
			if k := rng.Intn(3); k == 0 {
				if err := o.Get(qc, GetOptions{}, &m); err != nil && !errors.Is(err, ErrNoMessage) {
					return err
				}
			} else if k == 1 {
				dst := make([]Message, 1+rng.Intn(6))
				if _, err := o.GetBatch(qc, GetOptions{Syncpoint: rng.Intn(2) == 0}, dst); err != nil && !errors.Is(err, ErrNoMessage) {
					return err
				}
				if err := o.Commit(); err != nil {
					return err
				}
			} else if v, err := o.GetView(qc, GetOptions{}); err == nil {
				v.Release()
			} else if !errors.Is(err, ErrNoMessage) {
				return err
			}
		case op < 15: // browse
			cur := o.NewBrowseCursor(qa)
			for k := 0; k < 5; k++ {
				if err := o.BrowseNext(cur, GetOptions{}, &m); err != nil {
					break
				}
			}
		case op < 18: // status: move one unit between the two counters
			if err := o.UpdateStatus(0, func(c []byte) []byte {
				x, y := binary.LittleEndian.Uint64(c), binary.LittleEndian.Uint64(c[8:])
				if x+y != statusTotal {
					x, y = statusTotal, 0 // first use: the record is zero
					if binary.LittleEndian.Uint64(c)|binary.LittleEndian.Uint64(c[8:]) != 0 {
						panic(fmt.Sprintf("torn status record %d+%d", x, y))
					}
				}
				binary.LittleEndian.PutUint64(c, x-1)
				binary.LittleEndian.PutUint64(c[8:], y+1)
				return c
			}); err != nil {
				return err
			}
		case op < 19: // admin: create or drain and delete one of a few scratch queues
			// DeleteQueue's callers make sure nobody has the queue open: each
			// worker has its own scratch queue, reused by its replacement.
			name := "T" + os.Getenv("LF_SCRATCH")
			if q, err := s.LookupQueue(name); err == nil {
				for o.Get(q, GetOptions{}, &m) == nil {
				}
				if err := o.DeleteQueue(q); err != nil {
					return err
				}
			} else if q, err := o.CreateQueue(name, QueueAttrs{}); err == nil {
				o.Put(q, &Message{Body: []byte("t")}, PutOptions{})
			} else {
				return err
			}
		default: // an owner that comes and goes
			o2, err := s.Register()
			if err == nil {
				o2.Put(qc, &Message{Body: []byte("o2")}, PutOptions{Syncpoint: true})
				o2.Close()
			}
		}
	}
	return o.Close()
}

// moverSetup creates the structure and queues of the mover workload.
func moverSetup(t testing.TB, dir string) *Structure {
	t.Helper()
	s, _, err := Create(CreateOptions{Dir: dir, Name: "APPL1",
		Params: Params{Owners: 32, Queues: 16, Entries: 2048, Elements: 2048, ElementSize: 128, Segments: 600, StatusSlots: 4, StatusSize: 64}})
	if err != nil {
		t.Fatal(err)
	}
	o := register(t, s)
	qa := mustQueue(t, o, "A", QueueAttrs{IndexCorrelID: true})
	mustQueue(t, o, "B", QueueAttrs{})
	mustQueue(t, o, "C", QueueAttrs{MaxDepth: 50})
	for i := 0; i < moverMessages; i++ {
		m := Message{Body: []byte(fmt.Sprintf("m%d", i)), Priority: i % 3}
		if i%7 == 0 {
			m.Properties = bytes.Repeat([]byte("p"), 200) // some messages span elements
		}
		m.CorrelID[0] = byte(i % 16)
		if err := o.Put(qa, &m, PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	o.Close()
	return s
}

// verifyConservation repairs dead owners, runs the checker, and proves every
// mover message is in A or B exactly once and the status counters add up.
func verifyConservation(t testing.TB, s *Structure, what string) {
	t.Helper()
	if _, err := s.RepairDead(); err != nil {
		t.Fatalf("%s: repair: %v", what, err)
	}
	if r := s.Check(CheckOptions{Quiescent: true}); !r.OK() {
		t.Fatalf("%s: checker: %v", what, r)
	}
	o := register(t, s)
	defer o.Close()
	seen := map[string]int{}
	var m Message
	for _, name := range []string{"A", "B"} {
		q, err := s.LookupQueue(name)
		if err != nil {
			t.Fatal(err)
		}
		cur := o.NewBrowseCursor(q)
		for o.BrowseNext(cur, GetOptions{}, &m) == nil {
			seen[string(m.Body)]++
			if len(m.Body) > 0 && m.Body[0] == 'm' {
				i, _ := strconv.Atoi(string(m.Body[1:]))
				if (i%7 == 0) != (len(m.Properties) == 200) {
					t.Fatalf("%s: %s lost its properties (%d bytes)", what, m.Body, len(m.Properties))
				}
			}
		}
	}
	for i := 0; i < moverMessages; i++ {
		if n := seen[fmt.Sprintf("m%d", i)]; n != 1 {
			t.Fatalf("%s: message m%d is on the queues %d times", what, i, n)
		}
	}
	if len(seen) != moverMessages {
		t.Fatalf("%s: %d distinct messages on A and B, want %d: %v", what, len(seen), moverMessages, seen)
	}
	c := make([]byte, s.StatusSize())
	s.ReadStatus(0, c)
	if x, y := binary.LittleEndian.Uint64(c), binary.LittleEndian.Uint64(c[8:]); x+y != statusTotal && x|y != 0 {
		t.Fatalf("%s: status counters %d + %d", what, x, y)
	}
}

func killedBySIGKILL(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// TestCrashPoints SIGKILLs a mover at every instrumented step in turn (at the
// first hit and in the middle of its run), then repairs, checks and proves
// conservation. Every lockfree crash point must be reached.
func TestCrashPoints(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	s := moverSetup(t, dir)
	defer s.Close()
	// Calibrate: how often does the workload hit each point?
	cmd := spawn(t, dir, "mover", crashpoint.EnvVar+"=count", "LF_SEED=7", "LF_ITERS=300")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("calibration run: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		var name string
		var n int
		if _, err := fmt.Sscanf(line, "count %s %d", &name, &n); err == nil {
			counts[name] = n
		}
	}
	verifyConservation(t, s, "after calibration")
	var points []string
	for _, p := range crashpoint.All() {
		if !strings.HasPrefix(p, "lockfree.") {
			continue
		}
		if p == "lockfree.repair.step" {
			continue // reached by the repairer below
		}
		if counts[p] == 0 {
			t.Errorf("the workload never reaches crash point %s", p)
			continue
		}
		points = append(points, p)
	}
	rounds := 0
	for _, p := range points {
		hits := []int{1}
		if c := counts[p]; c > 2 {
			hits = append(hits, c/3+1, 2*c/3+1)
		}
		for _, n := range hits {
			cmd := spawn(t, dir, "mover", fmt.Sprintf("%s=%s:%d", crashpoint.EnvVar, p, n), "LF_SEED=7", "LF_ITERS=300")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if !killedBySIGKILL(err) {
				// The state changed since calibration, so a late hit may not
				// come; the first hit always does.
				if n == 1 {
					t.Fatalf("%s:%d: child was not killed at the point: %v %s", p, n, err, stderr.String())
				}
				continue
			}
			rounds++
			verifyConservation(t, s, fmt.Sprintf("after a kill at %s hit %d", p, n))
		}
	}
	// A repairer killed in the middle of repairing is itself finished by the
	// next repair.
	for k := 1; k <= 6; k++ {
		cmd := spawn(t, dir, "mover", fmt.Sprintf("%s=lockfree.commit.get:%d", crashpoint.EnvVar, k), "LF_SEED=11")
		if err := cmd.Run(); !killedBySIGKILL(err) {
			t.Fatalf("mover not killed: %v", err)
		}
		rep := spawn(t, dir, "repairer", fmt.Sprintf("%s=lockfree.repair.step:%d", crashpoint.EnvVar, k))
		if err := rep.Run(); !killedBySIGKILL(err) && err != nil {
			t.Fatalf("repairer: %v", err)
		}
		rounds++
		verifyConservation(t, s, fmt.Sprintf("after a repairer killed at step %d", k))
	}
	t.Logf("%d points, %d kill rounds", len(points), rounds)
}

// TestTorture runs several movers at once and SIGKILLs them at random while
// the parent, like a surviving member, repairs each dead one at once and
// starts a new one. LF_TORTURE=10m runs it for ten minutes; CI runs a few
// seconds.
func TestTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	d := 3 * time.Second
	if v := os.Getenv("LF_TORTURE"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s := moverSetup(t, dir)
	defer s.Close()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	const workers = 3
	type child struct {
		cmd  *testproc.Proc
		done chan error
	}
	start := func(worker, seed int) *child {
		cmd := spawn(t, dir, "mover", fmt.Sprintf("LF_SEED=%d", seed), "LF_ITERS=0", fmt.Sprintf("LF_SCRATCH=%d", worker))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: cmd, done: make(chan error, 1)}
		go func() { c.done <- cmd.Wait() }()
		return c
	}
	kids := make([]*child, workers)
	seed := int(rng.Int31())
	for i := range kids {
		seed++
		kids[i] = start(i, seed)
	}
	kills := 0
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		time.Sleep(time.Duration(1+rng.Intn(25)) * time.Millisecond)
		i := rng.Intn(workers)
		kids[i].cmd.Process.Signal(syscall.SIGKILL)
		if err := <-kids[i].done; !killedBySIGKILL(err) {
			t.Fatalf("mover ended by itself: %v", err)
		}
		kills++
		if _, err := s.RepairDead(); err != nil {
			t.Fatalf("repair while others run: %v", err)
		}
		if r := s.Check(CheckOptions{}); !r.OK() {
			t.Fatalf("checker while others run: %v", r)
		}
		seed++
		kids[i] = start(i, seed)
	}
	for _, k := range kids {
		k.cmd.Process.Signal(syscall.SIGKILL)
		<-k.done
	}
	verifyConservation(t, s, fmt.Sprintf("after %d kills", kills))
	t.Logf("%d kills in %v", kills, d)
}

// TestBrowseSeesPutBeingLinked: a producer killed between linking a put
// at its place and making it visible leaves it linked and not yet
// visible; a browse including uncommitted puts returns it, marked so (a
// fuzzy backup keeps its place), and a plain browse does not.
func TestBrowseSeesPutBeingLinked(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	s := newStructureIn(t, dir, Params{Owners: 16, Queues: 4, Entries: 4096, Elements: 1024, ElementSize: 64})
	o := register(t, s)
	q := mustQueue(t, o, "Q", QueueAttrs{})
	cmd := spawn(t, dir, "producer", "LF_N=3", "LF_COMMIT=1", crashpoint.EnvVar+"=lockfree.put.linked:2")
	if err := cmd.Run(); err == nil {
		t.Fatal("the producer was not killed at its second put")
	}
	browse := func(opt GetOptions) (n, uncommitted int) {
		cur := o.NewBrowseCursor(q)
		var m Message
		for {
			err := o.BrowseNext(cur, opt, &m)
			if errors.Is(err, ErrNoMessage) {
				return n, uncommitted
			}
			if err != nil {
				t.Fatal(err)
			}
			n++
			if cur.Uncommitted() {
				uncommitted++
				if i := binary.LittleEndian.Uint64(m.Body[8:]); i != 1 {
					t.Fatalf("put %d not yet visible, want put 1", i)
				}
			}
		}
	}
	if n, u := browse(GetOptions{}); n != 1 || u != 0 {
		t.Fatalf("plain browse: %d messages, %d not visible", n, u)
	}
	if n, u := browse(GetOptions{IncludeUncommitted: true}); n != 2 || u != 1 {
		t.Fatalf("browse including uncommitted: %d messages, %d not visible", n, u)
	}
}
