package logbuf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/shm"
)

// logLines collects what a consumer reports.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func openLog(t *testing.T, dir string) *rlog.Log {
	t.Helper()
	l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "log"), LRSN: &rlog.Counter{}, SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendAll appends records (w, from..to-1) through p, waiting for each.
func appendAll(p *Producer, w, from, to int) error {
	for i := from; i < to; i++ {
		rec := record(w, i)
		pos, err := p.Append(uint8(1+i%200), rec)
		if err == nil {
			err = p.Wait(pos)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// TestTruncatedUnderMapping: the buffer's file cut to its header page
// while a consumer and a producer have it mapped. Neither process dies
// (the test would die of SIGBUS): the producer's next Append fails with
// ErrBufferLost, the consumer replaces the buffer and says so, producers
// of the new one log again, and every record acknowledged before is in
// the log.
func TestTruncatedUnderMapping(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	cfg := Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 2, RingSize: testRingSize}
	var said logLines
	cons, err := Start(cfg, l, said.logf)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Attach(cfg.CFDir, "QM1")
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	p, err := pb.Claim(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendAll(p, 1, 0, 40); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(Dir(cfg.CFDir), "QM1")
	st, _ := os.Stat(path)
	if err := os.Truncate(path, shm.PageSize); err != nil {
		t.Fatal(err)
	}
	_, err = p.Append(1, record(1, 40))
	if !errors.Is(err, ErrBufferLost) {
		t.Fatalf("append to a truncated buffer: %v, want ErrBufferLost", err)
	}
	if err := p.Wait(1 << 40); !errors.Is(err, ErrBufferLost) {
		t.Fatalf("wait on a truncated buffer: %v", err)
	}
	p.BeginVisible() // must not fault either
	p.EndVisible()
	if _, err := pb.InFlight(); !errors.Is(err, ErrBufferLost) {
		t.Fatalf("InFlight of a truncated buffer: %v", err)
	}
	if _, err := pb.OldestUOW(); !errors.Is(err, ErrBufferLost) {
		t.Fatalf("OldestUOW of a truncated buffer: %v", err)
	}
	if !pb.Ended(InFlight{}) {
		t.Fatal("an operation in a truncated buffer has not ended")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !said.has("log buffer replaced") {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not replace the truncated buffer: %q", said.lines)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if now, err := os.Stat(path); err != nil || now.Size() != st.Size() {
		t.Fatalf("replaced buffer: %v, %v", now, err)
	}
	nb, err := Attach(cfg.CFDir, "QM1")
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close()
	p2, err := nb.Claim(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendAll(p2, 2, 0, 40); err != nil {
		t.Fatalf("producer of the new buffer: %v", err)
	}
	cons.Close()
	l.Close()
	got := logged(t, filepath.Join(dir, "log"))
	checkLog(t, got, map[int][]int{1: seq(40), 2: seq(40)})
}

// TestRemovedUnderMapping: the buffer's file removed while mapped is
// replaced too (new producers could not attach it), and what the old
// buffer's producers published before is logged.
func TestRemovedUnderMapping(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir)
	cfg := Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 2, RingSize: testRingSize}
	var said logLines
	cons, err := Start(cfg, l, said.logf)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Attach(cfg.CFDir, "QM1")
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Close()
	p, err := pb.Claim(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendAll(p, 1, 0, 20); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(Dir(cfg.CFDir), "QM1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !said.has("log buffer replaced") {
		if time.Now().After(deadline) {
			t.Fatalf("the consumer did not replace the removed buffer: %q", said.lines)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The old buffer's producer learns its consumer is gone.
	if err := appendAll(p, 1, 20, 21); !errors.Is(err, ErrConsumerGone) {
		t.Fatalf("producer of the removed buffer: %v, want ErrConsumerGone", err)
	}
	nb, err := Attach(cfg.CFDir, "QM1")
	if err != nil {
		t.Fatalf("attach after the replacement: %v", err)
	}
	defer nb.Close()
	p2, err := nb.Claim(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := appendAll(p2, 2, 0, 20); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	l.Close()
	got := logged(t, filepath.Join(dir, "log"))
	checkLog(t, got, map[int][]int{1: seq(20), 2: seq(20)})
}

// TestStartReplacesUnusable: a member starts on a buffer file shorter
// than a header, shorter than its header says, with a damaged header, of
// another layout version, or of another geometry: the file is replaced
// (after logging what the last one's producers published, where it can
// be read) and the consumer says what it dropped.
func TestStartReplacesUnusable(t *testing.T) {
	cases := map[string]func(t *testing.T, path string, cfg Config){
		"shorter than a header": func(t *testing.T, path string, _ Config) { os.Truncate(path, 100) },
		"truncated":             func(t *testing.T, path string, _ Config) { os.Truncate(path, 3*shm.PageSize) },
		"zeroed header":         func(t *testing.T, path string, _ Config) { os.WriteFile(path, make([]byte, 8192), 0o660) },
		"other layout version": func(t *testing.T, path string, cfg Config) {
			os.Remove(path)
			o, _ := createOptions(cfg)
			o.Version = layoutVersion + 1
			m, _, err := shm.Create(o)
			if err != nil {
				t.Fatal(err)
			}
			m.Close()
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 2, RingSize: testRingSize}
			b, err := Create(cfg)
			if err != nil {
				t.Fatal(err)
			}
			b.Close()
			damage(t, filepath.Join(Dir(cfg.CFDir), "QM1"), cfg)
			l := openLog(t, dir)
			defer l.Close()
			var said logLines
			cons, err := Start(cfg, l, said.logf)
			if err != nil {
				t.Fatalf("start on a damaged buffer: %v", err)
			}
			defer cons.Close()
			if !said.has("dropped") {
				t.Fatalf("nothing said about what was dropped: %q", said.lines)
			}
			pb, err := Attach(cfg.CFDir, "QM1")
			if err != nil {
				t.Fatal(err)
			}
			defer pb.Close()
			p, err := pb.Claim(1)
			if err != nil {
				t.Fatal(err)
			}
			if err := appendAll(p, 1, 0, 10); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("other geometry", func(t *testing.T) {
		dir := t.TempDir()
		old := Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 2, RingSize: testRingSize}
		l := openLog(t, dir)
		cons, err := Start(old, l, t.Logf)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := Attach(old.CFDir, "QM1")
		if err != nil {
			t.Fatal(err)
		}
		p, err := pb.Claim(1)
		if err != nil {
			t.Fatal(err)
		}
		if err := appendAll(p, 1, 0, 10); err != nil {
			t.Fatal(err)
		}
		cons.Close()
		// Published after the consumer stopped: the next one logs them.
		for i := 10; i < 15; i++ {
			if _, err := p.Append(uint8(1+i%200), record(1, i)); err != nil {
				t.Fatal(err)
			}
		}
		pb.Close()
		bigger := old
		bigger.Rings = 8
		var said logLines
		cons, err = Start(bigger, l, said.logf)
		if err != nil {
			t.Fatal(err)
		}
		if !said.has("configured for 8") {
			t.Fatalf("nothing said about the replacement: %q", said.lines)
		}
		if got := cons.Buffer().rings; got != 8 {
			t.Fatalf("%d rings after the replacement", got)
		}
		cons.Close()
		l.Close()
		checkLog(t, logged(t, filepath.Join(dir, "log")), map[int][]int{1: seq(15)})
	})
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}
