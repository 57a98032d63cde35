package unit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// The in-process scenarios of runtime_test.go with LOGGING(INDEPENDENT)
// (independent.go): EARLY's, with each input taken as a view and logged
// by reference; the secondary reads it in place on the input queue. The
// same assertions: every transfer confirmed once, sequence numbers 1..n
// in order, every replica's state the reference's.

func TestIndependentPrimaryAndSender(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1500, logging: "INDEPENDENT"})
}

// TestIndependentPromotion: the primary stops half way (its connection
// ends, its views go back); the promoted secondary takes again the
// inputs the log names, processes those whose choices were not logged,
// and takes new input after them.
func TestIndependentPromotion(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1200, killAt: 600, logging: "INDEPENDENT"})
}

func TestIndependentPrimaryAlone(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 1, n: 500, logging: "INDEPENDENT"})
}

func TestIndependentFullAndUnknownDestinations(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 600, resendQ: 100, confirmDepth: 43, refusedOutputs: true, logging: "INDEPENDENT"})
}

// TestIndependentInputKeptUntilApplied (claim 26): the secondary is held
// before input 41; the primary halts at RESENDQ beyond it. Every input
// above 40 must still be on the input queue (held by the primary, found
// by a browse that includes held messages), and the input queue's depth
// must count them: an input leaves its queue only once every replica has
// applied it. The trim that removed an input with the primary's own
// commit, or at any trim, fails here (and the held secondary, released,
// would not find its input).
func TestIndependentInputKeptUntilApplied(t *testing.T) { keptUntilApplied(t, 600, 50, 40, 2) }

// TestIndependentHoldsRESENDQ: the same with the default RESENDQ(1000)
// and full batches: the primary holds a thousand views on one connection
// (neither mq nor lockfree bounds how many; design 14.60) and goes on
// once the secondary is released.
func TestIndependentHoldsRESENDQ(t *testing.T) { keptUntilApplied(t, 1500, 1000, 40, 64) }

// keptUntilApplied runs the unit with the secondary held at heldAt and
// checks, once the primary halts RESENDQ beyond it, that every input
// above heldAt is on the input queue and that the primary holds those it
// applied.
func keptUntilApplied(t *testing.T, n, resendQ, heldAt, batch int) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: n, batch: batch, resendQ: resendQ, holdSecondary: heldAt, logging: "INDEPENDENT",
		whileHeld: func(t *testing.T, watch *mq.Conn) {
			waitFor(t, "the primary to halt", func() bool { return progressOf(t, watch, 0) >= uint64(heldAt+resendQ) || haltedOf(t, watch, 0) })
			time.Sleep(100 * time.Millisecond) // a trim would come with the idle primary's next poll
			q, err := watch.Open("IN", mq.OpenOptions{Browse: true})
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			count := func(held bool) int {
				cur, err := q.Browse()
				if err != nil {
					t.Fatal(err)
				}
				k := 0
				for {
					_, err := cur.NextWith(mq.GetOptions{}, mq.BrowseOptions{IncludeHeld: held})
					if errors.Is(err, mq.ErrNoMessage) {
						return k
					}
					if err != nil {
						t.Fatal(err)
					}
					k++
				}
			}
			applied := int(progressOf(t, watch, 0))
			all, avail := count(true), count(false)
			t.Logf("primary applied %d, secondary held at %d: %d inputs on IN, %d of them available", applied, heldAt, all, avail)
			// Those at or below heldAt may be there too: the trim takes
			// whole log messages, and with the inputs they log.
			if all < n-heldAt {
				t.Errorf("%d inputs on the input queue, want at least the %d above the secondary's LSN %d", all, n-heldAt, heldAt)
			}
			if held := all - avail; held < applied-heldAt {
				t.Errorf("the primary holds %d inputs, applied %d: %d are applied by it and not by the secondary", held, applied, applied-heldAt)
			}
		}})
}

// TestIndependentReusedMsgID: every transfer carries the same MsgID. The
// secondary finds each input by MsgID among the held ones and must look
// past those whose length or hash differ; the primary stops half way and
// the promoted one takes the logged inputs again by MsgID, length and
// hash. A read in place that took the first message with the MsgID fails
// here.
func TestIndependentReusedMsgID(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1200, killAt: 600, logging: "INDEPENDENT", sameMsgID: true})
}

// TestIndependentPersistentPromotion: TestIndependentPromotion with
// persistent transfers: a persistent view's get is logged when the trim
// adopts it (View.Adopt) and made durable by the trim's commit; the
// stopped primary's views go back with its connection.
func TestIndependentPersistentPromotion(t *testing.T) {
	runLedgerWith(t, ledgerRun{replicas: 2, n: 1200, killAt: 600, logging: "INDEPENDENT", persistent: true})
}

// TestIndependentExpiringInputs: every transfer expires 300 ms after it
// is put, and the secondary is held at LSN 40 for longer than that, with
// every transfer taken and logged by the primary meanwhile. Such inputs
// are logged in full (takeInput adopts them into the batch): logged by
// reference, they expire on the queue before the secondary reads them
// (a browse skips expired messages) and it fails stop.
func TestIndependentExpiringInputs(t *testing.T) {
	const n, heldAt = 300, 40
	runLedgerWith(t, ledgerRun{replicas: 2, n: n, holdSecondary: heldAt, logging: "INDEPENDENT", expiry: 300 * time.Millisecond,
		whileHeld: func(t *testing.T, watch *mq.Conn) {
			waitFor(t, "the primary to take every transfer", func() bool { return progressOf(t, watch, 0) >= n })
			time.Sleep(400 * time.Millisecond) // every transfer expired
		}})
}
