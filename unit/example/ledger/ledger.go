// Package ledger is the example recovery unit (docs/design/recovery-units.md,
// section 10): a ledger of accounts that applies transfers "id from to
// amount", stamps each with ctx.Now() and a random id from ctx.Rand(), and
// emits one confirmation per transfer (accepted or rejected) to CONFIRM:
// "id lsn epoch unixnano randomid ok". Apply is the handler's core without
// a Ctx, for reference runs.
package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit"
)

// Opening is the balance of an account never seen.
const Opening = 1000

// Confirm is the queue confirmations are sent to.
const Confirm = "CONFIRM"

// Ledger is the handler's state.
type Ledger struct {
	Balances map[string]int64
	Applied  int
	// Stamps folds every transfer's time and random id: replicas agree
	// only if they replayed the primary's choices.
	Stamps uint64
	// Clock is the clock as read directly (time.Now) by a ledger in
	// nondeterministic mode Nondet "state": replicas never agree on it.
	Clock int64 `json:",omitempty"`
	// Nondet makes the handler break the rules on purpose, to show that
	// divergence is caught (design 5.6; not state): "" none, NondetOutput
	// its confirmations carry time.Now() instead of ctx.Now(), NondetState
	// its state keeps time.Now() (Clock), its outputs stay deterministic.
	Nondet string `json:"-"`
}

// Nondeterministic modes of a Ledger (Nondet).
const (
	NondetOutput = "output"
	NondetState  = "state"
)

// New is an empty ledger.
func New() *Ledger { return &Ledger{Balances: map[string]int64{}} }

// Transfer is one input.
type Transfer struct {
	ID       int64
	From, To string
	Amount   int64
}

// ParseTransfer reads "id from to amount".
func ParseTransfer(b []byte) (Transfer, error) {
	var t Transfer
	if _, err := fmt.Sscanf(string(b), "%d %s %s %d", &t.ID, &t.From, &t.To, &t.Amount); err != nil {
		return t, fmt.Errorf("ledger: transfer %q: %w", b, err)
	}
	if t.Amount < 0 {
		return t, fmt.Errorf("ledger: transfer %q: negative amount", b)
	}
	return t, nil
}

// Balance is account a's balance.
func (l *Ledger) Balance(a string) int64 {
	if b, ok := l.Balances[a]; ok {
		return b
	}
	return Opening
}

// Apply applies t stamped with now and rid; it reports whether the
// balance allowed it.
func (l *Ledger) Apply(t Transfer, now int64, rid uint64) bool {
	ok := l.Balance(t.From) >= t.Amount
	if ok {
		l.Balances[t.From] = l.Balance(t.From) - t.Amount
		l.Balances[t.To] = l.Balance(t.To) + t.Amount
	}
	l.Applied++
	l.Stamps = l.Stamps*31 + uint64(now) ^ rid
	return ok
}

// Handle applies one transfer and confirms it.
func (l *Ledger) Handle(ctx *unit.Ctx, in *unit.Input) error {
	t, err := ParseTransfer(in.Body)
	if err != nil {
		return err
	}
	now := ctx.Now().UnixNano()
	rid := ctx.Rand().Uint64()
	switch l.Nondet {
	case NondetOutput:
		now = time.Now().UnixNano() // wrong on purpose: the clock read directly
	case NondetState:
		l.Clock = time.Now().UnixNano() // wrong on purpose
	}
	ok := l.Apply(t, now, rid)
	ctx.Send(Confirm, &mq.Message{Body: fmt.Appendf(nil, "%d %d %d %d %d %v", t.ID, ctx.LSN(), ctx.Epoch(), now, rid, ok)})
	return nil
}

// Confirmation is one parsed confirmation.
type Confirmation struct {
	ID, LSN, Epoch uint64
	Now            int64
	RID            uint64
	OK             bool
}

// ParseConfirmation reads a confirmation's body.
func ParseConfirmation(b []byte) (Confirmation, error) {
	var c Confirmation
	if _, err := fmt.Sscanf(string(b), "%d %d %d %d %d %t", &c.ID, &c.LSN, &c.Epoch, &c.Now, &c.RID, &c.OK); err != nil {
		return c, fmt.Errorf("ledger: confirmation %q: %w", b, err)
	}
	return c, nil
}

// Snapshot writes the whole state.
func (l *Ledger) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(l) }

// Restore reads a state Snapshot wrote.
func (l *Ledger) Restore(r io.Reader) error {
	n := New()
	if err := json.NewDecoder(r).Decode(n); err != nil {
		return fmt.Errorf("ledger: restore: %w", err)
	}
	if n.Balances == nil {
		n.Balances = map[string]int64{}
	}
	n.Nondet = l.Nondet
	*l = *n
	return nil
}

// Digest is the state as Snapshot writes it (maps in key order).
func (l *Ledger) Digest() string {
	var b bytes.Buffer
	l.Snapshot(&b)
	return b.String()
}
