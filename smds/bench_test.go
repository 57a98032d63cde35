package smds

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"
)

var sink uint64

// BenchmarkWriteRead: a body written to a data set and read back (Put,
// Published, an uncached Read, Free), against the same bytes written and
// read back with pwrite and pread on a plain file in the same directory,
// measured alternately in the same run. Reported: each side's MB/s (the
// body counted once per write and once per read) and ratio = smds MB/s /
// raw MB/s; and rawsum, the raw round trip with the two xxhash passes
// smds makes (on write, and on read to verify), with ratio-vs-rawsum.
func BenchmarkWriteRead(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			dir := b.TempDir()
			d, err := Create(Options{Dir: dir, Structure: "APPL1", Member: "QM1", Owners: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			o, err := d.Register()
			if err != nil {
				b.Fatal(err)
			}
			defer o.Close()
			raw, err := os.OpenFile(filepath.Join(dir, "raw"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			// The raw file cycles through as much space as the data set's
			// allocator sweeps (one extent), so both touch as many pages.
			slots := int(d.g.extentBytes()) / size
			if err := unix.Fallocate(int(raw.Fd()), 0, 0, int64(slots*size)); err != nil {
				b.Fatal(err)
			}
			src := body(1, size)
			dst := make([]byte, size)
			var tS, tR, tH time.Duration
			b.SetBytes(int64(2 * size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				r, err := o.Put(src, false)
				if err != nil {
					b.Fatal(err)
				}
				o.Published()
				if _, err := d.ReadUncached(r, dst); err != nil {
					b.Fatal(err)
				}
				if err := o.Free(r); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				off := int64(i%slots) * int64(size)
				if _, err := raw.WriteAt(src, off); err != nil {
					b.Fatal(err)
				}
				if _, err := raw.ReadAt(dst, off); err != nil {
					b.Fatal(err)
				}
				t2 := time.Now()
				// The raw round trip with the two checksums smds computes
				// (on write, and on read to verify).
				if _, err := raw.WriteAt(src, off); err != nil {
					b.Fatal(err)
				}
				sink += xxhash.Sum64(src)
				if _, err := raw.ReadAt(dst, off); err != nil {
					b.Fatal(err)
				}
				sink += xxhash.Sum64(dst)
				t3 := time.Now()
				tS += t1.Sub(t0)
				tR += t2.Sub(t1)
				tH += t3.Sub(t2)
			}
			mbs := func(d time.Duration) float64 { return float64(2*size) * float64(b.N) / d.Seconds() / 1e6 }
			b.ReportMetric(mbs(tS), "smds-MB/s")
			b.ReportMetric(mbs(tR), "raw-MB/s")
			b.ReportMetric(mbs(tS)/mbs(tR), "ratio")
			b.ReportMetric(mbs(tH), "rawsum-MB/s")
			b.ReportMetric(mbs(tS)/mbs(tH), "ratio-vs-rawsum")
		})
	}
}

// BenchmarkCachedRead: a 1 MiB body read through the cache (a hit, copied
// out), against reads that miss it: from the page cache (ReadUncached)
// and from the disk (the file's pages dropped with FADV_DONTNEED before
// each read), measured alternately in the same run; also the zero-copy
// View (checksummed on every call). Reported: ns per read of each, and
// the disk read's time over the hit's (how much faster a hit is).
func BenchmarkCachedRead(b *testing.B) {
	dir := b.TempDir()
	cache, err := NewCache(64 << 20)
	if err != nil {
		b.Fatal(err)
	}
	defer cache.Close()
	d, err := Create(Options{Dir: dir, Structure: "APPL1", Member: "QM1", Owners: 4, Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	o, err := d.Register()
	if err != nil {
		b.Fatal(err)
	}
	defer o.Close()
	const size = 1 << 20
	r, err := o.Put(body(2, size), true)
	if err != nil {
		b.Fatal(err)
	}
	o.Published()
	dst := make([]byte, size)
	if _, err := d.Read(r, dst); err != nil {
		b.Fatal(err)
	}
	cache.Wait()
	fd := int(d.f.Fd())
	var tHit, tPage, tDisk, tView time.Duration
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := d.Read(r, dst); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := d.ReadUncached(r, dst); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED)
		t3 := time.Now()
		if _, err := d.ReadUncached(r, dst); err != nil {
			b.Fatal(err)
		}
		t4 := time.Now()
		if _, err := d.View(r); err != nil {
			b.Fatal(err)
		}
		t5 := time.Now()
		tHit += t1.Sub(t0)
		tPage += t2.Sub(t1)
		tDisk += t4.Sub(t3)
		tView += t5.Sub(t4)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tHit.Nanoseconds())/n, "hit-ns/read")
	b.ReportMetric(float64(tPage.Nanoseconds())/n, "pagecache-ns/read")
	b.ReportMetric(float64(tDisk.Nanoseconds())/n, "disk-ns/read")
	b.ReportMetric(float64(tView.Nanoseconds())/n, "view-ns/read")
	b.ReportMetric(float64(tDisk)/float64(tHit), "disk/hit")
	b.ReportMetric(float64(tPage)/float64(tHit), "pagecache/hit")
	if m := cache.Metrics(); m.Hits < uint64(b.N) {
		b.Fatalf("cache hits %d for %d reads", m.Hits, b.N)
	}
}
