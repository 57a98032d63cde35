// Package ledger is the example recovery unit (docs/design/recovery-units.md,
// section 10): a ledger of accounts that applies transfers "id from to
// amount", stamps each with ctx.Now() and a random id from ctx.Rand(), and
// emits one confirmation per transfer (accepted or rejected) to CONFIRM:
// "id lsn epoch unixnano randomid ok". Apply is the handler's core without
// a Ctx, for reference runs.
package ledger

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
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
	// Pad is ballast, for measuring the transfer of a large state
	// (perf/unitbench): deterministic bytes, set by an input "pad n"
	// (no confirmation), written raw after the JSON by Snapshot.
	Pad []byte `json:"-"`
	// PadLen is len(Pad), in the JSON: Restore reads the ballast into a
	// buffer of that size at once.
	PadLen int `json:",omitempty"`
}

// MaxPad bounds the ballast an input "pad n" may ask for.
const MaxPad = 1 << 30

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

// Handle applies one transfer and confirms it; an input "pad n" sets
// the ballast (Pad) to n deterministic bytes instead.
func (l *Ledger) Handle(ctx *unit.Ctx, in *unit.Input) error {
	if n, ok, err := parsePad(in.Body); ok {
		if err != nil {
			return err
		}
		l.Pad, l.PadLen = padBytes(n), n
		return nil
	}
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

// Snapshot writes the whole state: the JSON of the ledger, a newline,
// then the ballast's bytes.
func (l *Ledger) Snapshot(w io.Writer) error {
	if err := json.NewEncoder(w).Encode(l); err != nil {
		return err
	}
	_, err := w.Write(l.Pad)
	return err
}

// Restore reads a state Snapshot wrote.
func (l *Ledger) Restore(r io.Reader) error {
	n := New()
	dec := json.NewDecoder(r)
	if err := dec.Decode(n); err != nil {
		return fmt.Errorf("ledger: restore: %w", err)
	}
	// The newline Encode wrote, the ballast, and nothing more.
	rest := io.MultiReader(dec.Buffered(), r)
	var one [1]byte
	if k, _ := io.ReadFull(rest, one[:]); k == 1 && one[0] != '\n' {
		return fmt.Errorf("ledger: restore: %q after the JSON", one[0])
	}
	if n.PadLen < 0 || n.PadLen > MaxPad {
		return fmt.Errorf("ledger: restore: ballast of %d bytes (at most %d)", n.PadLen, MaxPad)
	}
	if n.PadLen > 0 {
		// Sized at once up to 64 MiB: a PadLen the bytes do not back
		// costs no more than that.
		buf := bytes.NewBuffer(make([]byte, 0, min(n.PadLen, 64<<20)))
		if _, err := io.CopyN(buf, rest, int64(n.PadLen)); err != nil {
			return fmt.Errorf("ledger: restore: the ballast of %d bytes: %w", n.PadLen, err)
		}
		n.Pad = buf.Bytes()
	}
	if k, _ := io.ReadFull(rest, one[:]); k != 0 {
		return errors.New("ledger: restore: bytes after the ballast")
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

// parsePad reads an input "pad n": ok tells whether it is one.
func parsePad(b []byte) (n int, ok bool, err error) {
	rest, ok := bytes.CutPrefix(b, []byte("pad "))
	if !ok {
		return 0, false, nil
	}
	if _, err := fmt.Sscanf(string(rest), "%d", &n); err != nil || n < 0 || n > MaxPad {
		return 0, true, fmt.Errorf("ledger: %q: want pad 0..%d", b, MaxPad)
	}
	return n, true, nil
}

// padBytes is n deterministic bytes (splitmix64 from a fixed seed).
func padBytes(n int) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, (n+7)&^7)
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i < len(b); i += 8 {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		binary.LittleEndian.PutUint64(b[i:], z^z>>31)
	}
	return b[:n]
}
