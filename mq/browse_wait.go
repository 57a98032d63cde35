package mq

import (
	"time"

	"github.com/qmgr/qmgr/lockfree"
)

// BrowseOptions are the options of BrowseCursor.NextWith beyond the match
// fields of GetOptions.
type BrowseOptions struct {
	// Wait is how long to wait for a message after the cursor: 0 does
	// not wait, WaitForever (any negative duration) waits for ever.
	Wait time.Duration
	// StopAtUncommitted makes the browse stop at a message put and not
	// yet committed instead of stepping over it: it returns
	// RCNoMsgAvailable (or waits) with the cursor before it, and returns
	// it once committed. A reader of a log that one producer at a time
	// puts in order (a recovery unit's log) thus sees every message, in
	// order; a plain Next may return a later message first and never the
	// earlier one.
	StopAtUncommitted bool
	// Interrupt, when set, ends the wait from another goroutine: the
	// browse fails with RCCallInterrupted (errors.Is ErrInterrupted).
	Interrupt *Interrupter
	// IncludeHeld makes the browse also return messages another get holds
	// and has not removed: got under syncpoint and not committed, or got
	// outside syncpoint as a view and not released. A recovery unit's
	// secondary under LOGGING(INDEPENDENT) reads its input in place on the
	// input queue while the primary holds it as a view.
	IncludeHeld bool
}

// NextWith is Next with the options of bo. When it finds no message the
// cursor stays where it was, so a later call looks again from there.
// Messages put at a higher priority than the cursor's current one are
// not seen by it.
func (b *BrowseCursor) NextWith(opt GetOptions, bo BrowseOptions) (*Message, error) {
	if err := b.h.check("browse", true); err != nil {
		return nil, err
	}
	lbo := lockfree.BrowseOptions{Wait: bo.Wait, StopAtUncommitted: bo.StopAtUncommitted}
	if bo.Interrupt != nil {
		lbo.Interrupt = &bo.Interrupt.in
	}
	for {
		var lm lockfree.Message
		if err := b.h.o.BrowseNextWith(b.cur, lockfree.GetOptions{MsgID: opt.MsgID, CorrelID: opt.CorrelID, IncludeHeld: bo.IncludeHeld}, lbo, &lm); err != nil {
			return nil, wrap("browse "+b.h.def.Name, err)
		}
		if skip, err := b.readBody(&lm); skip {
			continue
		} else if err != nil {
			return nil, wrap("browse "+b.h.def.Name, err)
		}
		return fromLockfree(&lm, b.h.def.CFStruct), nil
	}
}
