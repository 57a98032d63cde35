package rlog

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/vfs"
	"golang.org/x/sys/unix"
)

// outcomes records what writers were told: durable, failed (not durable,
// never will be) or uncertain.
type outcomes struct {
	mu        sync.Mutex
	durable   map[[2]int]bool
	failed    map[[2]int]error
	uncertain map[[2]int]bool
}

func newOutcomes() *outcomes {
	return &outcomes{durable: map[[2]int]bool{}, failed: map[[2]int]error{}, uncertain: map[[2]int]bool{}}
}

func (o *outcomes) write(l *Log, w, seq int) error {
	err := l.Write(1, payload(w, seq))
	o.mu.Lock()
	defer o.mu.Unlock()
	k := [2]int{w, seq}
	switch {
	case err == nil:
		o.durable[k] = true
	case errors.Is(err, ErrFailed):
		o.failed[k] = err
	default:
		o.uncertain[k] = true
	}
	return err
}

// check reads the log and proves: every record reported durable is in
// it once, no record reported failed is in it.
func (o *outcomes) check(t *testing.T, fsys vfs.FS) {
	t.Helper()
	recs, err := readAllRecords(t, fsys, 0)
	if err != nil {
		t.Fatalf("read the log: %v", err)
	}
	got := map[[2]int]int{}
	for _, r := range recs {
		w, s := parsePayload(t, r.Payload)
		got[[2]int{w, s}]++
	}
	for k, n := range got {
		if n > 1 {
			t.Fatalf("record %v %d times in the log", k, n)
		}
		if err, bad := o.failed[k]; bad {
			t.Fatalf("record %v is in the log, yet its writer was told it failed (%v)", k, err)
		}
	}
	for k := range o.durable {
		if got[k] == 0 {
			t.Fatalf("record %v reported durable is not in the log", k)
		}
	}
}

// writeUntil writes records of writer w from seq on until one fails or
// ok says stop, and returns the next seq and the error.
func writeUntil(o *outcomes, l *Log, w, seq, limit int) (int, error) {
	for ; seq < limit; seq++ {
		if err := o.write(l, w, seq); err != nil {
			return seq + 1, err
		}
	}
	return seq, nil
}

// TestDiskFullThenSpace: the log's disk fills up. Writes fail with a
// clear reason (ENOSPC) while it is full, the log writes again by itself
// once space returns, and after a crash nothing reported durable is
// lost and nothing reported failed is there.
func TestDiskFullThenSpace(t *testing.T) {
	const seg = 16384
	m := vfs.NewMem(21)
	var src Counter
	l := memLog(t, m, &src, seg)
	o := newOutcomes()
	if _, err := writeUntil(o, l, 0, 0, 20); err != nil {
		t.Fatal(err)
	}
	// Room for the segments there are and one more: the log fills it.
	m.SetCapacity(m.Used() + seg + 512)
	seq, err := writeUntil(o, l, 1, 0, 100000)
	if !errors.Is(err, ErrFailed) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("write on a full disk: %v, want ErrFailed and ENOSPC", err)
	}
	t.Logf("full after %d records: %v", seq, err)
	// Full: every write fails at once, with the reason.
	for i := range 5 {
		if err := o.write(l, 2, i); !errors.Is(err, unix.ENOSPC) {
			t.Fatalf("write while full: %v", err)
		}
	}
	// Space returns: the log writes again by itself.
	m.SetCapacity(0)
	deadline := time.Now().Add(20 * time.Second)
	var werr error
	for i := 0; ; i++ {
		if werr = o.write(l, 3, i); werr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log did not write again after space returned: %v", werr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := writeUntil(o, l, 4, 0, 50); err != nil {
		t.Fatalf("after space returned: %v", err)
	}
	l.Close()
	o.check(t, m)
	m.Crash(true)
	m.Restart()
	o.check(t, m)
	l = memLog(t, m, &src, seg)
	if _, err := writeUntil(o, l, 5, 0, 10); err != nil {
		t.Fatal(err)
	}
	l.Close()
	o.check(t, m)
}

// TestSyncFailsThenWorks: fdatasync fails for a while (after a failed
// sync the written bytes may or may not be on disk: both are tried). A
// record whose writer was told it failed never shows up in the log, not
// even when its bytes reached the disk, nor after a crash; the log writes
// again once syncs work.
func TestSyncFailsThenWorks(t *testing.T) {
	// fail: how many syncs fail. With one, the log seals the failed
	// write off at once and its writers are told it failed; with more,
	// the seal fails too and they are told the outcome is uncertain.
	for _, c := range []struct {
		syncErr error
		fail    int
		torn    bool
	}{
		{unix.EIO, 1, false}, {unix.EIO, 3, true},
		{vfs.ErrSyncedAnyway, 1, false}, {vfs.ErrSyncedAnyway, 1, true}, {vfs.ErrSyncedAnyway, 3, false},
	} {
		torn := c.torn
		m := vfs.NewMem(22)
		var src Counter
		l := memLog(t, m, &src, 16384)
		o := newOutcomes()
		if _, err := writeUntil(o, l, 0, 0, 10); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		failing := c.fail // syncs still to fail
		m.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			if op == vfs.OpSync && failing > 0 {
				failing--
				return 0, c.syncErr
			}
			return n, nil
		})
		_, err := writeUntil(o, l, 1, 0, 100)
		if err == nil {
			t.Fatal("no write failed while syncs failed")
		}
		t.Logf("write with a failing sync: %v", err)
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			if o.write(l, 2, i) == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the log did not write again after syncs worked again")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := writeUntil(o, l, 3, 0, 30); err != nil {
			t.Fatalf("after syncs work again: %v", err)
		}
		o.check(t, m)
		l.Close()
		m.Crash(torn)
		m.Restart()
		o.check(t, m)
		l = memLog(t, m, &src, 16384)
		if _, err := writeUntil(o, l, 4, 0, 10); err != nil {
			t.Fatal(err)
		}
		l.Close()
		o.check(t, m)
		if len(o.failed)+len(o.uncertain) == 0 {
			t.Fatal("no writer was told its record failed")
		}
	}
}

// TestSealedEmptyTail: a write fails (its bytes reach the disk anyway),
// the log seals it off and the process dies before writing anything
// else: the segment holding only the seal is the tail at the next open,
// the failed record stays out of the log, and Release can still free
// what is older than the records after it.
func TestSealedEmptyTail(t *testing.T) {
	m := vfs.NewMem(23)
	var src Counter
	l := memLog(t, m, &src, 8192)
	o := newOutcomes()
	if _, err := writeUntil(o, l, 0, 0, 60); err != nil { // a few segments
		t.Fatal(err)
	}
	once := true
	var mu sync.Mutex
	m.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		if op == vfs.OpSync && once {
			once = false
			return 0, vfs.ErrSyncedAnyway
		}
		return n, nil
	})
	if err := o.write(l, 1, 0); !errors.Is(err, ErrFailed) {
		t.Fatalf("write whose sync failed: %v, want ErrFailed (sealed off)", err)
	}
	m.Crash(false)
	l.Close()
	m.Restart()
	o.check(t, m)
	l = memLog(t, m, &src, 8192)
	if _, err := writeUntil(o, l, 2, 0, 60); err != nil {
		t.Fatal(err)
	}
	_, last := l.Durable()
	n, err := l.Release(last)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("nothing released across the sealed segment")
	}
	l.Close()
	recs, err := readAllRecords(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if w, _ := parsePayload(t, r.Payload); w == 1 {
			t.Fatal("the failed record is in the log")
		}
	}
}

// TestAppendAfterFailed: a record appended after one that failed is
// refused, even when the log writes again; one appended after a durable
// record, or after none, is written.
func TestAppendAfterFailed(t *testing.T) {
	m := vfs.NewMem(24)
	var src Counter
	l, err := Open(Config{FS: m, Dir: testDir, Name: "QM1", LRSN: &src, SegmentSize: 16384, RetryInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ok, err := l.Append(1, payload(0, 0))
	if err != nil || l.Wait(ok) != nil {
		t.Fatal(err)
	}
	once := true
	var mu sync.Mutex
	m.SetFault(func(op vfs.Op, name string, off int64, n int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		// The sync of the segment that holds the record (the writer may
		// sync the next segment's reservation first).
		if op == vfs.OpSync && once && filepath.Base(name) == segName(1) {
			once = false
			return 0, unix.EIO
		}
		return n, nil
	})
	bad, err := l.Append(1, payload(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Wait(bad); !errors.Is(err, ErrFailed) {
		t.Fatalf("record whose sync failed: %v", err)
	}
	if _, err := l.AppendAfter(bad, 1, payload(0, 2)); !errors.Is(err, ErrFailed) {
		t.Fatalf("append after a failed record: %v, want ErrFailed", err)
	}
	for _, dep := range []Ticket{0, ok} {
		tk, err := l.AppendAfter(dep, 1, payload(1, int(dep)))
		if err == nil {
			err = l.Wait(tk)
		}
		if err != nil {
			t.Fatalf("append after ticket %d: %v", dep, err)
		}
	}
}
