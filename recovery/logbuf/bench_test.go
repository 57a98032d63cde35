package logbuf

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/recovery/rlog"
)

// BenchmarkWaitEach: producers (goroutines, one ring each) append a
// 100-byte record and wait until it is durable, over and over: every
// record costs an fdatasync unless group commit gathers them. Reports
// records per second and records per sync.
func BenchmarkWaitEach(b *testing.B) {
	for _, producers := range []int{1, 16} {
		b.Run(map[int]string{1: "p1", 16: "p16"}[producers], func(b *testing.B) {
			dir := b.TempDir()
			var src rlog.Counter
			l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "log"), LRSN: &src})
			if err != nil {
				b.Fatal(err)
			}
			buf, err := Create(Config{CFDir: filepath.Join(dir, "cf"), Member: "QM1", Rings: 16, RingSize: 64 << 10})
			if err != nil {
				b.Fatal(err)
			}
			defer buf.Close()
			cons, err := NewConsumer(buf, l, nil)
			if err != nil {
				b.Fatal(err)
			}
			rec := make([]byte, 100)
			per := (b.N + producers - 1) / producers
			b.ResetTimer()
			t0 := time.Now()
			var wg sync.WaitGroup
			for w := range producers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p, err := buf.Claim(uint64(w))
					if err != nil {
						b.Error(err)
						return
					}
					for range per {
						pos, err := p.Append(1, rec)
						if err == nil {
							err = p.Wait(pos)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(t0)
			cons.Close()
			st := l.Stats()
			l.Close()
			b.ReportMetric(float64(per*producers)/el.Seconds(), "records/s")
			b.ReportMetric(float64(st.Records)/float64(st.Syncs), "records/sync")
		})
	}
}
