package smds

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// testOpts is a small geometry: 4 KiB blocks, 64-block (256 KiB)
// extents, at most 8 extents.
func testOpts(dir string) Options {
	return Options{Dir: dir, Structure: "APPL1", Member: "QM1", Number: 1, Epoch: 7,
		BlockSize: 4096, ExtentBlocks: 64, MaxExtents: 8, Owners: 16}
}

func mustCreate(t testing.TB, o Options) *DataSet {
	t.Helper()
	d, err := Create(o)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustRegister(t testing.TB, d *DataSet) *Owner {
	t.Helper()
	o, err := d.Register()
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return o
}

// body is a self-describing body of n bytes: its first 8 bytes (when it
// has them) are the seed of the rest, so any reader can verify it.
func body(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	copy(b, s[:])
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := 8; i < n; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

// verifyBody reports whether b is what body made.
func verifyBody(b []byte) bool {
	if len(b) < 8 {
		return true
	}
	return bytes.Equal(b, body(binary.LittleEndian.Uint64(b), len(b)))
}

func put(t testing.TB, o *Owner, b []byte) Ref {
	t.Helper()
	r, err := o.Put(b, false)
	if err != nil {
		t.Fatalf("put %d bytes: %v", len(b), err)
	}
	if err := o.Published(); err != nil {
		t.Fatalf("published: %v", err)
	}
	return r
}

func checkClean(t testing.TB, d *DataSet, refs []Ref) *CheckReport {
	t.Helper()
	rep := d.Check(refs, CheckOptions{Quiescent: true})
	if !rep.OK() {
		t.Fatalf("check: %v", rep)
	}
	return rep
}

func TestPutReadViewFree(t *testing.T) {
	d := mustCreate(t, testOpts(t.TempDir()))
	o := mustRegister(t, d)
	defer o.Close()
	var refs []Ref
	sizes := []int{0, 1, 100, 4096 - runHdrSize, 4096 - runHdrSize + 1, 20000, 64 << 10, d.MaxBody()}
	for i, n := range sizes {
		refs = append(refs, put(t, o, body(uint64(i+1), n)))
	}
	rep := checkClean(t, d, refs)
	if rep.Runs != len(sizes) {
		t.Fatalf("%d runs, want %d", rep.Runs, len(sizes))
	}
	for i, r := range refs {
		got, err := d.Read(r, nil)
		if err != nil || !bytes.Equal(got, body(uint64(i+1), sizes[i])) {
			t.Fatalf("read %v: %v (%d bytes)", r, err, len(got))
		}
		v, err := d.View(r)
		if err != nil || !bytes.Equal(v, got) {
			t.Fatalf("view %v: %v", r, err)
		}
	}
	other := refs[2]
	other.DataSet = 9
	if _, err := d.Read(other, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a reference to another data set: %v, want ErrCorrupt", err)
	}
	for _, r := range refs {
		if err := o.Free(r); err != nil {
			t.Fatalf("free %v: %v", r, err)
		}
	}
	rep = checkClean(t, d, nil)
	if rep.Used != 0 || rep.Free != rep.Blocks {
		t.Fatalf("after freeing everything: %v", rep)
	}
	if err := o.Free(refs[0]); !errors.Is(err, ErrStale) {
		t.Fatalf("second free: %v, want ErrStale", err)
	}
	if _, err := d.Read(refs[1], nil); err != nil && !errors.Is(err, ErrStale) {
		t.Fatalf("read of a freed run: %v, want its body or ErrStale", err)
	}
}

func TestTooLargeAndGrowAndFull(t *testing.T) {
	d := mustCreate(t, testOpts(t.TempDir()))
	o := mustRegister(t, d)
	defer o.Close()
	if _, err := o.Put(make([]byte, d.MaxBody()+1), false); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("put of MaxBody+1: %v", err)
	}
	var refs []Ref
	var err error
	for i := 0; i < 100; i++ {
		var r Ref
		if r, err = o.Put(body(uint64(i), 100<<10), false); err != nil {
			break
		}
		o.Published()
		refs = append(refs, r)
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("filling the data set: %v after %d puts, want ErrFull", err, len(refs))
	}
	// 100 KiB + header = 26 blocks: two runs per 64-block extent.
	if len(refs) != 16 {
		t.Fatalf("%d runs fit, want 16", len(refs))
	}
	rep := checkClean(t, d, refs)
	if rep.Extents != 8 {
		t.Fatalf("extents %d, want 8", rep.Extents)
	}
	for _, r := range refs {
		if b, err := d.Read(r, nil); err != nil || !verifyBody(b) {
			t.Fatalf("read %v: %v", r, err)
		}
	}
	// Freed space is reused.
	if err := o.Free(refs[3]); err != nil {
		t.Fatal(err)
	}
	r := put(t, o, body(999, 100<<10))
	refs[3] = r
	checkClean(t, d, refs)
}

func TestCloseUndoesAnUnpublishedPut(t *testing.T) {
	d := mustCreate(t, testOpts(t.TempDir()))
	o := mustRegister(t, d)
	if _, err := o.Put(body(1, 10000), false); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	rep := checkClean(t, d, nil)
	if rep.Used != 0 {
		t.Fatalf("the run of a put never published is still used: %v", rep)
	}
}

func TestCorruptedRunDetected(t *testing.T) {
	dir := t.TempDir()
	d := mustCreate(t, testOpts(dir))
	o := mustRegister(t, d)
	defer o.Close()
	a := put(t, o, body(1, 30000))
	b := put(t, o, body(2, 30000))
	f, err := os.OpenFile(d.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A byte of a's body, and a byte of b's run header.
	offA := d.Geometry().blockOff(a.Head) + 12345
	offB := d.Geometry().trailerOff(b.Head, int(b.Len)) + rhSeq
	for _, off := range []int64{offA, offB} {
		var x [1]byte
		f.ReadAt(x[:], off)
		x[0] ^= 0x40
		f.WriteAt(x[:], off)
	}
	for _, c := range []struct {
		r   Ref
		off int64
	}{{a, offA - 12345}, {b, offB - rhSeq}} {
		_, err := d.Read(c.r, nil)
		if !errors.Is(err, ErrDamaged) {
			t.Fatalf("read of damaged %v: %v, want ErrDamaged", c.r, err)
		}
		var e *Error
		if !errors.As(err, &e) || e.Path != d.Path() || e.Offset != c.off {
			t.Fatalf("error %v does not name %s at offset %d", err, d.Path(), c.off)
		}
		if !strings.Contains(err.Error(), d.Path()) {
			t.Fatalf("error %q does not name the data set", err)
		}
		if _, err := d.View(c.r); !errors.Is(err, ErrDamaged) {
			t.Fatalf("view of damaged %v: %v", c.r, err)
		}
	}
	// The other messages are not affected.
	c := put(t, o, body(3, 5000))
	if got, err := d.Read(c, nil); err != nil || !verifyBody(got) {
		t.Fatalf("read of an undamaged run: %v", err)
	}
}

func TestTruncatedDataSetDetected(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	o := mustRegister(t, d)
	var refs []Ref
	for i := 0; i < 6; i++ { // 6 x 26 blocks: three extents
		refs = append(refs, put(t, o, body(uint64(i), 100<<10)))
	}
	o.Close()
	if _, err := d.View(refs[4]); err != nil { // maps the third extent
		t.Fatal(err)
	}
	size := dsHeaderSize + 2*d.Geometry().extentBytes() + 5000
	if err := os.Truncate(d.Path(), size); err != nil {
		t.Fatal(err)
	}
	rep := d.Check(refs, CheckOptions{Quiescent: true})
	if rep.OK() || !strings.Contains(rep.String(), "truncated") {
		t.Fatalf("check of a truncated data set: %v", rep)
	}
	lost := refs[4] // in the third extent
	_, err := d.Read(lost, nil)
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), d.Path()) {
		t.Fatalf("read past the end: %v, want ErrTruncated naming the file", err)
	}
	if _, err := d.View(lost); !errors.Is(err, ErrFault) {
		t.Fatalf("view past the end of a file truncated under its mapping: %v, want ErrFault", err)
	}
	if _, err := d.View(refs[5]); !errors.Is(err, ErrFault) && !errors.Is(err, ErrTruncated) {
		t.Fatalf("view past the end: %v", err)
	}
	if b, err := d.Read(refs[0], nil); err != nil || !verifyBody(b) {
		t.Fatalf("read of a run before the cut: %v", err)
	}
	d.Close()
	if _, err := Open(opts); !errors.Is(err, ErrTruncated) {
		t.Fatalf("open of a truncated data set: %v, want ErrTruncated", err)
	}
	// A rebuild keeps what survives and rejects the rest.
	nd, res, err := Rebuild(opts, refs)
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	if res.Kept != 4 || len(res.Rejected) != 2 {
		t.Fatalf("rebuild kept %d, rejected %v", res.Kept, res.Rejected)
	}
	checkClean(t, nd, refs[:4])
}

func TestRebuildFromReferences(t *testing.T) {
	dir := t.TempDir()
	opts := testOpts(dir)
	d := mustCreate(t, opts)
	o := mustRegister(t, d)
	var refs []Ref
	for i := 0; i < 30; i++ {
		refs = append(refs, put(t, o, body(uint64(i), 1000+i*3000)))
	}
	var kept []Ref
	for i, r := range refs {
		if i%3 == 0 {
			if err := o.Free(r); err != nil {
				t.Fatal(err)
			}
		} else {
			kept = append(kept, r)
		}
	}
	before, _ := d.Stats()
	o.Close()
	d.Close()
	if err := os.Remove(d.MapPath()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(opts); !errors.Is(err, ErrNeedRebuild) {
		t.Fatalf("open without a space map: %v, want ErrNeedRebuild", err)
	}
	// A reference to a damaged run is rejected; the others kept.
	bad := kept[0]
	bad.Sum ^= 1
	nd, res, err := Rebuild(opts, append([]Ref{bad}, kept[1:]...))
	if err != nil {
		t.Fatal(err)
	}
	defer nd.Close()
	if res.Kept != len(kept)-1 || res.Rejected[0] == nil {
		t.Fatalf("rebuild: %+v", res)
	}
	checkClean(t, nd, kept[1:])
	after, _ := nd.Stats()
	if after.UsedBlocks != before.UsedBlocks-d.g.blocksFor(int(kept[0].Len)) || after.Extents != before.Extents {
		t.Fatalf("rebuilt map: %+v, before %+v", after, before)
	}
	for _, r := range kept[1:] {
		if b, err := nd.Read(r, nil); err != nil || !verifyBody(b) {
			t.Fatalf("read after rebuild: %v", err)
		}
	}
	// New allocations get new Seqs and do not overlap the kept runs.
	no := mustRegister(t, nd)
	defer no.Close()
	all := append([]Ref(nil), kept[1:]...)
	for i := 0; i < 10; i++ {
		r := put(t, no, body(uint64(100+i), 7000))
		for _, k := range kept {
			if r.Seq <= k.Seq {
				t.Fatalf("new Seq %d not above kept %d", r.Seq, k.Seq)
			}
		}
		all = append(all, r)
	}
	checkClean(t, nd, all)
	// A map of another epoch is stale.
	nd.Close()
	opts.Epoch = 8
	if _, err := Open(opts); !errors.Is(err, ErrNeedRebuild) {
		t.Fatalf("open with another epoch: %v, want ErrNeedRebuild", err)
	}
}

func TestCheckFindsLeaksAndDoubleUse(t *testing.T) {
	d := mustCreate(t, testOpts(t.TempDir()))
	o := mustRegister(t, d)
	defer o.Close()
	a := put(t, o, body(1, 9000))
	b := put(t, o, body(2, 9000))
	rep := d.Check([]Ref{a}, CheckOptions{Quiescent: true})
	if rep.OK() || !strings.Contains(rep.String(), "leaked") {
		t.Fatalf("check with b unreferenced: %v", rep)
	}
	rep = d.Check([]Ref{a, b, a}, CheckOptions{Quiescent: true})
	if rep.OK() || !strings.Contains(rep.String(), "doubly used") {
		t.Fatalf("check with a referenced twice: %v", rep)
	}
	stale := a
	if err := o.Free(a); err != nil {
		t.Fatal(err)
	}
	rep = d.Check([]Ref{stale, b}, CheckOptions{Quiescent: true})
	if rep.OK() || !strings.Contains(rep.String(), "dangling") {
		t.Fatalf("check with a freed run referenced: %v", rep)
	}
}

func TestDecodeRefRoundTrip(t *testing.T) {
	r := Ref{DataSet: 3, Head: 77, Len: 123456, Gen: 0xabcdef, Seq: 1<<40 + 5, Sum: 0x1234567890abcdef}
	var b [RefSize]byte
	r.Encode(b[:])
	got, err := DecodeRef(b[:])
	if err != nil || got != r {
		t.Fatalf("round trip: %v %v", got, err)
	}
}

// TestLargestBody: with the default geometry a 64 MiB body, the largest
// the issue asks for, fits in one run and comes back intact.
func TestLargestBody(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	d := mustCreate(t, Options{Dir: t.TempDir(), Structure: "APPL1", Member: "QM1", Owners: 4})
	o := mustRegister(t, d)
	defer o.Close()
	b := body(64, 64<<20)
	r := put(t, o, b)
	got, err := d.Read(r, nil)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read of 64 MiB: %v", err)
	}
	if v, err := d.View(r); err != nil || !bytes.Equal(v, b) {
		t.Fatalf("view of 64 MiB: %v", err)
	}
	if err := o.Free(r); err != nil {
		t.Fatal(err)
	}
	checkClean(t, d, nil)
}

// TestConcurrentOwners: owners of one process put, read and free at once
// in a small data set (claims collide, extents are added concurrently);
// every body reads back as written and the map is clean at the end.
func TestConcurrentOwners(t *testing.T) {
	opts := testOpts(t.TempDir())
	opts.MaxExtents = 16
	d := mustCreate(t, opts)
	const workers, ops = 4, 400
	errs := make(chan error, workers)
	kept := make(chan []Ref, workers)
	for w := 0; w < workers; w++ {
		go func(w int) {
			o, err := d.Register()
			if err != nil {
				errs <- err
				return
			}
			defer o.Close()
			var mine []Ref
			for i := 0; i < ops; i++ {
				if i%3 != 2 || len(mine) == 0 {
					r, err := o.Put(body(uint64(w*ops+i+1), (i*7919)%(60<<10)), false)
					if errors.Is(err, ErrFull) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					o.Published()
					mine = append(mine, r)
					continue
				}
				r := mine[0]
				mine = mine[1:]
				if b, err := d.Read(r, nil); err != nil || !verifyBody(b) {
					errs <- fmt.Errorf("read %v: %v", r, err)
					return
				}
				if err := o.Free(r); err != nil {
					errs <- err
					return
				}
			}
			kept <- mine
			errs <- nil
		}(w)
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var all []Ref
	for w := 0; w < workers; w++ {
		all = append(all, <-kept...)
	}
	checkClean(t, d, all)
	for _, r := range all {
		if b, err := d.Read(r, nil); err != nil || !verifyBody(b) {
			t.Fatalf("read %v: %v", r, err)
		}
	}
}
