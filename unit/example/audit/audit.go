// Package audit is the second example recovery unit (design section 11,
// "two units"): downstream of the ledger, it takes the ledger's
// confirmations (a SERVICE with INPUT(CONFIRM)) and counts them: how often
// each transfer was confirmed, how many were accepted, and per source unit
// and generation the last sequence number it saw. Inputs from a unit reach
// Handle once each and in sequence whatever their route did (the runtime's
// source table and EARLY queue, unit/source.go); the audit checks that
// (OutOfOrder counts an input whose sequence number is not the last + 1).
// It sends nothing.
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/qmgr/qmgr/unit"
	"github.com/qmgr/qmgr/unit/example/ledger"
)

// Audit is the handler's state.
type Audit struct {
	Count    int            // inputs handled
	Accepted int            // confirmations of accepted transfers
	Bad      int            // inputs that are not confirmations
	Seen     map[string]int // confirmations per transfer id
	// Last is the last sequence number seen per source, keyed
	// "<source id in hex>/<generation>"; Plain counts inputs from no
	// unit.
	Last       map[string]uint64
	Plain      int
	OutOfOrder int // inputs from a unit whose seq was not Last + 1
}

// New is an empty audit.
func New() *Audit { return &Audit{Seen: map[string]int{}, Last: map[string]uint64{}} }

// SourceKey is the key of Last for a source.
func SourceKey(id uint64, gen uint32) string { return fmt.Sprintf("%x/%d", id, gen) }

// Handle counts one confirmation.
func (a *Audit) Handle(_ *unit.Ctx, in *unit.Input) error {
	a.Count++
	if s := in.Source; s.ID != 0 {
		k := SourceKey(s.ID, s.Gen)
		if s.Seq != a.Last[k]+1 {
			a.OutOfOrder++
		}
		a.Last[k] = s.Seq
	} else {
		a.Plain++
	}
	c, err := ledger.ParseConfirmation(in.Body)
	if err != nil {
		a.Bad++
		return nil
	}
	a.Seen[fmt.Sprint(c.ID)]++
	if c.OK {
		a.Accepted++
	}
	return nil
}

// Snapshot writes the whole state.
func (a *Audit) Snapshot(w io.Writer) error { return json.NewEncoder(w).Encode(a) }

// Restore reads a state Snapshot wrote.
func (a *Audit) Restore(r io.Reader) error {
	n := New()
	if err := json.NewDecoder(r).Decode(n); err != nil {
		return fmt.Errorf("audit: restore: %w", err)
	}
	if n.Seen == nil {
		n.Seen = map[string]int{}
	}
	if n.Last == nil {
		n.Last = map[string]uint64{}
	}
	*a = *n
	return nil
}

// Digest is the state as Snapshot writes it (maps in key order).
func (a *Audit) Digest() string {
	var b bytes.Buffer
	a.Snapshot(&b)
	return b.String()
}
