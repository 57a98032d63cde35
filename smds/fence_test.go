package smds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/procid"
)

// TestRebuildFencesOldMap: a Put through a handle whose space map a
// rebuild replaces (another process's handle: it keeps the old map
// mapped) claims its blocks in the old map and is held before it checks
// the fence; the rebuild retires the old map and waits for it. Released,
// the Put fails with ErrRetired without writing; the rebuild then puts
// the new map in place, whose puts take the blocks the held Put had
// claimed, and every body reads back intact. The old handle's Puts fail
// from then on, and an Open of a retired map is ErrNeedRebuild.
func TestRebuildFencesOldMap(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	defer d.Close()
	o := mustRegister(t, d)
	kept := put(t, o, body(1, 10000))

	held, release := make(chan struct{}), make(chan struct{})
	testHookFence = func() { testHookFence = func() {}; close(held); <-release }
	defer func() { testHookFence = func() {} }()
	type result struct {
		r   Ref
		err error
	}
	putDone := make(chan result, 1)
	go func() { r, err := o.Put(body(2, 10000), false); putDone <- result{r, err} }()
	<-held
	type rebuilt struct {
		d   *DataSet
		err error
	}
	rebuildDone := make(chan rebuilt, 1)
	go func() { nd, _, err := Rebuild(opts, []Ref{kept}); rebuildDone <- rebuilt{nd, err} }()
	for !d.Retired() {
		select {
		case rb := <-rebuildDone:
			t.Fatalf("the rebuild replaced the map (%v) while a Put could still write through the old one", rb.err)
		default:
			runtime.Gosched()
		}
	}
	close(release)
	if res := <-putDone; !errors.Is(res.err, ErrRetired) {
		t.Fatalf("Put through the retired map: %v, %v; want ErrRetired", res.r, res.err)
	}
	rb := <-rebuildDone
	if rb.err != nil {
		t.Fatal(rb.err)
	}
	nd := rb.d
	defer nd.Close()
	no := mustRegister(t, nd)
	defer no.Close()
	fresh := put(t, no, body(3, 10000))
	if fresh.Head != kept.Head+uint32(nd.g.blocksFor(10000)) {
		t.Fatalf("the new map put block %d, want %d (the run the fenced Put had claimed)", fresh.Head, kept.Head+uint32(nd.g.blocksFor(10000)))
	}
	for _, r := range []Ref{kept, fresh} {
		if b, err := nd.Read(r, nil); err != nil || !verifyBody(b) {
			t.Fatalf("read %v: %v", r, err)
		}
	}
	if _, err := o.Put(body(4, 100), false); !errors.Is(err, ErrRetired) {
		t.Fatalf("a later Put through the retired map: %v, want ErrRetired", err)
	}
	checkClean(t, nd, []Ref{kept, fresh})

	// A map retired at its path (a rebuild that died before its rename)
	// is not opened for allocation.
	if _, err := retireMap(nd.MapPath(), false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(opts); !errors.Is(err, ErrNeedRebuild) {
		t.Fatalf("open of a retired map: %v, want ErrNeedRebuild", err)
	}
}

// TestMapOfOldLayoutRebuilt: a space map of layout version 1 (no retired
// word) is ErrVersion to the decoder, so Open asks for a rebuild and the
// data set file (LayoutVersion, unchanged) is kept.
func TestMapOfOldLayoutRebuilt(t *testing.T) {
	b := encodeMapHeader(mapParams{Geometry: seedGeometry(), Owners: 16, Epoch: 7})
	v1 := oldMapHeader(b)
	if _, err := decodeMapHeader(v1); !errors.Is(err, ErrVersion) {
		t.Fatalf("decode of a version 1 map header: %v, want ErrVersion", err)
	}
	if _, err := decodeMapHeader(b); err != nil {
		t.Fatal(err)
	}
}

// oldMapHeader is b as a map of layout version 1 would have it.
func oldMapHeader(b []byte) []byte {
	v1 := bytes.Clone(b)
	binary.LittleEndian.PutUint32(v1[mhVersion:], 1)
	binary.LittleEndian.PutUint64(v1[mhChecksum:], xxhash.Sum64(v1[:mhChecksum]))
	return v1
}

// TestRebuildFromKeepsPutsInFlight: a run written and marked used through
// the old map but not yet published (its owner alive, Published not
// called) is kept used by RebuildFrom, whose references are read after
// the old map is retired and do not hold it: its reference may get into
// the CF after they were read. A Put through the new map takes other
// blocks.
func TestRebuildFromKeepsPutsInFlight(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	defer d.Close()
	o := mustRegister(t, d)
	kept := put(t, o, body(1, 10000))
	flying, err := o.Put(body(2, 10000), false)
	if err != nil {
		t.Fatal(err)
	}
	read := false
	nd, res, err := RebuildFrom(opts, func() ([]Ref, error) {
		if !d.Retired() {
			t.Error("the references were read before the old map was retired")
		}
		read = true
		return []Ref{kept}, nil
	})
	if err != nil || !read {
		t.Fatal(err)
	}
	defer nd.Close()
	if res.Kept != 1 || res.InFlight != 1 || len(res.Rejected) != 0 {
		t.Fatalf("RebuildFrom: %+v, want 1 kept and 1 in flight", res)
	}
	no := mustRegister(t, nd)
	defer no.Close()
	fresh := put(t, no, body(3, 10000))
	n := uint32(nd.g.blocksFor(10000))
	if fresh.Head < flying.Head+n && flying.Head < fresh.Head+n {
		t.Fatalf("the new map put %v over the run in flight %v", fresh, flying)
	}
	checkClean(t, nd, []Ref{kept, flying, fresh})
	for _, r := range []Ref{kept, flying, fresh} {
		if b, err := nd.Read(r, nil); err != nil || !verifyBody(b) {
			t.Fatalf("read %v: %v", r, err)
		}
	}
}

// TestLateFreeAfterRebuildIsStale: a run whose CF entry was being removed
// when the map was rebuilt (not among the references: the rebuild frees
// its blocks) is freed late, through the new map, by whoever removes the
// entry (a repair's free hook). Meanwhile the new map gave its head block
// to a new run of the same length. The late free must be ErrStale, not
// free the new run under its message (the next put would write over it).
func TestLateFreeAfterRebuildIsStale(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	defer d.Close()
	o := mustRegister(t, d)
	dying := put(t, o, body(1, 10000))
	nd, _, err := Rebuild(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	no := mustRegister(t, nd)
	defer no.Close()
	fresh := put(t, no, body(2, 10000))
	if fresh.Head != dying.Head {
		t.Fatalf("the new run is at block %d, want %d (the freed run's)", fresh.Head, dying.Head)
	}
	if err := no.Free(dying); !errors.Is(err, ErrStale) {
		t.Fatalf("late free of %v through the new map: %v, want ErrStale (the new run %v is live)", dying, err, fresh)
	}
	checkClean(t, nd, []Ref{fresh})
}

// TestHeaderReadErrorIsIO: a data set file whose header page cannot be
// read (EIO from the disk) is an I/O error, not a file cut short: mq's
// structure recovery (RebuildDataSets, unusableFile) moves a data set
// whose open fails with ErrTruncated, ErrBadMagic, ErrCorrupt or
// ErrDamaged aside as unusable and counts every body in it lost, and must
// fail instead on an I/O error (docs/design/smds.md, 11a: "not an I/O
// error ... which still fail it").
func TestHeaderReadErrorIsIO(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	o := mustRegister(t, d)
	kept := put(t, o, body(1, 10000))
	o.Close()
	d.Close()
	readDSHeader = func(*os.File, []byte) (int, error) { return 0, syscall.EIO }
	defer func() { readDSHeader = func(f *os.File, b []byte) (int, error) { return f.ReadAt(b, 0) } }()
	for name, open := range map[string]func() error{
		"Open":    func() error { nd, err := Open(opts); closeIf(nd); return err },
		"Rebuild": func() error { nd, _, err := Rebuild(opts, []Ref{kept}); closeIf(nd); return err },
	} {
		err := open()
		if !errors.Is(err, ErrIO) || errors.Is(err, ErrTruncated) || errors.Is(err, ErrBadMagic) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrDamaged) {
			t.Errorf("%s with the header read failing with EIO: %v; want ErrIO (a truncated or corrupt header makes the recovery move the data set aside, its bodies lost)", name, err)
		}
	}
}

func closeIf(d *DataSet) {
	if d != nil {
		d.Close()
	}
}

// TestRebuildRefusesOldLayoutMapInUse: a space map of layout version 1 has
// no retired word, and a process of an older binary (an application
// linked with an older qmgr) that maps it never loads one: retiring it
// fences nothing, and once a new map is renamed into place that process
// goes on allocating from the old one, the same blocks as the new map's
// puts. So a map of another layout version is not replaced while a live
// process has an owner in it: Open asks for a rebuild (ErrNeedRebuild),
// and RebuildFrom must fail (the caller retries once those processes end)
// rather than put a second allocator of the same blocks in place.
func TestRebuildRefusesOldLayoutMapInUse(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	defer d.Close()
	o := mustRegister(t, d) // this process stands for the older binary's
	defer o.Close()
	kept := put(t, o, body(1, 10000))
	f, err := os.OpenFile(d.MapPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, mhChecksum+8)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(oldMapHeader(hdr), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if nd, err := Open(opts); !errors.Is(err, ErrNeedRebuild) {
		closeIf(nd)
		t.Fatalf("open of a version 1 map: %v, want ErrNeedRebuild", err)
	}
	nd, _, err := RebuildFrom(opts, func() ([]Ref, error) { return []Ref{kept}, nil })
	if err == nil {
		nd.Close()
		t.Fatal("RebuildFrom replaced a space map of layout version 1 that a live process has an owner in (it never checks the retired word: two allocators of the same blocks)")
	}
	if !errors.Is(err, ErrVersion) {
		t.Fatalf("RebuildFrom of a version 1 map in use: %v, want ErrVersion", err)
	}
	// Once no live process has an owner in it, it is rebuilt (the data
	// set file kept).
	o.Close()
	nd, res, err := RebuildFrom(opts, func() ([]Ref, error) { return []Ref{kept}, nil })
	if err != nil {
		t.Fatalf("RebuildFrom of a version 1 map nobody uses: %v", err)
	}
	defer nd.Close()
	if res.Kept != 1 {
		t.Fatalf("RebuildFrom of a version 1 map: %+v, want the reference kept", res)
	}
	if b, err := nd.Read(kept, nil); err != nil || !verifyBody(b) {
		t.Fatalf("read %v after the rebuild: %v", kept, err)
	}
}

// TestRebuildStallLimit: a live process stopped (SIGSTOP: crash point
// smds.alloc.fence, action stop) between claiming blocks in the space map
// and writing them holds the replacement of that map (retireMap cannot
// tell it from one about to write). With Options.StallLimit, Rebuild and
// RebuildFrom wait that long and then fail with a *StalledError naming
// the process, the old map left retired, instead of waiting as long as
// it stays stopped (a CF structure's recovery that never ends). Once the
// process is killed, the same Rebuild goes on: the retirement is taken
// up where it was and the dead process holds nothing; the references are
// kept and the new map is clean.
func TestRebuildStallLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	dir := t.TempDir()
	opts := crashOpts(dir)
	d := mustCreate(t, opts)
	o := mustRegister(t, d)
	kept := put(t, o, body(1, 10000))
	o.Close()
	d.Close()
	c, err := openTable(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	child := spawn(t, dir, "putter", crashpoint.EnvVar+"=smds.alloc.fence:1:stop")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	id, err := procid.Of(child.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !procid.Stopped(id); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the putter did not stop at smds.alloc.fence within 10s")
		}
	}

	const limit = 200 * time.Millisecond
	opts.StallLimit = limit
	for _, tc := range []struct {
		name    string
		rebuild func() (*DataSet, error)
	}{
		{"Rebuild", func() (*DataSet, error) { nd, _, err := Rebuild(opts, []Ref{kept}); return nd, err }},
		{"RebuildFrom", func() (*DataSet, error) {
			nd, _, err := RebuildFrom(opts, func() ([]Ref, error) { return []Ref{kept}, nil })
			return nd, err
		}},
	} {
		done := make(chan error, 1)
		go func() { nd, err := tc.rebuild(); closeIf(nd); done <- err }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s with a stall limit of %v still waiting after 10s for process %v, stopped between claiming blocks and writing them: the wait has no limit", tc.name, limit, id)
		}
		var st *StalledError
		if !errors.As(err, &st) || !errors.Is(err, ErrStalled) {
			t.Fatalf("%s while process %v is stopped in its claim: %v, want a *StalledError", tc.name, id, err)
		}
		if st.Process != id || st.Waited < limit {
			t.Fatalf("%s: %v, want process %v after at least %v", tc.name, st, id, limit)
		}
		if nd, err := Open(opts); !errors.Is(err, ErrNeedRebuild) {
			closeIf(nd)
			t.Fatalf("open after %s stalled: %v, want ErrNeedRebuild (the old map stays retired)", tc.name, err)
		}
	}

	if err := procid.Signal(id, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); !killedBySIGKILL(err) {
		t.Fatalf("putter: %v, want killed", err)
	}
	nd, res, err := Rebuild(opts, []Ref{kept})
	if err != nil {
		t.Fatalf("Rebuild after the stalled process was killed: %v", err)
	}
	defer nd.Close()
	if res.Kept != 1 || len(res.Rejected) != 0 {
		t.Fatalf("Rebuild after the kill: %+v, want the reference kept", res)
	}
	if b, err := nd.Read(kept, nil); err != nil || !verifyBody(b) {
		t.Fatalf("read %v after the rebuild: %v", kept, err)
	}
	checkClean(t, nd, []Ref{kept})
}
