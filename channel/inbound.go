package channel

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/qmgr/qmgr/internal/mqconn"
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

// withDefaults is c with the defaults documented on its fields applied.
func (c Inbound) withDefaults() Inbound {
	if c.Bind == "" {
		c.Bind = DefaultBind
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxInbound
	}
	if c.HelloTimeout == 0 {
		c.HelloTimeout = DefaultHelloTimeout
	}
	return c
}

// Validate checks the configuration as the listeners will use it (with
// its defaults applied); it changes nothing.
func (c Inbound) Validate() error {
	c = c.withDefaults()
	switch {
	case net.ParseIP(c.Bind) == nil:
		return fmt.Errorf("%w: bind address %q is not an IP address (0.0.0.0 or :: for every interface)", ErrConfig, c.Bind)
	case c.MaxConns < 1 || c.MaxConns > 65535:
		return fmt.Errorf("%w: at most %d inbound connections per listener: want 1..65535", ErrConfig, c.MaxConns)
	case c.HelloTimeout < 0 || c.HelloTimeout > time.Hour:
		return fmt.Errorf("%w: HELLO deadline %v not in 0..1h", ErrConfig, c.HelloTimeout)
	}
	return nil
}

// refusals counts the inbound connections refused before their partner
// authenticated (in the group's counters, for DISPLAY QMGR) and logs them
// through a token bucket per counter: a burst of refusalBurst lines, then
// one every refusalEvery, each saying how many went unlogged since the
// last. A flood of connections must not flood the log; the first
// refusals, which an operator looks for, are all there.
type refusals struct {
	mu       sync.Mutex
	tokens   map[int]float64   // by counter: lines that may be logged now
	last     map[int]time.Time // by counter: when tokens was last refilled
	unlogged map[int]int       // by counter: refusals not logged since the last line
}

const (
	refusalBurst = 20
	refusalEvery = 200 * time.Millisecond
)

// note counts a refusal in group counter c and logs msg with args.
func (f *refusals) note(ci *Chinit, c int, msg string, args ...any) {
	ci.mu.Lock()
	total, err := ci.g.AddCounter(mqconn.Of(ci.main).Admin, c, 1)
	ci.mu.Unlock()
	ok, unlogged := f.allow(c, time.Now())
	if !ok {
		return
	}
	args = append(args, "group_total", total, "unlogged_since_last", unlogged)
	if err != nil {
		args = append(args, "count_err", err)
	}
	ci.log.Warn(msg, args...)
}

// allow takes a token of counter c's bucket at now: ok when the refusal
// may be logged, with how many were not since the last that was.
func (f *refusals) allow(c int, now time.Time) (ok bool, unlogged int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tokens == nil {
		f.tokens, f.last, f.unlogged = map[int]float64{}, map[int]time.Time{}, map[int]int{}
	}
	if t, seen := f.last[c]; seen {
		f.tokens[c] = min(refusalBurst, f.tokens[c]+float64(now.Sub(t))/float64(refusalEvery))
	} else {
		f.tokens[c] = refusalBurst
	}
	f.last[c] = now
	if f.tokens[c] < 1 {
		f.unlogged[c]++
		return false, 0
	}
	f.tokens[c]--
	unlogged, f.unlogged[c] = f.unlogged[c], 0
	return true, unlogged
}
