package qsg

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/mq"
)

// consumer is a basic.consume: a goroutine with an mq connection of its
// own that gets messages as views held outside syncpoint (the client's
// ack removes one; a requeue, a cancel with deliveries outstanding, the
// channel's close or any death gives it back, redelivered) and writes them
// to the socket.
type consumer struct {
	h     *chanHandler
	tag   string
	queue string
	noAck bool
	limit int // prefetch bound of this consumer; 0 none
	excl  bool
	conn  *mq.Conn
	q     *mq.Queue
	intr  mq.Interrupter // ends the goroutine's waiting get when it has something else to do

	// Guarded by h.mu.
	held      int        // this consumer's unacknowledged deliveries
	ops       []settleOp // settlements for the goroutine to carry out
	cancelled bool       // basic.cancel, a deleted queue or the channel's close: get no more
	closing   bool       // the channel closes: give everything back and end
	inGet     bool       // the goroutine is in (or about to enter) a get: a wake interrupts it
	dirty     bool       // ops posted since the last wake (woken when the reader is idle)

	kick    chan struct{} // wakes the goroutine when it waits for credit or ops (1 buffered)
	lastGot int           // messages the last scan got (the goroutine's)
	acked   []*mq.View    // acked, not removed yet (the goroutine's; release)
	done    chan struct{}
}

// settleOp is what the consumer's goroutine does with deliveries it holds.
type settleOp struct {
	ds      []*delivery
	settle  bool // ack
	requeue bool
	// done, when not nil, is closed once the op is carried out: acks are
	// then carried out at once, not gathered (a transaction's commit-ok
	// waits for its acks).
	done chan struct{}
}

// consume runs basic.consume.
func (h *chanHandler) consume(m *amqp.BasicConsume) error {
	s := h.s
	if !s.permits(accessRead, m.Queue) {
		return s.refused(m, accessRead, "queue", m.Queue)
	}
	if err := s.checkOwned(m, m.Queue); err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		var r [16]byte
		rand.Read(r[:])
		tag = "amq.ctag-" + base64.RawURLEncoding.EncodeToString(r[:])
	}
	h.mu.Lock()
	_, dup := h.consumers[tag]
	limit := h.perCons
	h.mu.Unlock()
	if dup {
		return amqp.ConnectionException(amqp.ReplyNotAllowed, m, "attempt to reuse consumer tag '%s'", tag)
	}
	if err := s.b.exclusiveUse(m); err != nil {
		return err
	}
	c, err := h.newConsumer(m, tag, limit)
	if err != nil {
		return err
	}
	// Registered before the reply, so that a consume the client sends
	// after it sees the exclusive one's consume-ok is refused.
	h.mu.Lock()
	h.consumers[tag] = c
	h.live[c] = true
	h.mu.Unlock()
	s.b.addConsumer(c)
	if !m.NoWait {
		if err := h.ch.Send(&amqp.BasicConsumeOk{ConsumerTag: tag}); err != nil {
			c.finish() // its goroutine never ran: give back what it took
			return err
		}
	}
	go c.run()
	return nil
}

// newConsumer connects a consumer and opens its queue.
func (h *chanHandler) newConsumer(m *amqp.BasicConsume, tag string, limit int) (*consumer, error) {
	conn, err := h.s.b.connect(h.s)
	if err != nil {
		return nil, noConnection(m, err)
	}
	q, err := conn.Open(m.Queue, mq.OpenOptions{Input: true})
	if err != nil {
		h.s.b.disconnect(h.s, conn)
		return nil, asException(m, err)
	}
	h.running.Add(1) // done when its finish returns
	return &consumer{h: h, tag: tag, queue: m.Queue, noAck: m.NoAck, excl: m.Exclusive, limit: limit, conn: conn, q: q,
		kick: make(chan struct{}, 1), done: make(chan struct{})}, nil
}

// consumeBatch is the most messages a consumer gets in one scan.
const consumeBatch = 64

// run is the consumer's goroutine.
func (c *consumer) run() {
	defer c.finish()
	for {
		c.intr.Reset() // an interrupt from now on ends the next get
		ops, n, end := c.next()
		if end {
			return
		}
		c.carryOut(ops)
		if len(c.acked) >= releaseBatch {
			c.release()
		}
		if n == 0 {
			c.release()
			if len(ops) == 0 {
				<-c.kick
			}
			continue
		}
		// Views stay held until acked, so each scan gets fresh ones: as many
		// as the last scan could have used, twice over, within the credit.
		vs := make([]mq.View, min(n, max(4, 2*c.lastGot)))
		wait := mq.WaitForever
		if len(c.acked) > 0 {
			wait = 0 // not asleep with acks undone: carried out when the queue is empty
		}
		got, err := c.q.GetViewsInto(mq.GetOptions{Wait: wait, Interrupt: &c.intr}, vs)
		c.gotten()
		c.lastGot = got
		if err != nil && got == 0 {
			if isNoMessage(err) {
				c.release()
				continue
			}
			if errors.Is(err, mq.ErrInterrupted) {
				continue
			}
			c.h.s.b.cfg.Log.Warn("amqp: consumer ends", "queue", c.queue, "consumer", c.tag, "err", err)
			c.cancelByServer()
			return
		}
		c.deliver(vs[:got])
	}
}

// next takes the settlements to carry out and says how many messages the
// consumer may get now (its credit), or that it ends.
func (c *consumer) next() (ops []settleOp, credit int, end bool) {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ops, c.ops = c.ops, nil
	if c.closing || c.cancelled && c.held == 0 && len(ops) == 0 {
		return ops, 0, len(ops) == 0
	}
	if c.cancelled || h.paused {
		return ops, 0, false
	}
	credit = consumeBatch
	if c.limit > 0 {
		credit = min(credit, c.limit-c.held)
	}
	if h.prefetch > 0 {
		credit = min(credit, h.prefetch-h.held)
	}
	credit = max(credit, 0)
	c.inGet = credit > 0
	return ops, credit, false
}

// gotten records that the goroutine's get returned.
func (c *consumer) gotten() {
	c.h.mu.Lock()
	c.inGet = false
	c.h.mu.Unlock()
}

// deliver sends the messages got, with one write for the batch: with
// no-ack each is removed once written; otherwise each is held until the
// client settles it.
func (c *consumer) deliver(vs []mq.View) {
	c.h.s.c.Corked(func() { c.deliverEach(vs) })
}

func (c *consumer) deliverEach(vs []mq.View) {
	h := c.h
	// Tags are given and written in one order per channel (sendMu): a
	// client's ack with multiple covers what it has seen.
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	for i := range vs {
		v := &vs[i]
		tag := h.register(c, v, c.queue)
		if err := h.send(c.tag, tag, v, c.queue); err != nil {
			// The channel or connection is closing: its Close gives back
			// what is held; a no-ack consumer's views go back here.
			if c.noAck {
				for j := range vs[i:] {
					requeue(&vs[i+j])
				}
			}
			return
		}
		if c.noAck {
			v.Release()
		}
	}
}

// register gives a delivery its tag; unless no-ack it is held.
func (h *chanHandler) register(c *consumer, v *mq.View, queue string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextTag++
	if c == nil || !c.noAck {
		h.unacked[h.nextTag] = &delivery{tag: h.nextTag, c: c, view: v, queue: queue}
		h.held++
		if c != nil {
			c.held++
		}
	}
	return h.nextTag
}

// send writes a basic.deliver (consumerTag not empty) or basic.get-ok.
func (h *chanHandler) send(consumerTag string, tag uint64, v *mq.View, queue string) error {
	st, ok, err := parseStored(v.Properties)
	if err != nil || !ok {
		st = stored{exchange: "", key: queue, props: mqProperties(v)}
	}
	redelivered := v.BackoutCount > 0
	var m amqp.Method = &amqp.BasicDeliver{ConsumerTag: consumerTag, DeliveryTag: tag, Redelivered: redelivered,
		Exchange: st.exchange, RoutingKey: st.key}
	if consumerTag == "" {
		m = &amqp.BasicGetOk{DeliveryTag: tag, Redelivered: redelivered,
			Exchange: st.exchange, RoutingKey: st.key, MessageCount: h.s.b.counts(queue).messages}
	}
	err = h.ch.SendContentProps(m, st.props, v.Pieces...)
	if err == nil {
		h.s.b.count.delivered.Add(1)
	}
	return err
}

// carryOut settles deliveries the reader handed over.
// Acks are gathered (c.acked) and carried out together, when releaseBatch
// of them wait, the consumer has nothing to deliver, or it ends: one
// durable log write removes every persistent message they name (mq
// Conn.ReleaseViews), where one Release each would wait for a log write
// each, and deliveries go on meanwhile. (An acked message not removed yet
// comes back, redelivered, only if its holder dies: an ack lost, as AMQP
// allows, never a message.)
func (c *consumer) carryOut(ops []settleOp) {
	for _, op := range ops {
		for _, d := range op.ds {
			if op.settle {
				c.acked = append(c.acked, d.view)
				continue
			}
			c.h.finishDelivery(d, false, op.requeue, c.conn)
		}
		if op.done != nil {
			c.release()
			close(op.done)
		}
	}
}

// releaseBatch is the most acks a consumer gathers before it carries them
// out.
const releaseBatch = 512

// release carries out the gathered acks.
func (c *consumer) release() {
	acked := c.acked
	c.acked = nil
	if len(acked) == 0 {
		return
	}
	err := c.conn.ReleaseViews(acked)
	var me *mq.Error
	if errors.As(err, &me) && me.Reason == mq.RCOptionError {
		// Refused, nothing changed: one at a time then.
		for _, v := range acked {
			if err := v.Release(); err != nil {
				c.h.s.b.cfg.Log.Warn("amqp: ack not carried out, the message comes back", "queue", c.queue, "err", err)
			}
		}
		return
	}
	if err != nil {
		// The messages not removed are back on their queue, redelivered:
		// an ack lost, never a message.
		c.h.s.b.cfg.Log.Warn("amqp: acks not carried out, their messages come back", "queue", c.queue, "acks", len(acked), "err", err)
	}
}

// finishDelivery removes (ack), gives back (requeue) or dead-letters a
// held delivery, with the connection that holds it.
func (h *chanHandler) finishDelivery(d *delivery, settle, requeueIt bool, conn *mq.Conn) {
	switch {
	case settle:
		if err := d.view.Release(); err != nil {
			h.s.b.cfg.Log.Warn("amqp: ack not carried out, the message comes back", "queue", d.queue, "err", err)
		}
	case requeueIt:
		requeue(d.view)
	default:
		h.s.b.deadLetter(conn, d, "rejected")
	}
}

// requeue gives a held message back, redelivered.
func requeue(v *mq.View) { v.Requeue() }

// post hands settlements to the consumer's goroutine (h.mu held).
// (h.mu held, on the reader goroutine.) The goroutine is woken once the
// reader has handled what it read (Idle): a burst of acks costs one wake.
func (c *consumer) post(op settleOp) {
	c.ops = append(c.ops, op)
	c.markToWake()
}

// markToWake has the goroutine woken when the reader is idle (h.mu held,
// on the reader goroutine).
func (c *consumer) markToWake() {
	if !c.dirty {
		c.dirty = true
		c.h.toWake = append(c.h.toWake, c) // a cancelled consumer is no longer in h.consumers
	}
	c.h.ch.WhenIdle()
}

// wake makes the goroutine look at its state again (h.mu held): out of its
// wait for credit, or out of its get (the only wake that costs a system
// call, and only when it is in one).
func (c *consumer) wake() {
	c.dirty = false
	select {
	case c.kick <- struct{}{}:
	default:
	}
	if c.inGet {
		c.intr.Interrupt()
	}
}

// stop ends the consumer: with closing, at once, giving back what it
// holds; otherwise (basic.cancel) it gets no more and ends once its
// deliveries are settled. It waits for the goroutine when closing.
func (c *consumer) stop(closing bool) {
	h := c.h
	h.mu.Lock()
	c.cancelled = true
	c.closing = c.closing || closing
	c.wake()
	h.mu.Unlock()
	if closing {
		<-c.done
	}
}

// cancelByServer stops a consumer the server ends (its queue deleted, its
// connection to the group lost) and tells the client (consumer cancel
// notification).
func (c *consumer) cancelByServer() {
	if c.h.s.c.Capable("consumer_cancel_notify") { // otherwise it just stops, as with RabbitMQ
		c.h.ch.Send(&amqp.BasicCancel{ConsumerTag: c.tag, NoWait: true})
	}
}

// consumerFinishing, when set (tests only), runs in finish once the
// consumer has left its channel's table, before it gives back its
// connection.
var consumerFinishing func()

// finish closes the consumer's connection: whatever it still holds goes
// back to the queue, redelivered.
func (c *consumer) finish() {
	h := c.h
	defer h.running.Done()
	h.mu.Lock()
	ops := c.ops // posted after the goroutine's last look: carried out below
	c.ops = nil
	for _, d := range h.unacked {
		if d.c == c && !d.gone {
			// Given back below; the tag stays valid (an ack of it is a
			// no-op) until the client settles it or the channel closes.
			d.gone = true
			h.held--
		}
	}
	c.held = 0
	if h.consumers[c.tag] == c {
		delete(h.consumers, c.tag)
	}
	delete(h.live, c)
	h.mu.Unlock()
	if consumerFinishing != nil {
		consumerFinishing()
	}
	h.s.b.removeConsumer(c)
	c.carryOut(ops)
	c.release() // acked before the end: removed, not given back
	c.q.Close()
	h.s.b.disconnect(h.s, c.conn)
	close(c.done)
	h.s.b.autoDelete(c.queue)
}

// cancel runs basic.cancel.
func (h *chanHandler) cancel(m *amqp.BasicCancel) error {
	h.mu.Lock()
	c, ok := h.consumers[m.ConsumerTag]
	if ok {
		delete(h.consumers, m.ConsumerTag)
	}
	h.mu.Unlock()
	if ok {
		c.stop(false)
	}
	if m.NoWait {
		return nil
	}
	return h.ch.Send(&amqp.BasicCancelOk{ConsumerTag: m.ConsumerTag})
}

// settle runs basic.ack, nack and reject; in a transaction they wait for
// tx.commit.
func (h *chanHandler) settle(a ackReq, m amqp.Method) error {
	if !h.tx {
		return h.apply(a, m)
	}
	// In a transaction the deliveries leave the table now (a second ack of
	// one is refused now, not at the commit) and are settled at the commit,
	// or put back by a rollback.
	h.mu.Lock()
	ds, err := h.take(a, m)
	h.mu.Unlock()
	if err != nil {
		h.untake(ds)
		return err
	}
	h.txAcks = append(h.txAcks, txAck{a, ds})
	return nil
}

// txAck is a settlement waiting for tx.commit, with the deliveries it took.
type txAck struct {
	a  ackReq
	ds []*delivery
}

// untake puts deliveries taken from the table back (a rollback).
func (h *chanHandler) untake(ds []*delivery) {
	h.mu.Lock()
	for _, d := range ds {
		h.unacked[d.tag] = d
	}
	h.mu.Unlock()
}

// apply carries out a settlement: the channel's own deliveries at once,
// consumers' through their goroutines.
func (h *chanHandler) apply(a ackReq, m amqp.Method) error {
	h.mu.Lock()
	ds, err := h.take(a, m)
	h.mu.Unlock()
	if err != nil {
		h.untake(ds)
		return err
	}
	h.settleTaken(a, ds)
	return nil
}

// settleTaken settles deliveries taken from the table.
func (h *chanHandler) settleTaken(a ackReq, ds []*delivery) { h.settleTakenWait(a, ds, false) }

// settleTakenWait settles deliveries taken from the table; with wait it
// returns once every consumer holding one has carried its part out (a
// transaction's commit-ok follows its acks).
func (h *chanHandler) settleTakenWait(a ackReq, ds []*delivery, wait bool) {
	var dones []chan struct{}
	defer func() {
		for _, d := range dones {
			<-d
		}
	}()
	h.mu.Lock()
	own, byConsumer, live := sortOut(ds)
	for c, cds := range byConsumer {
		c.held -= len(cds)
		op := settleOp{ds: cds, settle: a.settle, requeue: a.requeue}
		if wait {
			op.done = make(chan struct{})
			dones = append(dones, op.done)
			c.ops = append(c.ops, op)
			c.wake()
			continue
		}
		c.post(op)
	}
	h.held -= live
	if h.prefetch > 0 && live > 0 {
		// The channel's credit is shared: any of its consumers may now get.
		for c := range h.live {
			c.markToWake()
		}
	}
	h.mu.Unlock()
	for _, d := range own {
		h.finishDelivery(d, a.settle, a.requeue, d.conn)
	}
}

// sortOut splits the deliveries a settlement took into the channel's own
// and each consumer's, dropping those already given back (h.mu held).
func sortOut(ds []*delivery) (own []*delivery, byConsumer map[*consumer][]*delivery, live int) {
	byConsumer = map[*consumer][]*delivery{}
	for _, d := range ds {
		switch {
		case d.gone:
			continue
		case d.c == nil:
			own = append(own, d)
		default:
			byConsumer[d.c] = append(byConsumer[d.c], d)
		}
		live++
	}
	return own, byConsumer, live
}

// take removes the deliveries a settlement names from the table (h.mu
// held).
func (h *chanHandler) take(a ackReq, m amqp.Method) ([]*delivery, error) {
	if !a.multiple {
		d, ok := h.unacked[a.tag]
		if !ok {
			return nil, amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "unknown delivery tag %d", a.tag)
		}
		delete(h.unacked, a.tag)
		return []*delivery{d}, nil
	}
	if a.tag != 0 {
		if _, ok := h.unacked[a.tag]; !ok {
			return nil, amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "unknown delivery tag %d", a.tag)
		}
	}
	var ds []*delivery
	for t, d := range h.unacked {
		if a.tag == 0 || t <= a.tag {
			ds = append(ds, d)
			delete(h.unacked, t)
		}
	}
	return ds, nil
}

// recover runs basic.recover: every unacknowledged delivery goes back,
// redelivered.
func (h *chanHandler) recover() { h.apply(ackReq{multiple: true, requeue: true}, nil) }

// qos runs basic.qos.
func (h *chanHandler) qos(m *amqp.BasicQos) error {
	h.mu.Lock()
	if m.Global {
		h.prefetch = int(m.PrefetchCount)
	} else {
		h.perCons = int(m.PrefetchCount)
	}
	for _, c := range h.consumers {
		c.wake()
	}
	h.mu.Unlock()
	return h.ch.Send(&amqp.BasicQosOk{})
}

// flow runs channel.flow.
func (h *chanHandler) flow(active bool) {
	h.mu.Lock()
	h.paused = !active
	for _, c := range h.consumers {
		c.wake()
	}
	h.mu.Unlock()
}

// get runs basic.get: a message held as a view by the mq connection the
// channel uses (the shared one, or in a transaction its own), removed at
// once with no-ack.
func (h *chanHandler) get(m *amqp.BasicGet) error {
	s := h.s
	if !s.permits(accessRead, m.Queue) {
		return s.refused(m, accessRead, "queue", m.Queue)
	}
	if err := s.checkOwned(m, m.Queue); err != nil {
		return err
	}
	in, err := h.input(m, m.Queue)
	if err != nil {
		return err
	}
	conn, _ := h.mqConn(m) // the one input opened in: made already
	s.b.idle.touch(m.Queue)
	v := new(mq.View)
	err = in.GetViewInto(mqGetNow, v)
	in.Close() // before the reply: the client may count consumers next
	if err != nil {
		if isNoMessage(err) {
			return h.ch.Send(&amqp.BasicGetEmpty{})
		}
		return asException(m, err)
	}
	h.sendMu.Lock()
	tag := h.register(nil, v, m.Queue)
	h.mu.Lock()
	if d := h.unacked[tag]; d != nil {
		d.conn = conn
	}
	h.mu.Unlock()
	err = h.send("", tag, v, m.Queue)
	h.sendMu.Unlock()
	if m.NoAck {
		h.settleOwnNoAck(tag, v, err)
	}
	return err
}

// settleOwnNoAck ends a no-ack basic.get's delivery: removed once sent,
// given back when it could not be.
func (h *chanHandler) settleOwnNoAck(tag uint64, v *mq.View, sendErr error) {
	h.mu.Lock()
	delete(h.unacked, tag)
	h.held--
	h.mu.Unlock()
	if sendErr != nil {
		requeue(v)
		return
	}
	v.Release()
}

// consumers registers the broker's consumers by queue, so that deleting a
// queue cancels them.
type consumerSet struct {
	mu      sync.Mutex
	byQueue map[string]map[*consumer]bool
}

func (b *Broker) addConsumer(c *consumer) {
	b.consumers.mu.Lock()
	defer b.consumers.mu.Unlock()
	if b.consumers.byQueue == nil {
		b.consumers.byQueue = map[string]map[*consumer]bool{}
	}
	if b.consumers.byQueue[c.queue] == nil {
		b.consumers.byQueue[c.queue] = map[*consumer]bool{}
	}
	b.consumers.byQueue[c.queue][c] = true
}

func (b *Broker) removeConsumer(c *consumer) {
	b.consumers.mu.Lock()
	defer b.consumers.mu.Unlock()
	delete(b.consumers.byQueue[c.queue], c)
	if len(b.consumers.byQueue[c.queue]) == 0 {
		delete(b.consumers.byQueue, c.queue)
	}
}

// exclusiveUse refuses a consume that conflicts with an exclusive one: an
// exclusive consume of a queue others consume (group-wide, by its open
// input handles), or any consume of a queue this broker's exclusive
// consumer holds.
func (b *Broker) exclusiveUse(m *amqp.BasicConsume) error {
	if m.Exclusive && b.counts(m.Queue).consumers > 0 {
		return amqp.ChannelException(amqp.ReplyAccessRefused, m, "queue '%s' in vhost '/' in exclusive use", m.Queue)
	}
	b.consumers.mu.Lock()
	defer b.consumers.mu.Unlock()
	for c := range b.consumers.byQueue[m.Queue] {
		if c.excl {
			return amqp.ChannelException(amqp.ReplyAccessRefused, m, "queue '%s' in vhost '/' in exclusive use", m.Queue)
		}
	}
	return nil
}

// cancelConsumersOf cancels this broker's consumers of a deleted queue,
// telling their clients, and waits until they gave back what they held.
func (b *Broker) cancelConsumersOf(queue string) {
	b.consumers.mu.Lock()
	var cs []*consumer
	for c := range b.consumers.byQueue[queue] {
		cs = append(cs, c)
	}
	b.consumers.mu.Unlock()
	for _, c := range cs {
		c.cancelByServer()
		c.stop(true)
	}
}
