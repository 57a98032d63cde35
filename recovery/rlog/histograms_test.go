package rlog

import (
	"sync"
	"testing"

	"github.com/qmgr/qmgr/vfs"
)

// TestHistograms: every sync is recorded once, with the records it made
// durable; the two histograms agree with Stats.
func TestHistograms(t *testing.T) {
	var src Counter
	l := memLog(t, vfs.NewMem(1), &src, 1<<20)
	defer l.Close()
	const writers, each = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := l.Write(1, payload(w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	lat, recs := l.Histograms()
	if lat.Count != st.Syncs || recs.Count != st.Syncs || st.Syncs == 0 {
		t.Fatalf("%d syncs, latency histogram %d, records histogram %d", st.Syncs, lat.Count, recs.Count)
	}
	if recs.Sum != writers*each || st.Records != writers*each {
		t.Fatalf("records per sync sum to %v, Stats says %d records, %d were written", recs.Sum, st.Records, writers*each)
	}
}
