package ledger_test

import (
	"syscall"
	"testing"
)

// The real-process scenarios with LOGGING(EARLY) (design 5.1, claim 3;
// unit/early.go): the primary logs each batch's inputs before it
// processes them, and their choices with its next batch. The ledger
// makes two choices per input (ctx.Now, ctx.Rand), so every input waits
// for its CHOICES record on the secondaries. The assertions are the LATE
// scenarios': every transfer confirmed exactly once, the confirmations'
// sequence numbers 1..n in order, the survivors' states the reference's
// (the transfers applied in LSN order with the logged time and random id
// each confirmation carries), the checker clean.

const early = "LOGGING(EARLY)"

// TestEarlyPrimaryKilled: the primary SIGKILLed under load, between any
// two steps: most often after logging a batch's inputs and before
// logging their choices. The promoted secondary makes those choices
// itself and logs them; nobody saw the dead primary's.
func TestEarlyPrimaryKilled(t *testing.T) { killOneWith(t, 0, early, "") }

// TestEarlySenderKilled: the sender (the secondary) SIGKILLed under
// load; the primary becomes the sender and sends, with the choices it
// logs, what the dead sender had not committed.
func TestEarlySenderKilled(t *testing.T) { killOneWith(t, 1, early, "") }

// TestEarlySupervised: member-supervised replicas, the primary SIGKILLed;
// its replacement joins (by the log or a snapshot from the promoted
// primary, which logs its choices before it donates) and takes the
// sender role.
func TestEarlySupervised(t *testing.T) { supervisedWith(t, syscall.SIGKILL, early) }

// TestEarlySnapshotJoin: the transfer scenario: a joiner restored from a
// snapshot under load (the donor a primary with choices to log first),
// the hand-over, then the primary killed and the restored replica
// promoted.
func TestEarlySnapshotJoin(t *testing.T) { transferScenario(t, 2, "", early) }

// TestEarlyStopStart: STOP SERVICE under load (the primary logs its last
// choices before it waits for the others and writes the resting
// snapshot), START: nothing lost or duplicated across the restart.
func TestEarlyStopStart(t *testing.T) { stopStartWith(t, "", early) }

// TestEarlyNoDivergenceDeterministic: CHKINT(10): the CHECK records
// travel with the CHOICES of their input, the output hash stands at
// completed-through; the deterministic ledger never trips them and both
// replicas agree on the state hash at LSN 1000.
func TestEarlyNoDivergenceDeterministic(t *testing.T) { noDivergence(t, early) }

// TestEarlyDivergenceState: a ledger keeping the clock in its state is
// caught at a CHECK, as with LATE.
func TestEarlyDivergenceState(t *testing.T) { divergenceState(t, early) }

// TestEarlyPrimaryKilledChoicesUnlogged: the primary dies (crash point
// unit.early.processed, its 20th batch with input) after processing a
// batch whose inputs it logged and whose choices it had not: the
// promoted secondary finds those inputs at the log's end without their
// choices, processes them making the choices itself, and logs them; the
// confirmations carry its choices, and its state is the reference's.
func TestEarlyPrimaryKilledChoicesUnlogged(t *testing.T) {
	killOneWith(t, 0, early, "unit.early.processed:20")
}

// TestEarlySnapshotJoinChain: TestSnapshotJoinChain (three replicas in a
// CHAIN, a joiner restored by snapshot, hand-over, the primary killed)
// with LOGGING(EARLY).
func TestEarlySnapshotJoinChain(t *testing.T) { transferScenario(t, 3, "", "TOPOLOGY(CHAIN) "+early) }

// TestEarlyStopWhileChoicesOwed: STOP SERVICE reaches the primary right
// after it processed a batch whose choices it has not logged (stopped
// there by the crash point unit.early.processed:30:stop, continued once
// STOP is made): it logs them before it waits for the secondary to
// apply its LSN and writes the resting snapshot (without that, the
// secondary could never reach it and the stop would hang). Then as
// TestStopStart.
func TestEarlyStopWhileChoicesOwed(t *testing.T) {
	stopStartRun(t, "", early, "unit.early.processed:30:stop")
}
