package defs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// AMQP object types: exchanges and bindings (package amqp/qsg routes
// through them). AMQP queues are QLOCALs with an AMQP part (QueueAMQP).
const (
	TypeExchange Type = "EXCHANGE"
	TypeBinding  Type = "BINDING"
)

// Exchange kinds.
const (
	ExchangeDirect  = "direct"
	ExchangeFanout  = "fanout"
	ExchangeTopic   = "topic"
	ExchangeHeaders = "headers"
)

// MaxExchangeName is the longest exchange name (AMQP's shortstr).
const MaxExchangeName = 255

// Exchange is an AMQP exchange declared by a client or by DEFINE EXCHANGE.
// The default exchange ("") and amq.direct, amq.fanout, amq.topic and
// amq.headers are built in and never stored.
type Exchange struct {
	Name       string    `json:"EXCHANGE"`
	Kind       string    `json:"EXTYPE"`  // direct, fanout, topic, headers
	Durable    bool      `json:"DURABLE"` // kept across restarts of the whole group (all of them are: the flag is what declare compares)
	AutoDelete bool      `json:"AUTODEL"` // deleted when its last binding as a source goes
	Internal   bool      `json:"INTERNAL"`
	Args       []byte    `json:"ARGS,omitempty"` // the declare's arguments, an encoded AMQP field table
	Created    time.Time `json:"-"`
	Altered    time.Time `json:"-"`
}

// BuiltinExchanges are the exchanges every group has, by name.
var BuiltinExchanges = map[string]string{
	"":            ExchangeDirect,
	"amq.direct":  ExchangeDirect,
	"amq.fanout":  ExchangeFanout,
	"amq.topic":   ExchangeTopic,
	"amq.headers": ExchangeHeaders,
	"amq.match":   ExchangeHeaders,
}

// ValidExchangeName reports whether s may name an exchange: 1 to 255 of
// A-Z a-z 0-9 - _ . : (as RabbitMQ).
func ValidExchangeName(s string) bool {
	if len(s) == 0 || len(s) > MaxExchangeName {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// Validate checks an exchange definition.
func (e Exchange) Validate() error {
	switch {
	case !ValidExchangeName(e.Name):
		return fmt.Errorf("%w: exchange name %q (1 to 255 of A-Z a-z 0-9 - _ . :)", ErrBadName, e.Name)
	case e.Kind != ExchangeDirect && e.Kind != ExchangeFanout && e.Kind != ExchangeTopic && e.Kind != ExchangeHeaders:
		return fmt.Errorf("%w: EXTYPE(%s) is not direct, fanout, topic or headers", ErrBadValue, e.Kind)
	case len(e.Args) > 64<<10:
		return fmt.Errorf("%w: exchange arguments of %d bytes (at most 65536)", ErrBadValue, len(e.Args))
	}
	return nil
}

// Binding destination kinds.
const (
	DestQueue    = "QUEUE"
	DestExchange = "EXCHANGE"
)

// Binding binds a destination (a queue or an exchange) to a source
// exchange with a routing key and, for headers exchanges, arguments. Its
// object name is its Name: the same binding declared twice is one.
type Binding struct {
	Source   string    `json:"SOURCE"`
	DestKind string    `json:"DESTTYPE"` // QUEUE or EXCHANGE
	Dest     string    `json:"DEST"`
	Key      string    `json:"KEY"`
	Args     []byte    `json:"ARGS,omitempty"` // an encoded AMQP field table
	Created  time.Time `json:"-"`
	Altered  time.Time `json:"-"`
}

// Name is the binding's object name: its source, destination, a digest of
// its arguments and its key, so that the bindings of one source list
// together (Bindings).
func (b Binding) Name() string {
	sum := sha256.Sum256(b.Args)
	return b.Source + "|" + b.DestKind + ":" + b.Dest + "|" + hex.EncodeToString(sum[:8]) + "|" + b.Key
}

// Validate checks a binding.
func (b Binding) Validate() error {
	switch {
	case b.Source != "" && !ValidExchangeName(b.Source):
		return fmt.Errorf("%w: binding source %q", ErrBadName, b.Source)
	case b.DestKind == DestQueue && !ValidName(b.Dest):
		return fmt.Errorf("%w: binding destination queue %q", ErrBadName, b.Dest)
	case b.DestKind == DestExchange && !ValidExchangeName(b.Dest):
		return fmt.Errorf("%w: binding destination exchange %q", ErrBadName, b.Dest)
	case b.DestKind != DestQueue && b.DestKind != DestExchange:
		return fmt.Errorf("%w: DESTTYPE(%s) is not QUEUE or EXCHANGE", ErrBadValue, b.DestKind)
	case len(b.Key) > 255:
		return fmt.Errorf("%w: routing key of %d bytes (at most 255)", ErrBadValue, len(b.Key))
	case len(b.Args) > 64<<10:
		return fmt.Errorf("%w: binding arguments of %d bytes (at most 65536)", ErrBadValue, len(b.Args))
	}
	return nil
}

// QueueAMQP is the AMQP part of a queue declared through AMQP (or given
// AMQP attributes by DEFINE QLOCAL): what queue.declare compares and what
// the AMQP broker applies beyond the queue's MQ attributes. x-max-length
// is the queue's MAXDEPTH, which the CF enforces; x-overflow says whether a
// publish to a full queue is refused (reject-publish) or drops the oldest
// message (drop-head, the default).
type QueueAMQP struct {
	Durable    bool `json:"DURABLE"`
	AutoDelete bool `json:"AUTODEL"` // deleted when its last consumer cancels
	// Exclusive names the connection that owns an exclusive queue
	// (member, incarnation and connection number); empty when not
	// exclusive. The queue goes when that connection ends, or when its
	// member or listener is found dead.
	Exclusive  string `json:"EXCLUSIVE,omitempty"`
	MessageTTL int64  `json:"MSGTTL"`  // x-message-ttl in ms; -1 none
	Expires    int64  `json:"EXPIRES"` // x-expires in ms; -1 none
	MaxLength  int64  `json:"MAXLEN"`  // x-max-length; -1 none
	Overflow   string `json:"OVERFLOW,omitempty"`
	// MaxPriority is x-max-priority (0: none): AMQP priorities above it
	// count as it; MQ's ten priorities order the queue.
	MaxPriority int     `json:"MAXPRTY"`
	DLX         string  `json:"DLX,omitempty"`  // x-dead-letter-exchange
	DLRK        *string `json:"DLRK,omitempty"` // x-dead-letter-routing-key; nil: the message's own
	Args        []byte  `json:"ARGS,omitempty"` // the declare's arguments, an encoded AMQP field table
}

// Validate checks the AMQP attributes.
func (a QueueAMQP) Validate() error {
	switch {
	case a.MessageTTL < -1:
		return fmt.Errorf("%w: x-message-ttl %d", ErrBadValue, a.MessageTTL)
	case a.Expires < -1 || a.Expires == 0:
		return fmt.Errorf("%w: x-expires %d (at least 1 ms)", ErrBadValue, a.Expires)
	case a.MaxLength < -1:
		return fmt.Errorf("%w: x-max-length %d", ErrBadValue, a.MaxLength)
	case a.Overflow != "" && a.Overflow != "reject-publish" && a.Overflow != "drop-head":
		return fmt.Errorf("%w: x-overflow %q (reject-publish or drop-head)", ErrBadValue, a.Overflow)
	case a.MaxPriority < 0 || a.MaxPriority > 255:
		return fmt.Errorf("%w: x-max-priority %d (0 to 255)", ErrBadValue, a.MaxPriority)
	case a.DLX != "" && !ValidExchangeName(a.DLX):
		return fmt.Errorf("%w: x-dead-letter-exchange %q", ErrBadName, a.DLX)
	case a.DLRK != nil && len(*a.DLRK) > 255:
		return fmt.Errorf("%w: x-dead-letter-routing-key of %d bytes", ErrBadValue, len(*a.DLRK))
	case len(a.Args) > 64<<10:
		return fmt.Errorf("%w: queue arguments of %d bytes (at most 65536)", ErrBadValue, len(a.Args))
	}
	return nil
}

// Exchange loads an exchange definition (not the built-in ones).
func (t *Tx) Exchange(name string) (Exchange, error) {
	e := Exchange{}
	c, a, err := t.Load(TypeExchange, name, &e)
	e.Created, e.Altered = c, a
	return e, err
}

// Exchanges loads the exchanges matching pattern.
func (t *Tx) Exchanges(pattern string) ([]Exchange, error) {
	return loadAll(t, TypeExchange, pattern, t.Exchange)
}

// Binding loads a binding by its Name.
func (t *Tx) Binding(name string) (Binding, error) {
	b := Binding{}
	c, a, err := t.Load(TypeBinding, name, &b)
	b.Created, b.Altered = c, a
	return b, err
}

// AllBindings loads every binding.
func (t *Tx) AllBindings() ([]Binding, error) {
	return loadAll(t, TypeBinding, "*", t.Binding)
}

// Bindings loads the bindings whose source is exchange source.
func (t *Tx) Bindings(source string) ([]Binding, error) {
	all, err := loadAll(t, TypeBinding, source+"|*", t.Binding)
	out := all[:0]
	for _, b := range all {
		if b.Source == source {
			out = append(out, b)
		}
	}
	return out, err
}

// BindingsTo loads the bindings whose destination is the queue or exchange
// dest (kind DestQueue or DestExchange).
func (t *Tx) BindingsTo(kind, dest string) ([]Binding, error) {
	all, err := t.AllBindings()
	out := all[:0]
	for _, b := range all {
		if b.DestKind == kind && b.Dest == dest {
			out = append(out, b)
		}
	}
	return out, err
}

// DeleteBindingsOf deletes the bindings that name queue or exchange name
// (kind DestQueue or DestExchange): those whose destination it is and, for
// an exchange, those whose source it is, each once (a binding of an
// exchange to itself is both). Deleting a queue or an exchange takes its
// bindings with it.
func (t *Tx) DeleteBindingsOf(kind, name string) error {
	bs, err := t.BindingsTo(kind, name)
	if err != nil {
		return err
	}
	if kind == DestExchange {
		from, err := t.Bindings(name)
		if err != nil {
			return err
		}
		bs = append(bs, from...)
	}
	done := map[string]bool{}
	for _, b := range bs {
		if n := b.Name(); !done[n] {
			done[n] = true
			if err := t.Delete(TypeBinding, n); err != nil {
				return err
			}
		}
	}
	return nil
}
