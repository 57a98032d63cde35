package amqp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/shm"
)

// Conn is one client connection: the handshake, the frames, the channels.
type Conn struct {
	cfg    Config
	nc     net.Conn
	fr     *FrameReader
	broker Broker
	log    *slog.Logger
	sess   Session
	// sessOnce: the session is closed once, at the client's
	// connection.close or at the end, whichever comes first.
	sessOnce sync.Once
	user     string

	// Negotiated in connection.tune-ok; written before the first channel
	// opens, read-only afterwards.
	frameMax   uint32
	channelMax uint16
	heartbeat  time.Duration

	// lastRead and lastWrite are unix nanoseconds of the latest frame in
	// each direction: written by the reader and by writers, read by the
	// heartbeat goroutine.
	lastRead, lastWrite atomic.Int64

	w connWriter

	// pending is the bytes of unfinished contents the channels hold (the
	// reader's only): bounded by cfg.MaxPendingContent.
	pending uint64
	// idlers are the channels that asked (WhenIdle) to be told when the
	// client's frames read so far are all handled (the reader's only).
	idlers []*Channel

	// blockable: the client understands connection.blocked (its
	// capabilities said so at login). Written by the handshake, read-only
	// afterwards.
	blockable bool
	// caps are the capabilities the client announced at login (read-only
	// afterwards).
	caps Table
	// holding: the reader is held by the broker on purpose (Hold), so the
	// heartbeat monitor does not count the client's unread frames as
	// silence. Written by the reader, read by the heartbeat goroutine.
	holding atomic.Bool
	// gone is closed once the server closes the socket from another
	// goroutine than the reader (closeSocketFor, missed heartbeats), so
	// that a held reader lets go.
	gone     chan struct{}
	goneOnce sync.Once

	mu       sync.Mutex
	blocked  bool                // connection.blocked sent and not unblocked; guarded by mu
	channels map[uint16]*Channel // open and closing channels; guarded by mu
	closing  bool                // the server sent connection.close; guarded by mu
	done     chan struct{}       // closed when the connection ends
}

// connWriter serialises frames onto the socket. A writer that finds
// others waiting leaves the flush to the last of them, so that a burst of
// deliveries costs one write.
type connWriter struct {
	waiting atomic.Int32 // writers inside send, including the one holding mu
	mu      sync.Mutex
	bw      *bufio.Writer
	nc      net.Conn // what bw writes to: vectored writes go straight to it
	buf     []byte
	err     error // the first write error; every later send returns it
}

// Serve runs the connection nc until it ends, and returns why (nil when
// the client closed it cleanly). It closes nc.
func Serve(nc net.Conn, cfg Config, broker Broker, log *slog.Logger) error {
	c := &Conn{cfg: cfg.WithDefaults(), nc: nc, broker: broker, log: log,
		channels: map[uint16]*Channel{}, done: make(chan struct{}), gone: make(chan struct{})}
	if err := c.cfg.Validate(); err != nil {
		nc.Close()
		return err
	}
	c.fr = NewFrameReader(nc)
	c.w.bw, c.w.nc = bufio.NewWriterSize(nc, 64<<10), nc
	err := c.run()
	c.end()
	return err
}

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// User is the user the connection logged in as.
func (c *Conn) User() string { return c.user }

// FrameMax is the negotiated largest frame.
func (c *Conn) FrameMax() uint32 { return c.frameMax }

func (c *Conn) run() error {
	c.nc.SetDeadline(time.Now().Add(c.cfg.HandshakeTimeout))
	if err := c.handshake(); err != nil {
		return c.fail(err)
	}
	c.nc.SetDeadline(time.Time{})
	if c.heartbeat > 0 {
		go c.heartbeats()
	}
	for {
		if c.fr.Buffered() == 0 {
			c.idle()
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return c.fail(err)
		}
		c.lastRead.Store(time.Now().UnixNano())
		if err := c.dispatch(f); err != nil {
			if errors.Is(err, errClosedByClient) {
				return nil
			}
			return c.fail(err)
		}
	}
}

// errClosedByClient ends the reader after the client's connection.close.
var errClosedByClient = errors.New("amqp: closed by the client")

// fail ends the connection for err: a connection exception is sent to the
// client (connection.close, waiting for its close-ok); a frame or syntax
// error becomes one; any other error (the socket's) just ends it.
func (c *Conn) fail(err error) error {
	var ex *Exception
	switch {
	case errors.As(err, &ex):
	case errors.Is(err, ErrFrame):
		ex = ConnectionException(ReplyFrameError, nil, "%v", err)
	case errors.Is(err, ErrSyntax):
		ex = ConnectionException(ReplySyntaxError, nil, "%v", err)
	case errors.Is(err, ErrUnknownMethod):
		ex = ConnectionException(ReplyNotImplemented, nil, "%v", err)
	case errors.Is(err, ErrProtocolHeader):
		c.log.Warn("amqp: not an AMQP 0-9-1 client", "event", "connection_refused", "listener", "amqp", "reason", "protocol", "remote", c.nc.RemoteAddr(), "err", err)
		c.nc.Write(ProtocolHeader[:])
		return err
	default:
		return err
	}
	ex.Connection = true
	c.log.Warn("amqp: connection exception", "remote", c.nc.RemoteAddr(), "user", c.user, "code", ex.Code, "text", ex.Text)
	c.closeConnection(ex, errors.Is(err, ErrFrame))
	return ex
}

// closeConnection sends connection.close and waits, CloseTimeout at most,
// for the client's close-ok, discarding whatever else it sends. When the
// framing is broken (unframed bytes follow), no close-ok can be read: the
// server ends its side of the stream after the close and discards the
// client's bytes until the client closes its side (closing a socket with
// unread bytes would reset it, and the client might lose the close).
func (c *Conn) closeConnection(ex *Exception, broken bool) {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	if c.send(0, ex.connectionClose()) != nil {
		return
	}
	c.nc.SetReadDeadline(time.Now().Add(c.cfg.CloseTimeout))
	if broken {
		if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, c.nc)
		return
	}
	for {
		f, err := c.fr.ReadFrame()
		if err != nil || f.Type != FrameMethod || f.Channel != 0 {
			if err != nil {
				return
			}
			continue
		}
		switch m, _ := DecodeMethod(f.Payload); m.(type) {
		case *ConnectionCloseOk:
			return
		case *ConnectionClose:
			c.send(0, &ConnectionCloseOk{})
			return
		}
	}
}

// end closes the socket and every channel, then the session.
func (c *Conn) end() {
	c.nc.Close()
	close(c.done)
	c.closeChannels()
	c.closeSession()
}

// closeSession ends the session's work once (its Close after every
// channel's).
func (c *Conn) closeSession() {
	c.sessOnce.Do(func() {
		if c.sess != nil {
			c.sess.Close()
		}
	})
}

// closeChannels closes every channel's handler (once each).
func (c *Conn) closeChannels() {
	c.mu.Lock()
	chs := c.channels
	c.channels = map[uint16]*Channel{}
	c.mu.Unlock()
	for _, ch := range chs {
		ch.closing.Store(true)
		ch.closeHandler()
	}
}

// closeSocket closes the socket from another goroutine than the reader.
func (c *Conn) closeSocket() {
	c.goneOnce.Do(func() { close(c.gone) })
	c.nc.Close()
}

// Capable reports whether the client announced capability name (e.g.
// consumer_cancel_notify) at login.
func (c *Conn) Capable(name string) bool {
	v, _ := c.caps[name].(bool)
	return v
}

// SetBlocked sends connection.blocked with reason (or, when blocked is
// false, connection.unblocked) if the client understands it and the state
// changes. Safe from any goroutine.
func (c *Conn) SetBlocked(blocked bool, reason string) error {
	if !c.blockable {
		return nil
	}
	// Sent under c.mu: a close (which sets closing under it) cannot slip
	// between the check and the send, so nothing follows a close-ok.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.blocked == blocked || c.closing {
		return nil
	}
	c.blocked = blocked
	if blocked {
		return c.send(0, &ConnectionBlocked{Reason: reason})
	}
	return c.send(0, &ConnectionUnblocked{})
}

// Hold runs wait on the reader goroutine (from a ChannelHandler's Handle)
// while the broker holds the client back on purpose, e.g. a publisher
// while the queues are nearly full: the client's frames stay unread (TCP
// pushes back) without counting as missed heartbeats. wait must return
// once gone is closed (the server closed the connection).
//
// Before it waits, the channels that asked to be told when the reader is
// idle are (Idler): the work of what was read so far (acks, gathered
// publishes) must not wait with it, or the hold might never end.
func (c *Conn) Hold(wait func(gone <-chan struct{})) {
	c.idle()
	c.holding.Store(true)
	defer func() {
		c.lastRead.Store(time.Now().UnixNano())
		c.holding.Store(false)
	}()
	wait(c.gone)
}

// heartbeats sends a heartbeat when nothing was written for half the
// interval, and disconnects a client that sent nothing for two.
func (c *Conn) heartbeats() {
	t := time.NewTicker(c.heartbeat / 2)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			if !c.holding.Load() && now.UnixNano()-c.lastRead.Load() > int64(2*c.heartbeat) {
				c.log.Warn("amqp: client missed two heartbeats; disconnecting", "remote", c.nc.RemoteAddr(), "user", c.user)
				c.closeSocket()
				return
			}
			if now.UnixNano()-c.lastWrite.Load() >= int64(c.heartbeat/2) {
				c.write(func(b []byte) ([]byte, error) { return AppendHeartbeat(b), nil })
			}
		}
	}
}

// write appends frames with f and writes them, flushing unless another
// writer is waiting to add more.
func (c *Conn) write(f func(b []byte) ([]byte, error)) error {
	w := &c.w
	w.waiting.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.err
	if err == nil {
		var b []byte
		if b, err = guardedAppend(f, w.buf[:0]); err == nil {
			w.buf = b
			_, err = w.bw.Write(b)
		} else if !errors.Is(err, shm.ErrFault) {
			err = ConnectionException(ReplyInternalError, nil, "%v", err)
		}
	}
	if w.waiting.Add(-1) == 0 && err == nil {
		err = w.bw.Flush()
	}
	if err != nil && w.err == nil && !isException(err) {
		w.err = err
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return err
}

// idle tells the channels that asked that every frame read so far is
// handled: the reader is about to wait for the client.
func (c *Conn) idle() {
	for len(c.idlers) > 0 {
		chs := c.idlers
		c.idlers = nil
		for _, ch := range chs {
			ch.askedIdle = false
			if i, ok := ch.h.(Idler); ok && !ch.closing.Load() {
				c.Corked(i.Idle)
			}
		}
	}
}

// Corked runs f, whose sends (on any channel of the connection) are then
// flushed together when it returns: a consumer writing a batch of
// deliveries, or confirms, costs one write(2) instead of one per frame.
func (c *Conn) Corked(f func()) {
	w := &c.w
	w.waiting.Add(1)
	defer func() {
		if w.waiting.Add(-1) != 0 {
			return // a writer still inside flushes when it leaves
		}
		w.mu.Lock()
		if w.err == nil && w.waiting.Load() == 0 {
			if err := w.bw.Flush(); err != nil {
				w.err = err
			}
		}
		w.mu.Unlock()
	}()
	f()
}

// writeVectored writes the frames f appends and then body, a sequence of
// frame headers, pieces of a caller's body and frame ends (bodyVectors),
// with one vectored write and without copying the pieces: what is
// buffered goes first.
func (c *Conn) writeVectored(f func(b []byte) ([]byte, error), body net.Buffers) error {
	w := &c.w
	w.waiting.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.waiting.Add(-1)
	err := w.err
	if err == nil {
		var b []byte
		if b, err = f(w.buf[:0]); err != nil {
			return ConnectionException(ReplyInternalError, nil, "%v", err)
		}
		w.buf = b
		if err = w.bw.Flush(); err == nil {
			// The body's pieces are views of shared mappings: over TLS
			// they are copied in user space, and fault on a file
			// truncated under them (plain TCP's writev returns EFAULT).
			err = shm.Guard(func() error {
				vecs := append(net.Buffers{b}, body...)
				_, err := vecs.WriteTo(w.nc)
				return err
			})
		}
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	c.lastWrite.Store(time.Now().UnixNano())
	return err
}

// guardedAppend runs f, which may copy a delivery's body from a shared
// mapping into b: a fault (the file truncated under the mapping) is
// shm.ErrFault, and the connection ends.
func guardedAppend(f func(b []byte) ([]byte, error), b []byte) (out []byte, err error) {
	err = shm.Guard(func() error {
		var ferr error
		out, ferr = f(b)
		return ferr
	})
	return out, err
}

func isException(err error) bool {
	var ex *Exception
	return errors.As(err, &ex)
}

// send writes method m on channel.
func (c *Conn) send(channel uint16, m Method) error {
	return c.write(func(b []byte) ([]byte, error) { return AppendMethodFrame(b, channel, m) })
}

// handshake runs the connection's negotiation, from the protocol header to
// connection.open-ok.
func (c *Conn) handshake() error {
	if err := c.fr.ReadProtocolHeader(); err != nil {
		return err
	}
	if err := c.send(0, c.start()); err != nil {
		return err
	}
	ok, err := expect[ConnectionStartOk](c)
	if err != nil {
		return err
	}
	if err := c.login(ok); err != nil {
		return err
	}
	if err := c.tune(); err != nil {
		return err
	}
	open, err := expect[ConnectionOpen](c)
	if err != nil {
		return err
	}
	sess, err := c.broker.Session(c, c.user, open.VirtualHost)
	if err != nil {
		if isException(err) {
			return err
		}
		return ConnectionException(ReplyInternalError, open, "%v", err)
	}
	c.sess = sess
	return c.send(0, &ConnectionOpenOk{})
}

func (c *Conn) start() *ConnectionStart {
	m := &ConnectionStart{VersionMajor: 0, VersionMinor: 9,
		ServerProperties: Table{
			"product": c.cfg.Product, "version": c.cfg.Version, "platform": "Go",
			"capabilities": Table{
				"publisher_confirms": true, "exchange_exchange_bindings": true,
				"basic.nack": true, "consumer_cancel_notify": true, "connection.blocked": true,
				"authentication_failure_close": true, "per_consumer_qos": true,
			},
		},
		Mechanisms: "PLAIN AMQPLAIN", Locales: "en_US"}
	if c.cfg.Node != "" {
		m.ServerProperties["node"] = c.cfg.Node
	}
	if c.cfg.Cluster != "" {
		m.ServerProperties["cluster_name"] = c.cfg.Cluster
	}
	return m
}

// expect reads the next method on channel 0, which must be a P; any
// other frame is out of order (heartbeats are skipped).
func expect[T any, P interface {
	*T
	Method
}](c *Conn) (P, error) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		c.lastRead.Store(time.Now().UnixNano())
		if f.Type == FrameHeartbeat {
			continue
		}
		want := P(new(T)).Name()
		if f.Type != FrameMethod || f.Channel != 0 {
			return nil, ConnectionException(ReplyUnexpectedFrame, nil, "frame type %d on channel %d during the handshake, expected %s", f.Type, f.Channel, want)
		}
		m, err := DecodeMethod(f.Payload)
		if err != nil {
			return nil, err
		}
		p, ok := m.(P)
		if !ok {
			return nil, ConnectionException(ReplyCommandInvalid, m, "expected %s, got %s", want, m.Name())
		}
		return p, nil
	}
}

// login checks the credentials of connection.start-ok.
func (c *Conn) login(ok *ConnectionStartOk) error {
	user, pass, err := credentials(ok.Mechanism, ok.Response)
	if err != nil {
		return ConnectionException(ReplyAccessRefused, ok, "%v", err)
	}
	if err := c.broker.Login(user, pass, c.nc.RemoteAddr()); err != nil {
		c.log.Warn("amqp: login refused", "event", "connection_refused", "listener", "amqp", "reason", "login", "remote", c.nc.RemoteAddr(), "user", user, "err", err)
		return ConnectionException(ReplyAccessRefused, ok, "login refused for user '%s'", user)
	}
	c.user = user
	c.caps, _ = ok.ClientProperties["capabilities"].(Table)
	c.blockable, _ = c.caps["connection.blocked"].(bool)
	return nil
}

// credentials reads a user and password from a start-ok response: PLAIN
// ("authzid\0user\0password") or AMQPLAIN (a field table without its
// length, with LOGIN and PASSWORD).
func credentials(mechanism, response string) (user, pass string, err error) {
	switch mechanism {
	case "PLAIN":
		parts := strings.Split(response, "\x00")
		if len(parts) != 3 {
			return "", "", errors.New("malformed PLAIN response")
		}
		return parts[1], parts[2], nil
	case "AMQPLAIN":
		raw := make([]byte, 4, 4+len(response))
		n := len(response)
		raw[0], raw[1], raw[2], raw[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		d := decoder{b: append(raw, response...)}
		t := d.table()
		u, ok1 := t["LOGIN"].(string)
		p, ok2 := t["PASSWORD"].(string)
		if d.end("AMQPLAIN response") != nil || !ok1 || !ok2 {
			return "", "", errors.New("malformed AMQPLAIN response")
		}
		return u, p, nil
	}
	return "", "", fmt.Errorf("unknown mechanism %q (PLAIN or AMQPLAIN)", mechanism)
}

// tune offers the limits and takes the client's: at most the server's
// (0 from the client meaning the server's), heartbeat as the client says.
func (c *Conn) tune() error {
	hb := uint16(c.cfg.Heartbeat / time.Second)
	if err := c.send(0, &ConnectionTune{ChannelMax: c.cfg.ChannelMax, FrameMax: c.cfg.FrameMax, Heartbeat: hb}); err != nil {
		return err
	}
	ok, err := expect[ConnectionTuneOk](c)
	if err != nil {
		return err
	}
	switch {
	case ok.FrameMax != 0 && ok.FrameMax < FrameMinSize:
		return ConnectionException(ReplyNotAllowed, ok, "frame_max %d is under the minimum %d", ok.FrameMax, FrameMinSize)
	case ok.FrameMax > c.cfg.FrameMax:
		return ConnectionException(ReplyNotAllowed, ok, "frame_max %d is over the server's %d", ok.FrameMax, c.cfg.FrameMax)
	case ok.ChannelMax > c.cfg.ChannelMax:
		return ConnectionException(ReplyNotAllowed, ok, "channel_max %d is over the server's %d", ok.ChannelMax, c.cfg.ChannelMax)
	}
	c.frameMax, c.channelMax = c.cfg.FrameMax, c.cfg.ChannelMax
	if ok.FrameMax != 0 {
		c.frameMax = ok.FrameMax
	}
	if ok.ChannelMax != 0 {
		c.channelMax = ok.ChannelMax
	}
	c.heartbeat = time.Duration(ok.Heartbeat) * time.Second
	c.fr.SetMax(c.frameMax)
	return nil
}
