package unit

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/unit/logrec"
)

// Divergence (docs/design/recovery-units.md 5.6): a handler that is not
// deterministic (it reads the clock, randomness or anything else directly,
// not through its Ctx) makes a secondary's state or outputs differ from the
// primary's. Two hashes find it:
//
//   - the output hash, chained over every output of the unit in LSN order
//     (foldOutput: its destination, sequence number and body). Each log
//     message carries the primary's at its completed-through LSN; a
//     secondary compares its own once it has applied the message. A
//     handler that puts the clock in an output is caught at the first log
//     message holding such an output.
//   - the state hash (stateHash: xxhash64 of the framework state and the
//     handler's Snapshot, without the resend queue, which differs between
//     replicas). Every CHKINT inputs (SERVICE attribute; 0 off) the primary
//     logs a CHECK record with its state hash right after the input whose
//     LSN is a multiple of CHKINT; a secondary hashes its own state there
//     and compares. A handler that keeps the clock in its state only is
//     caught at the next CHECK.
//
// A secondary that finds a difference (or whose handler asks for other
// choices than the primary logged, ctx.go) sets the diverged flag and the
// LSN in its progress record, logs unit_diverged at level ERROR and fails
// stop; its member records the exit as ExitDiverged and replaces it from a
// survivor's snapshot. A promoted secondary catching up with a dead
// primary's log reports a hash difference the same way but goes on: its
// state is the only one left.

// foldOutput chains output o into the output hash h.
func foldOutput(h uint64, o *output) uint64 {
	return foldOutputBytes(h, o.dest, o.seq, o.msg.Body)
}

// foldOutputBytes is foldOutput of an output's destination, sequence
// number and body.
func foldOutputBytes(h uint64, dest string, seq uint64, body []byte) uint64 {
	var d xxhash.Digest // on the stack: one per output, on the primary's hot path
	d.Reset()
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], h)
	binary.LittleEndian.PutUint64(b[8:], seq)
	d.Write(b[:])
	d.WriteString(dest)
	d.Write([]byte{0})
	d.Write(body)
	return d.Sum64()
}

// framework is the replica's framework state at its applied LSN.
func (r *replica) framework() logrec.Framework {
	fw := logrec.Framework{LSN: r.applied, Gen: r.gen, OutHash: r.outHash}
	for name, next := range r.dseq {
		fw.Dests = append(fw.Dests, logrec.Dest{Name: name, Next: next})
	}
	fw.Sources = r.sourceTable() // source.go
	fw.Sort()
	return fw
}

// stateHash is the hash of the replica's state at its applied LSN: the
// framework state and the handler's Snapshot, and their length.
func (r *replica) stateHash() (hash, length uint64, err error) {
	fw := r.framework()
	b, err := fw.Encode()
	if err != nil {
		return 0, 0, err
	}
	d := &countingHash{d: xxhash.New()}
	d.Write(b)
	if err := r.h.Snapshot(d); err != nil {
		return 0, 0, fmt.Errorf("handler snapshot at LSN %d: %w", r.applied, err)
	}
	return d.d.Sum64(), d.n, nil
}

type countingHash struct {
	d *xxhash.Digest
	n uint64
}

func (c *countingHash) Write(b []byte) (int, error) {
	c.n += uint64(len(b))
	return c.d.Write(b)
}

// checkDue reports whether the primary logs a CHECK after input lsn.
func (r *replica) checkDue(lsn uint64) bool {
	return r.svc.ChkInt > 0 && lsn%uint64(r.svc.ChkInt) == 0
}

// checkRecord is the primary's CHECK record at its applied LSN (also
// published as its own check).
func (r *replica) checkRecord() (logrec.Record, error) {
	h, n, err := r.stateHash()
	if err != nil {
		return logrec.Record{}, err
	}
	r.checkLSN, r.checkHash = r.applied, h
	return logrec.Record{Kind: logrec.KindCheck, LSN: r.applied, CheckHash: h, CheckLen: n}, nil
}

// verifyCheck compares a CHECK record of the log with this replica's
// state hash; the record follows its input, so the replica stands at its
// LSN. A CHECK of an LSN this replica is not at (it restored a snapshot
// past it) is skipped.
func (r *replica) verifyCheck(rec *logrec.Record) error {
	if rec.LSN != r.applied {
		return nil
	}
	h, n, err := r.stateHash()
	if err != nil {
		return err
	}
	r.checkLSN, r.checkHash = r.applied, h
	if h == rec.CheckHash && n == rec.CheckLen {
		return nil
	}
	return r.diverged("state hash", rec.LSN, rec.CheckHash, h,
		fmt.Sprintf("the state at LSN %d hashes %016x (%d bytes), the primary's %016x (%d bytes)", rec.LSN, h, n, rec.CheckHash, rec.CheckLen))
}

// verifyOutHash compares a log message's output hash with this replica's,
// once it has applied the message's inputs.
func (r *replica) verifyOutHash(lm *logrec.LogMessage) error {
	if lm.LastLSN == 0 || lm.Completed != r.applied || lm.OutHash == r.outHash {
		return nil
	}
	return r.diverged("output hash", lm.Completed, lm.OutHash, r.outHash,
		fmt.Sprintf("the outputs up to LSN %d hash %016x, the primary's %016x", lm.Completed, r.outHash, lm.OutHash))
}

// diverged reports a divergence found at lsn: the ERROR line, the
// diverged flag in the progress record, and ErrDiverged (fail-stop),
// except while catching up after a promotion.
func (r *replica) diverged(what string, lsn, primary, here uint64, detail string) error {
	r.log.Error("unit_diverged: this replica's "+what+" differs from the primary's", "event", "unit_diverged", "lsn", lsn, "what", what,
		"primary_hash", fmt.Sprintf("%016x", primary), "hash", fmt.Sprintf("%016x", here), "promoted", r.promoting)
	if r.promoting {
		return nil
	}
	r.divergedLSN = lsn
	return fmt.Errorf("%w: %s", ErrDiverged, detail)
}

// failStopped records, before a replica fails stop with err, a divergence
// in its progress record (flag and LSN), so that its member and DISPLAY
// SVSTATUS see why it left. A divergence found by ctx.go (another choice
// than the primary's) is logged here; a hash difference was logged where
// it was found.
func (r *replica) failStopped(err error) {
	if !errors.Is(err, ErrDiverged) || r.rec == nil {
		return
	}
	if r.divergedLSN == 0 {
		r.divergedLSN = r.applied + 1
		r.log.Error("unit_diverged: this replica's handler made other choices than the primary's", "event", "unit_diverged",
			"lsn", r.divergedLSN, "what", "choices", "err", err)
	}
	if perr := r.publish(); perr != nil {
		r.log.Error("publish the diverged flag", "err", perr)
	}
}
