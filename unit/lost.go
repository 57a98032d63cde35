package unit

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
)

// lostCommitEvery bounds the log messages one unit of work of stateLost
// moves.
const lostCommitEvery = 64

// stateLost is the work of the first primary of a new generation after
// every replica died with no resting snapshot (design 6.3, "All replicas
// dead at once"; role.EffStateLost). The old generation's log messages
// cannot be replayed by anyone: they go to the queue manager's DEADQ
// behind a dead-letter header with reason mq.RCUnitStateLost (DestQ the
// log queue, the original format MQRULOG), so an input that was logged
// but never sent is visible, not silently dropped; older generations'
// resting chunks (partial: a complete one would have been restored) are
// removed; and OUT starts again at the new generation, LSN_out 0 (the
// new generation's LSNs start at 1). Units of work of at most
// lostCommitEvery messages, OUT's reset in the last: a primary that dies
// meanwhile leaves the rest to the next, a generation later. With
// messages to move and no DEADQ it fails (the messages stay; the replica
// fails stop and is replaced).
func (r *replica) stateLost() error {
	var qm defs.QMgr
	if err := mqconn.Of(r.c).Defs.View(func(tx *defs.Tx) error { var err error; qm, err = tx.QMgr(); return err }); err != nil {
		return fmt.Errorf("state lost: read the DEADQ: %w", err)
	}
	logName := defs.UnitQueue(r.svc.Name, defs.UnitLog)
	var dq *mq.Queue
	var others []*mq.View // lostInputs: messages of a logged MsgID not (yet) named, given back at the end
	defer func() { requeueAll(others) }()
	moved, inputs, lostIns := 0, 0, 0
	lcur, err := r.logq.Browse()
	if err != nil {
		return err
	}
	for {
		m, err := lcur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		if lm, err := logrec.DecodeLog(m.Body); err == nil {
			if lm.Gen == r.gen {
				break // this generation's (none yet: defensive)
			}
			if lm.LastLSN >= lm.FirstLSN && lm.FirstLSN > 0 {
				inputs += int(lm.LastLSN - lm.FirstLSN + 1)
			}
		}
		if qm.DeadQ == "" {
			r.c.Backout()
			return fmt.Errorf("state lost: the log holds an older generation's messages and the queue manager has no DEADQ to move them to")
		}
		if dq == nil {
			if dq, err = r.dest(qm.DeadQ); err != nil {
				return fmt.Errorf("state lost: %w", err)
			}
		}
		got, err := r.logq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &m.CorrelID})
		if err != nil {
			return fmt.Errorf("state lost: get log message %x: %w", m.CorrelID, err)
		}
		d := mq.Message{CorrelID: got.CorrelID, Format: mq.FormatDeadLetter, Persistence: mq.NotPersistent,
			Body: mq.DLH{Reason: mq.RCUnitStateLost, DestQ: logName, DestQMgr: r.c.QMgr(), OrigFormat: "MQRULOG", Time: time.Now()}.Encode(got.Body)}
		if got.Persistent {
			d.Persistence = mq.Persistent
		}
		if err := dq.Put(&d, mq.PutOptions{Syncpoint: true}); err != nil {
			return fmt.Errorf("state lost: put log message %x on the DEADQ %s: %w", m.CorrelID, qm.DeadQ, err)
		}
		// The inputs it names by reference (LOGGING(INDEPENDENT) when it
		// was written, whatever the unit's LOGGING now), still on the
		// input queue, go too (independent.go).
		lm, err := logrec.DecodeLog(got.Body)
		if err != nil {
			// Not one this binary wrote (damaged, or put by someone else):
			// moved like the others, the inputs it may name left where they
			// are. Failing here would keep the unit down for good.
			r.log.Error("unit state lost: an old log message does not decode; inputs it may name by reference stay on the input queue",
				"correlid", fmt.Sprintf("%x", got.CorrelID), "input", r.svc.Input, "err", err)
		} else {
			n, err := r.lostInputs(lm, dq, &others)
			if err != nil {
				return err
			}
			lostIns += n
		}
		moved++
		if moved%lostCommitEvery == 0 {
			if err := r.c.Commit(); err != nil {
				return fmt.Errorf("state lost: commit: %w", err)
			}
		}
	}
	// Older generations' resting chunks.
	q, err := r.snapQueue()
	if err != nil {
		return err
	}
	cur, err := q.Browse()
	if err != nil {
		return err
	}
	old := map[[24]byte]bool{}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		if t, err := logrec.ParseTransfer(m.CorrelID); err == nil && t.Joiner == logrec.RestingJoiner && uint64(t.Gen) < r.gen {
			old[m.CorrelID] = true
		}
	}
	for cid := range old {
		for {
			if _, err := q.Get(mq.GetOptions{Syncpoint: true, CorrelID: &cid}); errors.Is(err, mq.ErrNoMessage) {
				break
			} else if err != nil {
				return fmt.Errorf("state lost: remove an old resting snapshot's chunks: %w", err)
			}
		}
	}
	if _, err := r.state.Get(mq.GetOptions{Syncpoint: true, Wait: 10 * time.Second, CorrelID: &logrec.OutCorrelID}); err != nil {
		return fmt.Errorf("state lost: get OUT: %w", err)
	}
	if err := r.putOut(logrec.Out{Sender: logrec.NoPosition, Gen: r.gen}); err != nil {
		return fmt.Errorf("state lost: put OUT: %w", err)
	}
	if err := r.c.Commit(); err != nil {
		return fmt.Errorf("state lost: commit: %w", err)
	}
	r.log.Warn("unit state lost: the old generation's log moved to the DEADQ", "event", "unit_state_lost", "generation", r.gen,
		"log_messages", moved, "inputs", inputs, "inputs_moved", lostIns, "deadq", qm.DeadQ)
	return nil
}
