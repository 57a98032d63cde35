package chaos

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/cli"
	"github.com/qmgr/qmgr/internal/testproc"
)

// The members and clients of a run are this test binary re-executed.
func TestMain(m *testing.M) {
	testproc.RegisterCommand(func(args []string) int { return cli.Main(args, os.Stdout, os.Stderr) }, MemberCommands...)
	testproc.RegisterCommand(ClientMain, ClientCommand)
	testproc.Main(m)
}

// tlog writes the harness's progress lines to the test log.
type tlog struct{ t *testing.T }

func (w tlog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestChaos runs the workload under the nemesis and checks the
// histories: 20 s of faults in CI, every kind but OpenFaults; TORTURE=30m
// (any duration) for a long run of every kind (CHAOS_ALL=1: every kind in
// a short run). CHAOS_SEED repeats a run's choices, CHAOS_DIR keeps its
// histories and logs, CHAOS_FAULTS=kind,kind restricts the faults,
// CHAOS_CHANNEL=0 leaves out the second group and the channel,
// CHAOS_FSYNC=1 fsyncs every history record.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	cfg, err := configFromEnv(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Log = tlog{t}
	t.Logf("seed %d (CHAOS_SEED=%d to repeat), faults for %v, directory %s", cfg.Seed, cfg.Seed, cfg.Duration, cfg.Dir)
	r, err := Run(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	r.Summary(&b, 5)
	if len(r.Events) <= 200 {
		b.WriteString("schedule:\n")
		r.Schedule(&b)
	} else {
		fmt.Fprintf(&b, "schedule: %d events in %s/faults.jsonl\n", len(r.Events), cfg.Dir)
	}
	t.Log("\n" + b.String())
	if len(r.Anomalies) > 0 {
		t.Errorf("%d anomalies (seed %d; histories and logs in %s)", len(r.Anomalies), r.Seed, cfg.Dir)
	}
	if r.Result.Msgs["acked.persistent"] == 0 || r.Result.Msgs["acked.nonpersistent"] == 0 || r.Result.Msgs["delivered"] == 0 {
		t.Errorf("too little traffic to check anything: %v", r.Result.Msgs)
	}
}

// configFromEnv is the run the environment asks for.
func configFromEnv(tmp string) (Config, error) {
	cfg := Config{Dir: tmp, Seed: time.Now().UnixNano(), Duration: 20 * time.Second, Channel: os.Getenv("CHAOS_CHANNEL") != "0",
		Fsync: os.Getenv("CHAOS_FSYNC") == "1"}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return cfg, fmt.Errorf("CHAOS_SEED=%s: %w", v, err)
		}
		cfg.Seed = s
	}
	if v := os.Getenv("TORTURE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("TORTURE=%s: %w", v, err)
		}
		cfg.Duration = d
	}
	if v := os.Getenv("CHAOS_DIR"); v != "" {
		dir := fmt.Sprintf("%s/chaos-%d", v, cfg.Seed)
		if err := os.RemoveAll(dir); err != nil { // a run of the same seed before
			return cfg, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return cfg, err
		}
		cfg.Dir = dir
	}
	if v := os.Getenv("CHAOS_FAULTS"); v != "" {
		cfg.Faults = map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			cfg.Faults[strings.TrimSpace(k)] = true
		}
	} else if os.Getenv("TORTURE") == "" && os.Getenv("CHAOS_ALL") != "1" {
		// The short run of CI: every fault kind but those with open
		// anomalies (OpenFaults).
		cfg.Faults = map[string]bool{}
		for _, k := range FaultKinds() {
			cfg.Faults[k] = !slices.Contains(OpenFaults, k)
		}
	}
	return cfg, cfg.withDefaults().Validate()
}

// TestChaosRecheck runs the checker again on a run kept with CHAOS_DIR:
// CHAOS_RECHECK=dir/chaos-<seed>.
func TestChaosRecheck(t *testing.T) {
	dir := os.Getenv("CHAOS_RECHECK")
	if dir == "" {
		t.Skip("CHAOS_RECHECK=dir names a kept run")
	}
	res, events, err := Recheck(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := &Report{Result: res, Anomalies: res.Anomalies, Events: events}
	var b bytes.Buffer
	r.Summary(&b, 1000)
	t.Log("\n" + b.String())
}
