package rlog

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fdatasyncRate measures 4 KiB write + fdatasync per second in dir: the
// baseline a log's group commit is compared with on the same disk.
func fdatasyncRate(b *testing.B, dir string) float64 {
	f, err := os.Create(filepath.Join(dir, "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	const n = 200
	start := time.Now()
	for i := range n {
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			b.Fatal(err)
		}
		if err := unix.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
	}
	return n / time.Since(start).Seconds()
}

// BenchmarkWrite appends 100-byte records and waits for each to be
// durable, from 1 or 16 goroutines, on the real disk. It reports records
// per second and their ratio to 4 KiB fdatasyncs per second measured just
// before: above 1, group commit is at work.
func BenchmarkWrite(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(map[int]string{1: "p1", 16: "p16"}[writers], func(b *testing.B) {
			dir := b.TempDir()
			base := fdatasyncRate(b, dir)
			var src Counter
			l, err := Open(Config{Dir: filepath.Join(dir, "log"), LRSN: &src})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, 100)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := (b.N + writers - 1) / writers
			for range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range per {
						if err := l.Write(1, rec); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			rate := float64(per*writers) / time.Since(start).Seconds()
			b.ReportMetric(rate, "records/s")
			b.ReportMetric(base, "fdatasync/s")
			b.ReportMetric(rate/base, "x-fdatasync")
		})
	}
}
