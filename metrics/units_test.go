package metrics_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/metrics"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// TestUnitMetrics: a recovery unit's figures follow its role and progress
// records: defined and not yet started, both positions VACANT; with its
// two replicas running (in this process), position 0 PRIMARY and 1 the
// SENDER, both RUNNING; after 100 transfers, every position's applied
// and sent LSN 100 and nothing left to resend; and the figures agree with
// DISPLAY SVSTATUS.
func TestUnitMetrics(t *testing.T) {
	m, cfg := startMemberWith(t, "QM1", func(c *qm.Config) { c.UnitsByHand = true })
	for _, cmd := range []string{"DEFINE QLOCAL(IN) MAXDEPTH(1000)", "DEFINE QLOCAL(CONFIRM) MAXDEPTH(1000)",
		"DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(2)"} {
		mustExec(t, m, cmd)
	}
	h := metrics.Handler(metrics.NewRegistry(m), nil)
	unitL := map[string]string{"unit": "LEDGER"}
	posL := func(k int, extra ...string) map[string]string {
		l := map[string]string{"unit": "LEDGER", "position": fmt.Sprint(k)}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	mfs := scrape(t, h)
	if v := value(t, mfs, "qmgr_unit_state", with(unitL, "state", "RUNNING")); v != 1 {
		t.Fatalf("a unit defined with CONTROL(QMGR): qmgr_unit_state RUNNING %v", v)
	}
	if v := value(t, mfs, "qmgr_unit_replicas", unitL); v != 2 {
		t.Fatalf("qmgr_unit_replicas %v", v)
	}
	if d, n := value(t, mfs, "qmgr_unit_diverged", unitL), value(t, mfs, "qmgr_unit_divergences", unitL); d != 0 || n != 0 {
		t.Fatalf("a new unit: diverged %v, divergences %v", d, n)
	}
	for k := 0; k < 2; k++ {
		if v := value(t, mfs, "qmgr_unit_role", posL(k, "role", "VACANT")); v != 1 {
			t.Fatalf("position %d before any replica: VACANT %v", k, v)
		}
		if _, n := find(mfs, "qmgr_unit_status", posL(k)); n != 0 {
			t.Fatalf("position %d before any replica: %d status series", k, n)
		}
	}
	if v := value(t, mfs, "qmgr_scrape_errors", map[string]string{"part": "units"}); v != 0 {
		t.Fatal("the units part of the scrape failed")
	}

	opts := mq.ConnectOptions{Group: cfg.Group.Name, QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir}
	// Marked DIVERGED (as the policy marks it after three divergences),
	// then cleared again.
	markDiverged(t, opts, true)
	mfs = scrape(t, h)
	if d, n := value(t, mfs, "qmgr_unit_diverged", unitL), value(t, mfs, "qmgr_unit_divergences", unitL); d != 1 || n != 3 {
		t.Fatalf("a unit marked DIVERGED: diverged %v, divergences %v", d, n)
	}
	if r := m.Exec("DISPLAY SVSTATUS(LEDGER) UNITSTATE"); !strings.Contains(r.Text, "UNITSTATE(DIVERGED)") {
		t.Fatalf("SVSTATUS of a unit marked DIVERGED: %s %s", r.Text, r.Error)
	}
	markDiverged(t, opts, false)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 2)
	defer func() {
		cancel()
		wg.Wait()
		for k, err := range errs {
			if err != nil {
				t.Errorf("replica %d: %v", k, err)
			}
		}
	}()
	run := func(k int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = unit.RunWith(ctx, unit.ReplicaConfig{Connect: opts, Service: "LEDGER", Position: k, Poll: 20 * time.Millisecond}, ledger.New())
		}()
	}
	until := func(what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mfs := scrape(t, h)
			if cond(mfs) {
				return mfs
			}
			if time.Now().After(deadline) {
				var got []string
				for _, name := range []string{"qmgr_unit_applied_lsn", "qmgr_unit_sent_lsn", "qmgr_unit_resend_inputs", "qmgr_unit_logged_lsn"} {
					for k := 0; k < 2; k++ {
						v, n := find(mfs, name, posL(k))
						got = append(got, fmt.Sprintf("%s{%d}=%v(%d)", name, k, v, n))
					}
				}
				t.Fatalf("%s: not within 20 s: %v", what, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	is := func(mfs map[string]*dto.MetricFamily, name string, l map[string]string, want float64) bool {
		v, n := find(mfs, name, l)
		return n == 1 && v == want
	}
	run(0)
	until("position 0 the primary", func(mfs map[string]*dto.MetricFamily) bool {
		return is(mfs, "qmgr_unit_role", posL(0, "role", "PRIMARY"), 1)
	})
	run(1)
	mfs = until("position 1 the sender", func(mfs map[string]*dto.MetricFamily) bool {
		return is(mfs, "qmgr_unit_role", posL(1, "role", "SENDER"), 1)
	})
	for k := 0; k < 2; k++ {
		if v := value(t, mfs, "qmgr_unit_status", posL(k, "status", "RUNNING")); v != 1 {
			t.Fatalf("position %d: RUNNING %v", k, v)
		}
	}

	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	in, err := c.Open("IN", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		if err := in.Put(&mq.Message{Body: fmt.Appendf(nil, "%d a b %d", i, i)}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mfs = until("every transfer applied and sent", func(mfs map[string]*dto.MetricFamily) bool {
		for k := 0; k < 2; k++ {
			if !is(mfs, "qmgr_unit_applied_lsn", posL(k), 100) || !is(mfs, "qmgr_unit_sent_lsn", posL(k), 100) ||
				!is(mfs, "qmgr_unit_resend_inputs", posL(k), 0) {
				return false
			}
		}
		return true
	})
	// A scrape is not a snapshot: it reads the queues before the units,
	// so the scrape that first shows LSN_out 100 may have read CONFIRM's
	// depth before the sender's commit. The sender publishes its LSN_out
	// after that commit, so a scrape begun after seeing it sees all 100.
	mfs = scrape(t, h)
	if v := value(t, mfs, "qmgr_unit_logged_lsn", posL(0)); v != 100 {
		t.Fatalf("the primary's logged LSN %v", v)
	}
	if v := value(t, mfs, "qmgr_unit_heartbeat_age_seconds", posL(0)); v < 0 || v > 10 {
		t.Fatalf("the primary's heartbeat age %v s", v)
	}
	if v := value(t, mfs, "qmgr_queue_depth_messages", map[string]string{"queue": "CONFIRM"}); v != 100 {
		t.Fatalf("CONFIRM holds %v confirmations", v)
	}
	epoch := value(t, mfs, "qmgr_unit_epoch", unitL)
	r := m.Exec("DISPLAY SVSTATUS(LEDGER) ALL")
	for _, want := range []string{"ROLE(PRIMARY)", "ROLE(SENDER)", "PROCESSED(100)", fmt.Sprintf("EPOCH(%d)", int64(epoch))} {
		if !r.OK || !strings.Contains(r.Text, want) {
			t.Fatalf("DISPLAY SVSTATUS does not show %s as the metrics do:\n%s %s", want, r.Text, r.Error)
		}
	}
}

// markDiverged sets or clears the DIVERGED mark (and three divergences)
// in the role record of the unit in status slot 0 of APPL1.
func markDiverged(t *testing.T, opts mq.ConnectOptions, on bool) {
	t.Helper()
	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	o, _, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	err = o.UpdateStatus(0, func(cur []byte) []byte {
		r, err := role.Decode(cur)
		if err != nil {
			t.Error(err)
			return nil
		}
		r.Diverged, r.Divergences = on, 0
		if on {
			r.Divergences = 3
		}
		b, err := r.Encode()
		if err != nil {
			t.Error(err)
			return nil
		}
		return b
	})
	if err != nil || t.Failed() {
		t.Fatalf("mark the unit diverged=%v: %v", on, err)
	}
}
