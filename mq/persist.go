package mq

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/recovery/logbuf"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/shm"
)

// keyBlock is how many persistence keys a connection draws from the
// group's LRSN counter at a time.
const keyBlock = 1024

// connLog is a connection's part in its member's recovery log: the ring
// it hands records through, its block of keys, and the unit of work that
// holds persistent work.
type connLog struct {
	b       *logbuf.Buffer
	p       *logbuf.Producer
	keyNext uint64
	keyEnd  uint64
	scratch []byte
}

// persistUOW is the connection's unit of work as far as the log knows it.
type persistUOW struct {
	key uint64 // the unit of work's key once it holds persistent work (0: none)
	err error  // a record of it could not be logged: it cannot commit
}

// logger returns the connection's log, attaching the member's log buffer
// endInFlight ends the mark of an operation of connection c in its log
// ring (BeginVisible: a backup or a structure recovery waits for it),
// unless c is broken by then: an abandoned operation stays marked (see
// abandon).
func (l *connLog) endInFlight(c *Conn) {
	if !c.broken {
		l.p.EndVisible()
	}
}

// and claiming a ring on first use.
func (c *Conn) logger() (*connLog, error) {
	if c.plog != nil {
		return c.plog, nil
	}
	b, err := logbuf.Attach(c.g.Config().CFDir, c.peer.Name)
	if err != nil {
		return nil, err
	}
	p, err := b.Claim(uint64(c.admin.Tag()))
	if err != nil {
		b.Close()
		return nil, err
	}
	c.plog = &connLog{b: b, p: p}
	return c.plog, nil
}

// closeLog hands back the ring once the member took what it published.
func (c *Conn) closeLog() error {
	if c.plog == nil {
		return nil
	}
	err := c.plog.p.Release()
	if cerr := c.plog.b.Close(); err == nil {
		err = cerr
	}
	c.plog = nil
	return err
}

// newKey returns a persistence key no message or unit of work ever had.
func (c *Conn) newKey() (uint64, error) {
	l, err := c.logger()
	if err != nil {
		return 0, err
	}
	if l.keyNext == l.keyEnd {
		first, err := c.g.LRSN(c.admin).Next(keyBlock)
		if err != nil {
			return 0, err
		}
		l.keyNext, l.keyEnd = first, first+keyBlock
	}
	k := l.keyNext
	l.keyNext++
	return k, nil
}

// uowKey returns the key of the connection's unit of work with persistent
// work, starting one.
func (c *Conn) uowKey() (uint64, error) {
	if c.puow.key == 0 {
		// A key of its own, fresh from the counter (not from the block):
		// every record of the unit of work gets a greater LRSN, so a
		// backup that finds the unit of work in flight replays from
		// its key.
		l, err := c.logger()
		if err != nil {
			return 0, err
		}
		k, err := c.g.LRSN(c.admin).Next(1)
		if err != nil {
			return 0, err
		}
		c.puow.key = k
		l.p.SetUOW(k)
	}
	return c.puow.key, nil
}

// logRecord hands r (a put's body as a separate piece) to the member and
// returns the position to wait for.
func (c *Conn) logRecord(r *plog.Record, body []byte) (uint64, error) {
	l, err := c.logger()
	if err != nil {
		return 0, err
	}
	l.scratch = plog.AppendHead(l.scratch[:0], r, len(body))
	return l.p.Append(uint8(r.Type), l.scratch, body)
}

// logOp logs a put or get of h's structure and counts its bytes there
// (the backup schedule's estimate of the structure's recovery time).
func (h *Queue) logOp(r *plog.Record, body []byte) (uint64, error) {
	pos, err := h.c.logRecord(r, body)
	if err == nil {
		h.s.AddLogged(uint64(len(h.c.plog.scratch) + len(body)))
	}
	return pos, err
}

// logOpDurable is logOp, waiting until the record is durable.
func (h *Queue) logOpDurable(r *plog.Record, body []byte) error {
	pos, err := h.logOp(r, body)
	if err != nil {
		return err
	}
	return h.c.plog.p.Wait(pos)
}

// putRecord describes the put of lm to queue h.
func (h *Queue) putRecord(lm *lockfree.Message, uow uint64, flags uint8) plog.Record {
	return plog.Record{Type: plog.TypePut, UOW: uow, Flags: flags, Structure: h.def.CFStruct, Queue: h.def.Name,
		Key: lm.Key, MsgID: lm.MsgID, CorrelID: lm.CorrelID, Format: lm.Format, Priority: uint8(lm.Priority),
		PutTime: lm.PutTime, Expiry: lm.Expiry, BackoutCount: lm.BackoutCount, ReplyToQ: lm.ReplyToQ,
		ReplyToQMgr: lm.ReplyToQMgr, Properties: lm.Properties}
}

// putPersistent puts persistent message lm. Under syncpoint the put goes
// to the CF first and its record to the log after, without waiting (the
// commit waits); a record that cannot be handed over dooms the unit of
// work. Outside syncpoint the record must be durable before the message
// is visible, so the log comes first; a put that then fails is undone in
// the log by a get of its key.
//
// An offloaded message (lm.Offload) is logged by reference: its record
// carries the reference (plog.FlagOffloaded), its run having been written
// and synced first, so a replayed record never names unwritten data; the
// body is written to disk once (docs/design/smds.md, section 9).
func (h *Queue) putPersistent(lm *lockfree.Message, opt PutOptions) error {
	c := h.c
	key, err := c.newKey()
	if err != nil {
		return wrap("put "+h.def.Name, err)
	}
	lm.Key = key
	if lm.MsgID == ([24]byte{}) {
		// The log needs the id before the CF would generate it.
		lm.MsgID = newMsgID(key)
	}
	if lm.PutTime == 0 {
		lm.PutTime = nowNanos()
	}
	if opt.Syncpoint {
		if err := h.o.Put(h.q, lm, lockfree.PutOptions{Syncpoint: true}); err != nil {
			return wrap("put "+h.def.Name, err)
		}
		uow, err := c.uowKey()
		if err == nil {
			r := h.putRecord(lm, uow, 0)
			_, err = h.logOp(&r, logBody(lm, &r))
		}
		if err != nil {
			c.doomUOW(err)
			return wrap("put "+h.def.Name, fmt.Errorf("the put is in the unit of work, which can only be backed out: %w", err))
		}
		return nil
	}
	return h.putDecided(lm, key)
}

// logBody is what the put record r of lm logs as its body: the body, or
// the reference of an offloaded one (flagged in r).
func logBody(lm *lockfree.Message, r *plog.Record) []byte {
	if lm.Offload != nil {
		r.Flags |= plog.FlagOffloaded
		return lm.Offload
	}
	return lm.Body
}

// putDecided puts persistent message lm outside syncpoint once its record
// is durable: the record, under a key of its own, is the decision (decide).
// The message is put first, invisibly, as the owner's lone operation
// (PutLone: a full queue refuses it before anything is logged), and made
// visible once decided; a recoverer that finds the connection dead in
// between does the same with the decision it finds (RepairDecided).
func (h *Queue) putDecided(lm *lockfree.Message, key uint64) error {
	c := h.c
	op := "put " + h.def.Name
	l, err := c.logger()
	if err != nil {
		return wrap(op, err)
	}
	l.p.BeginVisible() // a backup or recovery waits until the message is visible
	defer l.endInFlight(c)
	if err := h.s.Current(); err != nil { // marked first, then checked (see commitPersistent)
		return wrap(op, err)
	}
	p, err := h.o.PutLone(h.q, lm, key)
	if err != nil {
		return wrap(op, err)
	}
	r := h.putRecord(lm, key, plog.FlagCommitted)
	end, err := c.decide(op, &r, logBody(lm, &r), undecided{key: key, undo: func() { h.o.BackoutLone(&p) }}, false, h.logOp, putPoints)
	if err != nil {
		return err
	}
	defer end()
	return wrap(op, decidedDone(h.o.CommitLone(&p)))
}

// decidedDone is the error of carrying out a decided operation in the CF:
// none when it was revoked (its recoverer found the decision and carried
// it out) or the structure failed (its recovery replays the durable
// record).
func decidedDone(err error) error {
	switch {
	case err == nil, errors.Is(err, lockfree.ErrOwnerRevoked), errors.Is(err, lockfree.ErrStructureFailed), errors.Is(err, shm.ErrFault):
		return nil
	}
	return err
}

// loggedGet logs the get under syncpoint of persistent message lm from h:
// it joins the unit of work (the commit waits for it). A record that cannot
// be handed over dooms the unit of work. Gets outside syncpoint are
// decided instead (getDecided).
func (h *Queue) loggedGet(lm *lockfree.Message) error {
	if !lm.Persistent || lm.Key == 0 {
		return nil
	}
	c := h.c
	r := plog.Record{Type: plog.TypeGet, Structure: h.def.CFStruct, Queue: h.def.Name, Key: lm.Key}
	uow, err := c.uowKey()
	if err == nil {
		r.UOW = uow
		_, err = h.logOp(&r, nil)
	}
	if err != nil {
		c.doomUOW(err)
		return err
	}
	return nil
}

// doomUOW records that the unit of work cannot commit.
func (c *Conn) doomUOW(err error) {
	if c.puow.err == nil {
		c.puow.err = err
	}
}

// persistentUOW reports whether the unit of work holds persistent work.
func (c *Conn) persistentUOW() bool { return c.puow.key != 0 || c.puow.err != nil }

// endUOW forgets the unit of work (and its doom, Conn.doomed); after a
// backout its records are closed by a backout record (best effort: replay
// drops a unit of work that never commits anyway).
func (c *Conn) endUOW(backedOut bool) {
	if backedOut && c.puow.key != 0 && c.plog != nil && c.admin.Check() == nil {
		// Not once the connection was revoked: its recoverer recorded the
		// abort and may have freed the log ring already.
		r := plog.Record{Type: plog.TypeBackout, UOW: c.puow.key}
		c.logRecord(&r, nil)
	}
	if c.puow.key != 0 && c.plog != nil {
		c.plog.p.SetUOW(0)
	}
	c.puow = persistUOW{}
	c.doomed = nil
}

// Generated message id of a persistent message (msgIDSize bytes; the key
// makes it unique in the group for ever):
//
//	offset  size  constant  field
//	     0     8  pkMagic   "QMGRPKEY"
//	     8     8  pkKey     the message's key, big-endian
//	    16     8  -         zero
const (
	pkMagic   = 0
	pkKey     = 8
	msgIDSize = 24
)

// newMsgID is the message id of a persistent message put with none.
func newMsgID(key uint64) [msgIDSize]byte {
	var id [msgIDSize]byte
	copy(id[pkMagic:pkKey], "QMGRPKEY")
	binary.BigEndian.PutUint64(id[pkKey:], key)
	return id
}

func nowNanos() int64 { return time.Now().UnixNano() }

// getMarked is a get outside syncpoint: a persistent message is claimed
// (a view) and removed only once its get is durable (getDecided); any
// other is removed at once.
func (h *Queue) getMarked(opt GetOptions, dst *lockfree.Message) error {
	v := &h.view // not a local: the view would escape to the heap on every get (a claim resets it)
	viewed, err := h.o.GetOrView(h.q, lockfree.GetOptions{Wait: opt.Wait, MsgID: opt.MsgID, CorrelID: opt.CorrelID, Interrupt: opt.Interrupt.lf()}, dst, v)
	if err != nil || !viewed {
		return err
	}
	*dst = v.Msg
	// The view's properties are its own storage, reused by the next get.
	dst.Properties = append([]byte(nil), v.Msg.Properties...)
	if dst.Offload != nil {
		cpOffloadClaimed.Hit()
		// Read while the message is still claimed: its run is freed with
		// its entry. A run that cannot be read leaves the message where
		// it was, unless its body is lost: then the message is moved
		// (its report put, then the message removed) and Get goes on.
		if err := h.readOffloaded(dst, false); err != nil {
			if bodyLost(err) {
				if err = h.c.deadLetterLost(h, dst, err, false); err == nil {
					if dst.Key == 0 {
						err = v.Release()
					} else {
						err = h.getDecided(v)
					}
					if err != nil {
						return fmt.Errorf("the report of a message whose body was lost was put, but removing the message failed (its next get reports it again): %w", err)
					}
					return errBodyMoved
				}
			}
			v.Return()
			return err
		}
	} else {
		n := 0
		for _, b := range v.Body {
			n += len(b)
		}
		body := make([]byte, 0, n)
		for _, b := range v.Body {
			body = append(body, b...)
		}
		dst.Body = body
	}
	if dst.Key == 0 {
		return v.Release()
	}
	return h.getDecided(v)
}

// getDecided removes the persistent message of view v once its get is
// durable: the get's record, under a key of its own, is the decision
// (decide). A get whose record is not known durable gives the message
// back (its backout count one higher) and fails.
func (h *Queue) getDecided(v *lockfree.View) error {
	c := h.c
	l, err := c.logger()
	if err != nil {
		v.Return()
		return err
	}
	l.p.BeginVisible()
	defer l.endInFlight(c)
	if err := h.s.Current(); err != nil {
		v.Return() // from the failed structure: the recovered one keeps it
		return err
	}
	key, err := c.g.LRSN(c.admin).Next(1)
	if err != nil {
		v.Return()
		return err
	}
	op := "get " + h.def.Name
	if err := h.o.MarkLone(v, key); err != nil {
		v.Return()
		return err
	}
	defer h.o.EndLone()
	r := plog.Record{Type: plog.TypeGet, Flags: plog.FlagCommitted, UOW: key, Structure: h.def.CFStruct, Queue: h.def.Name, Key: v.Msg.Key}
	end, err := c.decide(op, &r, nil, undecided{key: key, undo: func() { v.Return() }}, false, h.logOp, getPoints)
	if err != nil {
		return err
	}
	defer end()
	return decidedDone(v.Release())
}
