package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/qmgr/qmgr/amqp"
	"github.com/qmgr/qmgr/internal/reuseport"
)

// Accept retry backoff (see the package doc).
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Listener is a listening AMQP listener: Listen opens its ports, Serve
// accepts on them until its context ends.
type Listener struct {
	cfg     Config
	broker  amqp.Broker
	log     *slog.Logger
	tls     *tls.Config // nil: plain TCP
	own     net.Listener
	generic net.Listener

	quit     chan struct{}  // closed when Serve stops: accept backoffs end
	acceptWG sync.WaitGroup // the accept loops
	connWG   sync.WaitGroup // the connections' goroutines

	mu     sync.Mutex
	conns  map[net.Conn]struct{} // tracked sockets (raw, under any TLS); guarded by mu
	closed bool                  // Serve is stopping: nothing more is tracked; guarded by mu

	refused refusals
}

// Run listens on cfg's ports and serves AMQP clients with broker until
// ctx ends; then it closes the listeners and every connection and waits
// for them. It returns an error if it cannot listen (or cfg is invalid),
// nil after ctx ended.
func Run(ctx context.Context, cfg Config, broker amqp.Broker, log *slog.Logger) error {
	l, err := Listen(cfg, broker, log)
	if err != nil {
		return err
	}
	return l.Serve(ctx)
}

// Listen validates cfg, loads its TLS certificate and opens its ports.
func Listen(cfg Config, broker amqp.Broker, log *slog.Logger) (*Listener, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	var tc *tls.Config
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("listen: TLS certificate: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	own, err := listenOn(cfg.Addr, false)
	if err != nil {
		return nil, err
	}
	generic, err := listenOn(cfg.GenericAddr, true)
	if err != nil {
		if own != nil {
			own.Close()
		}
		return nil, err
	}
	return newListener(cfg, broker, log, tc, own, generic), nil
}

// listenOn opens addr ("": none, a nil listener); shared for the generic
// port.
func listenOn(addr string, shared bool) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	host, port, err := splitAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %s: %w", addr, err)
	}
	l, err := reuseport.Listen(host, port, shared)
	if err != nil {
		return nil, fmt.Errorf("listen: %s: %w", addr, err)
	}
	return l, nil
}

// newListener serves on own and generic (either may be nil); cfg has
// its defaults.
func newListener(cfg Config, broker amqp.Broker, log *slog.Logger, tc *tls.Config, own, generic net.Listener) *Listener {
	return &Listener{cfg: cfg, broker: broker, log: log, tls: tc, own: own, generic: generic,
		quit: make(chan struct{}), conns: map[net.Conn]struct{}{}}
}

// Addr is the member's port's address (nil for none); GenericAddr the
// generic port's.
func (l *Listener) Addr() net.Addr        { return addrOf(l.own) }
func (l *Listener) GenericAddr() net.Addr { return addrOf(l.generic) }

func addrOf(l net.Listener) net.Addr {
	if l == nil {
		return nil
	}
	return l.Addr()
}

// Conns is how many connections the listener holds.
func (l *Listener) Conns() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Serve accepts until ctx ends, then closes the listeners and every
// connection, waits for them, and returns nil. Call it once.
func (l *Listener) Serve(ctx context.Context) error {
	ls := l.listeners()
	for _, ln := range ls {
		l.acceptWG.Add(1)
		go l.accept(ln)
	}
	l.log.Info("amqp listener started", "addr", l.Addr(), "generic_addr", l.GenericAddr(), "tls", l.tls != nil,
		"max_connections", l.cfg.MaxConnections)
	<-ctx.Done()
	l.shutdown(ls)
	l.log.Info("amqp listener stopped")
	return nil
}

func (l *Listener) listeners() []net.Listener {
	var ls []net.Listener
	for _, ln := range []net.Listener{l.own, l.generic} {
		if ln != nil {
			ls = append(ls, ln)
		}
	}
	return ls
}

// shutdown closes the listeners and waits for the accept loops (nothing
// new is tracked after), then closes every connection and waits for
// their goroutines.
func (l *Listener) shutdown(ls []net.Listener) {
	close(l.quit)
	for _, ln := range ls {
		ln.Close()
	}
	l.acceptWG.Wait()
	l.mu.Lock()
	l.closed = true
	n := len(l.conns)
	for nc := range l.conns {
		nc.Close()
	}
	l.mu.Unlock()
	if n > 0 {
		l.log.Info("amqp listener: closing its connections", "connections", n)
	}
	l.connWG.Wait()
}

// accept accepts on ln until it is closed. Other errors (EMFILE: out of
// descriptors) are logged and retried after a backoff.
func (l *Listener) accept(ln net.Listener) {
	defer l.acceptWG.Done()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			l.log.Warn("amqp listener: accept failed; retrying", "listener", ln.Addr(), "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.quit:
				return
			}
			continue
		}
		backoff = 0
		if !l.track(nc) {
			continue
		}
		l.connWG.Add(1)
		go l.serveConn(nc)
	}
}

// track records nc, or refuses it (closes it) when the listener holds
// its most connections or is stopping.
func (l *Listener) track(nc net.Conn) bool {
	l.mu.Lock()
	full, closed := len(l.conns) >= l.cfg.MaxConnections, l.closed
	if !full && !closed {
		l.conns[nc] = struct{}{}
	}
	l.mu.Unlock()
	if full || closed {
		nc.Close()
		if full {
			l.refused.note(l.log, nc.RemoteAddr(), l.cfg.MaxConnections)
		}
		return false
	}
	return true
}

func (l *Listener) untrack(nc net.Conn) {
	l.mu.Lock()
	delete(l.conns, nc)
	l.mu.Unlock()
}

// serveConn runs one connection: its TLS handshake, bounded by the
// handshake timeout, then amqp.Serve.
func (l *Listener) serveConn(nc net.Conn) {
	defer l.connWG.Done()
	defer l.untrack(nc)
	defer nc.Close()
	c := nc
	if l.tls != nil {
		tc := tls.Server(nc, l.tls)
		tc.SetDeadline(time.Now().Add(l.cfg.AMQP.HandshakeTimeout))
		if err := tc.Handshake(); err != nil {
			l.log.Warn("amqp listener: TLS handshake failed", "event", "connection_refused", "listener", "amqp", "reason", "tls_handshake",
				"remote", nc.RemoteAddr(), "err", err)
			return
		}
		c = tc
	}
	err := amqp.Serve(c, l.cfg.AMQP, l.broker, l.log)
	l.log.Debug("amqp connection ended", "remote", nc.RemoteAddr(), "err", err)
}

// refusals logs connections refused over the cap: the first at once,
// then at most one line a second with the count refused since.
type refusals struct {
	mu     sync.Mutex
	logged time.Time // when the last line was logged
	since  int       // refused since then, unlogged
}

func (r *refusals) note(log *slog.Logger, remote net.Addr, maxConns int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.since++
	if time.Since(r.logged) < time.Second {
		return
	}
	log.Warn("amqp listener: connection refused: the listener holds its most connections",
		"event", "connection_refused", "listener", "amqp", "reason", "max_connections", "remote", remote, "max_connections", maxConns, "refused", r.since)
	r.logged, r.since = time.Now(), 0
}
