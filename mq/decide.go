package mq

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/recovery/plog"
)

// Decided operations. A commit of persistent work, and a persistent put or
// get outside syncpoint, happen in the CF only once their log record is
// durable: the durable record is the decision. Each has a key of its own
// (a unit of work's key, or a fresh one for a put or get outside
// syncpoint) and goes through decide:
//
//  1. The admin slot marks the record logged (MarkCommitLogged, fenced): a
//     recoverer that fences the connection from here on knows a rebuild
//     from the log might find the record.
//  2. The record is handed to the member and waited for.
//  3. Durable: the decision is recorded in the admin slot (DecideCommit)
//     and the caller makes the operation happen in the CF, then ends the
//     decision (EndDecision). Not known durable: the key is recorded as
//     aborted in the repository and the operation undone (abortLogged). A
//     recoverer that finds the mark without a decision does the same, and
//     a replay treats the key as aborted even before that (package qm).
//
// A put or get outside syncpoint is prepared in the CF before step 1 as
// its owner's lone operation (lockfree PutLone, MarkLone): a recoverer
// that finds the connection dead after step 3 reads the decision in the
// admin slot (LoneDecided) and carries the operation out wherever it was
// left, so that the CF agrees with the durable record.
//
// The caller marks the operation in flight in its ring (BeginVisible)
// before step 1 and ends the mark after step 3, unless the operation was
// abandoned (see abandon).

// decidePoints are the crash points of one kind of decided operation, in
// the order they are hit.
type decidePoints struct{ appended, durable, decided *crashpoint.Point }

var (
	commitPoints = decidePoints{cpCommitAppended, cpCommitDurable, cpCommitDecided}
	putPoints    = decidePoints{
		crashpoint.New("mq.put.appended"), // the record of a persistent put outside syncpoint handed to the member
		crashpoint.New("mq.put.durable"),  // durable (or its wait failed)
		crashpoint.New("mq.put.decided"),  // decided; the put in the CF follows
	}
	getPoints = decidePoints{
		crashpoint.New("mq.get.appended"), // the record of a persistent get outside syncpoint handed to the member
		crashpoint.New("mq.get.durable"),
		crashpoint.New("mq.get.decided"), // decided; the message is removed next
	}
)

// undecided is an operation whose record may be durable and whose
// decision was not recorded: it is recorded aborted, then undone.
type undecided struct {
	key  uint64
	undo func() // undoes it in the CF (a backout, a view given back)
}

// decide makes record r (with body) durable through log and records the
// decision (steps 1 to 3 above): a unit of work's commit (uow set) with
// DecideCommit, which a recoverer imposes on every structure of the unit
// of work, and a put or get outside syncpoint with DecideLogged, which
// leaves the connection's unit of work, if it has one, alone. On nil the
// operation is decided: the caller makes it happen in the CF and then
// calls the returned end. Otherwise it is not, and u.undo has run, or is
// left to recovery.
func (c *Conn) decide(op string, r *plog.Record, body []byte, u undecided, uow bool,
	log func(*plog.Record, []byte) (uint64, error), cp decidePoints) (end func(), err error) {
	if err := c.admin.MarkCommitLogged(u.key); err != nil {
		// Revoked before anything was logged: not decided, and never will
		// be. Undone here too: the recoverer undoes it only in the
		// structures where it still finds this connection's owner, and
		// the application may close that owner first.
		u.undo()
		return nil, wrap(op, err)
	}
	pos, err := log(r, body)
	cp.appended.Hit()
	if err == nil {
		err = c.plog.p.Wait(pos)
	}
	cp.durable.Hit()
	if err != nil {
		return nil, c.abortLogged(op, u, fmt.Errorf("its log record is not known to be durable: %w", err))
	}
	decide, end := c.admin.DecideLogged, c.admin.EndLogged
	if uow {
		decide, end = c.admin.DecideCommit, c.admin.EndDecision
	}
	if err := decide(); err != nil {
		if errors.Is(err, lockfree.ErrOwnerRevoked) {
			// The recoverer records the abort and undoes it; recorded and
			// undone here too, before the mark in flight ends (best
			// effort: not decided, so undoing is always right).
			if c.recordAbort(u.key) == nil {
				u.undo()
			}
			return nil, wrap(op, err)
		}
		return nil, c.abortLogged(op, u, fmt.Errorf("record the decision: %w", err))
	}
	cp.decided.Hit()
	return end, nil
}

// abortLogged undoes an operation whose record may be durable although it
// was not decided: its key is recorded as aborted in the repository first
// (a rebuild from the log then skips the record), durably, and then it is
// undone. A commit answers 2003 (backed out), a put or get the reason the
// log gave. If even the abort cannot be recorded, nothing is undone: the
// connection is broken, and a goroutine tries again every second until it
// can record the abort and undo the operation (or the application
// disconnects, or dies and its member's recovery does it).
func (c *Conn) abortLogged(op string, u undecided, cause error) error {
	if err := c.recordAbort(u.key); err != nil {
		c.abandon(u)
		return &Error{Op: op, Reason: RCConnectionBroken,
			Err: fmt.Errorf("%v; it is undone as soon as its abort can be recorded (%v)", cause, err)}
	}
	c.admin.EndLogged() // nothing was decided: clears the mark
	u.undo()
	reason := RCBackedOut
	if op != "commit" {
		reason = reasonFor(cause)
	}
	return &Error{Op: op, Reason: reason, Err: cause}
}

// abandon breaks the connection with an undecided operation whose abort
// could not be recorded, and starts the goroutine that resolves it. The
// operation stays marked in flight until then: its record may be durable,
// and a structure recovery must not replay it first.
func (c *Conn) abandon(u undecided) {
	c.broken = true
	c.abandonMu.Lock()
	c.abandoned = &u
	c.abandonMu.Unlock()
	go func() {
		for {
			time.Sleep(time.Second)
			if !c.resolveAbandoned() {
				return
			}
		}
	}()
}

// resolveAbandoned tries once to record the abort of the abandoned
// operation and undo it; it reports whether it is still unresolved.
func (c *Conn) resolveAbandoned() bool {
	c.abandonMu.Lock()
	defer c.abandonMu.Unlock()
	if c.abandoned == nil || c.closed {
		return false
	}
	return !c.undoAbandoned()
}

// undoAbandoned records the abandoned operation's abort and undoes it;
// callers hold abandonMu. It reports whether it did.
func (c *Conn) undoAbandoned() bool {
	u := c.abandoned
	if c.recordAbort(u.key) != nil {
		return false
	}
	c.abandoned = nil
	c.admin.EndLogged() // nothing was decided: clears the mark
	u.undo()
	c.plog.p.EndVisible()
	return true
}

// recordAbort records the operation with key key as aborted in the
// repository.
func (c *Conn) recordAbort(key uint64) error {
	if cpAbortRecord.Fail() {
		return errors.New("mq: recording the abort failed (fault injected)")
	}
	return c.repo.Update(func(tx *defs.Tx) error { return tx.AbortUOW(key) })
}
