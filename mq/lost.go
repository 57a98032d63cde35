package mq

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/smds"
)

// errBodyMoved is getMarked's word that the message it claimed had lost
// its offloaded body and was moved (deadLetterLost): Get goes on to the
// next message.
var errBodyMoved = errors.New("mq: message whose body was lost moved")

// bodyLost reports whether err, from reading the offloaded body of a
// message this get holds (claimed or in its unit of work, so its run
// cannot have been freed by anyone), means the body is gone for good: its
// run damaged (checksum, header), past the end of a truncated data set,
// holding another allocation (a run a structure recovery's rebuild could
// not keep, reused since), or a reference outside the data set. Not an
// I/O error or a data set that cannot be opened: those may pass, and
// the message stays where it is.
func bodyLost(err error) bool {
	return errors.Is(err, smds.ErrDamaged) || errors.Is(err, smds.ErrTruncated) ||
		errors.Is(err, smds.ErrStale) || errors.Is(err, smds.ErrCorrupt)
}

// deadLetterLost puts the report of message lm of queue from, whose
// offloaded body could not be read (cause, which names the data set file
// and the offset), to from's BOQNAME or else to the dead-letter queue, in
// the unit of work when syncpoint: the message's header, format MQDEAD,
// and a body of a DLH (RCMsgBodyLost, the queue, the original format)
// followed by a line of text naming the reference and the cause. Never the
// damaged bytes. It fails, putting nothing, when neither queue takes it:
// the caller leaves the message where it was.
func (c *Conn) deadLetterLost(from *Queue, lm *lockfree.Message, cause error, syncpoint bool) error {
	m := fromLockfree(lm, from.def.CFStruct)
	ref := "undecodable"
	if r, err := smds.DecodeRef(lm.Offload); err == nil {
		ref = r.String()
	}
	text := fmt.Sprintf("offloaded body of %d bytes of a message of queue %s (structure %s) lost: reference %s: %v",
		lm.OffloadLen, from.def.Name, from.def.CFStruct, ref, cause)
	d := *m
	d.Body = DLH{Reason: RCMsgBodyLost, DestQ: from.def.Name, DestQMgr: c.peer.Name, OrigFormat: m.Format, Time: time.Now()}.Encode([]byte(text))
	d.Format = FormatDeadLetter
	var tried []error
	for _, name := range []string{from.def.BOQName, c.qmgr.DeadQ} {
		if name == "" {
			continue
		}
		h, err := c.Open(name, OpenOptions{Output: true})
		if err == nil {
			msg := d
			err = h.Put(&msg, PutOptions{Syncpoint: syncpoint})
			h.Close()
		}
		if err == nil {
			slog.Default().Error("mq: message whose offloaded body is damaged or lost moved off its queue", "queue", from.def.Name,
				"to", name, "msgid", fmt.Sprintf("%x", m.MsgID), "syncpoint", syncpoint, "err", cause)
			return nil
		}
		tried = append(tried, fmt.Errorf("put its report to %s: %w", name, err))
	}
	if len(tried) == 0 {
		return fmt.Errorf("%w (the queue has no BOQNAME and the queue manager no DEADQ to move it to: it stays)", cause)
	}
	return fmt.Errorf("%w (moving it failed: %w; it stays)", cause, errors.Join(tried...))
}

// readBody reads the offloaded body of browsed message lm (readOffloaded,
// cached). skip: the browse passes the message. A run reused since
// (smds.ErrStale) is a message got since: gone. Any other lost body
// (bodyLost: damaged, truncated; or read while a get freed the run and a
// put wrote it again) is passed with a warning: a browse holds nothing, so
// it cannot move the message (the next get does, or it was got), and
// failing on it would leave a browser that stops at an error, or browses
// again from the start, stuck at it for ever.
func (b *BrowseCursor) readBody(lm *lockfree.Message) (skip bool, err error) {
	err = b.h.readOffloaded(lm, true)
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, smds.ErrStale):
		return true, nil // got and freed since the browse copied its entry: gone
	case bodyLost(err):
		slog.Default().Warn("mq: browse passes a message whose offloaded body is damaged or lost (a get moves it)",
			"queue", b.h.def.Name, "msgid", fmt.Sprintf("%x", lm.MsgID), "err", err)
		return true, nil
	}
	return false, err
}
