package unit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// Snapshot transfer (design 6.3, 14.1): a joiner that cannot replay the
// log from LSN 1 receives the state of a donor (role.Next chose it at the
// registration) as chunks on SYSTEM.UNIT.<n>.SNAP.
//
// The donor, at a batch boundary (nothing of its own in its unit of
// work), sets hold = its applied LSN s in its progress record (the
// primary's trim keeps the log above it), writes the stream (framework
// state, resend section, the handler's Snapshot) as chunks under
// syncpoint, a commit every xferCommitEvery chunks and never more than
// xferAhead ahead of the chunks the joiner has restored, and goes on with
// its own work; it clears hold once the joiner's applied LSN reaches s.
// If the joiner leaves meanwhile, the donor removes what is left of the
// transfer's chunks and clears hold.
//
// The joiner announces that it waits for a snapshot (its progress record
// with role joiner and its tag), finds its transfer's CorrelID on SNAP
// (joiner position and tag), gets the chunks by CorrelID with wait (in
// index order, each checked), feeds the handler's Restore through a pipe,
// checks the stream's length and hash, takes applied = s and the
// framework state, and becomes active by the restored CAS. If its donor
// dies meanwhile (the death transition clears its donor), it removes
// what is left of the chunks and fails stop; its member starts another.

// Crash points of the transfer (design 11): the joiner announced itself,
// the donor built its stream (the handler's Snapshot done), the donor put
// a chunk, the donor committed the last chunk, the joiner got a chunk,
// the joiner got and checked the whole stream (before the handler's
// Restore ends and before it becomes active), the joiner is restored, a
// restored joiner took the sender role.
var (
	cpXferRegistered = crashpoint.New("unit.transfer.registered")
	cpXferChunk      = crashpoint.New("unit.transfer.chunk")
	cpXferStream     = crashpoint.New("unit.transfer.stream")
	cpXferLast       = crashpoint.New("unit.transfer.last")
	cpXferGot        = crashpoint.New("unit.transfer.got")
	cpXferReceived   = crashpoint.New("unit.transfer.received")
	cpXferRestored   = crashpoint.New("unit.transfer.restored")
	cpXferHandOver   = crashpoint.New("unit.transfer.handover")
)

// formatLen is a message's Format length (mq.Put keeps that many bytes).
const formatLen = 8

// Transfer flow control (design 6.3).
const (
	xferCommitEvery = 16 // chunks per unit of work of the donor
	xferAhead       = 32 // chunks the donor may be ahead of the joiner's restored count
)

// ErrDonorGone: a joiner's donor died during the transfer; the joiner
// fails stop and is replaced.
var ErrDonorGone = errors.New("unit: the snapshot donor is gone")

// donation is a transfer this replica gives.
type donation struct {
	joiner uint8
	tag    uint32
	lsn    uint64    // s: the LSN the snapshot stands at
	cid    [24]byte  // the chunks' CorrelID
	chunks uint32    // the joiner's restored count as last seen
	moved  time.Time // when it last changed
}

// snapQueue opens SYSTEM.UNIT.<n>.SNAP once.
func (r *replica) snapQueue() (*mq.Queue, error) {
	if r.snap != nil {
		return r.snap, nil
	}
	q, err := r.c.Open(defs.UnitQueue(r.svc.Name, defs.UnitSnap), mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		return nil, fmt.Errorf("open the snapshot queue: %w", err)
	}
	r.snap = q
	return q, nil
}

// joinerProgress is position k's progress record when it names tag.
func (r *replica) joinerProgress(k uint8, tag uint32) *role.Progress {
	if p := r.progress(k); p != nil && p.Tag == tag {
		return p
	}
	return nil
}

// joinerHere reports whether position k is still the joiner (or, once
// restored, the replica) with W tag tag.
func (r *replica) joinerHere(k uint8, tag uint32) bool {
	e := r.rec.Pos[k]
	return e.Tag == tag && (e.State == role.Joining || e.State == role.Active)
}

// serveJoiners is called by a donor at a batch boundary, with nothing in
// its unit of work: it ends a finished donation whose joiner caught up or
// left, and streams a snapshot to a joiner that waits for one from it.
func (r *replica) serveJoiners() error {
	if d := r.donating; d != nil {
		switch {
		case !r.joinerHere(d.joiner, d.tag):
			if _, err := r.removeChunks(d.cid); err != nil {
				return err
			}
			r.log.Info("snapshot joiner gone: hold cleared", "joiner", d.joiner, "lsn", d.lsn)
			r.donating, r.hold = nil, 0
		default:
			p := r.joinerProgress(d.joiner, d.tag)
			if p != nil && p.Role != role.SeenJoiner && p.Applied >= d.lsn {
				r.donating, r.hold = nil, 0
				break
			}
			if p != nil && p.Chunks != d.chunks {
				d.chunks, d.moved = p.Chunks, time.Now()
			}
			if time.Since(d.moved) > r.cfg.TransferStall {
				// Streamed, but the joiner restores nothing (hung): the hold
				// must not keep the log for it for ever. Only if a chunk is
				// removed here, though: the joiner gets the chunks in order
				// and destructively, so it can then never finish. If it got
				// them all it may still become active at d.lsn (its Restore
				// is slow, or it was paused), and the trim counts it only
				// through this hold until its progress shows it restored:
				// the hold stays until then or until its entry is gone.
				n, err := r.removeChunks(d.cid)
				if err != nil {
					return err
				}
				if n == 0 {
					r.log.Info("snapshot joiner got every chunk but is not restored yet: hold kept", "joiner", d.joiner, "lsn", d.lsn, "waited", time.Since(d.moved).Round(time.Millisecond))
					d.moved = time.Now()
					return nil
				}
				r.log.Info("snapshot joiner restored nothing: chunks removed, hold cleared", "joiner", d.joiner, "lsn", d.lsn, "removed", n)
				r.giveUp(d.tag)
				r.donating, r.hold = nil, 0
			}
		}
		if r.donating == nil {
			if err := r.publish(); err != nil {
				return err
			}
		}
		return nil // one donation at a time
	}
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := r.rec.Pos[k]
		if e.State != role.Joining || e.Donor != r.pos {
			continue
		}
		if p := r.joinerProgress(k, e.Tag); p == nil || p.Role != role.SeenJoiner || r.givenUp[e.Tag] {
			continue // not announced (yet): it may replay the log from LSN 1; or stalled once
		}
		return r.donate(k, e.Tag)
	}
	return nil
}

// giveUp marks the joiner with W tag tag as not to be served again.
func (r *replica) giveUp(tag uint32) {
	if r.givenUp == nil {
		r.givenUp = map[uint32]bool{}
	}
	r.givenUp[tag] = true
}

// donate streams this replica's state to joiner k (W tag tag).
func (r *replica) donate(k uint8, tag uint32) error {
	q, err := r.snapQueue()
	if err != nil {
		return err
	}
	d := &donation{joiner: k, tag: tag, lsn: r.applied, moved: time.Now(),
		cid: logrec.Transfer{Gen: uint32(r.gen), Epoch: r.rec.Epoch, Joiner: k, JoinerTag: tag}.CorrelID()}
	r.donating, r.hold = d, d.lsn
	if err := r.publish(); err != nil {
		return err
	}
	if err := r.sweepChunks(); err != nil {
		return err
	}
	stream, err := r.snapshotStream()
	if err != nil {
		return err
	}
	cpXferStream.Hit()
	// The stall counts from here: building the stream (the handler's
	// Snapshot) may take as long as it takes, the joiner cannot restore
	// before the chunks are put.
	d.moved = time.Now()
	total, hash := uint64(len(stream)), xxhash.Sum64(stream)
	r.log.Info("snapshot transfer", "joiner", k, "lsn", d.lsn, "bytes", total)
	size := r.cfg.ChunkSize
	var idx uint32
	for off := 0; ; idx++ {
		n := min(size, len(stream)-off)
		c := logrec.Chunk{Index: idx, LSN: d.lsn, Offset: uint64(off), Data: stream[off : off+n]}
		off += n
		if off == len(stream) {
			c.Last, c.Total, c.Hash = true, total, hash
		}
		if idx%xferCommitEvery == 0 && idx > 0 {
			if err := r.c.Commit(); err != nil {
				return fmt.Errorf("snapshot transfer to position %d: commit of chunks below %d: %w", k, idx, err)
			}
		}
		if ok, err := r.awaitJoiner(d, idx); err != nil || !ok {
			return err
		}
		if err := r.heartbeat(); err != nil {
			return err
		}
		b, err := c.Encode()
		if err != nil {
			return err
		}
		if err := q.Put(&mq.Message{CorrelID: d.cid, Format: "MQRUSNP", Body: b, Persistence: mq.NotPersistent}, mq.PutOptions{Syncpoint: true}); err != nil {
			return fmt.Errorf("snapshot transfer to position %d: put chunk %d: %w", k, idx, err)
		}
		cpXferChunk.Hit()
		if c.Last {
			break
		}
	}
	if err := r.c.Commit(); err != nil {
		return fmt.Errorf("snapshot transfer to position %d: commit of the last chunks: %w", k, err)
	}
	cpXferLast.Hit()
	r.log.Info("snapshot sent", "joiner", k, "lsn", d.lsn, "chunks", idx+1)
	return nil
}

// awaitJoiner waits, before chunk idx is put, until it is at most
// xferAhead ahead of what the joiner has restored; ok is false when the
// joiner left (the donation is then ended: chunks removed, hold cleared).
func (r *replica) awaitJoiner(d *donation, idx uint32) (ok bool, err error) {
	giveUp := func(why string) (bool, error) {
		r.c.Backout()
		if _, err := r.removeChunks(d.cid); err != nil {
			return false, err
		}
		r.log.Info(why+": chunks removed, hold cleared", "joiner", d.joiner, "lsn", d.lsn)
		r.donating, r.hold = nil, 0
		return false, r.publish()
	}
	for try := 0; ; try++ {
		if try%8 == 0 || idx >= xferAhead {
			if err := r.readRole(); err != nil {
				return false, err
			}
			if !r.joinerHere(d.joiner, d.tag) {
				return giveUp("snapshot joiner gone during the transfer")
			}
		}
		p, ver := r.progressV(d.joiner)
		if p != nil && p.Tag != d.tag {
			p = nil
		}
		// Once it had to wait, the donor waits until the joiner has
		// restored half the window: the window then moves by half, not
		// by one chunk a wait.
		slack := uint32(0)
		if try > 0 {
			slack = xferAhead / 2
		}
		if idx < xferAhead || p != nil && p.Chunks+xferAhead > idx+slack {
			return true, nil
		}
		if p != nil && p.Chunks != d.chunks {
			d.chunks, d.moved = p.Chunks, time.Now()
		}
		if time.Since(d.moved) > r.cfg.TransferStall {
			// A joiner alive but restoring nothing (hung): the donor's own
			// work must not wait for it; it is not served again.
			r.giveUp(d.tag)
			return giveUp(fmt.Sprintf("snapshot joiner restored nothing for %v", r.cfg.TransferStall))
		}
		if try == 0 {
			// What is put must be visible before waiting for the joiner.
			if err := r.c.Commit(); err != nil {
				return false, fmt.Errorf("snapshot transfer to position %d: commit of chunks below %d: %w", d.joiner, idx, err)
			}
		}
		if r.stop.Interrupted() {
			return false, mq.ErrInterrupted
		}
		if err := r.heartbeat(); err != nil {
			return false, err
		}
		// Woken by the joiner's next publish (it publishes each chunk it
		// restores); bounded so that the role record and the stall are
		// looked at again.
		if _, err := r.s.WaitStatus(r.svc.StatusBase+1+int(d.joiner), ver, min(r.cfg.Poll, 10*time.Millisecond), nil); err != nil {
			return false, err
		}
	}
}

// snapshotStream is the state at r.applied: the framework state, the
// resend section and the handler's snapshot.
func (r *replica) snapshotStream() ([]byte, error) {
	fw := r.framework()
	b, err := fw.Encode()
	if err != nil {
		return nil, err
	}
	rs := make([]logrec.Resend, 0, len(r.resend))
	for _, o := range r.resend {
		if o.lsn <= r.lsnOut {
			continue
		}
		m := &o.msg
		// The Format as mq.Put sends it: its first 8 bytes.
		format := m.Format
		if len(format) > formatLen {
			format = format[:formatLen]
		}
		e := logrec.Resend{LSN: o.lsn, Seq: o.seq, Dest: o.dest, MsgID: m.MsgID, CorrelID: m.CorrelID, Format: format,
			Persistence: uint8(m.Persistence), ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr, Properties: m.Properties, Body: m.Body}
		e.Priority = uint8(m.Priority)
		if m.Priority == mq.PriorityAsQDef {
			e.Priority = logrec.PriorityDefault
		}
		if !m.Expiry.IsZero() {
			e.Expiry = m.Expiry.UnixNano()
		}
		rs = append(rs, e)
	}
	sec, err := logrec.EncodeResend(rs)
	if err != nil {
		return nil, fmt.Errorf("resend queue: %w", err)
	}
	buf := bytes.NewBuffer(append(b, sec...))
	if err := r.h.Snapshot(buf); err != nil {
		return nil, fmt.Errorf("handler snapshot at LSN %d: %w", r.applied, err)
	}
	return buf.Bytes(), nil
}

// removeChunks gets every chunk of transfer cid, outside any unit of
// work, and returns how many it got.
func (r *replica) removeChunks(cid [24]byte) (int, error) {
	q, err := r.snapQueue()
	if err != nil {
		return 0, err
	}
	for n := 0; ; n++ {
		_, err := q.Get(mq.GetOptions{CorrelID: &cid})
		if errors.Is(err, mq.ErrNoMessage) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("remove snapshot chunks %x: %w", cid, err)
		}
	}
}

// sweepChunks removes the chunks of transfers no joining entry names (a
// donor and its joiner that both died), leaving the resting snapshot's.
// It browses first and reads the role record after, as the member's sweep.
func (r *replica) sweepChunks() error {
	q, err := r.snapQueue()
	if err != nil {
		return err
	}
	cur, err := q.Browse()
	if err != nil {
		return err
	}
	stale := map[[24]byte]bool{}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		t, err := logrec.ParseTransfer(m.CorrelID)
		if err != nil || t.Joiner == logrec.RestingJoiner {
			continue
		}
		if t.Joiner < role.MaxReplicas {
			e := r.rec.Pos[t.Joiner]
			if e.State == role.Joining && e.Tag == t.JoinerTag {
				continue
			}
		}
		stale[m.CorrelID] = true
	}
	if len(stale) == 0 {
		return nil
	}
	// Judged by the role record as it is now, read after the browse: a
	// chunk is put only after its donor saw its joiner joining, so a chunk
	// browsed whose joiner this record does not show joining under its tag
	// belongs to a transfer that is over (r.rec may predate a joiner that
	// another donor serves).
	if err := r.readRole(); err != nil {
		return err
	}
	for cid := range stale {
		t, _ := logrec.ParseTransfer(cid)
		if t.Joiner < role.MaxReplicas {
			if e := r.rec.Pos[t.Joiner]; e.State == role.Joining && e.Tag == t.JoinerTag {
				delete(stale, cid)
			}
		}
	}
	for cid := range stale {
		if _, err := r.removeChunks(cid); err != nil {
			return err
		}
		r.log.Info("stale snapshot chunks removed", "transfer", fmt.Sprintf("%x", cid))
	}
	return nil
}

// join receives a snapshot from this joiner's donor and restores it; it
// returns the LSN the state stands at.
func (r *replica) join() (uint64, error) {
	r.joining = true
	if err := r.publish(); err != nil {
		return 0, err
	}
	cpXferRegistered.Hit()
	q, err := r.snapQueue()
	if err != nil {
		return 0, err
	}
	var cid [24]byte
	found := false
	abort := func(err error) (uint64, error) {
		if found {
			if _, rerr := r.removeChunks(cid); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return 0, err
	}
	// stillJoining fails when the donor is gone or the entry is no longer
	// this joiner's.
	stillJoining := func() error {
		if err := r.readRole(); err != nil {
			return err
		}
		e := r.rec.Pos[r.pos]
		if e.State != role.Joining || e.Tag != r.tag {
			return fmt.Errorf("%w: position %d is %v, no longer this joiner's", ErrRole, r.pos, e.State)
		}
		if e.Donor == role.None {
			return fmt.Errorf("%w: position %d's donor died during the transfer", ErrDonorGone, r.pos)
		}
		return nil
	}
	// The transfer's CorrelID: the donor's epoch is its own; the joiner
	// finds it by its position and tag. A donor serves an announced
	// joiner at its next batch boundary unless it is busy with another
	// donation; one that shows no donation at all (its progress without
	// FlagDonorBusy) for twice TransferStall while no chunk for this
	// joiner is found has given this joiner up (it was paused while its
	// donor streamed) and will not serve it again: it fails stop, and its
	// member starts another.
	idle := time.Now()
	for !found {
		if err := stillJoining(); err != nil {
			return abort(err)
		}
		if d := r.rec.Pos[r.pos].Donor; d < role.MaxReplicas {
			if p := r.progress(d); p != nil && p.Tag == r.rec.Pos[d].Tag && p.Flags&role.FlagDonorBusy != 0 {
				idle = time.Now() // busy: with another joiner, or building this one's stream
			}
		}
		if time.Since(idle) > 2*r.cfg.TransferStall {
			return abort(fmt.Errorf("%w: no snapshot chunk for %v: the donor gave the transfer up or never began it", ErrDonorGone, time.Since(idle).Round(time.Millisecond)))
		}
		cur, err := q.Browse()
		if err != nil {
			return 0, err
		}
		for {
			m, err := cur.Next(mq.GetOptions{})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return 0, err
			}
			if t, err := logrec.ParseTransfer(m.CorrelID); err == nil && t.Joiner == r.pos && t.JoinerTag == r.tag && uint64(t.Gen) == r.gen {
				cid, found = m.CorrelID, true
				break
			}
		}
		if !found {
			if r.stop.Interrupted() {
				return 0, mq.ErrInterrupted
			}
			time.Sleep(r.cfg.Poll / 4)
		}
	}

	rs := newRestorer(r.h)
	defer rs.abort()
	h := xxhash.New()
	var off, lsn uint64
	last := time.Now()
	for idx := uint32(0); ; idx++ {
		m, err := q.Get(mq.GetOptions{CorrelID: &cid, Wait: r.cfg.Poll, Interrupt: &r.stop})
		if errors.Is(err, mq.ErrNoMessage) {
			if err := stillJoining(); err != nil {
				return abort(err)
			}
			if time.Since(last) > 2*r.cfg.TransferStall {
				return abort(fmt.Errorf("%w: no snapshot chunk for %v: the donor gave the transfer up", ErrDonorGone, time.Since(last).Round(time.Millisecond)))
			}
			idx--
			continue
		}
		last = time.Now()
		if err != nil {
			return 0, fmt.Errorf("snapshot chunk %d: %w", idx, err)
		}
		c, err := logrec.DecodeChunk(m.Body)
		if err != nil {
			return abort(fmt.Errorf("snapshot chunk %d: %w", idx, err))
		}
		if idx == 0 {
			lsn = c.LSN
		}
		if c.Index != idx || c.Offset != off || c.LSN != lsn {
			return abort(fmt.Errorf("%w: snapshot chunk %d at offset %d of LSN %d, want chunk %d at %d of LSN %d", logrec.ErrCorrupt, c.Index, c.Offset, c.LSN, idx, off, lsn))
		}
		h.Write(c.Data)
		off += uint64(len(c.Data))
		if err := rs.feed(c.Data); err != nil {
			return abort(fmt.Errorf("snapshot at LSN %d: %w", lsn, err))
		}
		r.chunks = idx + 1
		if err := r.publish(); err != nil {
			return 0, err
		}
		cpXferGot.Hit()
		if !c.Last {
			continue
		}
		if c.Total != off || c.Hash != h.Sum64() {
			return abort(fmt.Errorf("%w: snapshot at LSN %d: %d bytes hashing %x, the donor sent %d hashing %x", logrec.ErrCorrupt, lsn, off, h.Sum64(), c.Total, c.Hash))
		}
		cpXferReceived.Hit()
		break
	}
	if err := rs.finish(r, lsn); err != nil {
		return 0, fmt.Errorf("snapshot at LSN %d: %w", lsn, err)
	}
	return lsn, nil
}

// restorer takes a snapshot stream piece by piece: the framework state and
// the resend section, whole, then the handler's bytes through a pipe into
// Restore, which runs in a goroutine of its own.
type restorer struct {
	h       Handler
	head    []byte // the stream until the framework state and resend section are whole
	fw      *logrec.Framework
	resend  []logrec.Resend
	pw      *io.PipeWriter
	restore chan error
}

func newRestorer(h Handler) *restorer { return &restorer{h: h} }

// feed takes the next bytes of the stream.
func (s *restorer) feed(b []byte) error {
	if s.pw == nil {
		if len(s.head)+len(b) > cap(s.head) {
			// Doubled, where append grows a large slice by a quarter:
			// what the head's growth allocates stays twice its size,
			// not five times.
			grown := make([]byte, len(s.head), max(2*cap(s.head), len(s.head)+len(b), 4096))
			copy(grown, s.head)
			s.head = grown
		}
		s.head = append(s.head, b...)
		f, n, err := logrec.DecodeFramework(s.head)
		if errors.Is(err, logrec.ErrTruncated) {
			return nil
		}
		if err != nil {
			return err
		}
		rs, m, err := logrec.DecodeResend(s.head[n:])
		if errors.Is(err, logrec.ErrTruncated) {
			return nil
		}
		if err != nil {
			return err
		}
		s.fw, s.resend = f, rs
		pr, pw := io.Pipe()
		s.pw, s.restore = pw, make(chan error, 1)
		go func() {
			err := s.h.Restore(pr)
			io.Copy(io.Discard, pr) // what Restore left: the writer must not block
			s.restore <- err
		}()
		b, s.head = s.head[n+m:], nil
	}
	_, err := s.pw.Write(b)
	return err
}

// abort ends a restore that will not finish.
func (s *restorer) abort() {
	if s.pw != nil {
		s.pw.CloseWithError(errors.New("snapshot transfer ended"))
		<-s.restore
		s.pw = nil
	}
}

// finish ends the stream of the snapshot at lsn, waits for Restore and
// gives r the state: applied = lsn, the destination and source tables,
// the resend queue.
func (s *restorer) finish(r *replica, lsn uint64) error {
	if s.pw == nil {
		return fmt.Errorf("%w: the stream ends inside its framework state or resend section", logrec.ErrCorrupt)
	}
	s.pw.Close()
	err := <-s.restore
	s.pw = nil
	if err != nil {
		return fmt.Errorf("handler restore: %w", err)
	}
	fw := s.fw
	if fw.Gen != r.gen || fw.LSN != lsn {
		return fmt.Errorf("%w: framework state of generation %d at LSN %d, chunks of LSN %d, this replica's generation %d", logrec.ErrCorrupt, fw.Gen, fw.LSN, lsn, r.gen)
	}
	r.applied, r.outHash = lsn, fw.OutHash
	for _, d := range fw.Dests {
		r.dseq[d.Name] = d.Next
	}
	r.setSourceTable(fw.Sources)
	r.resend = r.resend[:0]
	for _, e := range s.resend {
		m := mq.Message{MsgID: e.MsgID, CorrelID: e.CorrelID, Format: e.Format, Priority: int(e.Priority), Persistence: mq.Persistence(e.Persistence),
			ReplyToQ: e.ReplyToQ, ReplyToQMgr: e.ReplyToQMgr, Properties: e.Properties, Body: e.Body}
		if e.Priority == logrec.PriorityDefault {
			m.Priority = mq.PriorityAsQDef
		}
		if e.Expiry != 0 {
			m.Expiry = time.Unix(0, e.Expiry)
		}
		r.resend = append(r.resend, output{lsn: e.LSN, dest: e.Dest, seq: e.Seq, msg: m})
	}
	sort.SliceStable(r.resend, func(i, j int) bool { return r.resend[i].lsn < r.resend[j].lsn })
	return nil
}
