package request

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// sweeper moves stray messages to the Unexpected Message Queue: replies
// no request awaits (its request ended, was purged or cancelled, or the
// call timed out or belongs to an earlier attempt), messages on the reply
// queue that are not replies, and cancels of requests that are not in
// flight.
type sweeper struct {
	m *Manager
	s *session
	h *handles
	// unknown: the replies (MsgID) the last sweep found of no request in
	// flight and no tombstone. A request that ends removes its marker
	// and puts its tombstone in one unit of work, both out of sight
	// while it commits: a reply is moved as UNKNOWN_REQUEST only when the
	// next sweep finds it so too, by then with the tombstone if there is
	// one (which says which request, and why).
	unknown map[[24]byte]bool
}

// maxSweep bounds the messages one sweep looks at on each queue.
const maxSweep = 1000

func (sw *sweeper) loop() error {
	t := time.NewTicker(sw.m.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-sw.m.stopc:
			return nil
		case <-sw.s.quit:
			return nil
		case <-t.C:
		}
		if _, err := sw.sweep(); err != nil {
			sw.h.c.Backout()
			if broken(err) {
				return err
			}
			sw.m.cfg.Log.Warn("request sweeper", "manager", sw.m.cfg.Name, "err", err)
		}
	}
}

// state is what the state queue says of one request: its live marker and
// record; a tombstone only from managers of an earlier version, which put
// them there (tombstone looks on the tombstone queue).
type state struct {
	live, rec, tomb *Record   // a marker, the most advanced record (moreAdvanced), a tombstone
	lives, recs     []*Record // every marker and record
	unread          bool      // a marker or record that cannot be read
}

// held reports whether a record of the request may be out of sight: held
// by a step that replaces it (or by a dead manager's step), as a marker
// whose lock no record has says (worker.readState), or not readable. Its
// replies wait.
func (st state) held() bool {
	if st.unread {
		return true
	}
	for _, m := range st.lives {
		if !slices.ContainsFunc(st.recs, func(r *Record) bool { return m.Lock == 0 || r.Lock == m.Lock }) {
			return true
		}
	}
	return false
}

// pending reports whether a record of the request, any (a request has two
// for a while: mostAdvanced), awaits call c.
func (st state) pending(c CallID) bool {
	return slices.ContainsFunc(st.recs, func(r *Record) bool { return pending(r, c) })
}

// sweep runs once and returns how many messages it moved.
//
// Why it is safe: a call is recorded pending in the unit of work that
// sends it, so once its reply exists the record says pending until the
// unit of work that consumes the reply (and updates the record) commits;
// and a call id never becomes pending again once it is not. So the sweeper
// reads the replies first and the state queue after: a reply whose call
// is pending in no record read after it was seen is a stray for good (a
// request has two records for a while: mostAdvanced; the stale one may
// have no call pending). A record is briefly invisible while its holder
// replaces it (got and put in one unit of work): the live marker, which
// stays from the request's first commit to its end, tells that case (a
// marker, no record of its lock: look again next time) from a request
// that is over (no marker).
func (sw *sweeper) sweep() (int, error) {
	cfg := &sw.m.cfg
	rq, err := sw.h.open(cfg.ReplyQueue, optBrows)
	if err != nil {
		return 0, err
	}
	cq, err := sw.h.open(cfg.CancelQueue, optBrows)
	if err != nil {
		return 0, err
	}
	replies, err := browseAll(rq)
	if err != nil {
		return 0, err
	}
	cancels, err := browseAll(cq)
	if err != nil {
		return 0, err
	}
	if len(replies) == 0 && len(cancels) == 0 {
		return 0, nil
	}
	states, err := sw.states()
	if err != nil {
		return 0, err
	}
	moved := 0
	unknown := map[[24]byte]bool{}
	defer func() { sw.unknown = unknown }()
	for _, m := range replies {
		c, err := ParseCallID(m.CorrelID)
		var reason Reason
		var reqID ID
		if err != nil {
			reason = ReasonNotReply
		} else {
			st := states[c.Key]
			switch {
			case st.live != nil && (st.rec == nil || st.held()):
				continue // a record of it is being replaced: next time
			case st.live != nil:
				if st.pending(c) {
					continue
				}
				reqID = st.rec.RequestID
				reason = ReasonTimedOut
				switch {
				case st.rec.Status >= StatusDone:
					// Ended, not removed yet (its manager died between its
					// last two commits): as its tombstone will say.
					reason = endReason(st.rec, c)
				case c.Attempt < st.rec.Attempts && st.rec.Mode == ModeRestartable:
					reason = ReasonStaleAttempt
				}
			default:
				tomb, err := sw.tombstone(c.Key, st)
				if err != nil {
					return moved, err
				}
				reason = ReasonUnknownRequest
				if tomb != nil {
					reqID = tomb.RequestID
					reason = endReason(tomb, c)
				} else if !sw.unknown[m.MsgID] {
					unknown[m.MsgID] = true
					continue // maybe its request's end, committing: next time
				}
			}
		}
		ok, err := sw.move(rq, m, reason, reqID)
		if err != nil {
			return moved, err
		}
		moved += btoi(ok)
	}
	for _, m := range cancels {
		st := states[KeyOf(ID(m.CorrelID))]
		if st.live != nil {
			continue
		}
		tomb, err := sw.tombstone(KeyOf(ID(m.CorrelID)), st)
		if err != nil {
			return moved, err
		}
		reason := ReasonUnknownRequest
		if tomb != nil {
			reason = endReason(tomb, CallID{})
		} else if time.Since(m.PutTime) < cfg.CancelGrace {
			continue // the request may not have been taken yet
		}
		ok, err := sw.move(cq, m, reason, ID(m.CorrelID))
		if err != nil {
			return moved, err
		}
		moved += btoi(ok)
	}
	return moved, nil
}

// endReason is why a reply (or a cancel: c zero) for a request that
// ended as tomb says is unexpected. A request that ended normally awaited
// none of its calls at its end: a reply that comes after is of a call that
// timed out, or of an earlier attempt of a restartable request.
func endReason(tomb *Record, c CallID) Reason {
	switch {
	case tomb.Status == StatusPurged:
		return ReasonPurged
	case tomb.Status == StatusCancelled:
		return ReasonCancelled
	case c.Attempt == 0:
		return ReasonEnded
	case c.Attempt < tomb.Attempts && tomb.Mode == ModeRestartable:
		return ReasonStaleAttempt
	}
	return ReasonTimedOut
}

func pending(r *Record, c CallID) bool {
	for _, p := range r.Pending {
		if p.Attempt == c.Attempt && p.Seq == c.Seq {
			return true
		}
	}
	return false
}

// states reads the state queue: live markers and records (and the
// tombstones an earlier version put there) by request key. The tombstones
// are on a queue of their own, looked up one by one (tombstone): only a
// message no request awaits needs one, and a storm of failures may have
// left many.
func (sw *sweeper) states() (map[Key]state, error) {
	q, err := sw.h.open(sw.m.cfg.StateQueue, optBrows)
	if err != nil {
		return nil, err
	}
	cur, err := q.Browse()
	if err != nil {
		return nil, err
	}
	out := map[Key]state{}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var k Key
		copy(k[:], m.CorrelID[:ciKeyLen])
		rec, err := ParseRecord(m.Body)
		if err != nil {
			if m.Format == FormatLive || m.Format == FormatState {
				// A marker or record this code cannot read (a newer
				// manager's, whose request is in flight; or corrupt,
				// until a take quarantines it): in flight all the same,
				// its replies and cancels wait. Taken for none, they
				// would be moved away from a request that awaits them.
				st := out[k]
				st.live, st.unread = unreadable, true
				out[k] = st
			}
			continue
		}
		st := out[k]
		switch m.Format {
		case FormatLive:
			st.live = rec
			st.lives = append(st.lives, rec)
		case FormatState:
			if st.rec == nil || moreAdvanced(rec, st.rec) {
				st.rec = rec
			}
			st.recs = append(st.recs, rec)
		case FormatTombstone:
			st.tomb = rec
		}
		out[k] = st
	}
}

// unreadable stands for the live marker of a request whose marker or
// record on the state queue cannot be read (states).
var unreadable = &Record{}

func browseAll(q *mq.Queue) ([]*mq.Message, error) {
	cur, err := q.Browse()
	if err != nil {
		return nil, err
	}
	var out []*mq.Message
	for len(out) < maxSweep {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// move moves m from q to the Unexpected Message Queue behind a header, in
// one unit of work; false if m was gone (its waiter took it).
func (sw *sweeper) move(q *mq.Queue, m *mq.Message, reason Reason, reqID ID) (bool, error) {
	cfg := &sw.m.cfg
	id := m.MsgID
	got, err := q.Get(mq.GetOptions{Syncpoint: true, MsgID: &id})
	if errors.Is(err, mq.ErrNoMessage) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	umq, err := sw.h.open(cfg.UnexpectedQueue, optOut)
	if err != nil {
		return false, err
	}
	h := UnexpectedHeader{Reason: reason, RequestID: reqID, CorrelID: got.CorrelID, OrigQ: q.Name(), Time: time.Now(), OrigFormat: got.Format}
	p := mq.NotPersistent
	if got.Persistent {
		p = mq.Persistent
	}
	if err := umq.Put(&mq.Message{CorrelID: got.CorrelID, Format: FormatUnexpected, Body: h.Encode(got.Body), Persistence: p}, mq.PutOptions{Syncpoint: true}); err != nil {
		return false, fmt.Errorf("request: move to %s: %w", cfg.UnexpectedQueue, err)
	}
	if err := sw.h.c.Commit(); err != nil {
		return false, err
	}
	cfg.Log.Info("stray message moved to the Unexpected Message Queue", "queue", q.Name(), "reason", reason, "request", reqID)
	return true, nil
}

// tombstone is the tombstone of the request of key k (nil: none, or it
// expired, or it could not be put), which is not in flight (st, what the
// state queue says of it, has no live marker): looked up by CorrelID on
// the tombstone queue, or st's (a tombstone an earlier version put on the
// state queue).
func (sw *sweeper) tombstone(k Key, st state) (*Record, error) {
	if st.tomb != nil {
		return st.tomb, nil
	}
	q, err := sw.h.open(sw.m.cfg.TombstoneQueue, optBrows)
	if err != nil {
		return nil, err
	}
	cur, err := q.Browse()
	if err != nil {
		return nil, err
	}
	id := tagID(k, ciTagTomb)
	for {
		m, err := cur.Next(mq.GetOptions{CorrelID: &id})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if r, err := ParseRecord(m.Body); err == nil && m.Format == FormatTombstone {
			return r, nil
		}
	}
}

// putTombstone puts rec (the record's bytes as the request ended) on the
// tombstone queue in w's unit of work, the one that marks the record
// ended. A tombstone is advisory (the sweeper says from it why a
// late reply is unexpected): one that cannot be put (its queue is full)
// is left out, and the request ends all the same; only a broken
// connection is an error.
func (c *Ctx) putTombstone(rec []byte) error {
	cfg := &c.w.m.cfg
	q, err := c.w.w.open(cfg.TombstoneQueue, optOut)
	if err == nil {
		tomb := &mq.Message{CorrelID: tagID(c.key, ciTagTomb), Format: FormatTombstone, Body: rec, Expiry: time.Now().Add(cfg.TombstoneTTL), Persistence: mq.NotPersistent}
		if err = q.Put(tomb, mq.PutOptions{Syncpoint: true}); err == nil {
			return nil
		}
	}
	if broken(err) {
		return err
	}
	cfg.Log.Warn("request ended without its tombstone: its late replies will be moved as UNKNOWN_REQUEST", "manager", cfg.Name, "request", c.req.ID, "err", err)
	return nil
}
