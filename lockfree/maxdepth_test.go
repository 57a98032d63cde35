package lockfree

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// The MAXDEPTH tests run two workers (goroutines or processes, each its
// own owner) in lock-step rounds so that their puts race: in round r the
// leader fills the queue to one place below MaxDepth, opens the round, and
// both workers put one message. Once both puts ended (no reservation is in
// flight), the leader reads the depth: more than MaxDepth means both puts
// took the last place. It then drains the queue.
//
// The race is close only when both puts reach the reservation at the same
// moment, and which worker is first depends on the machine. So the leader
// steers: a worker that won the place alone was early, and the next round
// it waits a little longer before its put (the other a little less).
//
// The round words live in status slot 0's first copy, which these tests
// use as plain shared memory.
type depthRound struct {
	round, arrive, won, delay *uint64
}

func newDepthRound(s *Structure) depthRound {
	base := s.statusOff(0) + statusHdr
	return depthRound{round: s.u64(base), arrive: s.u64(base + 8), won: s.u64(base + 16), delay: s.u64(base + 24)}
}

// spinUntil spins until cond holds, yielding now and then (to the other
// worker when both share a core).
func spinUntil(cond func() bool) {
	for i := 0; !cond(); i++ {
		if i%256 == 255 {
			runtime.Gosched()
		}
		if i%4096 == 4095 {
			syscall.RawSyscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
		}
	}
}

var spinSink atomic.Uint64 // keeps the compiler from dropping spin's loop

// spin waits about n nanoseconds without touching shared memory; the
// caller adds the result up and stores it in spinSink once.
func spin(n int64) uint64 {
	x := uint64(n)
	for ; n > 0; n-- {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// depthRounds runs rounds rounds as worker w (0 leads) and returns how
// many rounds ended with the depth above MaxDepth, and in how many both
// puts backed off (each saw the other's reservation: the puts met), as
// counted by the leader (0 for the other worker).
func depthRounds(o *Owner, q QueueID, maxDepth int64, w, rounds int) (excess, met int, err error) {
	r := newDepthRound(o.s)
	var m Message
	delay := int64(0) // the leader's: > 0 it waits, < 0 the other worker does
	var sink uint64
	defer func() { spinSink.Add(sink) }()
	for i := uint64(0); i < uint64(rounds); i++ {
		spinUntil(func() bool { return atomic.LoadUint64(r.round) == i })
		if w == 0 {
			sink += spin(delay)
		} else {
			sink += spin(-int64(atomic.LoadUint64(r.delay)))
		}
		err := o.Put(q, &Message{Body: []byte("race")}, PutOptions{})
		if err != nil && !errors.Is(err, ErrQueueFull) {
			return excess, met, fmt.Errorf("round %d: put: %w", i, err)
		}
		if err == nil {
			atomic.AddUint64(r.won, 1<<(8*w))
		}
		atomic.AddUint64(r.arrive, 1)
		if w != 0 {
			continue
		}
		spinUntil(func() bool { return atomic.LoadUint64(r.arrive) == 2*(i+1) })
		if d := o.s.Depth(q); d > maxDepth {
			excess++
		}
		switch atomic.SwapUint64(r.won, 0) {
		case 1: // the leader alone: it was early
			delay += 2
		case 1 << 8:
			delay -= 2
		case 0:
			met++
		}
		delay = max(min(delay, 4096), -4096)
		atomic.StoreUint64(r.delay, uint64(min(delay, 0)))
		for o.Get(q, GetOptions{}, &m) == nil {
		}
		for k := int64(1); k < maxDepth; k++ {
			if err := o.Put(q, &Message{Body: []byte("fill")}, PutOptions{}); err != nil {
				return excess, met, fmt.Errorf("round %d: fill: %w", i, err)
			}
		}
		atomic.StoreUint64(r.round, i+1)
	}
	return excess, met, nil
}

// depthWorkerChild is worker LF_ID of the MAXDEPTH test on queue D
// (child role depthworker); it prints "excess N".
func depthWorkerChild(s *Structure) error {
	o, err := s.Register()
	if err != nil {
		return err
	}
	defer o.Close()
	q, err := s.LookupQueue("D")
	if err != nil {
		return err
	}
	info, err := s.QueueInfo(q)
	if err != nil {
		return err
	}
	n, met, err := depthRounds(o, q, info.Attrs.MaxDepth, envInt("LF_ID", 0), envInt("LF_ROUNDS", 100000))
	fmt.Printf("excess %d met %d\n", n, met)
	return err
}

var depthParams = Params{Owners: 8, Queues: 2, Entries: 1024, Elements: 64, ElementSize: 64, StatusSlots: 1, StatusSize: 16}

const depthTestRounds = 200000

// TestMaxDepthGoroutines: two owners in two goroutines race for the last
// place of queues of MAXDEPTH(1) and (2); the depth must never pass it.
func TestMaxDepthGoroutines(t *testing.T) {
	rounds := depthTestRounds
	if testing.Short() {
		rounds /= 10
	}
	for _, maxD := range []int64{1, 2} {
		t.Run(fmt.Sprintf("MAXDEPTH(%d)", maxD), func(t *testing.T) {
			s := newStructure(t, depthParams)
			admin := register(t, s)
			q := mustQueue(t, admin, "D", QueueAttrs{MaxDepth: maxD})
			var wg sync.WaitGroup
			excess, met := make([]int, 2), make([]int, 2)
			for w := range excess {
				o := register(t, s)
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, m, err := depthRounds(o, q, maxD, w, rounds)
					excess[w], met[w] = n, m
					if err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if excess[0] > 0 {
				t.Fatalf("MAXDEPTH(%d) exceeded in %d of %d rounds", maxD, excess[0], rounds)
			}
			t.Logf("%d rounds, both puts backed off in %d", rounds, met[0])
			checkOK(t, s)
		})
	}
}

// TestMaxDepthProcesses: the same with two processes.
func TestMaxDepthProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	for _, maxD := range []int64{1, 2} {
		t.Run(fmt.Sprintf("MAXDEPTH(%d)", maxD), func(t *testing.T) {
			dir := t.TempDir()
			s := newStructureIn(t, dir, depthParams)
			admin := register(t, s)
			mustQueue(t, admin, "D", QueueAttrs{MaxDepth: maxD})
			var outs []*strings.Builder
			var cmds []interface{ Wait() error }
			for w := 0; w < 2; w++ {
				cmd := spawn(t, dir, "depthworker", fmt.Sprintf("LF_ID=%d", w), fmt.Sprintf("LF_ROUNDS=%d", depthTestRounds))
				out := &strings.Builder{}
				cmd.Stdout, cmd.Stderr = out, os.Stderr
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				outs, cmds = append(outs, out), append(cmds, cmd)
			}
			for _, c := range cmds {
				if err := c.Wait(); err != nil {
					t.Fatalf("worker: %v", err)
				}
			}
			var n, met int
			if _, err := fmt.Sscanf(strings.TrimSpace(outs[0].String()), "excess %d met %d", &n, &met); err != nil {
				t.Fatalf("leader said %q", outs[0].String())
			}
			if n > 0 {
				t.Fatalf("MAXDEPTH(%d) exceeded in %d of %d rounds", maxD, n, depthTestRounds)
			}
			t.Logf("%d rounds, both puts backed off in %d", depthTestRounds, met)
			checkOK(t, s)
		})
	}
}
