package qsg

import (
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/amqp/access"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
)

// Login checks a user's password (amqp.Broker).
func (b *Broker) Login(user, password string, remote net.Addr) error {
	err := b.auth.login(user, password, remote) // the connection logs a refusal
	if err != nil {
		b.count.refused.Add(1)
	}
	return err
}

// Session starts a connection's work (amqp.Broker): only vhost "/".
func (b *Broker) Session(c *amqp.Conn, user, vhost string) (amqp.Session, error) {
	if vhost != "/" {
		b.count.refused.Add(1)
		return nil, amqp.ConnectionException(amqp.ReplyNotAllowed, nil, "vhost '%s' not found (qmgr has only '/')", vhost)
	}
	u, err := b.auth.user(user)
	if err != nil {
		b.count.refused.Add(1)
		return nil, amqp.ConnectionException(amqp.ReplyAccessRefused, nil, "user '%s': %v", user, err)
	}
	if !access.MayOpen(u, vhost) {
		b.count.refused.Add(1)
		return nil, amqp.ConnectionException(amqp.ReplyNotAllowed, nil, "access to vhost '%s' refused for user '%s'", vhost, user)
	}
	b.count.sessions.Add(1)
	n := b.sessions.Add(1)
	b.live.Add(1)
	b.flow.add(c)
	return &session{b: b, c: c, user: user, u: u, vhost: vhost, id: b.sessionID(n)}, nil
}

// session is an open AMQP connection's work.
type session struct {
	b     *Broker
	c     *amqp.Conn
	user  string
	u     defs.AMQPUser // as the connection opened: its permissions
	vhost string
	// id names the connection group-wide (Broker.sessionID): the owner of
	// its exclusive queues.
	id string

	mu        sync.Mutex
	exclusive []string // exclusive queues it declared, deleted at Close
	// mqConns counts its mq connections (Broker.connect): the shared one,
	// transactional channels' and consumers'.
	mqConns atomic.Int64
	// unit is the mq connection its channels outside a transaction share
	// (unit.go): the reader goroutine's.
	unit sharedUnit
}

// OpenChannel is channel.open (amqp.Session).
func (s *session) OpenChannel(ch *amqp.Channel) (amqp.ChannelHandler, error) {
	s.b.count.channels.Add(1)
	return newChanHandler(s, ch), nil
}

// Close deletes the connection's exclusive queues (amqp.Session).
func (s *session) Close() {
	defer s.b.live.Done()
	defer s.b.count.sessions.Add(-1)
	s.b.flow.remove(s.c)
	s.unit.close(s) // every channel has closed
	s.mu.Lock()
	qs := s.exclusive
	s.exclusive = nil
	s.mu.Unlock()
	for _, q := range qs {
		// Only if it is still this connection's: it may have been deleted
		// and declared again, shared, by another.
		_, err := s.b.removeQueue(nil, q, func(d defs.Queue, _ queueCounts) error {
			if d.AMQP == nil || d.AMQP.Exclusive != s.id {
				return errGone
			}
			return nil
		})
		if err != nil {
			s.b.cfg.Log.Warn("amqp: exclusive queue not deleted at connection close", "queue", q, "err", err)
		}
	}
}

func (s *session) addExclusive(q string) {
	s.mu.Lock()
	s.exclusive = append(s.exclusive, q)
	s.mu.Unlock()
}

// permits reports whether the session's user may access resource.
func (s *session) permits(what, resource string) bool {
	return access.Permits(s.u, s.vhost, what, resource)
}

// refused is the ACCESS_REFUSED of a missing permission.
func (s *session) refused(m amqp.Method, access, kind, name string) error {
	return amqp.ChannelException(amqp.ReplyAccessRefused, m, "access to %s '%s' in vhost '%s' refused for user '%s' (%s)", kind, name, s.vhost, s.user, access)
}

// checkOwned refuses work on another connection's exclusive queue.
func (s *session) checkOwned(m amqp.Method, queue string) error {
	b := s.b
	if err := b.routes.current(b.parts.Group, b.parts.Defs); err != nil {
		return asException(m, err)
	}
	q, ok := b.routes.queues[queue]
	b.routes.mu.RUnlock()
	if !ok {
		return amqp.ChannelException(amqp.ReplyNotFound, m, "no queue '%s' in vhost '/'", queue)
	}
	if reserved(q) {
		return reservedRefusal(m, queue)
	}
	if q.AMQP != nil && q.AMQP.Exclusive != "" && q.AMQP.Exclusive != s.id {
		return amqp.ChannelException(amqp.ReplyResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in vhost '/'", queue)
	}
	return nil
}

// reserved reports whether a queue is the group's own, out of AMQP's
// reach whatever the user's permissions: SYSTEM.* queues (channel sync
// queues, dead-letter queue...) and transmission queues, which the
// channels' receivers keep from their partners too.
func reserved(q defs.Queue) bool {
	return strings.HasPrefix(q.Name, "SYSTEM.") || q.Usage == "XMITQ"
}

func reservedRefusal(m amqp.Method, queue string) error {
	return amqp.ChannelException(amqp.ReplyAccessRefused, m, "queue '%s' is the group's own (SYSTEM.* or a transmission queue)", queue)
}

// asException turns an error into what the client is told: an exception
// as it is; a missing object 404; a full queue or a refused put 406 on
// the channel; anything else an INTERNAL_ERROR of the connection.
func asException(m amqp.Method, err error) error {
	if err == nil {
		return nil
	}
	var ex *amqp.Exception
	if errors.As(err, &ex) {
		return ex
	}
	var me *mq.Error
	switch {
	case errors.Is(err, defs.ErrNotFound):
		return amqp.ChannelException(amqp.ReplyNotFound, m, "%v", err)
	case errors.Is(err, defs.ErrBadValue), errors.Is(err, defs.ErrBadName), errors.Is(err, defs.ErrExists):
		return amqp.ChannelException(amqp.ReplyPreconditionFailed, m, "%v", err)
	case errors.As(err, &me) && me.Reason == mq.RCUnknownObjectName:
		return amqp.ChannelException(amqp.ReplyNotFound, m, "%v", err)
	}
	return amqp.ConnectionException(amqp.ReplyInternalError, m, "%v", err)
}
