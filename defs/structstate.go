package defs

import (
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// StructState is what the group remembers of a structure beyond its
// definition, in the meta table (keys cfstruct_made:NAME and
// cfstruct_failed:NAME, values Unix ns): every member reads the same, so
// that RECAUTO(NO) is the group's decision and not one member's.
type StructState struct {
	// Made: the structure was created (and filled) once. Its file gone
	// then means it was lost, not that it was never made: a RECAUTO(NO)
	// structure is then failed, not created again.
	Made time.Time
	// Failed: a member found it failed and, RECAUTO(NO), left it so.
	// Zero: not failed. RECOVER CFSTRUCT clears it.
	Failed time.Time
}

func madeKey(name string) string   { return "cfstruct_made:" + name }
func failedKey(name string) string { return "cfstruct_failed:" + name }

// StructState reads structure name's state (zero times: never made, not
// failed).
func (t *Tx) StructState(name string) (StructState, error) {
	var st StructState
	var err error
	if st.Made, err = t.metaTime(madeKey(name)); err != nil {
		return st, err
	}
	st.Failed, err = t.metaTime(failedKey(name))
	return st, err
}

// SetStructMade records that structure name was created, unless it is
// recorded already.
func (t *Tx) SetStructMade(name string, at time.Time) error {
	return t.setMetaOnce(madeKey(name), at)
}

// SetStructFailed records that structure name was left failed (RECAUTO(NO)),
// unless it is recorded already.
func (t *Tx) SetStructFailed(name string, at time.Time) error {
	return t.setMetaOnce(failedKey(name), at)
}

// ClearStructFailed forgets that structure name was left failed.
func (t *Tx) ClearStructFailed(name string) error {
	if _, err := t.tx.Exec(`DELETE FROM meta WHERE key=?`, failedKey(name)); err != nil {
		return fmt.Errorf("defs: clear %s: %w", failedKey(name), err)
	}
	return nil
}

// forgetStruct forgets everything of structure name (it is deleted).
func (t *Tx) forgetStruct(name string) error {
	if _, err := t.tx.Exec(`DELETE FROM meta WHERE key IN (?, ?)`, madeKey(name), failedKey(name)); err != nil {
		return fmt.Errorf("defs: forget the state of CFSTRUCT(%s): %w", name, err)
	}
	return nil
}

func (t *Tx) metaTime(key string) (time.Time, error) {
	var v string
	err := t.tx.QueryRow(`SELECT value FROM meta WHERE key=?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("defs: read %s: %w", key, err)
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ns <= 0 {
		return time.Time{}, fmt.Errorf("%w: meta %s is %q, not a time", ErrCorrupt, key, v)
	}
	return time.Unix(0, ns), nil
}

// setMetaOnce records time at under key unless key is there already.
func (t *Tx) setMetaOnce(key string, at time.Time) error {
	if _, err := t.tx.Exec(`INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)`, key, strconv.FormatInt(at.UnixNano(), 10)); err != nil {
		return fmt.Errorf("defs: write %s: %w", key, err)
	}
	return nil
}
