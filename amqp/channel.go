package amqp

import (
	"errors"
	"sync"
	"sync/atomic"
)

// Channel is one open channel of a connection.
type Channel struct {
	id uint16
	c  *Conn
	h  ChannelHandler

	// closing: the server sent channel.close and waits for close-ok;
	// nothing else is sent on the channel. Set under c.mu by whoever
	// closes, read by senders.
	closing   atomic.Bool
	closeOnce sync.Once

	// askedIdle: on the connection's idlers list (the reader's only).
	askedIdle bool

	// The content being received (the reader goroutine's only): the
	// method it belongs to, its header once read, its body so far.
	pending Method
	header  *ContentHeader
	body    []byte
}

// ID is the channel's number.
func (ch *Channel) ID() uint16 { return ch.id }

// Conn is the channel's connection.
func (ch *Channel) Conn() *Conn { return ch.c }

// Send sends method m on the channel. It returns ErrChannelClosed once the
// channel is closing or closed.
func (ch *Channel) Send(m Method) error {
	if ch.closing.Load() {
		return ErrChannelClosed
	}
	return ch.c.send(ch.id, m)
}

// SendContent sends m with its content header and body, the body given in
// pieces (written in order, cut into frames of at most frame_max).
func (ch *Channel) SendContent(m Method, h *ContentHeader, body ...[]byte) error {
	if ch.closing.Load() {
		return ErrChannelClosed
	}
	c := ch.c
	return c.write(func(b []byte) ([]byte, error) {
		b, err := AppendMethodFrame(b, ch.id, m)
		if err != nil {
			return b, err
		}
		if b, err = AppendHeaderFrame(b, ch.id, h); err != nil {
			return b, err
		}
		return AppendBodyFrames(b, ch.id, c.frameMax, body...), nil
	})
}

// SendContentProps is SendContent with the content header's properties
// given encoded (as AppendProperties writes them): a broker sends a stored
// message's properties without decoding them.
func (ch *Channel) SendContentProps(m Method, props []byte, body ...[]byte) error {
	if ch.closing.Load() {
		return ErrChannelClosed
	}
	c := ch.c
	size := 0
	for _, p := range body {
		size += len(p)
	}
	head := func(b []byte) ([]byte, error) {
		b, err := AppendMethodFrame(b, ch.id, m)
		if err != nil {
			return b, err
		}
		return appendRawHeaderFrame(b, ch.id, uint64(size), props), nil
	}
	if size >= VectoredBodySize {
		return c.writeVectored(head, bodyVectors(ch.id, c.frameMax, body...))
	}
	return c.write(func(b []byte) ([]byte, error) {
		b, err := head(b)
		return AppendBodyFrames(b, ch.id, c.frameMax, body...), err
	})
}

// VectoredBodySize is the body size from which SendContentProps writes the
// body's pieces to the socket as they are (a vectored write) rather than
// copying them into the connection's buffer.
const VectoredBodySize = 64 << 10

// WhenIdle asks, from the channel's Handle, that the handler's Idle (it
// must implement Idler) run once every frame the connection has read is
// handled, before the reader waits for more: a handler can gather the
// work of a burst of methods (commit a batch of publishes, confirm them
// with one ack).
func (ch *Channel) WhenIdle() {
	if !ch.askedIdle {
		ch.askedIdle = true
		ch.c.idlers = append(ch.c.idlers, ch)
	}
}

// Fail closes the channel with a channel exception, or the connection
// with a connection exception, from any goroutine (a consumer's).
func (ch *Channel) Fail(ex *Exception) {
	if ex.Connection {
		ch.c.closeSocketFor(ex)
		return
	}
	ch.c.closeChannel(ch, ex)
}

// ErrChannelClosed: a send on a channel that is closing or closed.
var ErrChannelClosed = errors.New("amqp: channel closed")

// closeHandler calls the handler's Close once.
func (ch *Channel) closeHandler() {
	ch.closeOnce.Do(func() {
		if ch.h != nil {
			ch.h.Close()
		}
	})
}
