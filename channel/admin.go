package channel

import (
	"errors"
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
)

// The operator's commands on a channel that does not run: RESOLVE CHANNEL,
// RESET CHANNEL and DELETE CHANNEL. Each takes the channel's lock (its
// status entry, see Status) through the command's own connection, so that
// no instance starts while it works, and releases it with its change to
// the entry. If the process dies meanwhile, its connection's recovery backs
// its unit of work out and the lock frees itself.

// Errors of the operator's commands.
var (
	ErrRunning    = errors.New("channel: the channel is running")
	ErrInDoubt    = errors.New("channel: the channel is in doubt")
	ErrNotInDoubt = errors.New("channel: the channel is not in doubt")
	ErrNotSender  = errors.New("channel: not a sender channel")
)

// Resolved is what RESOLVE CHANNEL settled.
type Resolved struct {
	Oldest, Latest uint64 // the batches in doubt
	Messages       int    // their messages
}

// Resolve settles sender channel def's batches in doubt without its
// partner (RESOLVE CHANNEL): commit removes their messages from the
// transmission queue (the partner is taken to have them), backout leaves
// them there to be sent again (the unit of work of the instance that sent
// them was backed out: they are back in their places). Either way their
// sync records go, in the same unit of work. Refused when the channel runs
// (ErrRunning) or nothing is in doubt (ErrNotInDoubt).
func Resolve(c *mq.Conn, def defs.Channel, commit bool) (Resolved, error) {
	var res Resolved
	if def.Type != defs.ChlSender {
		return res, fmt.Errorf("%w: CHANNEL(%s) is a %s channel: only a sender is in doubt", ErrNotSender, def.Name, def.Type)
	}
	err := withLock(c, def, func() (func(*Status), error) {
		syncq, err := c.Open(SyncQueue, mq.OpenOptions{Input: true, Browse: true})
		if err != nil {
			return nil, err
		}
		defer syncq.Close()
		recs, err := readInDoubt(syncq, def.Name)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			return nil, fmt.Errorf("%w: CHANNEL(%s) has no batch in doubt", ErrNotInDoubt, def.Name)
		}
		res = Resolved{Oldest: recs[0].id, Latest: recs[len(recs)-1].id}
		for _, rec := range recs {
			res.Messages += len(rec.ids)
		}
		if commit {
			if err := removeMessages(c, def.XmitQ, recs); err != nil {
				return nil, err
			}
		}
		for _, rec := range recs {
			if _, err := syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &rec.key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
				return nil, err
			}
		}
		if err := c.Commit(); err != nil {
			return nil, err
		}
		return func(st *Status) { st.InDoubt, st.Reason = 0, NoStopReason }, nil
	})
	return res, err
}

// removeMessages gets the messages of the in-doubt batches recs from
// transmission queue xq, in the unit of work (those already gone are
// passed).
func removeMessages(c *mq.Conn, xq string, recs []sendRecord) error {
	q, err := c.Open(xq, mq.OpenOptions{Input: true})
	if err != nil {
		return err
	}
	defer q.Close()
	for _, rec := range recs {
		for i := range rec.ids {
			if _, err := q.Get(mq.GetOptions{Syncpoint: true, MsgID: &rec.ids[i]}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
				return err
			}
		}
	}
	return nil
}

// Reset sets channel def's sequence number (RESET CHANNEL): next is the
// next batch's. A sender's next instance tells its partner, and both sides
// number from there; refused while batches are in doubt (ErrInDoubt:
// RESOLVE CHANNEL first), as their numbers would then mean nothing to the
// partner. A receiver's own record is set at once; its partner is not told
// (as with MQ). Refused while the channel runs (ErrRunning).
func Reset(c *mq.Conn, def defs.Channel, next uint64) error {
	if next == 0 || next > MaxSeqNum {
		return fmt.Errorf("channel: RESET CHANNEL(%s) SEQNUM(%d): not in 1..%d", def.Name, next, MaxSeqNum)
	}
	return withLock(c, def, func() (func(*Status), error) {
		syncq, err := c.Open(SyncQueue, mq.OpenOptions{Input: true, Output: true, Browse: true})
		if err != nil {
			return nil, err
		}
		defer syncq.Close()
		if def.Type == defs.ChlSender {
			if err := notInDoubt(syncq, def.Name); err != nil {
				return nil, err
			}
			return func(st *Status) { st.ResetReq, st.LastBatch, st.Reason = true, next-1, NoStopReason }, nil
		}
		key := syncKey(syncRecv, def.Name)
		if _, err := syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return nil, err
		}
		if err := syncq.Put(&mq.Message{CorrelID: key, Body: encodeRecvSync(next - 1), Persistence: mq.Persistent}, mq.PutOptions{Syncpoint: true}); err != nil {
			return nil, err
		}
		if err := c.Commit(); err != nil {
			return nil, err
		}
		return func(st *Status) { st.LastBatch = next - 1 }, nil
	})
}

// Delete removes channel def's state (DELETE CHANNEL): its receiver sync
// record and its status entry, around drop, which deletes its definition;
// if drop fails, nothing changes. A sender in doubt is refused
// (ErrInDoubt): its batches' fate would be forgotten; RESOLVE CHANNEL
// first. So is a channel that runs (ErrRunning). The channel defined again
// starts as new: from batch 1, with no status.
func Delete(c *mq.Conn, def defs.Channel, drop func() error) error {
	return withLock(c, def, func() (func(*Status), error) {
		syncq, err := c.Open(SyncQueue, mq.OpenOptions{Input: true, Browse: true})
		if err != nil {
			return nil, err
		}
		defer syncq.Close()
		if err := notInDoubt(syncq, def.Name); err != nil {
			return nil, err
		}
		key := syncKey(syncRecv, def.Name)
		if _, err := syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return nil, err
		}
		if err := drop(); err != nil {
			return nil, err
		}
		if err := c.Commit(); err != nil {
			return nil, fmt.Errorf("CHANNEL(%s) deleted, its sync record not: %w", def.Name, err)
		}
		return func(st *Status) { *st = Status{Name: def.Name, Owner: -1, Deleted: true} }, nil
	})
}

// notInDoubt returns ErrInDoubt if sender channel name has sync records.
func notInDoubt(syncq *mq.Queue, name string) error {
	recs, err := readInDoubt(syncq, name)
	if err != nil {
		return err
	}
	if len(recs) > 0 {
		return fmt.Errorf("%w: CHANNEL(%s) has batches %d to %d in doubt: RESOLVE CHANNEL(%s) ACTION(COMMIT|BACKOUT) first",
			ErrInDoubt, name, recs[0].id, recs[len(recs)-1].id, name)
	}
	return nil
}

// withLock runs f holding channel def's lock through c: refused with
// ErrRunning while another holds it. f's unit of work is backed out if it
// fails; otherwise the change it returns is made to the entry as the lock
// is released. A channel with no entry gets none unless f changes it.
func withLock(c *mq.Conn, def defs.Channel, f func() (func(*Status), error)) error {
	parts := mqconn.Of(c)
	t := NewTable(parts.Group)
	var held Status
	existed := false
	_, won, err := t.Update(parts.Admin, def.Name, func(st *Status, exists bool) bool {
		held, existed = *st, exists
		if t.Locked(*st) {
			return false
		}
		if !exists {
			st.Type, st.XmitQ = def.Type, def.XmitQ
		}
		st.lockFor(c)
		return true
	})
	if err != nil {
		return err
	}
	if !won {
		return fmt.Errorf("%w: CHANNEL(%s) is %s (stop it first)", ErrRunning, def.Name, held.State)
	}
	change, ferr := f()
	if ferr != nil {
		c.Backout()
	}
	_, _, err = t.Update(parts.Admin, def.Name, func(st *Status, _ bool) bool {
		if st.Conn != c.Tag() {
			return false
		}
		st.Unlock()
		if st.StopReq && st.Type == defs.ChlSender {
			st.State = Stopped // STOP CHANNEL came meanwhile
		}
		st.StopReq, st.Force = false, false
		switch {
		case ferr == nil && change != nil:
			change(st)
		case !existed:
			*st = Status{Name: def.Name, Owner: -1, Deleted: true} // no entry, as before
		}
		return true
	})
	return errors.Join(ferr, err)
}
