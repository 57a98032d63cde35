package ledger_test

import (
	"syscall"
	"testing"
)

// The real-process scenarios with LOGGING(INDEPENDENT) (design 5.1,
// claim 4; unit/independent.go): EARLY's, with each input taken as a view
// outside syncpoint and logged by reference, read in place by the
// secondaries, and removed from IN only by the trim once every replica
// applied it. The assertions are the LATE scenarios': every transfer
// confirmed exactly once, the confirmations' sequence numbers 1..n in
// order, the survivors' states the reference's, the checker clean. IN is
// defined INDXTYPE(MSGID) (indexedInput).

const indep = "LOGGING(INDEPENDENT)"

// TestIndependentPrimaryKilled: the primary SIGKILLed under load: its
// views go back with its connection's recovery; the promoted secondary
// takes again those the log names (without logging them again: taken as
// new input they would be confirmed twice), makes the choices its
// predecessor had not logged, and takes new input after them.
func TestIndependentPrimaryKilled(t *testing.T) { killOneWith(t, 0, indep, "") }

// TestIndependentSenderKilled: the sender (the secondary) SIGKILLed under
// load; the primary becomes the sender.
func TestIndependentSenderKilled(t *testing.T) { killOneWith(t, 1, indep, "") }

// TestIndependentPrimaryKilledViewsTaken: the primary dies (crash point
// unit.indep.taken, its 20th batch with input) holding a batch's views
// before its log message is put: they go back unlogged and the promoted
// primary takes them as new input.
func TestIndependentPrimaryKilledViewsTaken(t *testing.T) {
	killOneWith(t, 0, indep, "unit.indep.taken:20")
}

// TestIndependentPrimaryKilledTrimAdopted: the primary dies (crash point
// unit.indep.adopted, its 20th trim) with the views of trimmed inputs
// adopted into a unit of work not committed: backed out, the inputs and
// their log messages come back, and the promoted primary takes them again
// from the log.
func TestIndependentPrimaryKilledTrimAdopted(t *testing.T) {
	killOneWith(t, 0, indep, "unit.indep.adopted:20")
}

// TestIndependentPrimaryKilledChoicesUnlogged: EARLY's crash point
// unit.early.processed: a batch logged by reference and processed, its
// choices not logged; the promoted primary holds those inputs again and
// makes their choices.
func TestIndependentPrimaryKilledChoicesUnlogged(t *testing.T) {
	killOneWith(t, 0, indep, "unit.early.processed:20")
}

// TestIndependentSupervised: member-supervised replicas, the primary
// SIGKILLed; its replacement joins (by the log, reading every input in
// place, or by a snapshot) and takes the sender role.
func TestIndependentSupervised(t *testing.T) { supervisedWith(t, syscall.SIGKILL, indep) }

// TestIndependentSnapshotJoin: a joiner restored from a snapshot under
// load while the primary holds its views, the hand-over, then the primary
// killed and the restored replica promoted.
func TestIndependentSnapshotJoin(t *testing.T) { transferScenario(t, 2, "", indep) }

// TestIndependentSnapshotJoinChain: the same with three replicas in a
// CHAIN.
func TestIndependentSnapshotJoinChain(t *testing.T) {
	transferScenario(t, 3, "", "TOPOLOGY(CHAIN) "+indep)
}

// TestIndependentStopStart: STOP SERVICE under load (the resting
// snapshot's last unit of work removes every input the primary holds),
// START: nothing lost or processed twice across the restart.
func TestIndependentStopStart(t *testing.T) { stopStartWith(t, "", indep) }

// TestIndependentAllReplicasKilled: every replica SIGKILLed at once: the
// next generation moves the old log and the inputs it names to the
// DEADQ; none of them is processed again.
func TestIndependentAllReplicasKilled(t *testing.T) { allReplicasKilled(t, indep) }

// TestIndependentFanoutTwoOfThree: three replicas, FANOUT, the primary
// killed, then the new primary while the first replacement joins.
func TestIndependentFanoutTwoOfThree(t *testing.T) {
	twoOfThree(t, "TOPOLOGY(FANOUT) "+indep, 3000, nil)
}

// TestIndependentNoDivergenceDeterministic: CHKINT(10) with INDEPENDENT:
// the CHECK records travel with their inputs' CHOICES, the inputs are
// read in place; both replicas agree on the state hash at LSN 1000.
func TestIndependentNoDivergenceDeterministic(t *testing.T) { noDivergence(t, indep) }

// TestIndependentDivergenceState: a ledger keeping the clock in its state
// is caught at a CHECK, as with LATE and EARLY.
func TestIndependentDivergenceState(t *testing.T) { divergenceState(t, indep) }

// TestIndependentStopWhileChoicesOwed: TestEarlyStopWhileChoicesOwed
// with INDEPENDENT: STOP SERVICE reaches the primary owing a batch's
// choices (stopped at unit.early.processed:30:stop); it logs them, writes
// the resting snapshot and removes every input it holds.
func TestIndependentStopWhileChoicesOwed(t *testing.T) {
	stopStartRun(t, "", indep, "unit.early.processed:30:stop")
}
