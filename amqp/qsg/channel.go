package qsg

import (
	"errors"
	"sync"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
)

// chanHandler is an open AMQP channel's work. Handle runs on the
// connection's reader goroutine; each consumer has a goroutine and an mq
// connection of its own (an mq connection is used by one goroutine at a
// time), and hands its deliveries to the channel's table of unacknowledged
// ones, which the reader's acks take from.
type chanHandler struct {
	s  *session
	ch *amqp.Channel

	// The reader goroutine's alone. Outside a transaction the channel
	// publishes and gets through its connection's shared mq connection
	// (session.unit, unit.go); in one, through its own.
	txConn    *mq.Conn         // a transactional channel's own mq connection; nil until needed
	txOut     outputs          // its handles open for output
	confirm   bool             // confirm.select
	pubSeq    uint64           // the last publish's sequence number in confirm mode
	confirms  []pendingConfirm // confirms not sent yet (flushBatch)
	lastQueue string           // the queue the channel declared last: methods naming none mean it
	trimmed   []defs.Queue     // drop-head queues published to since the last commit (trim)
	pub       publishing       // the publish being handled (its storage reused)
	routed    []defs.Queue     // the queues it goes to (storage reused)
	tx        bool             // tx.select
	txAcks    []txAck          // acks, nacks and rejects waiting for tx.commit

	// sendMu orders deliveries: a tag is given and its delivery written
	// under it, so the client sees tags in order.
	sendMu sync.Mutex

	// running counts the consumers whose finish has not returned: a
	// consumer that ends on its own leaves live before it gives back its
	// group connection, and Close waits for it too.
	running sync.WaitGroup

	mu        sync.Mutex
	nextTag   uint64 // the last delivery tag given
	unacked   map[uint64]*delivery
	consumers map[string]*consumer // by tag: not cancelled
	live      map[*consumer]bool   // every consumer not finished, cancelled ones draining too
	toWake    []*consumer          // consumers handed settlements since the reader was last idle
	prefetch  int                  // basic.qos global=true: the channel's bound on unacknowledged deliveries; 0 none
	perCons   int                  // basic.qos global=false: the bound of consumers started after it; 0 none
	held      int                  // unacknowledged deliveries of the channel
	paused    bool                 // channel.flow active=false
	closed    bool
}

// delivery is an unacknowledged delivery.
type delivery struct {
	tag   uint64
	c     *consumer // nil: a basic.get's, held by the channel's connection conn
	conn  *mq.Conn  // a basic.get's: the connection that got it (dead-letters it)
	view  *mq.View
	queue string
	gone  bool // its consumer ended and gave it back (its queue was deleted)
}

// ackReq is a client's ack, nack or reject.
type ackReq struct {
	tag              uint64
	multiple, settle bool // settle: ack; otherwise nack or reject
	requeue          bool
}

func newChanHandler(s *session, ch *amqp.Channel) *chanHandler {
	return &chanHandler{s: s, ch: ch,
		unacked: map[uint64]*delivery{}, consumers: map[string]*consumer{}, live: map[*consumer]bool{}}
}

// Handle runs one method of the channel (amqp.ChannelHandler). The
// channel's gathered publishes are committed before any other method of
// the channel runs, so that what it sees (or does) follows them; and the
// shared unit of work is committed before a method that uses the shared
// connection (touchesShared), so that its work is never in a unit of work
// with other channels' publishes. Other channels' methods (a consumer's
// acks on another channel, above all) leave the gathering alone: their
// publishes still cost one log write per burst.
func (h *chanHandler) Handle(m amqp.Method, content *amqp.Content) error {
	if p, ok := m.(*amqp.BasicPublish); ok {
		return h.publish(p, content)
	}
	if h.s.unit.members[h] || h.touchesShared(m) {
		if err := h.s.unit.end(true); err != nil {
			h.s.b.cfg.Log.Warn("amqp: publishes not committed, nacked", "err", err)
		}
	}
	if err := h.sendConfirms(); err != nil {
		return err
	}
	h.defaultQueue(m)
	switch m := m.(type) {
	case *amqp.BasicAck:
		return h.settle(ackReq{tag: m.DeliveryTag, multiple: m.Multiple, settle: true}, m)
	case *amqp.BasicNack:
		return h.settle(ackReq{tag: m.DeliveryTag, multiple: m.Multiple, requeue: m.Requeue}, m)
	case *amqp.BasicReject:
		return h.settle(ackReq{tag: m.DeliveryTag, requeue: m.Requeue}, m)
	case *amqp.BasicConsume:
		return h.consume(m)
	case *amqp.BasicCancel:
		return h.cancel(m)
	case *amqp.BasicGet:
		return h.get(m)
	case *amqp.BasicQos:
		return h.qos(m)
	case *amqp.BasicRecover:
		h.recover()
		return h.ch.Send(&amqp.BasicRecoverOk{})
	case *amqp.BasicRecoverAsync:
		h.recover()
		return nil
	case *amqp.ChannelFlow:
		h.flow(m.Active)
		return h.ch.Send(&amqp.ChannelFlowOk{Active: m.Active})
	}
	return h.handleAdmin(m)
}

// defaultQueue names the channel's last declared queue where a method
// names none, as the protocol says.
func (h *chanHandler) defaultQueue(m amqp.Method) {
	var q *string
	switch m := m.(type) {
	case *amqp.QueueBind:
		q = &m.Queue
	case *amqp.QueueUnbind:
		q = &m.Queue
	case *amqp.QueuePurge:
		q = &m.Queue
	case *amqp.QueueDelete:
		q = &m.Queue
	case *amqp.BasicConsume:
		q = &m.Queue
	case *amqp.BasicGet:
		q = &m.Queue
	}
	if q != nil && *q == "" {
		*q = h.lastQueue
	}
}

// handleAdmin runs the declare, bind, delete, confirm and tx methods.
func (h *chanHandler) handleAdmin(m amqp.Method) error {
	var reply amqp.Method
	var noWait bool
	var err error
	s := h.s
	switch m := m.(type) {
	case *amqp.QueueDeclare:
		var name string
		var c queueCounts
		name, c, err = s.declareQueue(m)
		if err == nil {
			h.lastQueue = name
		}
		reply, noWait = &amqp.QueueDeclareOk{Queue: name, MessageCount: c.messages, ConsumerCount: c.consumers}, m.NoWait
	case *amqp.QueueBind:
		err = s.bind(m, defs.Binding{Source: m.Exchange, DestKind: defs.DestQueue, Dest: m.Queue, Key: m.RoutingKey}, m.Arguments, false)
		reply, noWait = &amqp.QueueBindOk{}, m.NoWait
	case *amqp.QueueUnbind:
		err = s.bind(m, defs.Binding{Source: m.Exchange, DestKind: defs.DestQueue, Dest: m.Queue, Key: m.RoutingKey}, m.Arguments, true)
		reply = &amqp.QueueUnbindOk{}
	case *amqp.QueuePurge:
		var n uint32
		n, err = h.purgeQueue(m)
		reply, noWait = &amqp.QueuePurgeOk{MessageCount: n}, m.NoWait
	case *amqp.QueueDelete:
		var n uint32
		n, err = s.deleteQueue(m)
		reply, noWait = &amqp.QueueDeleteOk{MessageCount: n}, m.NoWait
	case *amqp.ExchangeDeclare:
		err = s.declareExchange(m)
		reply, noWait = &amqp.ExchangeDeclareOk{}, m.NoWait
	case *amqp.ExchangeDelete:
		err = s.deleteExchange(m)
		reply, noWait = &amqp.ExchangeDeleteOk{}, m.NoWait
	case *amqp.ExchangeBind:
		err = s.bind(m, defs.Binding{Source: m.Source, DestKind: defs.DestExchange, Dest: m.Destination, Key: m.RoutingKey}, m.Arguments, false)
		reply, noWait = &amqp.ExchangeBindOk{}, m.NoWait
	case *amqp.ExchangeUnbind:
		err = s.bind(m, defs.Binding{Source: m.Source, DestKind: defs.DestExchange, Dest: m.Destination, Key: m.RoutingKey}, m.Arguments, true)
		reply, noWait = &amqp.ExchangeUnbindOk{}, m.NoWait
	case *amqp.ConfirmSelect:
		err = h.selectConfirm(m)
		reply, noWait = &amqp.ConfirmSelectOk{}, m.Nowait
	case *amqp.TxSelect, *amqp.TxCommit, *amqp.TxRollback:
		reply, err = h.txMethod(m)
	default:
		return amqp.ConnectionException(amqp.ReplyNotImplemented, m, "method not implemented")
	}
	if err != nil || noWait {
		return err
	}
	return h.ch.Send(reply)
}

// touchesShared reports whether method m of a channel that has nothing
// in the shared unit of work may use the shared mq connection: to get
// (basic.get, purge), to settle its own basic.get deliveries (which
// dead-lettering puts through that connection), or to change to or end a
// transaction (whose settlements may do the same); or depends on what
// the shared unit of work holds: queue.delete, which cannot remove a
// queue holding another channel's uncommitted publish from its structure
// (the publish, committed after, would sit in a queue no longer defined).
func (h *chanHandler) touchesShared(m amqp.Method) bool {
	switch m := m.(type) {
	case *amqp.BasicGet, *amqp.QueuePurge, *amqp.QueueDelete, *amqp.TxSelect, *amqp.TxCommit, *amqp.TxRollback:
		return true
	case *amqp.BasicAck:
		return h.settlesOwn(m.DeliveryTag, m.Multiple)
	case *amqp.BasicNack:
		return h.settlesOwn(m.DeliveryTag, m.Multiple)
	case *amqp.BasicReject:
		return h.settlesOwn(m.DeliveryTag, false)
	case *amqp.BasicRecover, *amqp.BasicRecoverAsync:
		return h.settlesOwn(0, true)
	}
	return false
}

// settlesOwn reports whether a settlement of tag (with multiple: every
// tag up to it, 0 every one) names a basic.get delivery of the channel.
func (h *chanHandler) settlesOwn(tag uint64, multiple bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !multiple {
		d := h.unacked[tag]
		return d != nil && d.c == nil
	}
	for t, d := range h.unacked {
		if d.c == nil && (tag == 0 || t <= tag) {
			return true
		}
	}
	return false
}

// mqConn is the mq connection the channel uses now: in a transaction its
// own, otherwise its AMQP connection's shared one; made when first needed.
func (h *chanHandler) mqConn(m amqp.Method) (*mq.Conn, error) {
	if !h.tx {
		return h.s.unit.connect(h.s, m)
	}
	if h.txConn != nil {
		return h.txConn, nil
	}
	c, err := h.s.b.connect(h.s)
	if err != nil {
		return nil, noConnection(m, err)
	}
	h.txConn = c
	return c, nil
}

// outputs are the cached output handles of the connection the channel
// uses now.
func (h *chanHandler) outputs() *outputs {
	if h.tx {
		return &h.txOut
	}
	return &h.s.unit.out
}

// noConnection is the exception of an mq connection the group refused.
func noConnection(m amqp.Method, err error) error {
	var me *mq.Error
	if errors.Is(err, errConnLimit) || errors.As(err, &me) && me.Reason == mq.RCMaxConnsLimitReached {
		return amqp.ConnectionException(amqp.ReplyResourceError, m, "the group has no connection slot free: %v", err)
	}
	return amqp.ConnectionException(amqp.ReplyInternalError, m, "%v", err)
}

// output is the channel's handle on queue for puts.
func (h *chanHandler) output(m amqp.Method, queue string) (*mq.Queue, error) {
	c, err := h.mqConn(m)
	if err != nil {
		return nil, err
	}
	return h.outputs().open(c, m, queue)
}

// input opens queue for gets (basic.get, purge, drop-head); the caller
// closes the handle as soon as it is done, since an open input handle
// counts as a consumer (declare-ok, if-unused, exclusive consume). Views
// it got stay valid after.
func (h *chanHandler) input(m amqp.Method, queue string) (*mq.Queue, error) {
	c, err := h.mqConn(m)
	if err != nil {
		return nil, err
	}
	q, err := c.Open(queue, mq.OpenOptions{Input: true})
	if err != nil {
		return nil, asException(m, err)
	}
	return q, nil
}

// selectConfirm is confirm.select.
func (h *chanHandler) selectConfirm(m *amqp.ConfirmSelect) error {
	if h.tx {
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "cannot switch from tx to confirm mode")
	}
	h.confirm = true
	return nil
}

// txMethod runs tx.select, tx.commit and tx.rollback: a transaction is the
// unit of work of the channel's own mq connection (its publishes); its acks wait for the
// commit and are applied right after it.
func (h *chanHandler) txMethod(m amqp.Method) (amqp.Method, error) {
	switch m.(type) {
	case *amqp.TxSelect:
		if h.confirm {
			return nil, amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "cannot switch from confirm to tx mode")
		}
		// Handle ended the shared unit of work (flushBatch): nothing of
		// this channel's is in it any more.
		delete(h.s.unit.members, h)
		h.tx = true
		return &amqp.TxSelectOk{}, nil
	case *amqp.TxCommit:
		if !h.tx {
			return nil, amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "channel is not transactional")
		}
		acks := h.txAcks
		h.txAcks = nil
		if h.txConn != nil {
			if err := h.txConn.Commit(); err != nil {
				h.untakeAll(acks)
				h.trimmed = h.trimmed[:0]
				return nil, amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "commit failed, the transaction is rolled back: %v", err)
			}
		}
		h.trim()
		for _, x := range acks {
			h.settleTakenWait(x.a, x.ds, true) // carried out before commit-ok
		}
		return &amqp.TxCommitOk{}, nil
	default:
		if !h.tx {
			return nil, amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "channel is not transactional")
		}
		h.untakeAll(h.txAcks) // unacknowledged again, as before the transaction
		h.txAcks = nil
		h.trimmed = h.trimmed[:0]
		if h.txConn != nil {
			if err := h.txConn.Backout(); err != nil {
				return nil, asException(m, err)
			}
		}
		return &amqp.TxRollbackOk{}, nil
	}
}

// untakeAll puts back the deliveries a transaction's settlements took.
func (h *chanHandler) untakeAll(acks []txAck) {
	for _, x := range acks {
		h.untake(x.ds)
	}
}

// Close gives back what the channel holds (amqp.ChannelHandler): its
// consumers stop and their unacknowledged deliveries go back to their
// queues, redelivered; an open transaction is backed out.
func (h *chanHandler) Close() {
	defer h.s.b.count.channels.Add(-1)
	h.untakeAll(h.txAcks) // an open transaction's settlements are not carried out
	h.txAcks = nil
	h.mu.Lock()
	h.closed = true
	cs := make([]*consumer, 0, len(h.live))
	for c := range h.live {
		cs = append(cs, c)
	}
	var own []*delivery
	for _, d := range h.unacked {
		if d.c == nil && !d.gone {
			own = append(own, d)
		}
	}
	h.unacked = map[uint64]*delivery{}
	h.mu.Unlock()
	for _, c := range cs {
		c.stop(true)
	}
	h.running.Wait() // and those that had ended on their own
	for _, d := range own {
		requeue(d.view)
	}
	h.flushBatch() // the client sent them: they are put, as RabbitMQ would
	delete(h.s.unit.members, h)
	if h.txConn != nil {
		h.txConn.Backout() // an open transaction
		h.txOut.close()
		h.s.b.disconnect(h.s, h.txConn)
	}
}
