package ledger

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit"
)

// RunFromEnv runs a ledger replica configured from the environment a
// member gives the replicas it starts (QMGR_GROUP, QMGR_DATA, QMGR_CF_DIR,
// QMGR_QMGR, QMGR_UNIT, QMGR_UNIT_POS, QMGR_UNIT_CLAIM) until ctx ends. With
// LEDGER_STATE_FILE set, the state is written there (whole, by rename)
// when the replica stops without error (tests compare it with a
// reference); with LEDGER_CHUNK_SIZE set, a donor's snapshot chunks carry
// at most that many bytes (tests: a transfer of many chunks), and
// LEDGER_TRANSFER_STALL sets ReplicaConfig.TransferStall. LEDGER_NONDET
// ("output" or "state") makes the handler nondeterministic on purpose
// (Ledger.Nondet: tests of divergence). The replica logs warnings and
// errors (unit_diverged among them) to stderr, which its member passes
// on.
func RunFromEnv(ctx context.Context) error {
	pos, err := strconv.Atoi(os.Getenv("QMGR_UNIT_POS"))
	if err != nil {
		return fmt.Errorf("ledger: QMGR_UNIT_POS: %w", err)
	}
	cfg := unit.ReplicaConfig{
		Connect:  mq.ConnectOptions{Group: os.Getenv("QMGR_GROUP"), QMgr: os.Getenv("QMGR_QMGR"), DataDir: os.Getenv("QMGR_DATA"), CFDir: os.Getenv("QMGR_CF_DIR")},
		Service:  os.Getenv("QMGR_UNIT"),
		Position: pos,
		Poll:     20 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if c := os.Getenv("QMGR_UNIT_CLAIM"); c != "" {
		if cfg.Claim, err = strconv.ParseUint(c, 10, 64); err != nil {
			return fmt.Errorf("ledger: QMGR_UNIT_CLAIM: %w", err)
		}
	}
	if c := os.Getenv("LEDGER_CHUNK_SIZE"); c != "" {
		if cfg.ChunkSize, err = strconv.Atoi(c); err != nil {
			return fmt.Errorf("ledger: LEDGER_CHUNK_SIZE: %w", err)
		}
	}
	if d := os.Getenv("LEDGER_TRANSFER_STALL"); d != "" {
		if cfg.TransferStall, err = time.ParseDuration(d); err != nil {
			return fmt.Errorf("ledger: LEDGER_TRANSFER_STALL: %w", err)
		}
	}
	l := New()
	switch l.Nondet = os.Getenv("LEDGER_NONDET"); l.Nondet {
	case "", NondetOutput, NondetState:
	default:
		return fmt.Errorf("ledger: LEDGER_NONDET=%q: want %q or %q", l.Nondet, NondetOutput, NondetState)
	}
	if err := unit.RunWith(ctx, cfg, l); err != nil {
		return err
	}
	if f := os.Getenv("LEDGER_STATE_FILE"); f != "" {
		// Written aside and renamed: a reader that sees the file sees it
		// whole.
		if err := os.WriteFile(f+".tmp", []byte(l.Digest()), 0o600); err != nil {
			return fmt.Errorf("ledger: write the state: %w", err)
		}
		if err := os.Rename(f+".tmp", f); err != nil {
			return fmt.Errorf("ledger: write the state: %w", err)
		}
	}
	return nil
}
