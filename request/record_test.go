package request

import (
	"testing"
	"time"
)

// TestMoreAdvanced: the stale record a dead manager's late create commit
// leaves (attempt 1, running, nothing sent) is less advanced than any
// record of the run that created the request again and went on, in every
// mode, even when the dead manager's clock ran ahead (its Updated later):
// a restartable record keeps no journal before the final reply and a
// non-recoverable one none at all, so their progress shows in the next
// call's number, the pending calls and the status, not the journal.
func TestMoreAdvanced(t *testing.T) {
	now := time.Now()
	stale := &Record{Status: StatusRunning, Attempts: 1, NextSeq: 1, Created: now.Add(time.Hour), Updated: now.Add(time.Hour)}
	for _, tc := range []struct {
		name string
		rec  Record
	}{
		{"recoverable, a call recorded", Record{Mode: ModeRecoverable, Status: StatusRunning, Attempts: 1, NextSeq: 2, Pending: []PendingCall{{Attempt: 1, Seq: 1}}, Journal: []Entry{{Kind: EntryCall, Outcome: OutcomePending, Attempt: 1, Seq: 1}}}},
		{"recoverable, taken again", Record{Mode: ModeRecoverable, Status: StatusRunning, Attempts: 2, NextSeq: 1}},
		{"restartable, a call pending", Record{Mode: ModeRestartable, Status: StatusRunning, Attempts: 1, NextSeq: 2, Pending: []PendingCall{{Attempt: 1, Seq: 1}}}},
		{"restartable, a call timed out", Record{Mode: ModeRestartable, Status: StatusRunning, Attempts: 1, NextSeq: 2}},
		{"restartable, ended", Record{Mode: ModeRestartable, Status: StatusDone, Attempts: 1, NextSeq: 1}},
		{"non-recoverable, a call pending", Record{Mode: ModeNonRecoverable, Status: StatusRunning, Attempts: 1, NextSeq: 2, Pending: []PendingCall{{Attempt: 1, Seq: 1}}}},
		{"non-recoverable, final reply sent", Record{Mode: ModeNonRecoverable, Status: StatusFinalReplied, Attempts: 1, NextSeq: 1}},
		{"non-recoverable, ended", Record{Mode: ModeNonRecoverable, Status: StatusDone, Attempts: 1, NextSeq: 1}},
	} {
		r := tc.rec
		r.Created, r.Updated = now, now
		s := *stale
		s.Mode = r.Mode
		if !moreAdvanced(&r, &s) || moreAdvanced(&s, &r) {
			t.Errorf("%s: the stale create record (updated an hour later) is taken as more advanced", tc.name)
		}
	}
}
