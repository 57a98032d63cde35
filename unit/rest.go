package unit

import (
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// STOP SERVICE and START SERVICE (design 6.3, 14 "step 13").
//
// While the unit is stopping the primary takes no input. Once every
// other position is an active replica that has applied the primary's
// LSN (joiners finish or die first; members claim nothing while the unit
// is not running) and OUT's LSN_out is there too (every output sent), it
// writes the resting snapshot: the transfer stream (framework state, an
// empty resend section, the handler's Snapshot) as persistent chunks of
// the transfer with joiner position logrec.RestingJoiner, a commit every
// xferCommitEvery chunks. The first unit of work also removes any older
// resting chunks (a predecessor's, whole or partial), the last one holds
// the chunk flagged last (the marker: a resting snapshot without it is
// incomplete and never restored) and trims the whole log. Then the
// primary exits cleanly (RunWith returns nil); a secondary exits cleanly
// once a complete resting snapshot stands at its applied LSN. Each exit
// is a death to the members, who restart nothing while the unit is not
// running; the last makes the member's EvStopped transition, with
// HaveResting when a complete resting snapshot is on SNAP (state resting).
//
// A primary that dies while it writes (its unit of work backed out,
// chunks of earlier units of work left) is a death as any: a surviving
// secondary is promoted, still stopping, and writes the snapshot again
// (removing the partial one). With no survivor the stop ends without a
// resting snapshot (state stopped): the state is lost, as when every
// replica dies while running.
//
// START SERVICE: the first replica to register finds no primary; if this
// generation's complete resting snapshot is on SNAP it registers with
// HaveResting, becomes primary at the same generation and restores it
// (browsed, not got: destinations' sequence numbers go on). The snapshot
// is removed in the unit of work of its first batch: until then it is
// exactly the state, and a stop before any input finds it at its LSN and
// writes nothing. Later replicas join by snapshot from a donor, as usual.

// errRested ends a replica whose part in STOP SERVICE is done.
var errRested = errors.New("unit: stopped: the resting snapshot is written")

// Crash points of STOP SERVICE: a resting chunk put, the resting
// snapshot committed (before the primary exits).
var (
	cpRestChunk   = crashpoint.New("unit.resting.chunk")
	cpRestWritten = crashpoint.New("unit.resting.written")
)

// findResting browses SNAP for generation gen's complete resting
// snapshot: its CorrelID and LSN.
func (r *replica) findResting(gen uint64) (cid [24]byte, lsn uint64, ok bool, err error) {
	q, err := r.snapQueue()
	if err != nil {
		return cid, 0, false, err
	}
	return FindResting(q, gen)
}

// FindResting browses q (a unit's SNAP queue) for generation gen's
// complete resting snapshot (its last chunk committed): its CorrelID and
// the LSN it stands at.
func FindResting(q *mq.Queue, gen uint64) (cid [24]byte, lsn uint64, ok bool, err error) {
	cur, err := q.Browse()
	if err != nil {
		return cid, 0, false, err
	}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return cid, 0, false, nil
		}
		if err != nil {
			return cid, 0, false, err
		}
		t, err := logrec.ParseTransfer(m.CorrelID)
		if err != nil || t.Joiner != logrec.RestingJoiner || uint64(t.Gen) != gen {
			continue
		}
		c, err := logrec.DecodeChunk(m.Body)
		if err != nil || !c.Last {
			continue
		}
		return m.CorrelID, c.LSN, true, nil
	}
}

// outLSN is OUT's LSN_out as browsed; ok is false while the sender's
// unit of work holds it.
func (r *replica) outLSN() (uint64, bool, error) {
	cur, err := r.state.Browse()
	if err != nil {
		return 0, false, err
	}
	om, err := cur.Next(mq.GetOptions{CorrelID: &logrec.OutCorrelID})
	if errors.Is(err, mq.ErrNoMessage) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	out, err := logrec.DecodeOut(om.Body)
	if err != nil {
		return 0, false, fmt.Errorf("OUT record: %w", err)
	}
	return out.LSNOut, true, nil
}

// rest is the stopping primary's turn: it sends what is unsent, waits for
// the others, then writes the resting snapshot (errRested).
func (r *replica) rest() error {
	if r.rec.Sender == r.pos && r.applied > r.lsnOut {
		// Busy, not hung: a send blocked at a full destination is retried
		// here for as long as the destination stays full, so this loop
		// publishes (the heartbeat the member's hung-replica kill reads).
		if !r.sendDue() {
			time.Sleep(min(r.cfg.Poll, time.Until(r.sendRetry)))
			return r.publish()
		}
		if err := r.sendAlone(); err != nil {
			return err
		}
		r.dropSent()
		return r.publish()
	}
	ready := true
	for k := uint8(0); k < role.MaxReplicas && ready; k++ {
		e := r.rec.Pos[k]
		if k == r.pos || e.State == role.Vacant {
			continue
		}
		p := r.progress(k)
		ready = e.State == role.Active && p != nil && p.Tag == e.Tag && p.Applied >= r.applied
	}
	if ready {
		lsnOut, ok, err := r.outLSN()
		if err != nil {
			return err
		}
		ready = ok && lsnOut >= r.applied
		if ready {
			r.lsnOut = max(r.lsnOut, lsnOut)
		}
	}
	if !ready {
		if err := r.publish(); err != nil {
			return err
		}
		time.Sleep(min(r.cfg.Poll, 10*time.Millisecond))
		return nil
	}
	r.dropSent()
	return r.writeResting()
}

// writeResting writes the resting snapshot at r.applied unless a complete
// one of this generation stands there already.
func (r *replica) writeResting() error {
	if _, lsn, ok, err := r.findResting(r.gen); err != nil {
		return err
	} else if ok && lsn == r.applied {
		r.log.Info("stopped: the resting snapshot stands at this replica's LSN", "lsn", lsn)
		return errRested
	}
	q, err := r.snapQueue()
	if err != nil {
		return err
	}
	// Older resting chunks (a predecessor's, whole or partial) go in the
	// first unit of work.
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
		if t, err := logrec.ParseTransfer(m.CorrelID); err == nil && t.Joiner == logrec.RestingJoiner {
			old[m.CorrelID] = true
		}
	}
	for cid := range old {
		for {
			_, err := q.Get(mq.GetOptions{Syncpoint: true, CorrelID: &cid})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return fmt.Errorf("resting snapshot: remove an older one's chunks: %w", err)
			}
		}
	}
	stream, err := r.snapshotStream()
	if err != nil {
		return err
	}
	cid := logrec.Transfer{Gen: uint32(r.gen), Epoch: r.rec.Epoch, Joiner: logrec.RestingJoiner}.CorrelID()
	total, hash := uint64(len(stream)), xxhash.Sum64(stream)
	var idx uint32
	for off := 0; ; idx++ {
		n := min(r.cfg.ChunkSize, len(stream)-off)
		c := logrec.Chunk{Index: idx, LSN: r.applied, Offset: uint64(off), Data: stream[off : off+n]}
		off += n
		if off == len(stream) {
			c.Last, c.Total, c.Hash = true, total, hash
		}
		if idx%xferCommitEvery == 0 && idx > 0 {
			if err := r.c.Commit(); err != nil {
				return fmt.Errorf("resting snapshot: commit of chunks below %d: %w", idx, err)
			}
		}
		b, err := c.Encode()
		if err != nil {
			return err
		}
		if err := q.Put(&mq.Message{CorrelID: cid, Format: "MQRUSNP", Body: b, Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
			return fmt.Errorf("resting snapshot: put chunk %d: %w", idx, err)
		}
		cpRestChunk.Hit()
		if c.Last {
			break
		}
		// A large state takes long to write: the member must not take
		// the writer for hung (its progress stays what it was).
		if err := r.heartbeat(); err != nil {
			return err
		}
	}
	// Every replica has applied the whole log: it goes with the marker,
	// and with it (INDEPENDENT) every input this primary holds.
	if err := r.trimAll(); err != nil {
		return err
	}
	if err := r.indepAdopt(r.applied); err != nil {
		return err
	}
	if err := r.c.Commit(); err != nil {
		return fmt.Errorf("resting snapshot: commit of the last chunks: %w", err)
	}
	cpRestWritten.Hit()
	r.log.Info("stopped: resting snapshot written", "lsn", r.applied, "bytes", total, "chunks", idx+1)
	return errRested
}

// trimAll gets every log message up to r.applied in the caller's unit of
// work.
func (r *replica) trimAll() error {
	cur, err := r.logq.Browse()
	if err != nil {
		return err
	}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return err
		}
		lm, err := logrec.DecodeLog(m.Body)
		if err != nil {
			return fmt.Errorf("trim: log message %x: %w", m.CorrelID, err)
		}
		if lm.LastLSN > r.applied {
			return nil
		}
		if _, err := r.logq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &m.CorrelID}); err != nil {
			return fmt.Errorf("trim: get log message %x: %w", m.CorrelID, err)
		}
	}
}

// secondaryRested reports whether this stopping secondary's part is
// done: a complete resting snapshot stands at its applied LSN.
func (r *replica) secondaryRested() (bool, error) {
	if r.rec.State != role.Stopping {
		return false, nil
	}
	_, lsn, ok, err := r.findResting(r.gen)
	return ok && lsn == r.applied, err
}

// restoreResting restores the resting snapshot cid (browsed, not got) as
// the unit's new primary at its generation.
func (r *replica) restoreResting(cid [24]byte) error {
	q, err := r.snapQueue()
	if err != nil {
		return err
	}
	cur, err := q.Browse()
	if err != nil {
		return err
	}
	rs := newRestorer(r.h)
	defer rs.abort()
	h := xxhash.New()
	var off, lsn uint64
	for idx := uint32(0); ; idx++ {
		m, err := cur.Next(mq.GetOptions{CorrelID: &cid})
		if errors.Is(err, mq.ErrNoMessage) {
			return fmt.Errorf("%w: resting snapshot %x ends at chunk %d without its last", logrec.ErrCorrupt, cid, idx)
		}
		if err != nil {
			return fmt.Errorf("resting snapshot chunk %d: %w", idx, err)
		}
		c, err := logrec.DecodeChunk(m.Body)
		if err != nil {
			return fmt.Errorf("resting snapshot chunk %d: %w", idx, err)
		}
		if idx == 0 {
			lsn = c.LSN
		}
		if c.Index != idx || c.Offset != off || c.LSN != lsn {
			return fmt.Errorf("%w: resting snapshot chunk %d at offset %d of LSN %d, want chunk %d at %d of LSN %d", logrec.ErrCorrupt, c.Index, c.Offset, c.LSN, idx, off, lsn)
		}
		h.Write(c.Data)
		off += uint64(len(c.Data))
		if err := rs.feed(c.Data); err != nil {
			return fmt.Errorf("resting snapshot at LSN %d: %w", lsn, err)
		}
		if !c.Last {
			continue
		}
		if c.Total != off || c.Hash != h.Sum64() {
			return fmt.Errorf("%w: resting snapshot at LSN %d: %d bytes hashing %x, written %d hashing %x", logrec.ErrCorrupt, lsn, off, h.Sum64(), c.Total, c.Hash)
		}
		break
	}
	if err := rs.finish(r, lsn); err != nil {
		return fmt.Errorf("resting snapshot at LSN %d: %w", lsn, err)
	}
	// Everything up to the snapshot's LSN was sent before it was written.
	r.lsnOut = lsn
	r.resting = &cid
	r.log.Info("restored the resting snapshot", "lsn", lsn, "generation", r.gen)
	return nil
}

// removeResting gets the restored resting snapshot's chunks in the
// caller's unit of work (the primary's first batch).
func (r *replica) removeResting() error {
	if r.resting == nil {
		return nil
	}
	q, err := r.snapQueue()
	if err != nil {
		return err
	}
	for {
		_, err := q.Get(mq.GetOptions{Syncpoint: true, CorrelID: r.resting})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("remove the resting snapshot: %w", err)
		}
	}
}
