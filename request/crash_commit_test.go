package request_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/request"
)

// TestKilledInsideACommit SIGKILLs a manager inside the n-th commit of
// persistent work it makes (a request-level recoverable request's steps
// are persistent): after its commit record is handed to the member and
// before it is known durable (mq.commit.appended), and after the decision
// is recorded, before the commit is carried out in the CF
// (mq.commit.decided). The manager runs under QM2 and the second one,
// which takes the request over, under QM1; the
// recoverable mode's promise must hold whatever the member's recovery of
// the dead manager's two connections (the request's holder L, the steps'
// W) does first: one final reply, FLIGHT, HOTEL and PAYMENT performed
// once each, nothing left on the state queue but a tombstone.
func TestKilledInsideACommit(t *testing.T) {
	e := newEnv(t, "QM1", "QM2")
	e.start("server", "QM1", nil)
	for _, point := range []string{"mq.commit.appended", "mq.commit.decided"} {
		// The commits of an "ok" request: start, FLIGHT sent, FLIGHT
		// replied, saved, HOTEL sent, HOTEL replied, final reply,
		// PAYMENT sent, PAYMENT replied, done, end.
		for n := 1; n <= 11; n++ {
			t.Run(fmt.Sprintf("%s:%d", point, n), func(t *testing.T) {
				e := e.sub(t)
				once := filepath.Join(t.TempDir(), "hit")
				id := e.put(request.ModeRecoverable, "ok")
				a := e.start("manager", "QM2", []string{crashpoint.EnvVar + "=" + fmt.Sprintf("%s:%d", point, n), crashpoint.OnceVar + "=" + once}, "-name", "RMA", "-workers", "1")
				<-a.done
				if _, err := os.Stat(once); err != nil {
					t.Fatalf("the crash point was not reached: %v\n%s", err, a.p.Log())
				}
				b := e.start("manager", "QM1", nil, "-name", "RMB")
				defer b.stop(t)
				// The request is over when it is off the input queue
				// and nothing is uncommitted anywhere (its state may
				// be left behind: that is what is checked).
				var f facts
				waitFor(t, 30*time.Second, "the request to end", func() bool {
					for _, qi := range e.queueInfo() {
						if qi.Uncom != 0 {
							return false
						}
					}
					f = e.facts(id)
					return !f.onInput && f.onReplyQ == 0 && len(f.finals) > 0
				})
				f.wantNoDuplicates(t)
				if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":FLIGHT-ok+HOTEL-ok" {
					t.Errorf("final replies %q, want one", f.finals)
				}
				for _, q := range []string{"FLIGHT", "HOTEL", "PAYMENT"} {
					if f.performed[q] != 1 {
						t.Errorf("%s performed %d times, want once", q, f.performed[q])
					}
				}
				if f.live {
					t.Errorf("its record or live marker is left on the state queue")
				}
				if t.Failed() {
					t.Logf("facts: %+v\nA: %s\nB: %s", f, a.p.Log(), b.p.Log())
				}
			})
		}
	}
}
