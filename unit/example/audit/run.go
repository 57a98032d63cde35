package audit

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit"
)

// RunFromEnv runs an audit replica configured from the environment a
// member gives the replicas it starts (QMGR_GROUP, QMGR_DATA, QMGR_CF_DIR,
// QMGR_QMGR, QMGR_UNIT, QMGR_UNIT_POS, QMGR_UNIT_CLAIM) until ctx ends.
// With AUDIT_STATE_FILE set, the state is written there (whole, by
// rename) when the replica stops without error.
func RunFromEnv(ctx context.Context) error {
	pos, err := strconv.Atoi(os.Getenv("QMGR_UNIT_POS"))
	if err != nil {
		return fmt.Errorf("audit: QMGR_UNIT_POS: %w", err)
	}
	cfg := unit.ReplicaConfig{
		Connect:  mq.ConnectOptions{Group: os.Getenv("QMGR_GROUP"), QMgr: os.Getenv("QMGR_QMGR"), DataDir: os.Getenv("QMGR_DATA"), CFDir: os.Getenv("QMGR_CF_DIR")},
		Service:  os.Getenv("QMGR_UNIT"),
		Position: pos,
		Poll:     20 * time.Millisecond,
	}
	if c := os.Getenv("QMGR_UNIT_CLAIM"); c != "" {
		if cfg.Claim, err = strconv.ParseUint(c, 10, 64); err != nil {
			return fmt.Errorf("audit: QMGR_UNIT_CLAIM: %w", err)
		}
	}
	a := New()
	if err := unit.RunWith(ctx, cfg, a); err != nil {
		return err
	}
	if f := os.Getenv("AUDIT_STATE_FILE"); f != "" {
		if err := os.WriteFile(f+".tmp", []byte(a.Digest()), 0o600); err != nil {
			return fmt.Errorf("audit: write the state: %w", err)
		}
		if err := os.Rename(f+".tmp", f); err != nil {
			return fmt.Errorf("audit: write the state: %w", err)
		}
	}
	return nil
}
