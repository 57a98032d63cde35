package unit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	crand "crypto/rand"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
)

// Sentinel errors of package unit.
var (
	// ErrDiverged: a replica's handler asked for a choice the primary did
	// not log, or of another kind: the handler is not deterministic.
	ErrDiverged = errors.New("unit: replica diverged from the primary")
	// ErrLogGap: the log does not continue where the replica is.
	ErrLogGap = errors.New("unit: gap in the unit's log")
	// ErrRole: the role record does not let this replica go on.
	ErrRole = errors.New("unit: role refused")
	// ErrConfig: the service or the replica's configuration is unusable.
	ErrConfig = errors.New("unit: configuration")
)

// Handler is the application: deterministic given its inputs and what its
// Ctx returns.
type Handler interface {
	// Handle processes one input. It reads no clock, randomness,
	// environment, file or queue directly: each such choice goes through
	// ctx. Its outputs go through ctx.Send. An error (or a panic) drops
	// its Sends, and the input goes to the input queue's BOQNAME, else to
	// the DEADQ behind a dead-letter header; the state is what Handle
	// left.
	Handle(ctx *Ctx, in *Input) error
	// Snapshot writes the whole state; called between inputs.
	Snapshot(w io.Writer) error
	// Restore reads a state Snapshot wrote, into a fresh handler.
	Restore(r io.Reader) error
}

// Input is an input message and its place in the unit's order.
type Input struct {
	LSN         uint64
	MsgID       [24]byte
	CorrelID    [24]byte
	Format      string
	Priority    int
	Persistent  bool
	PutTime     time.Time
	ReplyToQ    string
	ReplyToQMgr string
	Properties  []byte
	Body        []byte
	// Source is, for an input another unit sent, that unit's id (xxhash64
	// of its name), generation and the input's sequence number among the
	// outputs it sent to this unit's input queue (the output identity in
	// MsgID, design 3.5); zero for any other input. Inputs from one source
	// reach Handle once each and in sequence (source.go).
	Source logrec.Source
}

// output is one message a handler sent, numbered for its destination.
type output struct {
	lsn  uint64
	dest string
	seq  uint64
	msg  mq.Message
}

// Ctx is what a handler gets with each input: the non-deterministic
// choices it may make (logged by the primary, replayed by secondaries)
// and the sending of outputs.
type Ctx struct {
	lsn, epoch uint64
	replay     bool            // a secondary: choices come from the log
	choices    []logrec.Choice // recorded (primary) or logged (secondary)
	next       int             // the next logged choice to replay
	rng        *rand.Rand      // seeded by the input's SEED choice, at the first Rand
	sends      []output        // buffered; kept only if Handle returns nil
	diverged   error
	log        *slog.Logger
}

// LSN is the input's number in the unit's order, the same in every
// replica.
func (c *Ctx) LSN() uint64 { return c.lsn }

// Epoch is the epoch of the log message that carried the input (the
// primary's when it processed it): the same in every replica.
func (c *Ctx) Epoch() uint64 { return c.epoch }

// Log is for diagnostics only, never state.
func (c *Ctx) Log() *slog.Logger { return c.log }

// choice returns the next choice of kind k: made by make on the primary
// (and recorded), taken from the log on a secondary.
func (c *Ctx) choice(k logrec.ChoiceKind, make func() []byte) []byte {
	if !c.replay {
		d := make()
		c.choices = append(c.choices, logrec.Choice{Kind: k, Data: d})
		return d
	}
	if c.next >= len(c.choices) {
		c.divergedf("input %d asked for choice %d (%v), the primary made %d", c.lsn, c.next+1, k, len(c.choices))
		return make() // a value of the right shape; the replica stops after Handle
	}
	ch := c.choices[c.next]
	c.next++
	if ch.Kind != k {
		c.divergedf("input %d: choice %d is %v on the primary, %v here", c.lsn, c.next, ch.Kind, k)
		return make()
	}
	return ch.Data
}

func (c *Ctx) divergedf(format string, args ...any) {
	if c.diverged == nil {
		c.diverged = fmt.Errorf("%w: %s", ErrDiverged, fmt.Sprintf(format, args...))
	}
}

// Now is the time, a logged choice: each call is one choice.
func (c *Ctx) Now() time.Time {
	d := c.choice(logrec.ChoiceTime, func() []byte {
		return binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
	})
	return time.Unix(0, int64(binary.LittleEndian.Uint64(d))).UTC()
}

// Rand is a generator seeded by one logged 16-byte choice per input,
// drawn at the first call.
func (c *Ctx) Rand() *rand.Rand {
	if c.rng == nil {
		seed := c.choice(logrec.ChoiceSeed, func() []byte {
			b := make([]byte, 16)
			crand.Read(b)
			return b
		})
		c.rng = rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed), binary.LittleEndian.Uint64(seed[8:])))
	}
	return c.rng
}

// Choose returns f's result on the primary (and logs it); a secondary
// returns the logged bytes and never calls f.
func (c *Ctx) Choose(f func() []byte) []byte {
	return c.choice(logrec.ChoiceBytes, func() []byte {
		if c.replay {
			return nil
		}
		return f()
	})
}

// Send buffers m for queue; it is output once, by the sender, if Handle
// returns nil. Its MsgID is replaced by the output's identity.
func (c *Ctx) Send(queue string, m *mq.Message) {
	mm := *m
	mm.Body = append([]byte(nil), m.Body...)
	mm.Properties = append([]byte(nil), m.Properties...)
	c.sends = append(c.sends, output{lsn: c.lsn, dest: queue, msg: mm})
}
