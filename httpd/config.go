package httpd

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrConfig is an invalid server configuration.
var ErrConfig = errors.New("httpd: invalid configuration")

// MinTokenLen is the shortest token Validate accepts: a token guesses
// must not find.
const MinTokenLen = 16

// Config configures a member's HTTP server.
type Config struct {
	// Addr is the address to listen on, host:port (e.g.
	// "127.0.0.1:9100"; port 0 picks a free one). Empty: no server (the
	// default).
	Addr string
	// Token, when set, allows the actions that change state (POST
	// /api/channels/{name}/start and /stop) to a request that carries it
	// as "Authorization: Bearer <token>". Empty (the default): no action
	// is allowed to anyone. At least MinTokenLen bytes.
	Token string
	// Registry is what /metrics exposes (promhttp.HandlerFor); nil: a
	// fresh, empty registry.
	Registry *prometheus.Registry
	// ReadHeaderTimeout bounds how long a client may take to send a
	// request's headers; default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds how long a client may take to send a whole
	// request; default 10s.
	ReadTimeout time.Duration
	// WriteTimeout bounds how long an answer may take to be written,
	// from the end of the request's headers; default 30s.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request; default 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (larger: 431; net/http
	// allows 4 KiB beyond it); default 16 KiB.
	MaxHeaderBytes int
	// CommandWait is how long a request that runs an MQSC command on the
	// member (a display or an action) waits while another request's
	// command runs: HTTP requests run one command at a time, so that a
	// flood of them cannot crowd out the member's own admin commands;
	// one that waits longer gets 503. Default 5s.
	CommandWait time.Duration
	// Logger receives the server's errors; default slog.Default().
	Logger *slog.Logger
}

// Enabled reports whether the configuration asks for a server.
func (c Config) Enabled() bool { return c.Addr != "" }

// WithDefaults is c with the defaults documented on its fields applied.
func (c Config) WithDefaults() Config {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 5 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 16 << 10
	}
	if c.CommandWait == 0 {
		c.CommandWait = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate checks the configuration as New uses it (with its defaults
// applied); it changes nothing.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if !c.Enabled() {
		if c.Token != "" {
			return fmt.Errorf("%w: a token without an address (--http-token needs --http)", ErrConfig)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("%w: address %q: %v", ErrConfig, c.Addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%w: address %q: port %q is not 0 to 65535", ErrConfig, c.Addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		return fmt.Errorf("%w: address %q: host %q is neither an IP address nor localhost", ErrConfig, c.Addr, host)
	}
	if c.Token != "" && len(c.Token) < MinTokenLen {
		return fmt.Errorf("%w: the token has %d bytes (at least %d)", ErrConfig, len(c.Token), MinTokenLen)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read header timeout", c.ReadHeaderTimeout}, {"read timeout", c.ReadTimeout}, {"write timeout", c.WriteTimeout}, {"idle timeout", c.IdleTimeout}, {"command wait", c.CommandWait}} {
		if d.v < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrConfig, d.name, d.v)
		}
	}
	if c.MaxHeaderBytes < 1024 {
		return fmt.Errorf("%w: max header bytes %d (at least 1024)", ErrConfig, c.MaxHeaderBytes)
	}
	return nil
}
