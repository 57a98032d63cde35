package channel

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Inbound configures a channel initiator's listeners (its port and the
// generic port): where they listen and what they admit before a
// partner has said who it is.
type Inbound struct {
	// Bind is the IP address both listeners bind; default DefaultBind
	// (loopback: nothing outside the host reaches the group unless the
	// operator says so). "0.0.0.0" or "::" listens on every interface.
	Bind string
	// MaxConns caps the connections each listener holds at once: channel
	// instances and connections still in their handshake alike. A
	// connection over the cap is closed as soon as it is accepted, before
	// a byte is read, and counted (group.CounterInboundRefused). Default
	// DefaultMaxInbound, at most 65535.
	MaxConns int
	// HelloTimeout is how long an inbound connection has, from when it is
	// accepted, to complete its TLS handshake and HELLO; one that has not
	// is closed and counted (group.CounterInboundTimedOut). Default
	// DefaultHelloTimeout, at most an hour.
	HelloTimeout time.Duration
}

// Defaults of Inbound.
const (
	DefaultBind         = "127.0.0.1"
	DefaultMaxInbound   = 256
	DefaultHelloTimeout = 10 * time.Second
)

// Validate applies the defaults and checks the configuration.
func (c *Inbound) Validate() error {
	if c.Bind == "" {
		c.Bind = DefaultBind
	}
	if net.ParseIP(c.Bind) == nil {
		return fmt.Errorf("%w: bind address %q is not an IP address (0.0.0.0 or :: for every interface)", ErrConfig, c.Bind)
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxInbound
	}
	if c.MaxConns < 1 || c.MaxConns > 65535 {
		return fmt.Errorf("%w: at most %d inbound connections per listener: want 1..65535", ErrConfig, c.MaxConns)
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	if c.HelloTimeout < 0 || c.HelloTimeout > time.Hour {
		return fmt.Errorf("%w: HELLO deadline %v not in 0..1h", ErrConfig, c.HelloTimeout)
	}
	return nil
}

// refusals counts the inbound connections a listener refuses before their
// HELLO (in the group's counters, for DISPLAY QMGR) and logs them, at most
// one line a second per counter, each saying how many went unlogged
// since the last: a flood of connections must not flood the log.
type refusals struct {
	mu       sync.Mutex
	last     map[int]time.Time // by counter: when a refusal was last logged
	unlogged map[int]int       // by counter: refusals since then
}

// note counts a refusal in group counter c and logs msg with args.
func (f *refusals) note(ci *Chinit, c int, msg string, args ...any) {
	ci.mu.Lock()
	total, err := ci.g.AddCounter(ci.main.AdminOwner(), c, 1)
	ci.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		f.last, f.unlogged = map[int]time.Time{}, map[int]int{}
	}
	now := time.Now()
	if now.Sub(f.last[c]) < time.Second {
		f.unlogged[c]++
		return
	}
	args = append(args, "group_total", total, "unlogged_since_last", f.unlogged[c])
	if err != nil {
		args = append(args, "count_err", err)
	}
	ci.log.Warn(msg, args...)
	f.last[c], f.unlogged[c] = now, 0
}
