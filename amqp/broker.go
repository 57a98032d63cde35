package amqp

import "net"

// Broker is what a connection needs from the queue manager behind it:
// logins, and the work of its channels. The connection (Conn) speaks the
// protocol; the broker maps methods onto queues.
type Broker interface {
	// Login checks a user's password. remote is the client's address (a
	// broker may refuse a user from anywhere but loopback). An error
	// refuses the connection with ACCESS_REFUSED.
	Login(user, password string, remote net.Addr) error
	// Session starts the work of a connection that opened vhost as user.
	// An *Exception refuses the open with its code (530 for an unknown
	// vhost).
	Session(c *Conn, user, vhost string) (Session, error)
}

// Session is an open connection's work.
type Session interface {
	// OpenChannel is channel.open on ch.
	OpenChannel(ch *Channel) (ChannelHandler, error)
	// Close ends the connection's work: every channel's Close has run.
	Close()
}

// ChannelHandler is an open channel's work. The connection calls Handle
// from its reader goroutine, one method at a time, in the order the client
// sent them; Close once, when the channel closed (either side asked) or the
// connection ended, after the last Handle.
type ChannelHandler interface {
	// Handle runs a method the client sent (with its content for
	// basic.publish). Channel open and close are the connection's; every
	// other method of the channel comes here. An *Exception closes the
	// channel or the connection as it says; any other error closes the
	// connection with INTERNAL_ERROR.
	Handle(m Method, content *Content) error
	// Close gives back what the channel holds (its unacknowledged
	// deliveries go back to their queues).
	Close()
}

// Content is a method's content: its header and body.
type Content struct {
	Header ContentHeader
	Body   []byte
}

// Idler is a ChannelHandler that gathers work across methods: the
// connection calls Idle on the reader goroutine, after the channel asked
// with Channel.WhenIdle, once every frame read so far is handled. Sends
// in Idle are flushed together.
type Idler interface {
	Idle()
}
