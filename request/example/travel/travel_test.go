package travel

import (
	"strings"
	"testing"

	"github.com/qmgr/qmgr/request"
)

// TestCheck: each mode's promise, as Outcome.Check reads it.
func TestCheck(t *testing.T) {
	once := map[string]int{Flight: 1, Hotel: 1, Payment: 1}
	twice := map[string]int{Flight: 2, Hotel: 1, Payment: 1}
	final := []string{request.FormatFinal + ":booked"}
	tomb := func(st request.Status, attempts uint32) *request.Record {
		return &request.Record{Status: st, Attempts: attempts}
	}
	for _, tc := range []struct {
		name string
		o    Outcome
		want string // "" keeps the promise, else a part of the breach
	}{
		{"nonrec replied", Outcome{Mode: request.ModeNonRecoverable, Finals: final, Booked: once}, ""},
		{"nonrec purged", Outcome{Mode: request.ModeNonRecoverable, Booked: map[string]int{Flight: 1}, Tomb: tomb(request.StatusPurged, 1)}, ""},
		{"nonrec silent", Outcome{Mode: request.ModeNonRecoverable, Booked: once}, "not purged"},
		{"nonrec twice", Outcome{Mode: request.ModeNonRecoverable, Finals: final, Booked: twice}, "booked 2 times"},
		{"nonrec two replies", Outcome{Mode: request.ModeNonRecoverable, Finals: append(final, final...), Booked: once}, "2 final replies"},
		{"restartable rerun", Outcome{Mode: request.ModeRestartable, Finals: final, Booked: twice, Tomb: tomb(request.StatusDone, 2)}, ""},
		{"restartable twice in one", Outcome{Mode: request.ModeRestartable, Finals: final, Booked: twice}, "2 times in 1 attempts"},
		{"restartable no reply", Outcome{Mode: request.ModeRestartable, Booked: once, Tomb: tomb(request.StatusDone, 2)}, "0 final replies"},
		{"restartable 4 attempts", Outcome{Mode: request.ModeRestartable, Finals: final, Booked: once, Tomb: tomb(request.StatusDone, 4)}, "4 attempts"},
		{"recoverable resumed", Outcome{Mode: request.ModeRecoverable, Finals: final, Booked: once, Tomb: tomb(request.StatusDone, 3)}, ""},
		{"recoverable twice", Outcome{Mode: request.ModeRecoverable, Finals: final, Booked: twice}, "booked 2 times"},
		{"recoverable unpaid", Outcome{Mode: request.ModeRecoverable, Finals: final, Booked: map[string]int{Flight: 1, Hotel: 1}}, "PAYMENT booked 0 times"},
	} {
		got := tc.o.Check(3)
		if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
			t.Errorf("%s: Check = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestEnded: a request is over with a final reply or a purge, and no
// state left.
func TestEnded(t *testing.T) {
	for _, tc := range []struct {
		o    Outcome
		want bool
	}{
		{Outcome{Finals: []string{"x"}}, true},
		{Outcome{Finals: []string{"x"}, Live: true}, false},
		{Outcome{Tomb: &request.Record{Status: request.StatusPurged}}, true},
		{Outcome{Tomb: &request.Record{Status: request.StatusDone}}, false},
		{Outcome{}, false},
	} {
		if got := tc.o.Ended(); got != tc.want {
			t.Errorf("%+v: Ended = %v", tc.o, got)
		}
	}
}
