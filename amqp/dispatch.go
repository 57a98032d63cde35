package amqp

import "errors"

// dispatch handles one frame from the client after the handshake.
func (c *Conn) dispatch(f Frame) error {
	switch {
	case f.Type == FrameHeartbeat:
		if f.Channel != 0 {
			return ConnectionException(ReplyFrameError, nil, "heartbeat on channel %d", f.Channel)
		}
		return nil
	case f.Channel == 0:
		return c.connectionFrame(f)
	case f.Channel > c.channelMax:
		return ConnectionException(ReplyChannelError, nil, "channel %d is over channel_max %d", f.Channel, c.channelMax)
	}
	c.mu.Lock()
	ch := c.channels[f.Channel]
	c.mu.Unlock()
	if ch == nil {
		return c.openChannel(f)
	}
	if ch.closing.Load() {
		return c.closingFrame(ch, f)
	}
	if f.Type != FrameMethod || ch.pending != nil {
		return c.contentFrame(ch, f)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		return err
	}
	return c.channelMethod(ch, m)
}

// connectionFrame handles a frame on channel 0.
func (c *Conn) connectionFrame(f Frame) error {
	if f.Type != FrameMethod {
		return ConnectionException(ReplyUnexpectedFrame, nil, "frame type %d on channel 0", f.Type)
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		return err
	}
	switch m.(type) {
	case *ConnectionClose:
		// Nothing more is sent but close-ok (a client library may fail on a
		// connection.blocked it gets while closing).
		c.mu.Lock()
		c.closing = true
		c.mu.Unlock()
		// The channels' work is given back before close-ok, as for
		// channel.close: a client that closes and then, on another
		// connection, consumes or deletes the queue finds it done.
		c.closeChannels()
		c.closeSession()
		c.send(0, &ConnectionCloseOk{})
		return errClosedByClient
	case *ConnectionCloseOk:
		return errClosedByClient
	}
	return ConnectionException(ReplyCommandInvalid, m, "%s is not allowed on an open connection", m.Name())
}

// openChannel handles a frame on a channel that is not open: only
// channel.open may come.
func (c *Conn) openChannel(f Frame) error {
	var m Method
	if f.Type == FrameMethod {
		var err error
		if m, err = DecodeMethod(f.Payload); err != nil {
			return err
		}
	}
	if _, ok := m.(*ChannelOpen); !ok {
		return ConnectionException(ReplyChannelError, m, "channel %d is not open (expected channel.open)", f.Channel)
	}
	ch := &Channel{id: f.Channel, c: c}
	h, err := c.sess.OpenChannel(ch)
	if err != nil {
		if isException(err) {
			return err
		}
		return ConnectionException(ReplyInternalError, m, "open channel %d: %v", f.Channel, err)
	}
	ch.h = h
	c.mu.Lock()
	c.channels[f.Channel] = ch
	c.mu.Unlock()
	return c.send(f.Channel, &ChannelOpenOk{})
}

// closingFrame handles a frame on a channel the server is closing: all is
// discarded until the client's close-ok (or its own close, crossing ours).
func (c *Conn) closingFrame(ch *Channel, f Frame) error {
	if f.Type != FrameMethod {
		return nil
	}
	m, err := DecodeMethod(f.Payload)
	if err != nil {
		return err
	}
	switch m.(type) {
	case *ChannelCloseOk:
		c.forget(ch)
	case *ChannelClose:
		c.forget(ch)
		return c.send(ch.id, &ChannelCloseOk{})
	}
	return nil
}

// channelMethod handles a method on an open channel with no content
// pending.
func (c *Conn) channelMethod(ch *Channel, m Method) error {
	switch m.(type) {
	case *ChannelOpen:
		return ConnectionException(ReplyChannelError, m, "channel %d is already open", ch.id)
	case *ChannelClose:
		c.mu.Lock()
		ch.closing.Store(true)
		c.mu.Unlock()
		ch.closeHandler()
		c.forget(ch)
		return c.send(ch.id, &ChannelCloseOk{})
	case *ChannelCloseOk:
		return ConnectionException(ReplyCommandInvalid, m, "channel %d was not closing", ch.id)
	}
	if class, _ := m.ClassMethod(); class == 10 {
		return ConnectionException(ReplyCommandInvalid, m, "%s on channel %d", m.Name(), ch.id)
	}
	if m.HasContent() {
		ch.pending, ch.header, ch.body = m, nil, nil
		return nil
	}
	return c.handle(ch, m, nil)
}

// contentFrame handles a content header or body frame, or a method frame
// that interrupts a content.
func (c *Conn) contentFrame(ch *Channel, f Frame) error {
	switch {
	case ch.pending == nil:
		return ConnectionException(ReplyUnexpectedFrame, nil, "content frame on channel %d without a method that carries content", ch.id)
	case f.Type == FrameHeader && ch.header == nil:
		h, err := DecodeContentHeader(f.Payload)
		if err != nil {
			return err
		}
		if class, _ := ch.pending.ClassMethod(); h.ClassID != class {
			return ConnectionException(ReplyFrameError, ch.pending, "content header of class %d for %s", h.ClassID, ch.pending.Name())
		}
		if h.BodySize > c.cfg.MaxMessageSize {
			m := ch.pending
			ch.pending = nil
			c.closeChannel(ch, ChannelException(ReplyPreconditionFailed, m, "message size %d is larger than the maximum %d", h.BodySize, c.cfg.MaxMessageSize))
			return nil
		}
		ch.header = &h
		ch.body = nil // grown as the body arrives (growBody), counted in c.pending
	case f.Type == FrameBody && ch.header != nil:
		if uint64(len(ch.body))+uint64(len(f.Payload)) > ch.header.BodySize {
			return ConnectionException(ReplyFrameError, ch.pending, "body frames carry more than the %d bytes of the content header", ch.header.BodySize)
		}
		if err := c.growBody(ch, len(f.Payload)); err != nil {
			return err
		}
		ch.body = append(ch.body, f.Payload...)
	default:
		return ConnectionException(ReplyUnexpectedFrame, ch.pending, "frame type %d on channel %d while receiving the content of %s", f.Type, ch.id, ch.pending.Name())
	}
	if uint64(len(ch.body)) < ch.header.BodySize {
		return nil
	}
	m, content := ch.pending, &Content{Header: *ch.header, Body: ch.body}
	c.pending -= uint64(cap(ch.body))
	ch.pending, ch.header, ch.body = nil, nil, nil
	return c.handle(ch, m, content)
}

// growBody makes room in ch.body for n more bytes: what a channel's
// unfinished content holds (its capacity, reserved or filled) counts
// against MaxPendingContent, so a client announcing large contents on
// many channels reserves nothing it has not sent.
func (c *Conn) growBody(ch *Channel, n int) error {
	need := len(ch.body) + n
	if need <= cap(ch.body) {
		return nil
	}
	size := uint64(max(need, min(2*cap(ch.body), int(ch.header.BodySize)), 4096))
	size = min(size, ch.header.BodySize)
	if c.pending+size-uint64(cap(ch.body)) > c.cfg.MaxPendingContent {
		return ConnectionException(ReplyResourceError, ch.pending, "unfinished contents on this connection's channels exceed %d bytes", c.cfg.MaxPendingContent)
	}
	c.pending += size - uint64(cap(ch.body))
	b := make([]byte, len(ch.body), size)
	copy(b, ch.body)
	ch.body = b
	return nil
}

// handle gives m to the channel's handler and acts on its error.
func (c *Conn) handle(ch *Channel, m Method, content *Content) error {
	err := ch.h.Handle(m, content)
	if err == nil {
		return nil
	}
	var ex *Exception
	if !errors.As(err, &ex) {
		return ConnectionException(ReplyInternalError, m, "%v", err)
	}
	if ex.Connection {
		return ex
	}
	c.closeChannel(ch, ex)
	return nil
}

// closeChannel sends channel.close for ex (once) and gives back what the
// channel holds; the channel is forgotten at the client's close-ok.
func (c *Conn) closeChannel(ch *Channel, ex *Exception) {
	c.mu.Lock()
	already := ch.closing.Swap(true)
	c.mu.Unlock()
	if already {
		return
	}
	c.log.Info("amqp: channel exception", "remote", c.nc.RemoteAddr(), "user", c.user, "channel", ch.id, "code", ex.Code, "text", ex.Text)
	c.send(ch.id, &ChannelClose{ReplyCode: ex.Code, ReplyText: ex.Text, ClassID: ex.ClassID, MethodID: ex.MethodID})
	ch.closeHandler()
}

// forget removes a closed channel, freeing its number.
func (c *Conn) forget(ch *Channel) {
	c.pending -= uint64(cap(ch.body)) // the reader's: forget runs on it
	ch.body = nil
	c.mu.Lock()
	if c.channels[ch.id] == ch {
		delete(c.channels, ch.id)
	}
	c.mu.Unlock()
}

// closeSocketFor ends the connection from another goroutine than the
// reader: it sends connection.close for ex and closes the socket (the
// reader then ends the connection's work).
func (c *Conn) closeSocketFor(ex *Exception) {
	c.log.Warn("amqp: connection exception", "remote", c.nc.RemoteAddr(), "user", c.user, "code", ex.Code, "text", ex.Text)
	c.send(0, ex.connectionClose())
	c.closeSocket()
}
