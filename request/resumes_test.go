package request_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/qmgr/qmgr/request"
)

// TestRecoverableResumesBounded: a request-level recoverable request
// whose program SIGKILLs its own manager every time ("die") is resumed
// Config.MaxResumes times (default 10), then ends with a final reply
// saying so (FormatRetried) instead of being resumed for ever; one that
// sent its final reply before it kills ("replydie") just ends, its one
// final reply the program's.
func TestRecoverableResumesBounded(t *testing.T) {
	const maxResumes = 10 // Config.MaxResumes's default
	e := newEnv(t)
	die := e.put(request.ModeRecoverable, "die")
	replied := e.put(request.ModeRecoverable, "replydie")
	var managers []*child
	for n := 0; e.endedBy(die) == "" || e.endedBy(replied) == ""; n++ {
		// Each manager (one worker) takes a request and dies, but the
		// one that ends a request, which goes on to the other: each
		// request is taken MaxResumes+2 times, the last take ending it.
		// Twice that many managers is a generous bound.
		if n == 4*(maxResumes+2) {
			t.Fatalf("not ended after %d managers: die %q, replydie %q", n, e.endedBy(die), e.endedBy(replied))
		}
		ch := e.start("manager", "QM1", nil, "-name", fmt.Sprintf("RM%d", n), "-workers", "1")
		managers = append(managers, ch)
		waitFor(t, 30*time.Second, "the manager to die or the requests to end", func() bool {
			select {
			case <-ch.done:
				return true
			default:
			}
			return e.endedBy(die) != "" && e.endedBy(replied) != ""
		})
	}
	f := e.waitEnded(die)
	want := fmt.Sprintf("%s:request resumed %d times and will not be resumed again", request.FormatRetried, maxResumes)
	if len(f.finals) != 1 || f.finals[0] != want {
		t.Errorf("die: finals %q, want [%s]", f.finals, want)
	}
	if f.tomb == nil || f.tomb.Attempts != maxResumes+1 {
		t.Errorf("die: tombstone %+v, want %d takes", f.tomb, maxResumes+1)
	}
	f = e.waitEnded(replied)
	if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":replied" {
		t.Errorf("replydie: finals %q, want the program's only", f.finals)
	}
	if f.tomb == nil || f.tomb.Attempts != maxResumes+1 {
		t.Errorf("replydie: tombstone %+v, want %d takes", f.tomb, maxResumes+1)
	}
	t.Logf("%d managers", len(managers))
}
