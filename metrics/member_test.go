package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/qmgr/qmgr/channel"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
)

func TestMain(m *testing.M) {
	testproc.Register("member", func([]string) int { return runMember() })
	testproc.Main(m)
}

// runMember is a child process running a member whose configuration
// (JSON) is in QM_CONFIG, until it is killed.
func runMember() int {
	var cfg qm.Config
	if err := json.Unmarshal([]byte(os.Getenv("QM_CONFIG")), &cfg); err != nil {
		fmt.Println("config:", err)
		return 1
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	m, err := qm.Start(cfg)
	if err != nil {
		fmt.Println("start:", err)
		return 1
	}
	m.Run(context.Background())
	return 0
}

// waitFor scrapes until cond holds (or fails the test after a deadline
// far beyond what it needs), and returns the scrape that satisfied it.
func waitFor(t *testing.T, h func() map[string]*dto.MetricFamily, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mfs := h()
		if cond(mfs) {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPeerRecoveryMetrics: a peer (a process of its own) shows in the peer
// table with a fresh heartbeat; SIGKILLed, it is recovered by the member
// whose metrics count one peer recovery, with its duration.
func TestPeerRecoveryMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	m, cfg := startMember(t, "QM1")
	h := metrics.Handler(metrics.NewRegistry(m), nil)
	sc := func() map[string]*dto.MetricFamily { return scrape(t, h) }
	peerCfg := cfg
	peerCfg.Name, peerCfg.Logger = "QM2", nil
	js, err := json.Marshal(peerCfg)
	if err != nil {
		t.Fatal(err)
	}
	p := testproc.Command(t, "member")
	p.Env = append(p.Env, "QM_CONFIG="+string(js))
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	up := waitFor(t, sc, "QM2 active", func(mfs map[string]*dto.MetricFamily) bool {
		v, n := find(mfs, "qmgr_peer_state", map[string]string{"peer": "QM2", "state": "active"})
		return n == 1 && v == 1
	})
	if age := value(t, up, "qmgr_peer_heartbeat_age_seconds", map[string]string{"peer": "QM2"}); age < 0 || age > cfg.HeartbeatTimeout.Seconds() {
		t.Errorf("QM2's heartbeat age %v s", age)
	}
	if n := value(t, up, "qmgr_member_peer_recoveries_total", nil); n != 0 {
		t.Fatalf("peer recoveries before any death: %v", n)
	}
	p.Kill()
	done := waitFor(t, sc, "QM2 recovered", func(mfs map[string]*dto.MetricFamily) bool {
		v, n := find(mfs, "qmgr_peer_state", map[string]string{"peer": "QM2", "state": "recovered"})
		return n == 1 && v == 1
	})
	if n := value(t, done, "qmgr_member_peer_recoveries_total", nil); n != 1 {
		t.Errorf("peer recoveries: %v, want 1", n)
	}
	if n := value(t, done, "qmgr_member_peer_recovery_duration_seconds", nil); n != 1 {
		t.Errorf("peer recovery durations recorded: %v, want 1", n)
	}
	if _, n := find(done, "qmgr_peer_heartbeat_age_seconds", map[string]string{"peer": "QM2"}); n != 0 {
		t.Errorf("a recovered member still has a heartbeat age")
	}
}

// TestLogAndBackupMetrics: persistent messages go through the member's
// log (its syncs and records agree with the sync histograms), and a
// backup is counted, timed and shown on its structure.
func TestLogAndBackupMetrics(t *testing.T) {
	m, cfg := startMember(t, "QM1")
	mustExec(t, m, "DEFINE QLOCAL(PERSIST.Q) DEFPSIST(YES)")
	h := metrics.Handler(metrics.NewRegistry(m), nil)
	c, err := mq.Connect(mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	q, err := c.Open("PERSIST.Q", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := q.Put(&mq.Message{Body: []byte("persistent"), Persistence: mq.Persistent}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mustExec(t, m, "BACKUP CFSTRUCT(APPL1)")
	mfs := scrape(t, h)
	records := value(t, mfs, "qmgr_log_records_total", nil)
	syncs := value(t, mfs, "qmgr_log_syncs_total", nil)
	if records < 5 || syncs < 1 {
		t.Errorf("log: %v records, %v syncs after 5 persistent puts", records, syncs)
	}
	lat := histogram(t, mfs, "qmgr_log_sync_duration_seconds")
	per := histogram(t, mfs, "qmgr_log_records_per_sync")
	if float64(lat.GetSampleCount()) != syncs || float64(per.GetSampleCount()) != syncs || per.GetSampleSum() != records {
		t.Errorf("log: %v syncs and %v records; sync latency histogram counts %d, records per sync %d summing to %v",
			syncs, records, lat.GetSampleCount(), per.GetSampleCount(), per.GetSampleSum())
	}
	if n := value(t, mfs, "qmgr_member_backups_total", nil); n != 1 {
		t.Errorf("backups: %v, want 1", n)
	}
	if n := histogram(t, mfs, "qmgr_member_backup_duration_seconds").GetSampleCount(); n != 1 {
		t.Errorf("backup durations recorded: %d, want 1", n)
	}
	s := map[string]string{"structure": "APPL1"}
	taken := value(t, mfs, "qmgr_structure_last_backup_timestamp_seconds", s)
	if since := time.Since(time.Unix(0, int64(taken*1e9))); since < 0 || since > time.Since(testStart)+time.Second {
		t.Errorf("last backup of APPL1 %v ago", since)
	}
	if n := value(t, mfs, "qmgr_structure_backups", s); n < 1 {
		t.Errorf("backups of APPL1 recorded: %v", n)
	}
	if v := value(t, mfs, "qmgr_structure_recovery_estimate_seconds", s); v < 0 {
		t.Errorf("recovery estimate %v", v)
	}
}

func histogram(t *testing.T, mfs map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	mf := mfs[name]
	if mf == nil || len(mf.Metric) != 1 || mf.Metric[0].Histogram == nil {
		t.Fatalf("%s: no histogram", name)
	}
	return mf.Metric[0].Histogram
}

// TestStructureFailureMetrics: a structure taken out of service is
// counted as a failure the member found, and, once the member rebuilt it,
// as a recovery, and shows ACTIVE again.
func TestStructureFailureMetrics(t *testing.T) {
	m, _ := startMember(t, "QM1")
	h := metrics.Handler(metrics.NewRegistry(m), nil)
	sc := func() map[string]*dto.MetricFamily { return scrape(t, h) }
	s := map[string]string{"structure": "APPL1"}
	before := sc()
	if f, r := value(t, before, "qmgr_structure_failures_total", s), value(t, before, "qmgr_structure_recoveries_total", s); f != 0 || r != 0 {
		t.Fatalf("before any failure: %v failures, %v recoveries", f, r)
	}
	st, err := m.Group().Structure("APPL1", false)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Fail() {
		t.Fatal("Fail")
	}
	after := waitFor(t, sc, "APPL1 recovered", func(mfs map[string]*dto.MetricFamily) bool {
		v, n := find(mfs, "qmgr_structure_recoveries_total", s)
		return n == 1 && v == 1
	})
	if f := value(t, after, "qmgr_structure_failures_total", s); f != 1 {
		t.Errorf("failures of APPL1: %v, want 1", f)
	}
	if a := value(t, after, "qmgr_structure_state", with(s, "state", "ACTIVE")); a != 1 {
		t.Errorf("APPL1 not ACTIVE after its recovery")
	}
}

// TestChannelMetrics: an entry of the shared channel status table is
// exported as it is: state, owner, messages, last batch, in doubt,
// retries.
func TestChannelMetrics(t *testing.T) {
	m, _ := startMember(t, "QM1")
	self, ok, err := m.Group().FindPeer("QM1")
	if err != nil || !ok {
		t.Fatalf("QM1 in the peer table: %v %v", ok, err)
	}
	const name = "TO.QM2/x%y"
	err = m.WithAdmin(func(o *lockfree.Owner) error {
		_, _, err := channel.NewTable(m.Group()).Update(o, name, func(st *channel.Status, exists bool) bool {
			st.Type, st.State, st.Owner, st.OwnerInc = defs.ChlSender, channel.Retrying, self.Slot, self.Incarnation
			st.Msgs, st.LastBatch, st.InDoubt, st.Retries = 42, 7, 8, 3
			return true
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	mfs := scrape(t, metrics.Handler(metrics.NewRegistry(m), nil))
	c := map[string]string{"channel": name}
	for state, want := range map[string]float64{"RETRYING": 1, "RUNNING": 0, "INACTIVE": 0} {
		if got := value(t, mfs, "qmgr_channel_state", with(with(c, "state", state), "type", defs.ChlSender)); got != want {
			t.Errorf("channel state %s: %v, want %v", state, got, want)
		}
	}
	for metric, want := range map[string]float64{"qmgr_channel_instance_messages": 42, "qmgr_channel_last_batch_sequence": 7,
		"qmgr_channel_in_doubt": 1, "qmgr_channel_retries": 3} {
		if got := value(t, mfs, metric, c); got != want {
			t.Errorf("%s: %v, want %v", metric, got, want)
		}
	}
	if got := value(t, mfs, "qmgr_channel_owner", with(c, "owner", "QM1")); got != 1 {
		t.Errorf("channel owner QM1: %v", got)
	}
}
