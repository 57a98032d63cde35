package logbuf

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/vfs"
)

// memSetup is a consumer logging into a log on a vfs.Mem.
func memSetup(t *testing.T, m *vfs.Mem, segSize int64) (*Buffer, *Consumer, *rlog.Log) {
	t.Helper()
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{FS: m, Dir: "/log", LRSN: &src, SegmentSize: segSize, RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(Config{CFDir: t.TempDir(), Member: "QM1", Rings: 4, RingSize: testRingSize})
	if err != nil {
		t.Fatal(err)
	}
	cons, err := NewConsumer(b, l, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	// Whatever the test does, the consumer stops before the buffer goes.
	t.Cleanup(func() { cons.Close(); l.Close(); b.Close() })
	return b, cons, l
}

// TestLogDiskFull: producers append and wait while the log's disk fills
// up. While it is full they fail at once with ErrLogFailed saying why
// (no space), the buffer's status says the log is failed; once space
// returns they log again and the status clears. Every record a producer
// was told is durable is in the log; none it was told failed is.
func TestLogDiskFull(t *testing.T) {
	const seg = 64 << 10
	m := vfs.NewMem(31)
	b, cons, l := memSetup(t, m, seg)
	acked := map[int][]int{}
	failedRecs := map[[2]int]bool{}
	var mu sync.Mutex
	var full, resumed sync.WaitGroup
	stop := make(chan struct{})
	full.Add(3)
	resumed.Add(3)
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := b.Claim(uint64(w))
			if err != nil {
				t.Error(err)
				return
			}
			sawFull, sawResume := false, false
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				rec := record(w, i)
				pos, err := p.Append(uint8(1+i%200), rec)
				if err == nil {
					err = p.Wait(pos)
				}
				mu.Lock()
				if err == nil {
					acked[w] = append(acked[w], i)
				} else {
					failedRecs[[2]int{w, i}] = true
				}
				mu.Unlock()
				switch {
				case err != nil && !errors.Is(err, ErrLogFailed):
					t.Errorf("producer %d: %v, want ErrLogFailed", w, err)
					return
				case err != nil && !sawFull:
					if !strings.Contains(err.Error(), "no space") {
						t.Errorf("producer %d: %v does not say the disk is full", w, err)
					}
					sawFull = true
					full.Done()
				case err == nil && sawFull && !sawResume:
					sawResume = true
					resumed.Done()
				}
				if err != nil {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	m.SetCapacity(m.Used() + seg/2) // the next segment cannot be reserved
	waitOrFail(t, &full, "every producer failing on the full disk")
	st, err := b.LogStatus()
	if err != nil || !st.Failed || !strings.Contains(st.Reason, "no space") || st.Failures == 0 {
		t.Fatalf("status while full: %+v, %v", st, err)
	}
	m.SetCapacity(0)
	waitOrFail(t, &resumed, "every producer logging again after space returned")
	close(stop)
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err = b.LogStatus()
		if err == nil && !st.Failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after space returned: %+v, %v", st, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st.Failures == 0 || st.LastFailure.IsZero() || !strings.Contains(st.Reason, "no space") {
		t.Fatalf("status does not remember the failure: %+v", st)
	}
	cons.Close()
	l.Close()
	// Each producer's records in order, once each; every acknowledged
	// one there, no failed one (the failed ones leave gaps).
	got := loggedIn(t, m, "/log")
	for w, recs := range got {
		in := map[int]bool{}
		for k, i := range recs {
			if k > 0 && i <= recs[k-1] {
				t.Fatalf("producer %d: record %d after %d", w, i, recs[k-1])
			}
			if failedRecs[[2]int{w, i}] {
				t.Fatalf("record (%d, %d) is in the log, yet its producer was told it failed", w, i)
			}
			in[i] = true
		}
		for _, i := range acked[w] {
			if !in[i] {
				t.Fatalf("producer %d: acknowledged record %d not in the log", w, i)
			}
		}
	}
	if len(failedRecs) == 0 {
		t.Fatal("no record failed")
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("not within 20s: %s", what)
	}
}

// TestFailedWorkIsNotLogged: a record fails in the log (its sync fails;
// the log seals it off and writes on), and its producer, which had not
// learned of it yet, publishes the next record of the same work (a commit
// record after a put record). That record must never be logged: the
// consumer drops what a producer publishes until it acknowledges the
// failure, and the producer learns of the failure at its next Append or
// Wait. What it publishes afterwards is logged.
func TestFailedWorkIsNotLogged(t *testing.T) {
	m := vfs.NewMem(32)
	b, cons, l := memSetup(t, m, 1<<20)
	p, err := b.Claim(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendAll(p, 1, 0, 5); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	failSync := true
	m.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if op == vfs.OpSync && failSync {
			failSync = false
			return 0, vfs.ErrSyncedAnyway // on disk, yet reported failed
		}
		return n, nil
	})
	// Record 5 (a put) fails; nobody waits for it yet.
	if _, err := p.Append(6, record(1, 5)); err != nil {
		t.Fatal(err)
	}
	rh := p.rh
	deadline := time.Now().Add(10 * time.Second)
	for loadU64(b, rh+rFailed) == p.failSeen {
		if time.Now().After(deadline) {
			t.Fatal("the failure of record 5 was not counted in its ring")
		}
		time.Sleep(time.Millisecond)
	}
	// The producer passed its check just before the failure was counted
	// and publishes record 6 (the commit).
	seen := p.failSeen
	p.failSeen = loadU64(b, rh+rFailed)
	pos, err := p.Append(7, record(1, 6))
	p.failSeen = seen
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(pos); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("wait for the record after a failed one: %v, want ErrLogFailed", err)
	}
	// New work after the producer learned: logged.
	for i := 7; i < 10; i++ {
		pos, err := p.Append(uint8(1+i%200), record(1, i))
		if err == nil {
			err = p.Wait(pos)
		}
		if err != nil {
			t.Fatalf("record %d after the failure: %v", i, err)
		}
	}
	cons.Close()
	l.Close()
	got := loggedIn(t, m, "/log")[1]
	want := []int{0, 1, 2, 3, 4, 7, 8, 9}
	if len(got) != len(want) {
		t.Fatalf("logged %v, want %v", got, want)
	}
	for k := range want {
		if got[k] != want[k] {
			t.Fatalf("logged %v, want %v", got, want)
		}
	}
}

func loadU64(b *Buffer, off uint64) uint64 { return atomic.LoadUint64(b.u64(off)) }
