package replay

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/rlog"
)

// BenchmarkReplay replays a log of units of work of ten 64-byte puts
// each, half of whose messages a later unit gets, from disk; it reports
// records per second.
func BenchmarkReplay(b *testing.B) {
	dir := b.TempDir()
	var src rlog.Counter
	l, err := rlog.Open(rlog.Config{Dir: filepath.Join(dir, "QM1"), LRSN: &src})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 64)
	key := uint64(1)
	var buf []byte
	const units = 20000
	for u := range units {
		uow := uint64(1<<40 + u)
		for range 10 {
			r := plog.Record{Type: plog.TypePut, UOW: uow, Structure: "APPL1", Queue: "Q", Key: key, Body: body}
			buf = plog.Append(buf[:0], &r)
			l.Append(uint8(r.Type), buf)
			if key%2 == 0 {
				g := plog.Record{Type: plog.TypeGet, UOW: uow + 1<<39, Structure: "APPL1", Queue: "Q", Key: key - 1}
				buf = plog.Append(buf[:0], &g)
				l.Append(uint8(g.Type), buf)
			}
			key++
		}
		for _, w := range []uint64{uow, uow + 1<<39} {
			c := plog.Record{Type: plog.TypeCommit, UOW: w}
			buf = plog.Append(buf[:0], &c)
			l.Append(uint8(c.Type), buf)
		}
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var recs uint64
	t0 := time.Now()
	for range b.N {
		res, err := Run(Options{LogDirs: []string{filepath.Join(dir, "QM1")}, Structure: "APPL1"})
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Messages) != units*5 {
			b.Fatalf("%d messages survive", len(res.Messages))
		}
		recs += res.Records
	}
	b.ReportMetric(float64(recs)/time.Since(t0).Seconds(), "records/s")
}
