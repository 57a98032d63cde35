package logbuf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/vfs"
)

// Child roles: role producer claims a ring and appends LB_N records,
// printing "ack i" once record i is durable; role consumer runs a
// consumer into the log in LB_LOG and prints "ready".
func TestMain(m *testing.M) {
	testproc.Register("producer", func([]string) int { return producerMain() })
	testproc.Register("consumer", func([]string) int { return consumerMain() })
	testproc.Main(m)
}

// record returns producer w's record i: its size varies from a few bytes
// to more than a ring (so some travel in pieces).
func record(w, i int) []byte {
	n := 16 + (w*131+i*977)%700
	if i%50 == 7 {
		n = 3*testRingSize + i
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(w))
	binary.LittleEndian.PutUint64(b[8:], uint64(i))
	for k := 16; k < n; k++ {
		b[k] = byte(w*7 + i + k)
	}
	return b
}

const testRingSize = 8192

func producerMain() int {
	w, _ := strconv.Atoi(os.Getenv("LB_W"))
	n, _ := strconv.Atoi(os.Getenv("LB_N"))
	b, err := Attach(os.Getenv("LB_CF"), "QM1")
	if err != nil {
		fmt.Println("err", err)
		return 3
	}
	p, err := b.Claim(uint64(1000 + w))
	if err != nil {
		fmt.Println("err", err)
		return 3
	}
	for i := range n {
		rec := record(w, i)
		pos, err := p.Append(uint8(1+i%200), rec[:5], rec[5:])
		if err == nil {
			err = p.Wait(pos)
		}
		if errors.Is(err, ErrConsumerGone) {
			fmt.Println("gone")
			return 4
		}
		if err != nil {
			fmt.Println("err", err)
			return 3
		}
		fmt.Println("ack", i)
	}
	p.Release()
	fmt.Println("done")
	return 0
}

func consumerMain() int {
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: os.Getenv("LB_LOG"), LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		fmt.Println("err", err)
		return 3
	}
	b, err := Create(Config{CFDir: os.Getenv("LB_CF"), Member: "QM1", Rings: 8, RingSize: testRingSize})
	if err != nil {
		fmt.Println("err", err)
		return 3
	}
	if _, err := NewConsumer(b, l, nil); err != nil {
		fmt.Println("err", err)
		return 3
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the test closes stdin or kills us
	return 0
}

// child is a running child process and the lines it printed.
type child struct {
	cmd   *testproc.Proc
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	ended chan struct{}
}

// start starts a child in role (producer or consumer) with env.
func start(t *testing.T, role string, env ...string) *child {
	t.Helper()
	cmd := testproc.Command(t, role)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: in, ended: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		cmd.Wait()
		close(c.ended)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-c.ended })
	return c
}

func (c *child) waitLine(t *testing.T, prefix string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for _, l := range c.lines {
			if strings.HasPrefix(l, prefix) {
				c.mu.Unlock()
				return
			}
		}
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no line %q in %v", prefix, d)
}

// acks returns the record numbers the child was told are durable.
func (c *child) acks() (acked []int, last string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if i, ok := strings.CutPrefix(l, "ack "); ok {
			n, _ := strconv.Atoi(i)
			acked = append(acked, n)
		}
		last = l
	}
	return acked, last
}

// logged reads the log and returns, per producer, the record numbers in
// log order, checking every record's body and type.
func logged(t *testing.T, dir string) map[int][]int {
	t.Helper()
	return loggedIn(t, nil, dir)
}

func loggedIn(t *testing.T, fsys vfs.FS, dir string) map[int][]int {
	t.Helper()
	r, err := rlog.NewReader(fsys, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int][]int{}
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		w, i := int(binary.LittleEndian.Uint64(rec.Payload)), int(binary.LittleEndian.Uint64(rec.Payload[8:]))
		if !bytes.Equal(rec.Payload, record(w, i)) || int(rec.Type) != 1+i%200 {
			t.Fatalf("record (%d, %d) of %d bytes, type %d, is not the one appended", w, i, len(rec.Payload), rec.Type)
		}
		got[w] = append(got[w], i)
	}
}

// checkLog checks that each producer's records are in the log once each,
// in order, and include every acknowledged one.
func checkLog(t *testing.T, got map[int][]int, acked map[int][]int) {
	t.Helper()
	for w, recs := range got {
		for k, i := range recs {
			if i != k {
				t.Fatalf("producer %d: log holds record %d at place %d", w, i, k)
			}
		}
	}
	for w, a := range acked {
		if len(a) > 0 && len(got[w]) <= a[len(a)-1] {
			t.Fatalf("producer %d: record %d acknowledged, log holds %d records", w, a[len(a)-1], len(got[w]))
		}
	}
}

func TestProducersKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	cf, logDir := filepath.Join(dir, "cf"), filepath.Join(dir, "log")
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: logDir, LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(Config{CFDir: cf, Member: "QM1", Rings: 8, RingSize: testRingSize})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cons, err := NewConsumer(b, l, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	const producers, n = 5, 400
	var kids []*child
	for w := range producers {
		kids = append(kids, start(t, "producer", "LB_CF="+cf, "LB_W="+strconv.Itoa(w), "LB_N="+strconv.Itoa(n)))
	}
	// Kill two producers part way; free their rings as a member would.
	for _, w := range []int{1, 3} {
		kids[w].waitLine(t, fmt.Sprintf("ack %d", 50*w), 30*time.Second)
		kids[w].cmd.Process.Signal(syscall.SIGKILL)
		<-kids[w].ended
		if err := cons.Free(uint64(1000 + w)); err != nil {
			t.Fatal(err)
		}
	}
	// Their rings serve new producers.
	for w := producers; w < producers+2; w++ {
		kids = append(kids, start(t, "producer", "LB_CF="+cf, "LB_W="+strconv.Itoa(w), "LB_N=100"))
	}
	acked := map[int][]int{}
	for w, k := range kids {
		<-k.ended
		a, last := k.acks()
		acked[w] = a
		if w != 1 && w != 3 && last != "done" {
			t.Fatalf("producer %d ended with %q", w, last)
		}
	}
	cons.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	got := logged(t, logDir)
	checkLog(t, got, acked)
	for w, a := range acked {
		if w != 1 && w != 3 && len(got[w]) != len(a) {
			t.Fatalf("producer %d: %d acknowledged, %d logged", w, len(a), len(got[w]))
		}
	}
}

func TestConsumerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	cf, logDir := filepath.Join(dir, "cf"), filepath.Join(dir, "log")
	env := []string{"LB_CF=" + cf, "LB_LOG=" + logDir}
	cons := start(t, "consumer", env...)
	cons.waitLine(t, "ready", 30*time.Second)
	var kids []*child
	for w := range 3 {
		kids = append(kids, start(t, "producer", append(env, "LB_W="+strconv.Itoa(w), "LB_N=100000")...))
	}
	kids[0].waitLine(t, "ack 300", 30*time.Second)
	cons.cmd.Process.Signal(syscall.SIGKILL)
	<-cons.ended
	acked := map[int][]int{}
	for w, k := range kids {
		<-k.ended
		a, last := k.acks()
		acked[w] = a
		if last != "gone" {
			t.Fatalf("producer %d, its consumer killed, ended with %q", w, last)
		}
	}
	// A new consumer logs what was left published; new producers go on.
	cons = start(t, "consumer", env...)
	cons.waitLine(t, "ready", 30*time.Second)
	k := start(t, "producer", append(env, "LB_W=9", "LB_N=50")...)
	<-k.ended
	if a, last := k.acks(); last != "done" || len(a) != 50 {
		t.Fatalf("producer after the restart: %d acks, ended with %q", len(a), last)
	}
	cons.stdin.Close()
	<-cons.ended
	got := logged(t, logDir)
	checkLog(t, got, acked)
	if len(got[9]) != 50 {
		t.Fatalf("producer after the restart: %d records logged", len(got[9]))
	}
	for w := range 3 {
		t.Logf("producer %d: %d acknowledged, %d logged", w, len(acked[w]), len(got[w]))
	}
}

// TestInProcess runs producers as goroutines of the consumer's process
// (also under the race detector): records of every size arrive whole and
// in order, Release waits for the consumer, and a freed ring serves again.
func TestInProcess(t *testing.T) {
	dir := t.TempDir()
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "log"), LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 2, RingSize: testRingSize}
	b, err := Create(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Claim(1); !errors.Is(err, ErrConsumerGone) {
		t.Fatalf("claim before any consumer: %v", err)
	}
	cons, err := NewConsumer(b, l, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	acked := map[int][]int{}
	var mu sync.Mutex
	for round := range 3 {
		var wg sync.WaitGroup
		for k := range 2 {
			w := round*2 + k
			wg.Add(1)
			go func() {
				defer wg.Done()
				pb, err := Attach(cfg.CFDir, "QM1")
				if err != nil {
					t.Error(err)
					return
				}
				defer pb.Close()
				p, err := pb.Claim(uint64(w))
				if err != nil {
					t.Error(err)
					return
				}
				for i := range 120 {
					rec := record(w, i)
					pos, err := p.Append(uint8(1+i%200), rec)
					if err == nil && i%3 == 0 {
						err = p.Wait(pos)
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					acked[w] = append(acked[w], i)
					mu.Unlock()
				}
				if err := p.Release(); err != nil {
					t.Error(err)
				}
				if _, err := p.Append(1, []byte("x")); !errors.Is(err, ErrReleased) {
					t.Errorf("append after release: %v", err)
				}
			}()
		}
		wg.Wait()
		if _, err := b.Claim(99); err != nil {
			t.Fatalf("round %d: claim after release: %v", round, err)
		}
		if err := cons.Free(99); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Claim(100); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(101); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(102); !errors.Is(err, ErrNoRing) {
		t.Fatalf("third claim of two rings: %v", err)
	}
	cons.Close()
	l.Close()
	got := logged(t, filepath.Join(dir, "log"))
	checkLog(t, got, acked)
	for w := range 6 {
		if len(got[w]) != 120 {
			t.Fatalf("producer %d: %d records logged", w, len(got[w]))
		}
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []Config{
		{Member: "QM1"},
		{CFDir: "/x"},
		{CFDir: "/x", Member: "bad/name"},
		{CFDir: "/x", Member: "QM1", RingSize: 5000},
		{CFDir: "/x", Member: "QM1", Rings: -1},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
}

// TestDiskCrash cuts the power under the log while producers wait on it:
// every record a producer was told is durable is in the log afterwards,
// and the producers learn that the log failed.
func TestDiskCrash(t *testing.T) {
	for round := range 20 {
		dir := t.TempDir()
		m := vfs.NewMem(uint64(round))
		var src rlog.Counter
		l, err := rlog.Open(rlog.Config{FS: m, Dir: "/log", LRSN: &src, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		b, err := Create(Config{CFDir: dir, Member: "QM1", Rings: 4, RingSize: testRingSize})
		if err != nil {
			t.Fatal(err)
		}
		cons, err := NewConsumer(b, l, nil)
		if err != nil {
			t.Fatal(err)
		}
		acked := map[int][]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := b.Claim(uint64(w))
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; ; i++ {
					rec := record(w, i)
					pos, err := p.Append(uint8(1+i%200), rec)
					if err == nil {
						err = p.Wait(pos)
					}
					if err != nil {
						if !errors.Is(err, ErrLogFailed) {
							t.Errorf("producer %d: %v", w, err)
						}
						return
					}
					mu.Lock()
					acked[w] = append(acked[w], i)
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(1+round%5) * time.Millisecond)
		m.Crash(true) // a power cut: nothing reaches the disk any more
		wg.Wait()
		cons.Close()
		l.Close()
		b.Close()
		m.Restart()
		checkLog(t, loggedIn(t, m, "/log"), acked)
	}
}

// TestPiecesWithoutTheirStart builds, by hand, the rings a consumer
// killed half way through a record leaves, and one a producer left after
// giving up on a record half way. The new consumer drops the rest of the
// first record and everything after it in that ring (none of it was
// durable), drops the abandoned start in the other, and logs the whole
// records around it.
func TestPiecesWithoutTheirStart(t *testing.T) {
	dir := t.TempDir()
	var src rlog.Counter
	logDir := filepath.Join(dir, "log")
	l, err := rlog.Open(rlog.Config{Dir: logDir, LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 2, RingSize: testRingSize})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// put writes bytes from:to of record (w, i) (to -1: its end) at ring
	// r's head and publishes them.
	put := func(r uint64, w, i int, from, to int, flags uint8) {
		rh := b.ring(r)
		head := atomic.LoadUint64(b.u64(rh + rHead))
		rec := record(w, i)
		if to < 0 {
			to = len(rec)
		}
		rec = rec[from:to]
		data := b.data(r)[head%b.size:]
		putRecHdr(data, uint32(len(rec)), uint8(1+i%200), flags)
		copy(data[recHdr:], rec)
		atomic.StoreUint64(b.u64(rh+rHead), head+recHdr+pad8(uint64(len(rec))))
	}
	// Ring 0: record 0 whole and record 1's first piece, which the dead
	// consumer took (the tail is past them), then record 1's last piece
	// and record 2.
	put(0, 0, 0, 0, -1, 0)
	put(0, 0, 1, 0, 24, flagMore)
	atomic.StoreUint64(b.u64(b.ring(0)+rTail), atomic.LoadUint64(b.u64(b.ring(0)+rHead)))
	put(0, 0, 1, 24, 48, flagCont)
	put(0, 0, 2, 0, -1, 0)
	// Ring 1: record 0 whole, record 1's first piece (its producer gave up),
	// then record 2 whole, written by the ring's next producer.
	put(1, 1, 0, 0, -1, 0)
	put(1, 1, 1, 0, 24, flagMore)
	put(1, 1, 2, 0, -1, 0)
	var said []string
	var mu sync.Mutex
	cons, err := NewConsumer(b, l, func(f string, args ...any) {
		mu.Lock()
		said = append(said, fmt.Sprintf(f, args...))
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	cons.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := rlog.NewReader(nil, logDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w, i := int(binary.LittleEndian.Uint64(rec.Payload)), int(binary.LittleEndian.Uint64(rec.Payload[8:]))
		if !bytes.Equal(rec.Payload, record(w, i)) {
			t.Fatalf("record (%d, %d) of %d bytes is not the one written", w, i, len(rec.Payload))
		}
		got = append(got, fmt.Sprintf("%d.%d", w, i))
	}
	if want := "1.0 1.2"; strings.Join(got, " ") != want {
		t.Fatalf("logged %q, want %q", strings.Join(got, " "), want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(said) != 2 || !strings.Contains(said[0], "previous consumer") || !strings.Contains(said[1], "abandoned") {
		t.Fatalf("consumer said %q", said)
	}
}

// FuzzDrain fills a ring with arbitrary bytes, as a producer that writes
// what no producer of this package writes could: the consumer never
// panics, never reads past what was published, and logs only records it
// found whole.
func FuzzDrain(f *testing.F) {
	ring := make([]byte, MinRingSize)
	putRecHdr(ring, 5, 1, 0)
	copy(ring[recHdr:], "hello")
	putRecHdr(ring[16:], 8, 2, flagMore)
	putRecHdr(ring[32:], 3, 2, flagCont)
	f.Add(ring[:48], uint16(48))
	putRecHdr(ring, 0, 0, flagPad)
	f.Add(ring[:8], uint16(MinRingSize))
	putRecHdr(ring, 9000, 1, 0)
	f.Add(ring[:8], uint16(16))
	b, err := Create(Config{CFDir: f.TempDir(), Member: "QM1", Rings: 1, RingSize: MinRingSize})
	if err != nil {
		f.Fatal(err)
	}
	defer b.Close()
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{FS: vfs.NewMem(1), Dir: "/log", LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	c := &Consumer{b: b, log: l, logf: func(string, ...any) {}, partial: make([][]byte, 1), ptype: make([]uint8, 1)}
	f.Fuzz(func(t *testing.T, data []byte, head uint16) {
		rh := b.ring(0)
		tail := atomic.LoadUint64(b.u64(rh + rHead))
		tail += b.size - tail%b.size // the fuzz input starts at the ring's start
		atomic.StoreUint64(b.u64(rh+rTail), tail)
		ringData := b.data(0)
		clear(ringData)
		copy(ringData, data)
		h := tail + uint64(head)%(b.size+1)
		atomic.StoreUint64(b.u64(rh+rHead), h)
		c.partial[0] = nil
		c.drain()
		if got := atomic.LoadUint64(b.u64(rh + rTail)); got != h {
			t.Fatalf("tail %d after a drain of everything up to %d", got, h)
		}
		for _, r := range c.recs {
			if r.to-r.from > int(h-tail) || r.end > h {
				t.Fatalf("record %+v from %d published bytes", r, h-tail)
			}
		}
	})
}

// TestReclaimAfterTake: a producer's last record, which the consumer has
// taken from the ring (Release returned) but not yet handed to the log when
// another connection claims the ring, is logged. The claim's
// acknowledgement (its head as the resume position) once made the consumer
// drop it as failed work; CI caught it in TestInProcess ("record 119
// acknowledged, log holds 118 records").
func TestReclaimAfterTake(t *testing.T) {
	dir := t.TempDir()
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "log"), LRSN: &src, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 1, RingSize: testRingSize})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	released := make(chan struct{})
	claimed := make(chan *Producer, 1)
	var once sync.Once
	afterTake = func() {
		once.Do(func() {
			select {
			case <-released:
			case <-time.After(10 * time.Second):
				t.Error("Release did not return after the consumer took the record")
			}
			q, err := b.Claim(2)
			if err != nil {
				t.Error(err)
			}
			claimed <- q
		})
	}
	t.Cleanup(func() { afterTake = nil })
	cons, err := NewConsumer(b, l, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.Claim(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(1, record(0, 0)); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(); err != nil {
		t.Fatal(err)
	}
	close(released)
	q := <-claimed
	if q == nil {
		t.FailNow()
	}
	pos, err := q.Append(1, record(1, 0))
	if err == nil {
		err = q.Wait(pos)
	}
	if err != nil {
		t.Fatal(err)
	}
	cons.Close()
	l.Close()
	got := logged(t, filepath.Join(dir, "log"))
	if len(got[0]) != 1 || len(got[1]) != 1 {
		t.Fatalf("the log holds %v records of the released producer and %v of the next (want [0] and [0])", got[0], got[1])
	}
}
