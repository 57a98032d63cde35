package rlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qmgr/qmgr/vfs"
	"golang.org/x/sys/unix"
)

const testDir = "/data/log/QM1"

func memLog(t *testing.T, m *vfs.Mem, src LRSNSource, segSize int64) *Log {
	t.Helper()
	l, err := Open(Config{FS: m, Dir: testDir, Name: "QM1", LRSN: src, SegmentSize: segSize})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// payload builds a record body that names its writer and sequence number
// and has a length drawn from both.
func payload(writer, seq int) []byte {
	n := 16 + (writer*7919+seq*104729)%300
	b := make([]byte, n)
	binary.LittleEndian.PutUint64(b, uint64(writer))
	binary.LittleEndian.PutUint64(b[8:], uint64(seq))
	for i := 16; i < n; i++ {
		b[i] = byte(writer + seq + i)
	}
	return b
}

func parsePayload(t *testing.T, b []byte) (writer, seq int) {
	t.Helper()
	if len(b) < 16 {
		t.Fatalf("record of %d bytes", len(b))
	}
	writer, seq = int(binary.LittleEndian.Uint64(b)), int(binary.LittleEndian.Uint64(b[8:]))
	if !bytes.Equal(b, payload(writer, seq)) {
		t.Fatalf("record (writer %d, seq %d) has the wrong body", writer, seq)
	}
	return writer, seq
}

// readAllRecords reads the whole log, checking LRSNs only grow.
func readAllRecords(t *testing.T, fsys vfs.FS, from uint64) ([]Record, error) {
	t.Helper()
	r, err := NewReader(fsys, testDir, from)
	if err != nil {
		return nil, err
	}
	var recs []Record
	var last uint64
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return recs, nil
		}
		if err != nil {
			return recs, err
		}
		if rec.LRSN <= last || rec.LRSN < from {
			t.Fatalf("LRSN %d after %d (from %d)", rec.LRSN, last, from)
		}
		last = rec.LRSN
		rec.Payload = append([]byte(nil), rec.Payload...)
		recs = append(recs, rec)
	}
}

func TestAppendReadBackAndReopen(t *testing.T) {
	m := vfs.NewMem(1)
	var src Counter
	l := memLog(t, m, &src, 8192)
	const writers, per = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if err := l.Write(uint8(1+w), payload(w, i)); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	if st.Records != writers*per || st.Segment < 10 {
		t.Fatalf("stats %+v: want %d records over many segments", st, writers*per)
	}
	check := func(want int) {
		recs, err := readAllRecords(t, m, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != want {
			t.Fatalf("read %d records, want %d", len(recs), want)
		}
		next := map[int]int{}
		for _, r := range recs {
			w, s := parsePayload(t, r.Payload)
			if int(r.Type) != 1+w {
				t.Fatalf("record of writer %d has type %d", w, r.Type)
			}
			if s != next[w] {
				t.Fatalf("writer %d: record %d where %d was due", w, s, next[w])
			}
			next[w]++
		}
	}
	check(writers * per)

	// Reopened, the log goes on after its last record with greater LRSNs,
	// even when the source starts again from zero (a new CF).
	var fresh Counter
	l = memLog(t, m, &fresh, 8192)
	if _, last := l.Durable(); last != writers*per {
		t.Fatalf("last durable LRSN of the reopened log: %d, want %d", last, writers*per)
	}
	for i := range per {
		if err := l.Write(uint8(1+writers), payload(writers, i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	check(writers*per + per)
}

func TestGroupCommit(t *testing.T) {
	m := vfs.NewMem(2)
	// A sync that takes a millisecond lets records gather behind it.
	m.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync {
			time.Sleep(time.Millisecond)
		}
		return n, nil
	})
	var src Counter
	l := memLog(t, m, &src, 1<<20)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := l.Write(1, payload(w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	l.Close()
	if st.Records != 16*50 || st.Syncs >= st.Records/2 {
		t.Fatalf("stats %+v: want 800 records in fewer than 400 syncs", st)
	}
	t.Logf("%d records in %d syncs", st.Records, st.Syncs)
}

// TestCrashKeepsAcknowledged crashes a disk under a log that is being
// written, with torn writes, many times: every acknowledged record must
// be there after reopening, the log must open (a torn tail is not
// corruption), and what it holds must be records that were appended.
func TestCrashKeepsAcknowledged(t *testing.T) {
	rounds := 100
	if testing.Short() {
		rounds = 30
	}
	m := vfs.NewMem(3)
	var src Counter
	acked := map[[2]int]bool{}
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range rounds {
		l, err := Open(Config{FS: m, Dir: testDir, Name: "QM1", LRSN: &src, SegmentSize: 4096 + int64(rng.IntN(4))*1024})
		if err != nil {
			t.Fatalf("round %d: open after crash: %v", round, err)
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					seq := round*100000 + i
					if err := l.Write(1, payload(w, seq)); err != nil {
						return
					}
					mu.Lock()
					acked[[2]int{w, seq}] = true
					mu.Unlock()
				}
			}()
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		// The process dies: nothing it does from now on reaches the disk.
		m.Crash(true)
		wg.Wait()
		l.Close()
		m.Restart()

		recs, err := readAllRecords(t, m, 0)
		if err != nil {
			t.Fatalf("round %d: read after crash: %v", round, err)
		}
		found := map[[2]int]bool{}
		for _, r := range recs {
			w, s := parsePayload(t, r.Payload)
			k := [2]int{w, s}
			if found[k] {
				t.Fatalf("round %d: record %v twice", round, k)
			}
			found[k] = true
		}
		for k := range acked {
			if !found[k] {
				t.Fatalf("round %d: acknowledged record %v lost (%d records in the log)", round, k, len(recs))
			}
		}
	}
	t.Logf("%d acknowledged records over %d crashes", len(acked), rounds)
}

func writeN(t *testing.T, l *Log, w, n int) {
	t.Helper()
	for i := range n {
		if err := l.Write(1, payload(w, i)); err != nil {
			t.Fatal(err)
		}
	}
}

// flip changes one byte of a segment file.
func flip(t *testing.T, m *vfs.Mem, seq uint64, off int64) {
	t.Helper()
	f, err := m.Open(filepath.Join(testDir, segName(seq)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// recordOffsets lists the offsets of the records in a segment.
func recordOffsets(t *testing.T, m *vfs.Mem, seq uint64) []int64 {
	t.Helper()
	b, err := readAll(m, filepath.Join(testDir, segName(seq)))
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for p := segHeaderSize; ; {
		h, ok := parseRecord(b[p:], seq)
		if !ok {
			return offs
		}
		offs = append(offs, int64(p))
		p += recSize(h.n)
	}
}

func TestCorruptionToldFromTornTail(t *testing.T) {
	setup := func(t *testing.T) *vfs.Mem {
		m := vfs.NewMem(4)
		var src Counter
		l := memLog(t, m, &src, 1<<20)
		writeN(t, l, 0, 20) // 20 writes of one record each
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	t.Run("middle", func(t *testing.T) {
		m := setup(t)
		offs := recordOffsets(t, m, 1)
		flip(t, m, 1, offs[10]+recHeaderSize+3)
		var src Counter
		if _, err := Open(Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 1 << 20}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
		recs, err := readAllRecords(t, m, 0)
		if !errors.Is(err, ErrCorrupt) || len(recs) != 10 {
			t.Fatalf("reader: %d records, %v; want 10 then ErrCorrupt", len(recs), err)
		}
	})
	t.Run("last write", func(t *testing.T) {
		m := setup(t)
		offs := recordOffsets(t, m, 1)
		flip(t, m, 1, offs[19]+5)
		var src Counter
		l, err := Open(Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 1 << 20})
		if err != nil {
			t.Fatalf("open with a damaged last write: %v", err)
		}
		writeN(t, l, 1, 5)
		l.Close()
		recs, err := readAllRecords(t, m, 0)
		if err != nil || len(recs) != 24 {
			t.Fatalf("after a torn tail: %d records, %v; want 19+5", len(recs), err)
		}
	})
	t.Run("earlier segment", func(t *testing.T) {
		m := vfs.NewMem(5)
		var src Counter
		l := memLog(t, m, &src, 4096)
		writeN(t, l, 0, 100)
		l.Close()
		offs := recordOffsets(t, m, 2)
		flip(t, m, 2, offs[len(offs)-1]+recHeaderSize)
		if _, err := Open(Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 4096}); !errors.Is(err, ErrCorrupt) {
			// Open reads only the tail; the damage shows to a reader.
			if err != nil {
				t.Fatalf("open: %v", err)
			}
		}
		if _, err := readAllRecords(t, m, 0); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("reader: %v, want ErrCorrupt", err)
		}
	})
	t.Run("first record of an earlier segment", func(t *testing.T) {
		m := vfs.NewMem(6)
		var src Counter
		l := memLog(t, m, &src, 4096)
		writeN(t, l, 0, 100)
		l.Close()
		flip(t, m, 2, segHeaderSize+9)
		if _, err := Open(Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 4096}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("open: %v, want ErrCorrupt", err)
		}
	})
}

// TestTornWriteWithLaterSectors tears the last write the way a disk can:
// a sector in its middle lost, the sectors after it kept. The log opens,
// drops the write from the lost sector on, and the kept remnants never
// come back, not even after more writes and another reopening.
func TestTornWriteWithLaterSectors(t *testing.T) {
	m := vfs.NewMem(10)
	var src Counter
	l := memLog(t, m, &src, 1<<20)
	writeN(t, l, 0, 5)
	// 40 records appended while the writer is held in the sync of the
	// record before them: the next write takes all 40.
	gate, entered := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	m.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		if op == vfs.OpSync && armed.CompareAndSwap(true, false) {
			close(entered)
			<-gate
		}
		return n, nil
	})
	armed.Store(true)
	held, _ := l.Append(1, payload(9, 0))
	<-entered
	var tickets []Ticket
	for i := range 40 {
		tk, _ := l.Append(1, payload(1, i))
		tickets = append(tickets, tk)
	}
	close(gate)
	if err := l.Wait(held); err != nil {
		t.Fatal(err)
	}
	for _, tk := range tickets {
		if err := l.Wait(tk); err != nil {
			t.Fatal(err)
		}
	}
	m.SetFault(nil)
	l.Close()
	offs := recordOffsets(t, m, 1)
	if len(offs) != 46 {
		t.Fatalf("%d records", len(offs))
	}
	b, _ := readAll(m, filepath.Join(testDir, segName(1)))
	writeOf := func(i int) uint64 { h, _ := parseRecord(b[offs[i]:], 1); return h.write }
	if writeOf(6) != writeOf(45) || writeOf(5) == writeOf(6) {
		t.Fatal("the 40 records are not one write")
	}
	// Lose the sector holding the middle record of the last write.
	mid := 6 + 20
	lost := offs[mid] &^ (vfs.SectorSize - 1)
	f, _ := m.Open(filepath.Join(testDir, segName(1)))
	f.WriteAt(make([]byte, vfs.SectorSize), lost)
	f.Sync()
	f.Close()
	if lost+vfs.SectorSize > offs[45] {
		t.Fatal("records too short for the test")
	}

	l = memLog(t, m, &src, 1<<20)
	writeN(t, l, 2, 3)
	l.Close()
	l = memLog(t, m, &src, 1<<20)
	writeN(t, l, 3, 3)
	l.Close()
	recs, err := readAllRecords(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, r := range recs {
		w, s := parsePayload(t, r.Payload)
		got = append(got, w*100+s)
	}
	var want []int
	for i := range 5 {
		want = append(want, i)
	}
	want = append(want, 900)
	for i := 0; offs[6+i]+int64(recSize(len(payload(1, i)))) <= lost; i++ {
		want = append(want, 100+i)
	}
	want = append(want, 200, 201, 202, 300, 301, 302)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records %v\nwant %v", got, want)
	}
}

func TestFaults(t *testing.T) {
	// first: what the first failed write returns. A failed sync may have
	// left the record on disk; with every sync failing the log cannot seal
	// it off, so its outcome is uncertain. The writes after it are
	// refused (ErrFailed).
	cases := []struct {
		name  string
		fault func(m *vfs.Mem) vfs.Fault
		is    error
		first error
	}{
		{"failed sync", func(*vfs.Mem) vfs.Fault {
			return func(op vfs.Op, name string, off int64, n int) (int, error) {
				if op == vfs.OpSync {
					return 0, unix.EIO
				}
				return n, nil
			}
		}, unix.EIO, ErrUncertain},
		{"short write", func(*vfs.Mem) vfs.Fault {
			return func(op vfs.Op, name string, off int64, n int) (int, error) {
				if op == vfs.OpWrite && off >= segHeaderSize && off < 4096 && n > 40 {
					return n / 2, unix.EIO
				}
				return n, nil
			}
		}, unix.EIO, ErrFailed},
		{"full disk", func(m *vfs.Mem) vfs.Fault {
			m.SetCapacity(3*16384 + 100)
			return nil
		}, unix.ENOSPC, ErrFailed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := vfs.NewMem(7)
			var src Counter
			l := memLog(t, m, &src, 16384)
			writeN(t, l, 0, 10)
			m.SetFault(c.fault(m))
			var err error
			acked := 10
			for i := 0; i < 10000 && err == nil; i++ {
				if err = l.Write(1, payload(1, i)); err == nil {
					acked++
				}
			}
			if !errors.Is(err, c.first) || !errors.Is(err, c.is) {
				t.Fatalf("write error %v, want %v and %v", err, c.first, c.is)
			}
			if err2 := l.Write(1, payload(2, 0)); !errors.Is(err2, ErrFailed) {
				t.Fatalf("write after a failure: %v, want ErrFailed", err2)
			}
			l.Close()
			m.SetFault(nil)
			m.SetCapacity(0)
			m.Crash(true)
			m.Restart()
			l = memLog(t, m, &src, 16384)
			writeN(t, l, 3, 5)
			l.Close()
			recs, err := readAllRecords(t, m, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := map[[2]int]bool{}
			for _, r := range recs {
				w, s := parsePayload(t, r.Payload)
				got[[2]int{w, s}] = true
			}
			for i := range 10 {
				if !got[[2]int{0, i}] {
					t.Fatalf("acknowledged record %d lost", i)
				}
			}
			for i := range acked - 10 {
				if !got[[2]int{1, i}] {
					t.Fatalf("acknowledged record %d lost", i)
				}
			}
			if got[[2]int{2, 0}] {
				t.Fatal("a record refused by a failed log is in it")
			}
			for i := range 5 {
				if !got[[2]int{3, i}] {
					t.Fatalf("record %d written after reopening lost", i)
				}
			}
		})
	}
}

func TestRelease(t *testing.T) {
	for _, archive := range []bool{false, true} {
		t.Run(fmt.Sprintf("archive=%v", archive), func(t *testing.T) {
			m := vfs.NewMem(8)
			var src Counter
			cfg := Config{FS: m, Dir: testDir, LRSN: &src, SegmentSize: 4096}
			if archive {
				cfg.ArchiveDir = "/data/archive/QM1"
			}
			l, err := Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			writeN(t, l, 0, 200)
			const cut = 120
			n, err := l.Release(cut)
			if err != nil || n == 0 {
				t.Fatalf("release: %d, %v", n, err)
			}
			after, _ := listSegments(m, testDir)
			if after[0] != uint64(n+1) {
				t.Fatalf("released %d segments, the oldest left is %d", n, after[0])
			}
			if archive {
				arch, _ := listSegments(m, cfg.ArchiveDir)
				if len(arch) != n || arch[n-1] != uint64(n) {
					t.Fatalf("archived %v, released %d", arch, n)
				}
			}
			writeN(t, l, 1, 10)
			l.Close()
			recs, err := readAllRecords(t, m, cut)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 200-cut+1+10 || recs[0].LRSN != cut {
				t.Fatalf("from LRSN %d: %d records starting at %d", cut, len(recs), recs[0].LRSN)
			}
			all, _ := readAllRecords(t, m, 0)
			if all[0].LRSN > cut || all[0].LRSN == 1 {
				t.Fatalf("after release the log starts at LRSN %d", all[0].LRSN)
			}
			if _, err := l.Release(1 << 62); !errors.Is(err, ErrClosed) {
				t.Fatalf("release on a closed log: %v", err)
			}
		})
	}
}

func TestOSFiles(t *testing.T) {
	dir := t.TempDir()
	var src Counter
	l, err := Open(Config{Dir: dir, Name: "QM1", LRSN: &src, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, err := l.Append(2, payload(0, i)[:8], payload(0, i)[8:]); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(nil, dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		rec, err := r.Next()
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if _, s := parsePayload(t, rec.Payload); s != i || rec.Type != 2 || rec.LRSN != uint64(i+1) {
			t.Fatalf("record %d: seq %d type %d LRSN %d", i, s, rec.Type, rec.LRSN)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("after the last record: %v", err)
	}
}

func TestConfigAndLimits(t *testing.T) {
	var src Counter
	for _, c := range []Config{
		{LRSN: &src},
		{Dir: "/x"},
		{Dir: "/x", LRSN: &src, SegmentSize: 100},
		{Dir: "/x", LRSN: &src, SegmentSize: 4097},
		{Dir: "/x", LRSN: &src, Name: "a name much longer than twenty-four bytes"},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", c, err)
		}
	}
	m := vfs.NewMem(9)
	l := memLog(t, m, &src, 4096)
	defer l.Close()
	if _, err := l.Append(0, []byte("x")); !errors.Is(err, ErrType) {
		t.Fatalf("type 0: %v", err)
	}
	if _, err := l.Append(1, make([]byte, MaxPayload(4096)+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if err := l.Write(1, make([]byte, MaxPayload(4096))); err != nil {
		t.Fatalf("largest record: %v", err)
	}
}

// TestReaderWhileTheWriterReopens: a reader of a member's log (a structure
// recovery) lists the segments, and then the member opens its log and
// drops the empty spare at its tail: the reader reads every record and
// does not fail on the spare that vanished. A segment missing between
// others is still an error.
func TestReaderWhileTheWriterReopens(t *testing.T) {
	m := vfs.NewMem(1)
	var src Counter
	l := memLog(t, m, &src, 4096)
	writeN(t, l, 0, 200)
	l.Close()
	seqs, _ := listSegments(m, testDir)
	if len(seqs) < 3 {
		t.Fatalf("segments %v: want several", seqs)
	}
	// An empty spare after the last segment, as a writer prepares ahead.
	spare := seqs[len(seqs)-1] + 1
	f, err := m.Create(filepath.Join(testDir, segName(spare)))
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, segHeaderSize)
	encodeSegHeader(head, uint64(spare), 4096, "QM1", 0)
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	f.Truncate(4096)
	f.Close()
	r, err := NewReader(m, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	l = memLog(t, m, &src, 4096) // drops the spare
	l.Close()
	if _, err := m.Open(filepath.Join(testDir, segName(spare))); err == nil {
		t.Fatal("the reopened log kept its empty spare")
	}
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d records: %v", n, err)
		}
		n++
	}
	if n != 200 {
		t.Fatalf("read %d records, want 200", n)
	}
	// A segment removed between others: an error, not a silent gap.
	r, err = NewReader(m, testDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Remove(filepath.Join(testDir, segName(seqs[1]))); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := r.Next()
		if err == io.EOF {
			t.Fatal("a segment missing between others read as the end of the log")
		}
		if err != nil {
			break
		}
	}
}
