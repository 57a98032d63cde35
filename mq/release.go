package mq

import (
	"errors"
	"fmt"
)

// Releasing views in a batch. A persistent message got outside syncpoint
// as a view is removed by Release only once its get's log record is
// durable: one durable wait per message (getDecided). ReleaseViews removes
// many with one: each view is adopted into the connection's unit of work
// (View.Adopt: in the CF it becomes a get under syncpoint, and its get is
// logged as the unit of work's, like any get under syncpoint), and the
// unit of work is committed by the path every persistent commit takes
// (commitPersistent: one durable commit record decides it, a recoverer
// rolls it forward or back from the admin slot and the log). So nothing is
// removed before its record is durable, a crash at any step leaves the CF
// and the log agreeing, and an adopted message that is not removed comes
// back, its backout count raised, as a message of a backed-out unit of
// work does.

// Adopt moves view v, got outside syncpoint and not yet ended, into the
// connection's unit of work, as though it had been got under syncpoint:
// Commit removes its message (a persistent one's get is logged now, in
// the unit of work, and made durable by the commit's one wait), Backout
// gives it back at its place with its backout count raised, and v is from
// then on a view of the unit of work (valid until it ends; Release ends v
// and removes nothing, Requeue refuses it). Other views of the connection
// are left alone. A unit of work may hold views of several queues and
// structures, and puts and gets of its own: a broker gathers a client's
// acks and publishes and commits them together.
//
// RCOptionError: v has ended (released, requeued) or was got under
// syncpoint; nothing changed. RCCFStructFailed: v's structure failed
// and the connection has used its recovered successor since; v is still
// held (Requeue or Release it; the recovered structure has its message).
// RCConnectionBroken: the connection was recovered; the message goes back
// with its connection. Any other error after v joined the unit of work
// (its get record could not be handed to the member) leaves it there, and
// the unit of work can only be backed out, as after a failed get under
// syncpoint.
func (v *View) Adopt() error {
	h := v.h
	op := "adopt " + h.def.Name
	if err := h.c.check(op); err != nil {
		return err // broken: the view goes back when the connection ends
	}
	if h.c.owners[h.def.CFStruct] != h.o {
		// The connection has used a recovered structure of that name
		// since: a commit would not reach this owner.
		return &Error{Op: op, Reason: RCCFStructFailed, Err: errors.New("the view's structure was recovered since the view was got")}
	}
	if err := v.lv.Adopt(); err != nil {
		if v.lv.Ended() { // taken back by a recoverer
			v.Pieces, v.logAtRelease = nil, false
		}
		return wrap(op, err)
	}
	if !v.logAtRelease {
		return nil
	}
	v.logAtRelease = false
	if err := h.loggedGet(&v.lv.Msg); err != nil {
		return wrap(op, fmt.Errorf("the get is in the unit of work, which can only be backed out: %w", err))
	}
	return nil
}

// ReleaseViews ends views vs, got outside syncpoint by this connection
// (from any of its queues, in any structures), removing their messages,
// with one durable log wait for all the persistent ones (Release waits
// once per message). Non-persistent messages are removed at once, as by
// Release; the persistent ones are adopted into the connection's unit of
// work (View.Adopt) and removed by its commit, when its commit record is
// durable. A view given twice counts once. Views of the connection not in
// vs are left alone.
//
// It refuses, changing nothing (every view still held), with
// RCOptionError when a view is nil, of another connection, already ended
// (released, requeued) or got under syncpoint, or when the unit of work
// holds work already (adopt the views and Commit it instead, to commit
// both together); and with RCConnectionBroken on a broken connection.
//
// Otherwise every view of vs has ended when it returns. nil: every
// message was removed. An error: the persistent messages were not removed
// and are back on their queues with their backout counts raised
// (redelivered: the ack is lost, the message is not), unless the
// connection broke (RCConnectionBroken) or the commit failed after it was
// decided: then its recovery removes them if and only if the commit record
// is durable. Non-persistent messages are removed whatever the commit
// does; an error removing one is returned when the commit succeeded (that
// message goes back with the connection's recovery).
func (c *Conn) ReleaseViews(vs []*View) error {
	const op = "release views"
	if err := c.check(op); err != nil {
		return err
	}
	if err := c.releasable(vs); err != nil {
		return &Error{Op: op, Reason: RCOptionError, Err: err}
	}
	var releaseErr, adoptErr error
	for _, v := range vs {
		if v.lv.Ended() || v.lv.InUOW() {
			continue // given twice
		}
		if !v.logAtRelease {
			if err := v.Release(); err != nil && releaseErr == nil {
				releaseErr = err
			}
			continue
		}
		if err := v.Adopt(); err != nil && adoptErr == nil {
			adoptErr = err
		}
	}
	var err error
	if adoptErr != nil {
		c.Backout()
		err = &Error{Op: op, Reason: RCBackedOut, Err: fmt.Errorf("a view could not join the unit of work, which was backed out: %w", adoptErr)}
		if ReasonOf(adoptErr) == RCConnectionBroken {
			err = adoptErr
		}
	} else {
		err = c.Commit()
	}
	for _, v := range vs {
		v.endAdopted()
	}
	if err != nil {
		return err
	}
	return releaseErr
}

// releasable checks that every view of vs can be released by
// ReleaseViews, and that the unit of work holds nothing else.
func (c *Conn) releasable(vs []*View) error {
	if c.inUOW() {
		return errors.New("the unit of work holds work already: adopt the views (View.Adopt) and Commit it")
	}
	for i, v := range vs {
		switch {
		case v == nil || v.h == nil || v.h.c != c:
			return fmt.Errorf("view %d is not a view of this connection", i)
		case v.lv.Ended():
			return fmt.Errorf("view %d: %w", i, errViewEnded)
		case v.lv.InUOW():
			return fmt.Errorf("view %d was got under syncpoint: it belongs to the unit of work", i)
		}
	}
	return nil
}

var errViewEnded = errors.New("mq: view already released or requeued")

// endAdopted ends view v once the unit of work it was adopted into has
// ended (the view of a message removed or given back).
func (v *View) endAdopted() {
	switch {
	case v.lv.Ended():
	case v.lv.InUOW():
		v.lv.Release() // a view of the unit of work: ends it, removes nothing
	default:
		// Not adopted (its Adopt failed): given back as the adopted
		// ones were, best effort (on a broken connection or a failed
		// structure the recovery gives it back).
		v.lv.Requeue()
	}
	v.Pieces, v.logAtRelease = nil, false
}

// inUOW reports whether the connection's unit of work holds anything.
func (c *Conn) inUOW() bool {
	for _, o := range c.owners {
		if o.InUOW() && !c.lost[o] {
			return true
		}
	}
	return c.persistentUOW() || c.doomed != nil
}
