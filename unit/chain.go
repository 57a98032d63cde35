package unit

import (
	"fmt"
	"slices"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// The CHAIN gate (design 5.2, claim 5). Every secondary browses the one
// shared log; in a CHAIN, chain[i+1] applies a log message only once
// chain[i] has applied it (LATE: its applied LSN, from its progress
// record), so the replicas apply in chain order and the chain's last,
// the sender, is never ahead of any replica before it. chain[0] reads
// the committed log as it comes: its predecessor is the primary, whose
// log messages are visible only once committed. FANOUT has no gate.
//
// A gated secondary keeps the log message it browsed in memory (held)
// and waits on its predecessor's progress record (WaitStatus, woken by
// the predecessor's publish after each log message it applies), at most
// as long as its caller would have waited on the log; then its loop
// reads the role record again, so a predecessor that dies is relinked
// out of the chain and the gate moves to the one before it (or goes,
// for a new chain[0]). The held message was committed when browsed and
// is above every LSN this replica applied, so the primary's trim bound
// (which counts this replica's applied LSN) keeps it in the log; it is
// only a read ahead. A promoted replica applies it first in its
// catch-up, ungated.

// nextLog returns the next log message this secondary may apply,
// waiting up to wait for one to be committed and, in a CHAIN, for its
// predecessor to have applied it; mq.ErrNoMessage when none may be
// applied yet.
func (r *replica) nextLog(wait time.Duration) (*logrec.LogMessage, error) {
	deadline := time.Now().Add(wait)
	if r.held == nil {
		// As follow waited before the gate: a change of the role record
		// ends the wait (wake, interrupted by the role watch), except in
		// a catch-up (wait 0), which reads to the log's end.
		bo := mq.BrowseOptions{Wait: wait, StopAtUncommitted: true, Interrupt: &r.wake}
		if wait == 0 {
			bo.Interrupt = &r.stop
		}
		m, err := r.cur.NextWith(mq.GetOptions{}, bo)
		if err != nil {
			return nil, err
		}
		lm, err := logrec.DecodeLog(m.Body)
		if err != nil {
			return nil, fmt.Errorf("log message %x: %w", m.CorrelID, err)
		}
		r.held = lm
	}
	for {
		pred, gate, ver, gated := r.chainGate()
		if lm := r.held; !gated || lm.LastLSN == 0 || lm.LastLSN <= gate || lm.LastLSN <= r.applied {
			r.held = nil
			return lm, nil
		}
		d := time.Until(deadline)
		if d <= 0 || r.stop.Interrupted() || r.wake.Interrupted() {
			return nil, mq.ErrNoMessage // the caller reads the role record again
		}
		if _, err := r.s.WaitStatus(r.svc.StatusBase+1+int(pred), ver, d, nil); err != nil {
			return nil, err
		}
	}
}

// chainGate says whether this replica's reading is gated and by what:
// its predecessor in the chain (as the role record last read says), the
// predecessor's applied LSN (0 while its progress record is not its
// current replica's) and that record's version.
func (r *replica) chainGate() (pred uint8, gate, ver uint64, gated bool) {
	if r.rec.Fanout || r.rec.Primary == r.pos {
		return role.None, 0, 0, false
	}
	i := slices.Index(r.rec.Chain, r.pos)
	if i <= 0 {
		// chain[0] follows the primary's committed log; a replica not in
		// the chain (not restored yet) does not follow at all.
		return role.None, 0, 0, false
	}
	pred = r.rec.Chain[i-1]
	p, v := r.progressV(pred)
	if p != nil && p.Tag == r.rec.Pos[pred].Tag {
		gate = p.Applied
	}
	return pred, gate, v, true
}

// received is the last LSN this replica has read into memory: its
// applied LSN, or the last of the log message it holds at the gate
// (progress record, design 3.2).
func (r *replica) received() uint64 {
	if r.held != nil && r.held.LastLSN > r.applied {
		return r.held.LastLSN
	}
	return r.applied
}
