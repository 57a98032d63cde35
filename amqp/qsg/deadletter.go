package qsg

import (
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
)

// deadLetter removes a rejected delivery; when its queue has a
// dead-letter exchange the message is first republished there (with the
// queue's dead-letter routing key, or its own) carrying an x-death header
// as RabbitMQ writes it, in one unit of work of conn, the connection
// holding the delivery. The republish is committed before the delivery is
// removed: a crash between the two leaves the message in both places
// (delivered again, never lost). A drop-head queue it went to is then
// brought back to its x-max-length, as after a publish (once the delivery
// is removed: dead-lettered to its own queue, the copy is not the oldest).
func (b *Broker) deadLetter(conn *mq.Conn, d *delivery, reason string) {
	dlx, key, queues, pub, ok := b.deadLetterRoute(d, reason)
	if ok && len(queues) > 0 {
		if err := putAll(conn, queues, pub); err != nil {
			b.cfg.Log.Warn("amqp: dead-lettering failed, the message goes back to its queue", "queue", d.queue, "dlx", dlx, "key", key, "err", err)
			requeue(d.view)
			return
		}
	}
	if err := d.view.Release(); err != nil {
		b.cfg.Log.Warn("amqp: rejected message not removed", "queue", d.queue, "err", err)
	}
	for i := range queues {
		if dropsHead(&queues[i]) {
			b.trimWith(conn, &queues[i])
		}
	}
}

// deadLetterRoute is where a rejected delivery goes: ok is false when its
// queue has no dead-letter exchange (the message is dropped).
func (b *Broker) deadLetterRoute(d *delivery, reason string) (dlx, key string, queues []defs.Queue, pub *publishing, ok bool) {
	if err := b.routes.current(b.parts.Group, b.parts.Defs); err != nil {
		return
	}
	defer b.routes.mu.RUnlock()
	q, found := b.routes.queues[d.queue]
	if !found || q.AMQP == nil || q.AMQP.DLX == "" && q.AMQP.DLRK == nil {
		return
	}
	st, isAMQP, err := parseStored(d.view.Properties)
	var props amqp.Properties
	if err == nil && isAMQP {
		props, _, _ = amqp.DecodeProperties(st.props)
	} else {
		st = stored{key: d.queue}
	}
	dlx, key = q.AMQP.DLX, st.key
	if q.AMQP.DLRK != nil {
		key = *q.AMQP.DLRK
	}
	addDeath(&props, d.queue, reason, st.exchange, st.key)
	enc, err := appendStored(nil, dlx, key, &props)
	if err != nil {
		return
	}
	for _, n := range b.routes.route(dlx, key, props.Headers) {
		if dq, ok := b.routes.queues[n]; ok && !reserved(dq) {
			queues = append(queues, dq)
		}
	}
	// Each destination's own settings (durability, TTL, priorities) apply,
	// not the source queue's.
	return dlx, key, queues, &publishing{props: props, stored: enc, body: d.view.Bytes(), ttl: -1}, true
}

// addDeath records a dead-lettering in the x-death header.
func addDeath(p *amqp.Properties, queue, reason, exchange, key string) {
	if p.Headers == nil {
		p.Headers = amqp.Table{}
	}
	// One entry per queue and reason, counted, the latest first (as
	// RabbitMQ): a message dead-lettered round a cycle keeps a bounded
	// header.
	prev, _ := p.Headers["x-death"].([]any)
	count := int64(1)
	rest := make([]any, 0, len(prev))
	for _, e := range prev {
		if t, ok := e.(amqp.Table); ok && t["queue"] == queue && t["reason"] == reason {
			if n, ok := t["count"].(int64); ok {
				count = n + 1
			}
			continue
		}
		rest = append(rest, e)
	}
	death := amqp.Table{"queue": queue, "reason": reason, "exchange": exchange,
		"routing-keys": []any{key}, "count": count, "time": time.Now().UTC().Truncate(time.Second)}
	p.Headers["x-death"] = append([]any{death}, rest...)
	if _, ok := p.Headers["x-first-death-queue"]; !ok {
		p.Headers["x-first-death-queue"], p.Headers["x-first-death-reason"], p.Headers["x-first-death-exchange"] = queue, reason, exchange
	}
	p.Expiration = "" // as RabbitMQ: the per-message TTL does not follow it
	p.Flags &^= amqp.FlagExpiration
}

// putAll puts the publishing to every queue, as each queue takes it, in
// one unit of work of conn.
func putAll(conn *mq.Conn, queues []defs.Queue, pub *publishing) error {
	now := time.Now()
	for i := range queues {
		h, err := conn.Open(queues[i].Name, mq.OpenOptions{Output: true})
		if err != nil {
			conn.Backout()
			return err
		}
		m := pub.message(&queues[i], now)
		err = h.Put(&m, mq.PutOptions{Syncpoint: true})
		h.Close()
		if err != nil {
			conn.Backout()
			return err
		}
	}
	return conn.Commit()
}
