package qsg

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mqsc"
)

// Attributes of queues declared through AMQP beyond MQ's defaults: as
// deep and as large as the group allows (RabbitMQ's queues have no bound
// but memory), unless x-max-length with x-overflow reject-publish bounds
// the depth, which the CF then enforces; with drop-head (the default) the
// channel that committed a publish trims the queue back to its length.
const (
	amqpMaxDepth = 999_999_999
	amqpMaxMsgL  = 100 << 20
)

// queueCounts are queue.declare-ok's counts.
type queueCounts struct{ messages, consumers uint32 }

// declareQueue runs queue.declare for session s.
func (s *session) declareQueue(m *amqp.QueueDeclare) (string, queueCounts, error) {
	name, err := s.declaredName(m)
	if err != nil {
		return "", queueCounts{}, err
	}
	want, err := queueArgs(m)
	if err != nil {
		return name, queueCounts{}, err
	}
	if m.Exclusive {
		want.Exclusive = s.id
	}
	if !m.Passive && !s.permits(accessConfigure, name) {
		return name, queueCounts{}, s.refused(m, accessConfigure, "queue", name)
	}
	if !m.Passive && (want.DLX != "" || want.DLRK != nil) {
		// What the queue dead-letters, its declarer publishes (RabbitMQ's
		// rule): write on the exchange, read on the queue.
		if !s.permits(accessWrite, want.DLX) {
			return name, queueCounts{}, s.refused(m, accessWrite, "exchange", want.DLX)
		}
		if !s.permits(accessRead, name) {
			return name, queueCounts{}, s.refused(m, accessRead, "queue", name)
		}
	}
	b := s.b
	b.adminMu.Lock()
	created := false
	err = b.parts.Defs.Update(func(tx *defs.Tx) error {
		old, err := tx.Queue(name)
		switch {
		case err == nil:
			return s.checkExisting(m, old, want)
		case !errors.Is(err, defs.ErrNotFound):
			return err
		case m.Passive:
			return amqp.ChannelException(amqp.ReplyNotFound, m, "no queue '%s' in vhost '/'", name)
		}
		created = true
		return b.createQueue(tx, name, want)
	})
	if err == nil && created {
		err = b.defsChanged()
	}
	b.adminMu.Unlock()
	if err != nil {
		return name, queueCounts{}, asException(m, err)
	}
	if created && m.Exclusive {
		s.addExclusive(name)
	}
	b.idle.touch(name)
	return name, b.counts(name), nil
}

// declaredName is the queue a declare names, or a new server-named one.
func (s *session) declaredName(m *amqp.QueueDeclare) (string, error) {
	name := m.Queue
	switch {
	case name == "" && m.Passive:
		return "", amqp.ChannelException(amqp.ReplyNotFound, m, "no queue named '' in vhost '/'")
	case name == "":
		var r [16]byte
		rand.Read(r[:])
		return "amq.gen-" + base64.RawURLEncoding.EncodeToString(r[:]), nil
	case strings.HasPrefix(name, "SYSTEM."):
		return "", reservedRefusal(m, name)
	case strings.HasPrefix(name, "amq.") && !m.Passive:
		return "", amqp.ChannelException(amqp.ReplyAccessRefused, m, "queue name '%s' contains reserved prefix 'amq.*'", name)
	case !defs.ValidName(name):
		return "", amqp.ChannelException(amqp.ReplyPreconditionFailed, m,
			"queue name '%s': qmgr's queue names are 1 to 48 of A-Z a-z 0-9 . / _ %% -", name)
	}
	return name, nil
}

// checkExisting answers a declare of a queue that exists.
func (s *session) checkExisting(m *amqp.QueueDeclare, old defs.Queue, want defs.QueueAMQP) error {
	if reserved(old) {
		return reservedRefusal(m, old.Name)
	}
	if old.AMQP != nil && old.AMQP.Exclusive != "" && old.AMQP.Exclusive != s.id {
		return amqp.ChannelException(amqp.ReplyResourceLocked, m,
			"cannot obtain exclusive access to locked queue '%s' in vhost '/'", old.Name)
	}
	if m.Passive {
		return nil
	}
	return equivalent(m, old.AMQP, want)
}

// createQueue defines queue name with AMQP attributes a and creates it in
// its structure, in the caller's definitions transaction (so that a
// failure in the CF leaves no definition). The caller holds adminMu.
func (b *Broker) createQueue(tx *defs.Tx, name string, a defs.QueueAMQP) error {
	q := defs.DefaultQueue(name)
	q.MaxDepth, q.MaxMsgL, q.DefPsist, q.Descr = amqpMaxDepth, amqpMaxMsgL, false, "declared through AMQP"
	if a.MaxLength >= 0 && a.Overflow == "reject-publish" { // the CF refuses a put to a full queue
		q.MaxDepth = min(a.MaxLength, amqpMaxDepth) // 0: no message at all (mqsc.CFAttrs)
	}
	q.AMQP = &a
	if err := q.Validate(); err != nil {
		return err
	}
	sdef, err := tx.Struct(q.CFStruct)
	if err != nil {
		return fmt.Errorf("structure %s of AMQP queues: %w", q.CFStruct, err)
	}
	if _, err := tx.Save(defs.TypeQLocal, name, q, defs.Create); err != nil {
		return err
	}
	o, st, err := b.parts.OwnerIn(sdef.Name)
	if err != nil {
		return err
	}
	attrs := mqsc.CFAttrs(q)
	if id, err := st.LookupQueue(name); err == nil {
		// Left by a delete whose messages were still held elsewhere: empty.
		var lm lockfree.Message
		for o.Get(id, lockfree.GetOptions{}, &lm) == nil {
		}
		return st.SetQueueAttrs(id, attrs)
	}
	_, err = o.CreateQueue(name, attrs)
	return err
}

// counts are a queue's message count (its depth) and consumer count (the
// handles open for input across the group); zero when it cannot be read.
func (b *Broker) counts(name string) queueCounts {
	b.routes.mu.RLock()
	q, ok := b.routes.queues[name]
	b.routes.mu.RUnlock()
	if !ok {
		if err := b.parts.Defs.View(func(tx *defs.Tx) error { var err error; q, err = tx.Queue(name); return err }); err != nil {
			return queueCounts{}
		}
	}
	s, err := b.parts.Group.Structure(q.CFStruct, false)
	if err != nil {
		return queueCounts{}
	}
	id, err := s.LookupQueue(name)
	if err != nil {
		return queueCounts{}
	}
	info, err := s.QueueInfo(id)
	if err != nil {
		return queueCounts{}
	}
	return queueCounts{messages: clamp32(info.Depth), consumers: clamp32(info.OpenIn)}
}

func clamp32(n int64) uint32 {
	if n < 0 {
		return 0
	}
	if n > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(n)
}

// deleteQueue runs queue.delete.
func (s *session) deleteQueue(m *amqp.QueueDelete) (uint32, error) {
	if !s.permits(accessConfigure, m.Queue) {
		return 0, s.refused(m, accessConfigure, "queue", m.Queue)
	}
	return s.b.removeQueue(m, m.Queue, func(q defs.Queue, c queueCounts) error {
		switch {
		case reserved(q):
			return reservedRefusal(m, m.Queue)
		case q.AMQP != nil && q.AMQP.Exclusive != "" && q.AMQP.Exclusive != s.id:
			return amqp.ChannelException(amqp.ReplyResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", m.Queue)
		case m.IfUnused && c.consumers > 0:
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "queue '%s' in vhost '/' in use", m.Queue)
		case m.IfEmpty && c.messages > 0:
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "queue '%s' in vhost '/' is not empty", m.Queue)
		}
		return nil
	})
}

// removeQueue deletes queue name if check lets it: its definition and the
// bindings to it go, this broker's consumers of it are cancelled, then its
// messages and its place in the CF go. It returns how many messages the
// queue held; a queue that is not there is no error (RabbitMQ answers
// delete-ok).
func (b *Broker) removeQueue(m amqp.Method, name string, check func(defs.Queue, queueCounts) error) (uint32, error) {
	c := b.counts(name)
	b.adminMu.Lock()
	var q defs.Queue
	err := b.parts.Defs.Update(func(tx *defs.Tx) error {
		var err error
		if q, err = tx.Queue(name); err != nil {
			if errors.Is(err, defs.ErrNotFound) {
				return errGone
			}
			return err
		}
		if err := check(q, c); err != nil {
			return err
		}
		if err := tx.DeleteBindingsOf(defs.DestQueue, name); err != nil {
			return err
		}
		return tx.Delete(defs.TypeQLocal, name)
	})
	if err == nil {
		err = b.defsChanged()
	}
	b.adminMu.Unlock()
	if errors.Is(err, errGone) {
		return 0, nil
	}
	if err != nil {
		return 0, asException(m, err)
	}
	b.cancelConsumersOf(name) // they give back what they hold: emptied next
	b.adminMu.Lock()
	defer b.adminMu.Unlock()
	return c.messages, b.removeFromCF(q)
}

// errGone: the object to delete is not there.
var errGone = errors.New("qsg: already gone")

// removeFromCF empties a queue whose definition is gone and deletes it
// from its structure. Messages still held (by consumers elsewhere) keep
// it there until a member's start or the next delete; its persistent
// messages are discarded by structure recovery, which keeps only defined
// queues. The caller holds adminMu.
func (b *Broker) removeFromCF(q defs.Queue) error {
	o, st, err := b.parts.OwnerIn(q.CFStruct)
	if err != nil {
		return nil
	}
	id, err := st.LookupQueue(q.Name)
	if err != nil {
		return nil
	}
	var lm lockfree.Message
	for o.Get(id, lockfree.GetOptions{}, &lm) == nil {
	}
	if err := o.DeleteQueue(id); err != nil && !errors.Is(err, lockfree.ErrQueueNotEmpty) {
		b.cfg.Log.Warn("amqp: queue deleted from the definitions but not from its structure", "queue", q.Name, "err", err)
	}
	return nil
}

// purgeQueue runs queue.purge: it gets every ready message (each removal
// of a persistent one logged, as a get is), and returns how many.
func (h *chanHandler) purgeQueue(m *amqp.QueuePurge) (uint32, error) {
	if !h.s.permits(accessRead, m.Queue) {
		return 0, h.s.refused(m, accessRead, "queue", m.Queue)
	}
	if err := h.s.checkOwned(m, m.Queue); err != nil {
		return 0, err
	}
	in, err := h.input(m, m.Queue)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	n := uint32(0)
	for {
		if _, err := in.Get(mqGetNow); err != nil {
			if isNoMessage(err) {
				return n, nil
			}
			return n, asException(m, err)
		}
		n++
	}
}
