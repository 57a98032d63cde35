package metrics_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/mq"
)

// TestSMDSCacheMetrics: the member process's read cache of offloaded
// bodies shows in the metrics: a browse of an offloaded body read from
// the data set is a miss, the next browse of it a hit.
func TestSMDSCacheMetrics(t *testing.T) {
	m, cfg := startMember(t, "QM1")
	mustExec(t, m, "DEFINE CFSTRUCT(OFF) SIZE(24) OFFLOAD(SMDS) OFFLDSZ(16K)")
	mustExec(t, m, "DEFINE QLOCAL(Q) CFSTRUCT(OFF)")
	reg := metrics.NewRegistry(m)
	read := func(name string) float64 {
		t.Helper()
		return value(t, scrape(t, metrics.Handler(reg, nil)), name, map[string]string{"member": "QM1"})
	}
	hits0, misses0 := read("qmgr_smds_cache_hits_total"), read("qmgr_smds_cache_misses_total")
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	q, err := c.Open("Q", mq.OpenOptions{Output: true, Browse: true})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("b"), 64<<10)
	if err := q.Put(&mq.Message{Body: body}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	browse := func() {
		t.Helper()
		cur, err := q.Browse()
		if err != nil {
			t.Fatal(err)
		}
		if m, err := cur.Next(mq.GetOptions{}); err != nil || !bytes.Equal(m.Body, body) {
			t.Fatalf("browse: %v", err)
		}
	}
	browse()
	if got := read("qmgr_smds_cache_misses_total") - misses0; got < 1 {
		t.Errorf("misses grew by %v, want at least 1", got)
	}
	// The cache admits what it is given a moment later (ristretto buffers
	// its sets): browse again until one is a hit.
	deadline := time.Now().Add(10 * time.Second)
	for read("qmgr_smds_cache_hits_total") == hits0 {
		if time.Now().After(deadline) {
			t.Fatal("no browse found the body in the cache in 10 s")
		}
		time.Sleep(10 * time.Millisecond) // pacing between browses, not synchronisation
		browse()
	}
	if got := read("qmgr_smds_cache_max_bytes"); got <= 0 {
		t.Errorf("cache size %v, want the default", got)
	}
}
