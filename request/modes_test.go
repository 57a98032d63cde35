package request_test

import (
	"strings"
	"testing"

	"github.com/qmgr/qmgr/request"
)

var modes = []request.Mode{request.ModeNonRecoverable, request.ModeRestartable, request.ModeRecoverable}

// TestModesWithoutFailure: a request of each mode that meets no failure
// gets exactly one final reply, each call is performed once, and nothing
// is left behind (no state, no tombstone, no stray).
func TestModesWithoutFailure(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil)
	var ids []request.ID
	for _, m := range modes {
		ids = append(ids, e.put(m, "ok"))
	}
	for i, id := range ids {
		f := e.waitEnded(id)
		if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":FLIGHT-ok+HOTEL-ok" {
			t.Errorf("%v: final replies %q", modes[i], f.finals)
		}
		for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
			if f.performed[q] != 1 {
				t.Errorf("%v: %s performed %d times", modes[i], q, f.performed[q])
			}
		}
		if f.tomb != nil || len(f.strays) != 0 || f.onReplyQ != 0 {
			t.Errorf("%v: left behind: tombstone %v, strays %v, %d replies", modes[i], f.tomb, f.strays, f.onReplyQ)
		}
	}
}

// TestRestartableRetriedX: a restartable request whose program keeps
// failing is attempted MaxAttempts (3) times, then gets the final reply
// saying it was retried 3 times; a non-recoverable one is purged at its
// first failure, without a reply; a recoverable one ends with a failure
// reply.
func TestProgramFailure(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil)
	rs := e.put(request.ModeRestartable, "fail")
	nr := e.put(request.ModeNonRecoverable, "fail")
	rc := e.put(request.ModeRecoverable, "fail")
	for _, id := range []request.ID{rs, nr, rc} {
		e.waitEnded(id)
	}
	f := e.facts(rs)
	if len(f.finals) != 1 || f.finals[0] != request.FormatRetried+":request retried 3 times and will not be retried" {
		t.Errorf("restartable: final replies %q", f.finals)
	}
	if f.performed["FLIGHT"] != 3 || f.tomb == nil || f.tomb.Attempts != 3 {
		t.Errorf("restartable: FLIGHT performed %d times (want 3, one per attempt), tombstone %+v", f.performed["FLIGHT"], f.tomb)
	}
	f = e.facts(nr)
	if len(f.finals) != 0 || f.performed["FLIGHT"] != 1 || f.tomb == nil || f.tomb.Status != request.StatusPurged {
		t.Errorf("non-recoverable: finals %q, FLIGHT %d, tombstone %+v", f.finals, f.performed["FLIGHT"], f.tomb)
	}
	f = e.facts(rc)
	if len(f.finals) != 1 || !strings.HasPrefix(f.finals[0], request.FormatFailed+":request failed: the travel agent says no") || f.performed["FLIGHT"] != 1 {
		t.Errorf("recoverable: finals %q, FLIGHT %d", f.finals, f.performed["FLIGHT"])
	}
}
