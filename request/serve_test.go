package request_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/request"
)

// TestServePoisonCall: a call its server dies on (SIGKILLed while it holds
// the call, every time) is a poison call. Its request must learn so
// promptly, well before its call timeout (30 s), and end as its program
// says, instead of waiting for a reply that never comes once the queue's
// BOTHRESH (5) moved the call aside. The recoverable request's manager is
// killed once the failure is recorded: the request resumed replays it and
// ends the same way. The call is never performed, and ends up on the
// queue's backout queue.
func TestServePoisonCall(t *testing.T) {
	e := newEnv(t)
	const prompt = 15 * time.Second
	for _, mode := range []request.Mode{request.ModeRecoverable, request.ModeRestartable} {
		once := filepath.Join(t.TempDir(), "hit")
		var env []string
		if mode == request.ModeRecoverable {
			// Killed once the call's outcome is recorded.
			env = []string{crashpoint.EnvVar + "=request.reply.committed:1", crashpoint.OnceVar + "=" + once}
		}
		m1 := e.start("manager", "QM1", env)
		t0 := time.Now()
		id := e.put(mode, "poison")
		kills := 0
		var s *child
		for e.endedBy(id) == "" && !exited(m1) {
			if s == nil || exited(s) {
				s = e.start("server", "QM1", nil, "-kill-on", "poison")
			}
			select {
			case <-s.done:
				kills++
			case <-m1.done:
			case <-time.After(50 * time.Millisecond): // polling endedBy
			}
			if time.Since(t0) > prompt {
				t.Fatalf("%v: the request still waits for its poison call after %v (%d server kills; the call timeout is 30 s)", mode, prompt, kills)
			}
		}
		if mode == request.ModeRecoverable {
			<-m1.done
			if _, err := os.Stat(once); err != nil {
				t.Fatalf("the crash point was not reached: %s", m1.p.Log())
			}
			e.start("manager", "QM1", nil)
		}
		f := e.waitEnded(id)
		if d := time.Since(t0); d > prompt {
			t.Errorf("%v: ended %v after its put", mode, d)
		}
		wantFinal := request.FormatFinal + ":poison: request: call 1 to FLIGHT failed: "
		if len(f.finals) != 1 || !strings.HasPrefix(f.finals[0], wantFinal) {
			t.Errorf("%v: finals %q, want one beginning %q", mode, f.finals, wantFinal)
		}
		if kills != 4 || f.performed["FLIGHT"] != 0 {
			t.Errorf("%v: the server died %d times (want 4: BOTHRESH(5) less one), FLIGHT performed %d times", mode, kills, f.performed["FLIGHT"])
		}
		bo := e.browse("FLIGHT.BO")
		if len(bo) != 1 || bo[0].CorrelID != (request.CallID{Key: request.KeyOf(id), Attempt: 1, Seq: 1}.Bytes()) {
			t.Errorf("%v: %d messages on FLIGHT.BO, want the poison call", mode, len(bo))
		}
		drain(t, e, "FLIGHT.BO") // for the checker at the end
		e.stopChildren()
	}
}
