package qsg

import (
	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/mq"
)

// sharedUnit is an AMQP connection's one mq connection for all its
// channels that are not transactional: their publishes, basic.get, purge
// and drop-head trimming. Every channel of a connection runs on its
// reader goroutine, so one mq connection (used by one goroutine at a
// time) serves them all, and a client with many channels holds one of the
// group's connection slots for them instead of one each. A transactional
// channel has a connection of its own (its unit of work is the client's
// transaction), and each consumer has its own (its goroutine gets and
// delivers).
//
// The connection's unit of work gathers the publishes of every channel
// that need a log write or a confirm (publish.go). It is ended, committed
// or backed out, only through end, which tells every channel that put in
// it how it ended, so that each confirms or nacks its own publishes: a
// channel's pending confirms never outlive the unit of work they wait
// for. It is ended before a method of a channel that put in it, and
// before any channel's method that uses the shared connection or depends
// on what the unit of work holds (chanHandler Handle, touchesShared),
// before a publish that is not gathered (several queues, which
// commits on its own), when it holds maxBatch publishes, and when the
// reader is idle; so a failed dead-lettering, or a publish to several
// queues refused half-way, backs out only its own puts.
//
// The reader goroutine's alone.
type sharedUnit struct {
	conn    *mq.Conn // nil until a channel needs it
	out     outputs  // its handles open for output
	batched int      // puts in the unit of work, not yet committed
	// members are the channels with puts or pending confirms in the unit
	// of work, told when it ends.
	members map[*chanHandler]bool
}

// connect is the shared connection, made when first needed.
func (u *sharedUnit) connect(s *session, m amqp.Method) (*mq.Conn, error) {
	if u.conn != nil {
		return u.conn, nil
	}
	c, err := s.b.connect(s)
	if err != nil {
		return nil, noConnection(m, err)
	}
	u.conn = c
	return c, nil
}

// join records that channel h put in the unit of work.
func (u *sharedUnit) join(h *chanHandler) {
	if u.members == nil {
		u.members = map[*chanHandler]bool{}
	}
	u.members[h] = true
}

// end commits (commit) or backs out the unit of work, if it holds
// anything, and tells its members how it ended. The error is the commit's
// or backout's; after a failed commit the unit of work is backed out.
func (u *sharedUnit) end(commit bool) error {
	if u.batched == 0 && len(u.members) == 0 {
		return nil
	}
	var err error
	if u.batched > 0 && u.conn != nil {
		if commit {
			err = u.conn.Commit()
		} else {
			err = u.conn.Backout()
		}
	}
	u.batched = 0
	committed := commit && err == nil
	members := u.members
	u.members = nil
	for h := range members {
		h.unitEnded(committed)
	}
	return err
}

// close ends the shared connection once every channel has closed (each
// ended the unit of work as it closed).
func (u *sharedUnit) close(s *session) {
	if u.conn == nil {
		return
	}
	u.end(true) // nothing is left in it: each closing channel ended it
	u.out.close()
	s.b.disconnect(s, u.conn)
	u.conn = nil
}

// outputs are handles open for output, as of the definitions counter ver:
// when the definitions change, a cached handle may be of a queue deleted
// since (whose slot another queue may now have), so they are closed.
type outputs struct {
	m   map[string]*mq.Queue
	ver uint64
}

// current closes the handles if the definitions moved past their version.
func (o *outputs) current(ver uint64) {
	if o.ver != ver {
		o.close()
		o.ver = ver
	}
}

func (o *outputs) close() {
	for n, q := range o.m {
		q.Close()
		delete(o.m, n)
	}
}

// open is the handle on queue, opened through c when not cached.
func (o *outputs) open(c *mq.Conn, m amqp.Method, queue string) (*mq.Queue, error) {
	if q, ok := o.m[queue]; ok {
		return q, nil
	}
	q, err := c.Open(queue, mq.OpenOptions{Output: true})
	if err != nil {
		return nil, asException(m, err)
	}
	if o.m == nil {
		o.m = map[string]*mq.Queue{}
	}
	o.m[queue] = q
	return q, nil
}
