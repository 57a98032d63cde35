package qsg

import (
	"errors"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
)

// publish runs basic.publish: the message goes to every queue its
// exchange routes it to, in one unit of work when there are several; in
// confirm mode it is acknowledged once put (a persistent one once its log
// record is durable), or nacked when a queue refused it.
//
// Publishes that need a log write or a confirm and go to one queue are
// gathered: each is put in the unit of work of the connection's shared mq
// connection (unit.go), and the unit is committed when the client's
// frames read so far are all handled (Idle) or it holds maxBatch, with
// one log write; their confirms then go with one ack for the lot
// (multiple). A client with a window of unconfirmed publishes, or one
// that does not ask for confirms at all, pays one log write per burst
// instead of one per message.
func (h *chanHandler) publish(m *amqp.BasicPublish, c *amqp.Content) error {
	s := h.s
	if m.Immediate {
		return amqp.ConnectionException(amqp.ReplyNotImplemented, m, "immediate=true")
	}
	if !s.permits(accessWrite, m.Exchange) {
		return s.refused(m, accessWrite, "exchange", m.Exchange)
	}
	s.b.waitOpen(s.c)
	s.b.count.published.Add(1)
	pub := &h.pub
	if err := newPublishing(pub, m, c, s.user); err != nil {
		return err
	}
	queues, err := h.routeOf(m, pub)
	if err != nil {
		return err
	}
	if len(queues) == 0 {
		if m.Mandatory {
			if err := h.ch.SendContent(&amqp.BasicReturn{ReplyCode: amqp.ReplyNoRoute, ReplyText: "NO_ROUTE",
				Exchange: m.Exchange, RoutingKey: m.RoutingKey}, &c.Header, c.Body); err != nil {
				return err
			}
		}
		h.confirmLater(true, false)
		return nil
	}
	if h.batchable(m, queues) {
		return h.putBatched(m, pub, &queues[0])
	}
	if err := h.flushBatch(); err != nil {
		return err
	}
	err = h.put(m, pub, queues)
	if refused(err) {
		h.confirmLater(false, false)
		return nil
	}
	if err != nil {
		return err
	}
	h.confirmLater(true, false)
	return nil
}

// isGone reports an open that failed because the queue is no longer
// defined.
func isGone(err error) bool {
	var ex *amqp.Exception
	return errors.As(err, &ex) && ex.Code == amqp.ReplyNotFound
}

// maxBatch is the most publishes gathered in one unit of work.
const maxBatch = 512

// batchable reports whether a publish to queues is gathered (see publish).
func (h *chanHandler) batchable(m *amqp.BasicPublish, queues []defs.Queue) bool {
	if h.tx || len(queues) != 1 {
		return false
	}
	q := queues[0].AMQP
	return h.confirm || q == nil || q.Durable
}

// putBatched puts a publish to one queue in the gathering unit of work.
func (h *chanHandler) putBatched(m *amqp.BasicPublish, pub *publishing, q *defs.Queue) error {
	out, err := h.output(m, q.Name)
	if isGone(err) {
		h.confirmLater(true, false) // deleted since the routes were read: unroutable, acked as RabbitMQ does
		return nil
	}
	if err != nil {
		return err
	}
	msg := pub.message(q, time.Now())
	err = out.Put(&msg, mq.PutOptions{Syncpoint: true})
	switch {
	case refused(err):
		h.confirmLater(false, false)
		return nil
	case err != nil:
		return asException(m, err)
	}
	u := &h.s.unit
	u.batched++
	u.join(h)
	h.toTrim(q)
	h.confirmLater(true, true)
	if u.batched >= maxBatch {
		return h.flushBatch()
	}
	return nil
}

// pendingConfirm is a publish's confirm not sent yet.
type pendingConfirm struct {
	seq    uint64
	ok     bool
	inUnit bool // put in the gathering unit of work: ok only once it commits
}

// confirmLater numbers a publish in confirm mode and keeps its confirm for
// the next flush.
func (h *chanHandler) confirmLater(ok, inUnit bool) {
	if !h.confirm {
		if inUnit {
			h.ch.WhenIdle()
		}
		return
	}
	h.pubSeq++
	h.confirms = append(h.confirms, pendingConfirm{seq: h.pubSeq, ok: ok, inUnit: inUnit})
	h.ch.WhenIdle()
}

// Idle commits the gathered publishes and sends their confirms, and wakes
// the consumers that were handed settlements (amqp.Idler).
func (h *chanHandler) Idle() {
	if err := h.flushBatch(); err != nil {
		h.ch.Fail(asException(nil, err).(*amqp.Exception))
	}
	h.mu.Lock()
	for _, c := range h.toWake {
		if c.dirty {
			c.wake()
		}
	}
	h.toWake = h.toWake[:0]
	h.mu.Unlock()
}

// flushBatch commits the connection's shared unit of work, if it holds
// anything (every channel's gathered publishes, each channel told how it
// ended), and sends this channel's pending confirms in order: runs of acks
// as one ack with multiple, a publish refused or whose commit failed as a
// nack. It ends the shared unit of work whatever this channel's mode: a
// transactional channel's method may dead-letter a message got through the
// shared connection before tx.select, whose unit of work must then hold
// nothing of other channels'.
func (h *chanHandler) flushBatch() error {
	if err := h.s.unit.end(true); err != nil {
		h.s.b.cfg.Log.Warn("amqp: publishes not committed, nacked", "err", err)
	}
	return h.sendConfirms()
}

// sendConfirms sends the channel's pending confirms, in order: runs of
// acks as one ack with multiple, a publish refused or whose commit failed
// as a nack. None waits for the shared unit of work: a channel with
// publishes in it is a member, and every caller ends the unit of work
// first when the channel is one (Handle, flushBatch).
func (h *chanHandler) sendConfirms() error {
	cs := h.confirms
	h.confirms = h.confirms[:0]
	var run uint64 // the last ack of the run not sent yet; 0 none
	for _, c := range cs {
		if c.inUnit {
			// Cannot be (end told every channel with one): nacked, as a
			// publish whose fate is not known.
			h.s.b.cfg.Log.Error("amqp: a confirm outlived its unit of work, nacked", "seq", c.seq)
			c.ok = false
		}
		if c.ok {
			run = c.seq
			continue
		}
		if run != 0 {
			if err := h.ch.Send(&amqp.BasicAck{DeliveryTag: run, Multiple: true}); err != nil {
				return nil // the channel is closing: nothing to confirm to
			}
			run = 0
		}
		if err := h.ch.Send(&amqp.BasicNack{DeliveryTag: c.seq}); err != nil {
			return nil
		}
	}
	if run != 0 {
		h.ch.Send(&amqp.BasicAck{DeliveryTag: run, Multiple: true})
	}
	return nil
}

// unitEnded is told how the shared unit of work this channel put in ended
// (sharedUnit.end): its publishes in it are confirmed or nacked at the
// next flush, and the drop-head queues they went to are trimmed, or not.
func (h *chanHandler) unitEnded(committed bool) {
	for i := range h.confirms {
		if c := &h.confirms[i]; c.inUnit {
			c.inUnit = false
			c.ok = c.ok && committed
		}
	}
	if committed {
		h.trim()
	} else {
		h.trimmed = h.trimmed[:0]
	}
	if len(h.confirms) > 0 {
		h.ch.WhenIdle() // sent when the reader is idle
	}
}

// routeOf is the definitions of the queues a publish reaches.
func (h *chanHandler) routeOf(m *amqp.BasicPublish, pub *publishing) ([]defs.Queue, error) {
	b := h.s.b
	if err := b.routes.current(b.parts.Group, b.parts.Defs); err != nil {
		return nil, asException(m, err)
	}
	defer b.routes.mu.RUnlock()
	h.outputs().current(b.routes.ver)
	e, ok := b.routes.exchanges[m.Exchange]
	switch {
	case !ok:
		return nil, amqp.ChannelException(amqp.ReplyNotFound, m, "no exchange '%s' in vhost '/'", m.Exchange)
	case e.Internal:
		return nil, amqp.ChannelException(amqp.ReplyAccessRefused, m, "cannot publish to internal exchange '%s' in vhost '/'", m.Exchange)
	}
	out := h.routed[:0]
	if m.Exchange == "" { // the default exchange: the queue the key names
		if q, ok := b.routes.queues[m.RoutingKey]; ok {
			if reserved(q) {
				return nil, reservedRefusal(m, q.Name)
			}
			out = append(out, q)
		}
		h.routed = out
		return out, nil
	}
	for _, n := range b.routes.route(m.Exchange, m.RoutingKey, pub.props.Headers) {
		if q, ok := b.routes.queues[n]; ok && !reserved(q) {
			out = append(out, q)
		}
	}
	h.routed = out
	return out, nil
}

// put puts the publishing to queues: alone outside syncpoint, several in
// one unit of work, in a transaction in the channel's.
func (h *chanHandler) put(m *amqp.BasicPublish, pub *publishing, queues []defs.Queue) error {
	unit := h.tx || len(queues) > 1
	mark := len(h.trimmed) // a transaction's earlier publishes' queues
	now := time.Now()
	for i := range queues {
		q, err := h.output(m, queues[i].Name)
		if isGone(err) {
			continue // deleted since the routes were read: not routed there
		}
		if err != nil {
			return h.failPut(unit, err)
		}
		msg := pub.message(&queues[i], now)
		err = q.Put(&msg, mq.PutOptions{Syncpoint: unit})
		if err != nil {
			if !h.tx {
				// Nothing of this publish stays. In a transaction what it
				// put stays for the client's commit or rollback, and so
				// do the transaction's earlier publishes.
				h.trimmed = h.trimmed[:mark]
			}
			return h.failPut(unit, err)
		}
		if unit && !h.tx {
			h.s.unit.batched++
			h.s.unit.join(h)
		}
		h.toTrim(&queues[i])
	}
	if unit && !h.tx {
		// The shared unit of work holds this publish alone (publish ended
		// it first): committed, it trims; failed, it was backed out.
		if err := h.s.unit.end(true); err != nil {
			return h.failPut(false, err)
		}
	}
	if !h.tx {
		h.trim()
	}
	return nil
}

// dropsHead reports whether a queue keeps its x-max-length by dropping
// its oldest messages (x-overflow drop-head, the default).
func dropsHead(q *defs.Queue) bool {
	return q.AMQP != nil && q.AMQP.MaxLength >= 0 && q.AMQP.Overflow != "reject-publish"
}

// toTrim notes a drop-head queue a publish went to: once what was put is
// committed (trim), the queue is brought back to its length.
func (h *chanHandler) toTrim(q *defs.Queue) {
	if dropsHead(q) {
		h.trimmed = append(h.trimmed, *q)
	}
}

// trim brings the drop-head queues the committed publishes went to back
// to their x-max-length by removing their oldest messages (outside any
// unit of work: only committed publishes made them longer, so nothing is
// dropped for work backed out). Messages delivered and not acknowledged
// count in the length and are not dropped.
func (h *chanHandler) trim() {
	qs := h.trimmed
	h.trimmed = h.trimmed[:0]
	for i := range qs {
		q := &qs[i]
		if i > 0 && qs[i-1].Name == q.Name {
			continue
		}
		h.trimQueue(q)
	}
}

func (h *chanHandler) trimQueue(q *defs.Queue) {
	if int64(h.s.b.counts(q.Name).messages) <= q.AMQP.MaxLength {
		return // not over: no mq connection needed
	}
	conn, err := h.mqConn(nil)
	if err != nil {
		return
	}
	h.s.b.trimWith(conn, q)
}

// trimWith removes drop-head queue q's oldest ready messages, outside any
// unit of work of conn, until it is back to its x-max-length.
func (b *Broker) trimWith(conn *mq.Conn, q *defs.Queue) {
	over := int64(b.counts(q.Name).messages) - q.AMQP.MaxLength
	if over <= 0 {
		return
	}
	in, err := conn.Open(q.Name, mq.OpenOptions{Input: true})
	if err != nil {
		return
	}
	defer in.Close()
	for ; over > 0; over-- {
		if _, err := in.Get(mq.GetOptions{}); err != nil {
			return // nothing ready: the rest is held or uncommitted
		}
	}
}

// failPut backs out a publish's unit of work (not a transaction's, which
// stays for the client's commit or rollback) and says what the client is
// told: a refused put is a nack in confirm mode (and otherwise dropped, as
// RabbitMQ drops a publish to a full queue); anything else closes the
// channel.
func (h *chanHandler) failPut(unit bool, err error) error {
	if unit && !h.tx {
		h.s.unit.end(false)
	}
	if refused(err) {
		return errRefused{err}
	}
	return asException(nil, err)
}

// errRefused: a queue refused a put (full, or the message too big).
type errRefused struct{ error }

func (e errRefused) Unwrap() error { return e.error }

func refused(err error) bool {
	var r errRefused
	if errors.As(err, &r) {
		return true
	}
	var me *mq.Error
	return errors.As(err, &me) && (me.Reason == mq.RCQFull || me.Reason == mq.RCMsgTooBigForQ || me.Reason == mq.RCStorageMediumFull)
}

// isNoMessage reports a get that found nothing.
func isNoMessage(err error) bool { return errors.Is(err, mq.ErrNoMessage) }

// mqGetNow is a get outside syncpoint that does not wait.
var mqGetNow = mq.GetOptions{}
