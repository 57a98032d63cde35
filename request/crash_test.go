package request_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/request"
)

// crashPoints are the steps a manager is SIGKILLed at, in the order the
// test program ("ok": FLIGHT, HOTEL, final reply, PAYMENT) reaches them;
// the third call is PAYMENT, after the final reply.
var crashPoints = []struct {
	name       string
	n          int
	afterFinal bool // the final reply was committed before the kill
}{
	{"request.start.committed", 1, false},
	{"request.call.put", 1, false},
	{"request.call.committed", 1, false},
	{"request.reply.got", 1, false},
	{"request.reply.committed", 1, false},
	{"request.call.committed", 2, false},
	{"request.final.put", 1, false},
	{"request.final.committed", 1, true},
	{"request.call.put", 3, true},
	{"request.call.committed", 3, true},
	{"request.reply.got", 3, true},
	{"request.done.put", 1, true},
	{"request.done.committed", 1, true},
	{"request.end.committed", 1, true},
}

// TestCrashPoints SIGKILLs a request manager at each step of a request of
// each mode, lets a second manager take the request over, and checks the
// mode's promise:
//   - non-recoverable: no reply after the failure (one final reply only if
//     it was committed before the kill), no call performed twice, the
//     request purged, its stray replies on the Unexpected Message Queue;
//   - restartable: exactly one final reply; a kill after the final reply
//     restarts from it (FLIGHT and HOTEL performed once); at most
//     MaxAttempts attempts;
//   - request-level recoverable: exactly one final reply, each call
//     performed exactly once, no stray;
//
// and, for all, nothing left in flight.
func TestCrashPoints(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	for _, mode := range modes {
		for _, cp := range crashPoints {
			name := fmt.Sprintf("%v/%s:%d", mode, cp.name, cp.n)
			t.Run(name, func(t *testing.T) {
				e := e.sub(t)
				once := filepath.Join(t.TempDir(), "hit")
				id := e.put(mode, "ok")
				a := e.start("manager", "QM1", []string{crashpoint.EnvVar + "=" + fmt.Sprintf("%s:%d", cp.name, cp.n), crashpoint.OnceVar + "=" + once}, "-name", "RMA")
				<-a.done
				if _, err := os.Stat(once); err != nil {
					t.Fatalf("the crash point was not reached: %v\n%s", err, a.p.Log())
				}
				b := e.start("manager", "QM1", nil, "-name", "RMB")
				defer b.stop(t)
				var f facts
				if cp.name == "request.end.committed" {
					// Ended by the manager killed at once after.
					waitFor(t, 30e9, "nothing in flight", func() bool {
						f = e.facts(id)
						return !f.live && !f.onInput && f.onReplyQ == 0
					})
				} else {
					f = e.waitEnded(id)
				}
				f.wantNoDuplicates(t)
				for q, n := range f.performed {
					if n > 2 || mode != request.ModeRestartable && n > 1 {
						t.Errorf("%s performed %d times", q, n)
					}
				}
				switch mode {
				case request.ModeNonRecoverable:
					want := 0
					if cp.afterFinal {
						want = 1
					}
					if len(f.finals) != want {
						t.Errorf("final replies %q, want %d", f.finals, want)
					}
					if !cp.afterFinal || cp.name == "request.done.put" {
						if f.tomb == nil || f.tomb.Status != request.StatusPurged {
							t.Errorf("not purged: tombstone %+v", f.tomb)
						}
					}
					for _, s := range f.strays {
						if s.Reason != request.ReasonPurged {
							t.Errorf("stray %+v: want reason PURGED", s)
						}
					}
				case request.ModeRestartable:
					if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":FLIGHT-ok+HOTEL-ok" {
						t.Errorf("final replies %q, want one", f.finals)
					}
					if cp.afterFinal && (f.performed["FLIGHT"] != 1 || f.performed["HOTEL"] != 1) {
						t.Errorf("restarted from the top after the final reply: performed %v", f.performed)
					}
					if f.tomb != nil && f.tomb.Attempts > 3 {
						t.Errorf("%d attempts", f.tomb.Attempts)
					}
					if f.performed["PAYMENT"] < 1 {
						t.Errorf("PAYMENT never performed: %v", f.performed)
					}
				case request.ModeRecoverable:
					if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":FLIGHT-ok+HOTEL-ok" {
						t.Errorf("final replies %q, want one", f.finals)
					}
					for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
						if f.performed[q] != 1 {
							t.Errorf("%s performed %d times, want once", q, f.performed[q])
						}
					}
					if len(f.strays) != 0 {
						t.Errorf("strays %+v", f.strays)
					}
				}
				if testing.Verbose() {
					t.Logf("finals %q performed %v tomb %v strays %v", f.finals, f.performed, f.tomb != nil, f.strays)
				}
				if t.Failed() {
					t.Logf("facts: %+v\nA: %s\nB: %s", f, a.p.Log(), b.p.Log())
				}
			})
		}
	}
}

// sub is e for subtest t (failures and helpers report to t).
func (e *env) sub(t *testing.T) *env {
	s := &env{t: t, dir: e.dir, cfg: e.cfg, g: e.g, c: e.c}
	e.mu.Lock()
	s.children = e.children
	e.mu.Unlock()
	t.Cleanup(s.stepCheck) // check_test.go
	return s
}
