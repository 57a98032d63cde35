package httpd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/qm"
)

// TestMemberSourceAfterStop: a request that arrives after the member
// stopped (and unmapped its group) gets an error, not a fault on the
// unmapped memory.
func TestMemberSourceAfterStop(t *testing.T) {
	dir := t.TempDir()
	m, err := qm.Start(qm.Config{Group: group.Config{Name: "T", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 32 << 20, AdminSize: 8 << 20},
		Name: "QM1", HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	src := MemberSource(m)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go m.Run(ctx)
	if err := src.Ready(); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if rep, err := src.Status(); err != nil || rep.Active != 1 {
		t.Fatalf("status: %+v %v", rep, err)
	}
	m.Stop()
	if err := src.Ready(); !errors.Is(err, qm.ErrStopped) {
		t.Fatalf("ready after the stop: %v", err)
	}
	if rep, err := src.Status(); !errors.Is(err, qm.ErrStopped) {
		t.Fatalf("status after the stop: %+v %v", rep, err)
	}
}
