package unit_test

import (
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// The in-process scenarios of runtime_test.go with LOGGING(EARLY)
// (early.go): the primary logs each batch's inputs before it processes
// them and their choices with the next batch; a secondary applies an
// input once its choices are logged. The same assertions: every transfer
// confirmed once, sequence numbers 1..n in order, every replica's state
// the reference's (built from the logged time and random id each
// confirmation carries).

func TestEarlyPrimaryAndSender(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1500, logging: "EARLY"})
}

// TestEarlyPromotion: the primary stops half way, after logging inputs
// whose choices it may not have logged; the promoted secondary makes
// those choices itself and logs them.
func TestEarlyPromotion(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1200, killAt: 600, logging: "EARLY"})
}

func TestEarlyPrimaryAlone(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 1, n: 500, logging: "EARLY"})
}

func TestEarlyFullAndUnknownDestinations(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 600, resendQ: 100, confirmDepth: 43, refusedOutputs: true, logging: "EARLY"})
}

// TestEarlyFlowControl: the held secondary cannot apply beyond LSN 40;
// the primary, its choices logged, halts at RESENDQ beyond it.
func TestEarlyFlowControl(t *testing.T) {
	const resendQ, heldAt = 50, 40
	runLedgerWith(t, ledgerRun{replicas: 2, n: 600, batch: 2, resendQ: resendQ, holdSecondary: heldAt, logging: "EARLY",
		whileHeld: func(t *testing.T, watch *mq.Conn) {
			waitFor(t, "the primary to halt", func() bool { return progressOf(t, watch, 0) >= heldAt+resendQ || haltedOf(t, watch, 0) })
			time.Sleep(300 * time.Millisecond)
			if a := progressOf(t, watch, 0); a > heldAt+resendQ {
				t.Errorf("the primary applied %d inputs, the held secondary %d: more than RESENDQ(%d) beyond it", a, heldAt, resendQ)
			}
			if !haltedOf(t, watch, 0) {
				t.Errorf("the primary's progress does not show it halted")
			}
		}})
}
