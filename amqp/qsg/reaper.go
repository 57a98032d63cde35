package qsg

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/procid"
)

// The reaper deletes the queues nobody will use again:
//   - an exclusive queue whose connection is gone without deleting it (its
//     listener or member died): its owner names the member's incarnation
//     and the listener's process, and one of them no longer runs;
//   - a queue with x-expires that had no consumer, and was neither
//     declared nor got from through this broker, for that long (each
//     broker judges by what it sees: the first to see it unused long
//     enough deletes it).
//
// Auto-delete queues go when their last consumer cancels (consumer.finish).

// sessionID names a connection group-wide: member, member incarnation,
// listener process (procid), pid namespace and a number.
func (b *Broker) sessionID(n uint64) string {
	return fmt.Sprintf("%s/%d/%s/%d/%d", b.root.QMgr(), b.root.Member().Incarnation, b.self, procid.SelfNS(), n)
}

// ownerGone reports whether the connection an exclusive queue's owner
// names can no longer exist.
func ownerGone(owner string, peers []group.Peer) bool {
	f := strings.Split(owner, "/")
	if len(f) != 5 {
		return false // not one of ours: leave it
	}
	inc, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return false
	}
	active := false
	for _, p := range peers {
		if p.Name == f[0] && p.State == group.PeerActive && p.Incarnation == inc {
			active = true
		}
	}
	if !active {
		return true
	}
	var id procid.ID
	if _, err := fmt.Sscanf(f[2], "%d@%d", &id.Pid, &id.Start); err != nil {
		return false
	}
	ns, err := strconv.ParseUint(f[3], 10, 64)
	return err == nil && ns == procid.SelfNS() && !procid.Alive(id)
}

// idleness tracks, per queue with x-expires, since when this broker saw
// it unused.
type idleness struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// touch records a use of queue now.
func (i *idleness) touch(queue string) {
	i.mu.Lock()
	if i.since == nil {
		i.since = map[string]time.Time{}
	}
	i.since[queue] = time.Now()
	i.mu.Unlock()
}

// idle says how long queue has been unused, counting from now when first
// asked.
func (i *idleness) idle(queue string, used bool, now time.Time) time.Duration {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.since == nil {
		i.since = map[string]time.Time{}
	}
	t, ok := i.since[queue]
	if used || !ok {
		i.since[queue] = now
		return 0
	}
	return now.Sub(t)
}

// reap deletes the queues doomed now (every ReapInterval).
func (b *Broker) reap() {
	for _, d := range b.doomed() {
		name := d.Name
		// Checked again in the delete's transaction: the queue may have
		// been deleted and declared again, or used, meanwhile.
		still := func(q defs.Queue, c queueCounts) error {
			switch {
			case q.AMQP == nil:
				return errGone
			case d.AMQP.Exclusive != "" && q.AMQP.Exclusive == d.AMQP.Exclusive:
				return nil
			case d.AMQP.Expires > 0 && q.AMQP.Expires > 0 && q.Created.Equal(d.Created) && c.consumers == 0:
				return nil
			}
			return errGone
		}
		if _, err := b.removeQueue(nil, name, still); err != nil {
			b.cfg.Log.Warn("amqp: queue not reaped", "queue", name, "err", err)
		} else {
			b.cfg.Log.Info("amqp: queue reaped", "queue", name)
		}
	}
}

// doomed lists the queues to reap now.
func (b *Broker) doomed() []defs.Queue {
	if err := b.routes.current(b.parts.Group, b.parts.Defs); err != nil {
		return nil
	}
	var cands []defs.Queue
	for _, q := range b.routes.queues {
		if q.AMQP != nil && (q.AMQP.Exclusive != "" || q.AMQP.Expires > 0) {
			cands = append(cands, q)
		}
	}
	b.routes.mu.RUnlock()
	if len(cands) == 0 {
		return nil
	}
	peers, err := b.parts.Group.Peers()
	if err != nil {
		return nil
	}
	now := time.Now()
	var out []defs.Queue
	for _, q := range cands {
		a := q.AMQP
		switch {
		case a.Exclusive != "" && ownerGone(a.Exclusive, peers):
			q.AMQP = &defs.QueueAMQP{Exclusive: a.Exclusive}
			out = append(out, q)
		case a.Expires > 0 && b.idle.idle(q.Name, b.counts(q.Name).consumers > 0, now) >= time.Duration(a.Expires)*time.Millisecond:
			q.AMQP = &defs.QueueAMQP{Expires: a.Expires}
			out = append(out, q)
		}
	}
	return out
}

// autoDelete deletes an auto-delete queue once its last consumer went.
func (b *Broker) autoDelete(queue string) {
	b.routes.mu.RLock()
	q, ok := b.routes.queues[queue]
	b.routes.mu.RUnlock()
	if !ok || q.AMQP == nil || !q.AMQP.AutoDelete {
		return
	}
	_, err := b.removeQueue(nil, queue, func(_ defs.Queue, c queueCounts) error {
		if c.consumers > 0 {
			return amqp.ChannelException(amqp.ReplyPreconditionFailed, nil, "in use")
		}
		return nil
	})
	if err != nil && !isException(err) {
		b.cfg.Log.Warn("amqp: auto-delete queue not deleted", "queue", queue, "err", err)
	}
}

func isException(err error) bool {
	_, ok := err.(*amqp.Exception)
	return ok
}
