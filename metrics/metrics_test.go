package metrics_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

// startMember starts member name of a group of its own, in this process,
// served until the test ends.
func startMember(t *testing.T, name string) (*qm.Member, qm.Config) {
	t.Helper()
	return startMemberWith(t, name, nil)
}

// startMemberWith is startMember with tweak applied to the configuration
// (nil: none).
func startMemberWith(t *testing.T, name string, tweak func(*qm.Config)) (*qm.Member, qm.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: "MG", DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: name, HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	return m, cfg
}

func mustExec(t *testing.T, m *qm.Member, cmd string) {
	t.Helper()
	if r := m.Exec(cmd); !r.OK {
		t.Fatalf("%s: %s", cmd, r.Error)
	}
}

// scrape gets /metrics from h as Prometheus would and parses the text
// format.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s\n%s", resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	return mfs
}

// value is the value of the one series of family name whose labels
// include want; it fails the test when there is not exactly one.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	v, n := find(mfs, name, want)
	if n != 1 {
		t.Fatalf("%s%v: %d series", name, want, n)
	}
	return v
}

func find(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, n int) {
	mf := mfs[name]
	if mf == nil {
		return 0, 0
	}
next:
	for _, m := range mf.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if have[k] != w {
				continue next
			}
		}
		n++
		switch {
		case m.Counter != nil:
			v = m.Counter.GetValue()
		case m.Gauge != nil:
			v = m.Gauge.GetValue()
		case m.Histogram != nil:
			v = float64(m.Histogram.GetSampleCount())
		}
	}
	return v, n
}

// TestMetricsMatchTraffic: after known traffic on a queue the scraped
// counters and gauges equal what was done, exactly.
func TestMetricsMatchTraffic(t *testing.T) {
	m, cfg := startMember(t, "QM1")
	mustExec(t, m, "DEFINE QLOCAL(TRAFFIC.Q) MAXDEPTH(1000)")
	h := metrics.Handler(metrics.NewRegistry(m), nil)
	qLabels := map[string]string{"group": "MG", "member": "QM1", "structure": "APPL1", "queue": "TRAFFIC.Q"}
	sLabels := map[string]string{"structure": "APPL1"}
	before := scrape(t, h)
	commits0 := value(t, before, "qmgr_structure_units_of_work_committed_total", sLabels)
	backouts0 := value(t, before, "qmgr_structure_units_of_work_backed_out_total", sLabels)
	if v := value(t, before, "qmgr_queue_depth_messages", qLabels); v != 0 {
		t.Fatalf("depth of the new queue %v", v)
	}

	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	q, err := c.Open("TRAFFIC.Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	// 7 puts outside syncpoint (bodies of 10..16 bytes), 1 committed put
	// of 100 bytes, 1 put backed out (not counted).
	var putBytes, gotBytes float64
	var bodies []int
	for i := range 7 {
		if err := q.Put(&mq.Message{Body: make([]byte, 10+i)}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		putBytes += float64(10 + i)
		bodies = append(bodies, 10+i)
	}
	if err := q.Put(&mq.Message{Body: make([]byte, 100)}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	mustDo(t, c.Commit)
	putBytes += 100
	bodies = append(bodies, 100)
	if err := q.Put(&mq.Message{Body: make([]byte, 999)}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	mustDo(t, c.Backout)
	// 3 gets outside syncpoint, 1 get backed out, then 1 committed get.
	for i := range 3 {
		msg, err := q.Get(mq.GetOptions{})
		if err != nil || len(msg.Body) != bodies[i] {
			t.Fatalf("get %d: %v", i, err)
		}
		gotBytes += float64(bodies[i])
	}
	if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	mustDo(t, c.Backout)
	if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	mustDo(t, c.Commit)
	gotBytes += float64(bodies[3])
	// One uncommitted put left open while scraping.
	if err := q.Put(&mq.Message{Body: make([]byte, 5)}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}

	after := scrape(t, h)
	for name, want := range map[string]float64{
		"qmgr_queue_put_messages_total":     8,
		"qmgr_queue_put_bytes_total":        putBytes,
		"qmgr_queue_get_messages_total":     4,
		"qmgr_queue_get_bytes_total":        gotBytes,
		"qmgr_queue_backout_messages_total": 1,
		"qmgr_queue_backout_bytes_total":    float64(bodies[3]),
		"qmgr_queue_expired_messages_total": 0,
		"qmgr_queue_depth_messages":         8 - 4 + 1, // the uncommitted put counts in the depth
		"qmgr_queue_uncommitted_messages":   1,
		"qmgr_queue_max_depth_messages":     1000,
	} {
		if got := value(t, after, name, qLabels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	for dir, want := range map[string]float64{"input": 1, "output": 1} {
		if got := value(t, after, "qmgr_queue_open_handles", with(qLabels, "direction", dir)); got != want {
			t.Errorf("open handles for %s: %v, want %v", dir, got, want)
		}
	}
	// Units of work: 2 committed, 2 backed out, in the queue's structure.
	if d := value(t, after, "qmgr_structure_units_of_work_committed_total", sLabels) - commits0; d != 2 {
		t.Errorf("units of work committed: +%v, want +2", d)
	}
	if d := value(t, after, "qmgr_structure_units_of_work_backed_out_total", sLabels) - backouts0; d != 2 {
		t.Errorf("units of work backed out: +%v, want +2", d)
	}
	if got := value(t, after, "qmgr_member_connections", map[string]string{"kind": "app"}); got != 1 {
		t.Errorf("application connections of the member: %v, want 1", got)
	}
	if got := value(t, after, "qmgr_structure_state", map[string]string{"structure": "APPL1", "state": "ACTIVE"}); got != 1 {
		t.Errorf("APPL1 not ACTIVE: %v", got)
	}
	if got := value(t, after, "qmgr_peer_state", map[string]string{"peer": "QM1", "state": "active"}); got != 1 {
		t.Errorf("QM1 not active in the peer table: %v", got)
	}
	if age := value(t, after, "qmgr_peer_heartbeat_age_seconds", map[string]string{"peer": "QM1"}); age < 0 || age > cfg.HeartbeatTimeout.Seconds() {
		t.Errorf("QM1's heartbeat age %v", age)
	}
	checkOldestAge(t, after, qLabels)
	// Empty the queue: depth 0, oldest age 0.
	mustDo(t, c.Backout)
	for range 4 {
		if _, err := q.Get(mq.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	empty := scrape(t, h)
	if d, a := value(t, empty, "qmgr_queue_depth_messages", qLabels), value(t, empty, "qmgr_queue_oldest_message_age_seconds", qLabels); d != 0 || a != 0 {
		t.Errorf("empty queue: depth %v, oldest age %v", d, a)
	}
	if got := value(t, empty, "qmgr_queue_get_messages_total", qLabels); got != 8 {
		t.Errorf("gets after emptying the queue: %v, want 8", got)
	}
}

func mustDo(t *testing.T, f func() error) {
	t.Helper()
	if err := f(); err != nil {
		t.Fatal(err)
	}
}

func with(l map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for a, b := range l {
		out[a] = b
	}
	return out
}

// checkOldestAge: the queue's oldest message was put during the test, so
// its age is at least 0 and at most the test's run time so far.
func checkOldestAge(t *testing.T, mfs map[string]*dto.MetricFamily, qLabels map[string]string) {
	t.Helper()
	age := value(t, mfs, "qmgr_queue_oldest_message_age_seconds", qLabels)
	if age < 0 || age > time.Since(testStart).Seconds()+1 {
		t.Errorf("oldest message age %v s, the test has run %v", age, time.Since(testStart))
	}
}

var testStart = time.Now()

var validName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// units are the suffixes a qmgr_ metric name may end with: its unit, or
// what it counts.
var units = []string{"_seconds", "_bytes", "_total", "_messages", "_handles", "_entries", "_elements", "_connections", "_queues",
	"_backups", "_state", "_up", "_owner", "_sequence", "_in_doubt", "_retries", "_per_sync", "_errors"}

// TestMetricNamesAndOddQueueName: every metric has a valid name with a
// unit suffix and help, passes the Prometheus linter, and a queue name
// with the odd characters queue names allow is a label value that the
// exposition carries unchanged.
func TestMetricNamesAndOddQueueName(t *testing.T) {
	m, _ := startMember(t, "QM.odd_1")
	const odd = "odd/Q%1-x.y_z"
	mustExec(t, m, fmt.Sprintf("DEFINE QLOCAL('%s')", odd))
	reg := metrics.NewRegistry(m)
	mfs := scrape(t, metrics.Handler(reg, nil))
	if got := value(t, mfs, "qmgr_queue_depth_messages", map[string]string{"queue": odd, "member": "QM.odd_1"}); got != 0 {
		t.Errorf("depth of %s: %v", odd, got)
	}
	mine := 0
	for name, mf := range mfs {
		if !validName.MatchString(name) || mf.GetHelp() == "" {
			t.Errorf("metric %q: invalid name or no help", name)
		}
		if !strings.HasPrefix(name, "qmgr_") {
			continue
		}
		mine++
		if !hasUnit(name) {
			t.Errorf("metric %s has no unit suffix", name)
		}
		if mf.GetType() == dto.MetricType_COUNTER && !strings.HasSuffix(name, "_total") {
			t.Errorf("counter %s does not end in _total", name)
		}
	}
	if mine < 40 {
		t.Errorf("only %d qmgr_ metrics scraped", mine)
	}
	gathered, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(gathered).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "qmgr_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

func hasUnit(name string) bool {
	for _, u := range units {
		if strings.HasSuffix(name, u) {
			return true
		}
	}
	return false
}
