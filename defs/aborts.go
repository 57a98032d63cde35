package defs

import (
	"fmt"
	"math"
	"time"
)

// Aborted units of work.
//
// A unit of work holding persistent work commits when its commit record is
// durable in its member's recovery log. If its application, or its member,
// dies after handing that record to the log and before the commit is
// decided in the CF, or the wait for the record fails, nobody can tell
// whether the record reached the disk. Whoever then backs the unit of work
// out records its key here first, durably; a rebuild of a structure from
// the logs (package replay) reads these keys before it starts and treats
// their commit records as backouts, whatever their place in the logs.
//
// Rows are never deleted: a commit record's LRSN is only assigned when the
// member's log writer takes it, which for a dead member's log buffer can be
// its restart, so no replay start point is ever known to lie past it. A row
// is one unit of work caught by a failure between its commit record and its
// decision, a few microseconds of its life.

// AbortUOW records that the unit of work with persistence key key is backed
// out, whatever its commit record in a log says. Recording it again is not
// an error.
func (t *Tx) AbortUOW(key uint64) error {
	if key == 0 || key > math.MaxInt64 {
		return fmt.Errorf("%w: unit of work key %d", ErrBadValue, key)
	}
	if _, err := t.tx.Exec(`INSERT OR IGNORE INTO aborted_uows(key, at) VALUES (?, ?)`, int64(key), time.Now().UnixNano()); err != nil {
		return fmt.Errorf("defs: record aborted unit of work %d: %w", key, err)
	}
	return nil
}

// AbortedUOWs returns the keys of every aborted unit of work whose key is
// at least from.
func (t *Tx) AbortedUOWs(from uint64) (map[uint64]bool, error) {
	if from > math.MaxInt64 {
		from = math.MaxInt64
	}
	rows, err := t.tx.Query(`SELECT key FROM aborted_uows WHERE key >= ?`, int64(from))
	if err != nil {
		return nil, fmt.Errorf("defs: read aborted units of work: %w", err)
	}
	defer rows.Close()
	out := map[uint64]bool{}
	for rows.Next() {
		var k int64
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("defs: read aborted units of work: %w", err)
		}
		out[uint64(k)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("defs: read aborted units of work: %w", err)
	}
	return out, nil
}
