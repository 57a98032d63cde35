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
func (h *chanHandler) publish(m *amqp.BasicPublish, c *amqp.Content) error {
	s := h.s
	if !s.permits(accessWrite, m.Exchange) {
		return s.refused(m, accessWrite, "exchange", m.Exchange)
	}
	s.b.waitOpen(s.c)
	pub, err := newPublishing(m, c, s.user)
	if err != nil {
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
		return h.confirmed(true)
	}
	err = h.put(m, pub, queues)
	if refused(err) {
		return h.confirmed(false)
	}
	if err != nil {
		return err
	}
	return h.confirmed(true)
}

// routeOf is the definitions of the queues a publish reaches.
func (h *chanHandler) routeOf(m *amqp.BasicPublish, pub *publishing) ([]defs.Queue, error) {
	b := h.s.b
	if err := b.routes.current(b.parts.Group, b.parts.Defs); err != nil {
		b.routes.mu.RUnlock()
		return nil, asException(m, err)
	}
	defer b.routes.mu.RUnlock()
	e, ok := b.routes.exchanges[m.Exchange]
	switch {
	case !ok:
		return nil, amqp.ChannelException(amqp.ReplyNotFound, m, "no exchange '%s' in vhost '/'", m.Exchange)
	case e.Internal:
		return nil, amqp.ChannelException(amqp.ReplyAccessRefused, m, "cannot publish to internal exchange '%s' in vhost '/'", m.Exchange)
	}
	names := b.routes.route(m.Exchange, m.RoutingKey, pub.props.Headers)
	out := make([]defs.Queue, 0, len(names))
	for _, n := range names {
		if q, ok := b.routes.queues[n]; ok {
			out = append(out, q)
		}
	}
	return out, nil
}

// put puts the publishing to queues: alone outside syncpoint, several in
// one unit of work, in a transaction in the channel's.
func (h *chanHandler) put(m *amqp.BasicPublish, pub *publishing, queues []defs.Queue) error {
	unit := h.tx || len(queues) > 1
	now := time.Now()
	for i := range queues {
		q, err := h.output(m, queues[i].Name)
		if err != nil {
			return h.failPut(unit, err)
		}
		msg := pub.message(&queues[i], now)
		err = q.Put(&msg, mq.PutOptions{Syncpoint: unit})
		if errors.Is(err, mq.ErrQueueFull) && queues[i].AMQP != nil && queues[i].AMQP.Overflow == "drop-head" {
			err = h.dropHead(m, queues[i].Name, q, &msg, unit)
		}
		if err != nil {
			return h.failPut(unit, err)
		}
	}
	if unit && !h.tx {
		if err := h.conn.Commit(); err != nil {
			return h.failPut(false, err)
		}
	}
	return nil
}

// dropHead makes room on a full x-overflow drop-head queue by removing its
// oldest message, and puts msg again.
func (h *chanHandler) dropHead(m *amqp.BasicPublish, name string, out *mq.Queue, msg *mq.Message, unit bool) error {
	in, err := h.input(m, name)
	if err != nil {
		return err
	}
	if _, err := in.Get(mq.GetOptions{Syncpoint: unit}); err != nil && !isNoMessage(err) {
		return err
	}
	return out.Put(msg, mq.PutOptions{Syncpoint: unit})
}

// failPut backs out a publish's unit of work (not a transaction's, which
// stays for the client's commit or rollback) and says what the client is
// told: a refused put is a nack in confirm mode (and otherwise dropped, as
// RabbitMQ drops a publish to a full queue); anything else closes the
// channel.
func (h *chanHandler) failPut(unit bool, err error) error {
	if unit && !h.tx && h.conn != nil {
		h.conn.Backout()
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

// confirmed sends a publish's confirm in confirm mode.
func (h *chanHandler) confirmed(ok bool) error {
	if !h.confirm {
		return nil
	}
	h.pubSeq++
	if ok {
		return h.ch.Send(&amqp.BasicAck{DeliveryTag: h.pubSeq})
	}
	return h.ch.Send(&amqp.BasicNack{DeliveryTag: h.pubSeq})
}

// isNoMessage reports a get that found nothing.
func isNoMessage(err error) bool { return errors.Is(err, mq.ErrNoMessage) }

// mqGetNow is a get outside syncpoint that does not wait.
var mqGetNow = mq.GetOptions{}
