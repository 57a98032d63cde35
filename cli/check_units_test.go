package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/unit"
	"github.com/qmgr/qmgr/unit/example/ledger"
	"github.com/qmgr/qmgr/unit/role"
)

// TestCheckUnits: qmgr check checks the records of the recovery units in
// each structure: a quiet unit of two running replicas (in this process)
// is ok; a position whose replica is dead and not vacated (its pid made
// one of a process that has ended) is reported, naming the unit and the
// position, and the check fails.
func TestCheckUnits(t *testing.T) {
	m, cfg := startInProcess(t, "CK")
	for _, c := range []string{"DEFINE QLOCAL(IN)", "DEFINE QLOCAL(CONFIRM)", "DEFINE SERVICE(LEDGER) STARTCMD('/bin/true') INPUT(IN) REPLICAS(2)"} {
		if r := m.Exec(c); !r.OK {
			t.Fatalf("%s: %s", c, r.Error)
		}
	}
	opts := mq.ConnectOptions{Group: "CK", QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for k := 0; k < 2; k++ {
		wg.Go(func() {
			if err := unit.RunWith(ctx, unit.ReplicaConfig{Connect: opts, Service: "LEDGER", Position: k, Poll: 20 * time.Millisecond}, ledger.New()); err != nil {
				t.Errorf("replica %d: %v", k, err)
			}
		})
	}
	check := func() (int, string) {
		var out, errOut bytes.Buffer
		code := MainIO([]string{"check", "--group", "CK", "--data", cfg.Group.DataDir, "--cf-dir", cfg.Group.CFDir}, nil, &out, &errOut)
		return code, out.String() + errOut.String()
	}
	c, err := mq.Connect(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect()
	o, s, err := mqconn.Of(c).OwnerIn("APPL1")
	if err != nil {
		t.Fatal(err)
	}
	// Both replicas registered, active and publishing before the check:
	// a check of vacant positions says ok whatever it does with replicas.
	deadline := time.Now().Add(20 * time.Second)
	for {
		recs, err := role.Read(s, 0)
		if err == nil && recs.Role.Pos[0].State == role.Active && recs.Role.Pos[1].State == role.Active &&
			recs.Progress[0] != nil && recs.Progress[1] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two replicas active and publishing: %v %+v", err, recs.Role)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var code int
	var out string
	for {
		if code, out = check(); code == 0 && strings.Contains(out, "APPL1: SERVICE(LEDGER): ok") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check of a quiet unit of two replicas: exit %d\n%s", code, out)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Position 1's replica as a dead process: the pid of one that ended.
	p := exec.Command("true")
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	cancel() // the replicas stop: the record stays as they leave it
	wg.Wait()
	err = o.UpdateStatus(0, func(cur []byte) []byte {
		r, err := role.Decode(cur)
		if err != nil || r.Pos[1].State != role.Active {
			t.Errorf("role record: %v %+v", err, r)
			return nil
		}
		r.Pos[1].Pid = uint32(p.Process.Pid)
		b, err := r.Encode()
		if err != nil {
			t.Error(err)
			return nil
		}
		return b
	})
	if err != nil || t.Failed() {
		t.Fatalf("name a dead process in position 1: %v", err)
	}
	code, out = check()
	want := fmt.Sprintf("APPL1: SERVICE(LEDGER): position 1: its replica (pid %d) is dead", p.Process.Pid)
	if code == 0 || !strings.Contains(out, want) || strings.Contains(out, "position 0") {
		t.Fatalf("check with position 1's replica dead: exit %d, want one failure saying %q:\n%s", code, want, out)
	}
}

// startInProcess starts member QM1 of group name in this process (units
// left to the test: UnitsByHand), served until the test ends.
func startInProcess(t *testing.T, name string) (*qm.Member, qm.Config) {
	t.Helper()
	dir := t.TempDir()
	cfg := qm.Config{Group: group.Config{Name: name, DataDir: dir + "/data", CFDir: dir + "/cf", AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, UnitsByHand: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	m, err := qm.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go m.Run(ctx)
	t.Cleanup(func() { cancel(); m.Stop() })
	return m, cfg
}
