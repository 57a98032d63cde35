package request_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/request"
)

// TestCallTimeout: a call nobody takes times out and is withdrawn (never
// performed); a call its server takes but answers late times out without
// being withdrawn, and its late reply goes to the Unexpected Message Queue
// saying TIMED_OUT.
func TestCallTimeout(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil)
	for _, mode := range modes {
		w := e.put(mode, "timeout")
		s := e.put(mode, "slow")
		f := e.waitEnded(w)
		if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":withdrawn=true" {
			t.Errorf("%v: no answer: finals %q", mode, f.finals)
		}
		if n := len(e.browse("NOANSWER")); n != 0 {
			t.Errorf("%v: %d calls left on NOANSWER: not withdrawn", mode, n)
		}
		f = e.waitEnded(s)
		if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":withdrawn=false" {
			t.Errorf("%v: late answer: finals %q", mode, f.finals)
		}
		// The late reply comes after the request ended: the sweeper
		// moves it, and says why.
		waitFor(t, 10*time.Second, "the late reply on the Unexpected Message Queue", func() bool { return len(e.facts(s).strays) == 1 })
		f = e.facts(s)
		if f.strays[0].Reason != request.ReasonTimedOut || f.strays[0].RequestID != s || f.performed["SLOW"] != 1 {
			t.Errorf("%v: strays %+v, performed %v", mode, f.strays, f.performed)
		}
	}
}

// TestCancel: a cancel (request.Cancel, as CANCEL REQUEST does) ends a
// request waiting for a call: a non-recoverable one without a reply, the
// others with a "request purged" final reply; its call is withdrawn.
func TestCancel(t *testing.T) {
	e := newEnv(t)
	e.start("manager", "QM1", nil)
	for _, mode := range modes {
		id := e.put(mode, "wait")
		e.waitRecord(10*time.Second, "the request to wait for its call", func(r *request.Record) bool { return r.RequestID == id && r.Step == "waiting" && len(r.Pending) == 1 })
		// DISPLAY REQUESTS shows it; the recoverable one is cancelled
		// with CANCEL REQUEST, the others with request.Cancel.
		hexID := strings.ToUpper(id.String())
		out, err := e.g.MQSC("QM1", "DISPLAY REQUESTS("+hexID+")")
		if err != nil || !strings.Contains(out, "STEP(waiting)") || !strings.Contains(out, "PENDING(1)") || !strings.Contains(out, "MODE("+mode.String()+")") {
			t.Errorf("DISPLAY REQUESTS: %v\n%s", err, out)
		}
		if mode == request.ModeRecoverable {
			if out, err := e.g.MQSC("QM1", "CANCEL REQUEST("+hexID+")"); err != nil {
				t.Fatalf("CANCEL REQUEST: %v %s", err, out)
			}
		} else if err := request.Cancel(e.c, "", id); err != nil {
			t.Fatal(err)
		}
		f := e.waitEnded(id)
		if how := e.endedBy(id); how != "CANCELLED" {
			t.Errorf("%v: ended %s", mode, how)
		}
		want := []string{request.FormatPurged + ":request purged"}
		if mode == request.ModeNonRecoverable {
			want = nil
		}
		if fmt.Sprint(f.finals) != fmt.Sprint(want) {
			t.Errorf("%v: finals %q, want %q", mode, f.finals, want)
		}
		if n := len(e.browse("NOANSWER")); n != 0 {
			t.Errorf("%v: the call was not withdrawn (%d on NOANSWER)", mode, n)
		}
		if n := len(e.browse(request.DefaultCancelQueue)); n != 0 {
			t.Errorf("%v: %d cancels left", mode, n)
		}
	}
	// A cancel of a request that never existed is moved to the
	// Unexpected Message Queue once CancelGrace (1 s) passed.
	var ghost request.ID
	copy(ghost[:], "no-such-request-00000000")
	if err := request.Cancel(e.c, "", ghost); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the stray cancel moved", func() bool { return len(e.browse(request.DefaultCancelQueue)) == 0 })
	f := e.facts(ghost)
	if len(f.strays) != 1 || f.strays[0].Reason != request.ReasonUnknownRequest {
		t.Errorf("stray cancel: %+v", f.strays)
	}
}

// TestServerKilled: a subordinate server SIGKILLed after it performed a
// call and put its reply, before its commit: nothing of the call
// happened; a new server performs it once; every request gets its one
// final reply and, recoverable, each call performed exactly once.
func TestServerKilled(t *testing.T) {
	e := newEnv(t)
	e.start("manager", "QM1", nil)
	for _, point := range []string{"request.serve.got", "request.serve.replied", "request.serve.committed"} {
		once := filepath.Join(t.TempDir(), "hit")
		s := e.start("server", "QM1", []string{crashpoint.EnvVar + "=" + point + ":2", crashpoint.OnceVar + "=" + once})
		id := e.put(request.ModeRecoverable, "ok")
		<-s.done
		if _, err := os.Stat(once); err != nil {
			t.Fatalf("%s not reached: %s", point, s.p.Log())
		}
		s2 := e.start("server", "QM1", nil)
		f := e.waitEnded(id)
		s2.stop(t)
		f.wantNoDuplicates(t)
		if len(f.finals) != 1 || f.performed["FLIGHT"] != 1 || f.performed["HOTEL"] != 1 || f.performed["PAYMENT"] != 1 {
			t.Errorf("%s: finals %q, performed %v", point, f.finals, f.performed)
		}
	}
}

// TestMemberKilled: the member a manager runs under is SIGKILLed while
// requests wait for their calls (their servers are down); the manager
// connects through the other member, takes its requests again, and each
// ends as its mode says.
func TestMemberKilled(t *testing.T) {
	e := newEnv(t, "QM1", "QM2")
	m := e.start("manager", "QM2", nil, "-workers", "3")
	ids := map[request.Mode]request.ID{}
	for _, mode := range modes {
		ids[mode] = e.put(mode, "ok")
	}
	waitFor(t, 10*time.Second, "three requests waiting for FLIGHT", func() bool {
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range rs {
			if r.Step == "FLIGHT" && len(r.Pending) == 1 {
				n++
			}
		}
		return n == 3
	})
	e.g.Kill("QM2")
	e.start("server", "QM1", nil)
	for mode, id := range ids {
		f := e.waitEnded(id)
		f.wantNoDuplicates(t)
		switch mode {
		case request.ModeNonRecoverable:
			if len(f.finals) != 0 || f.tomb == nil || f.tomb.Status != request.StatusPurged {
				t.Errorf("%v: finals %q, tombstone %+v", mode, f.finals, f.tomb)
			}
		default:
			if len(f.finals) != 1 || f.performed["HOTEL"] != 1 || f.performed["PAYMENT"] != 1 {
				t.Errorf("%v: finals %q, performed %v", mode, f.finals, f.performed)
			}
			if mode == request.ModeRecoverable && f.performed["FLIGHT"] != 1 {
				t.Errorf("%v: FLIGHT performed %d times", mode, f.performed["FLIGHT"])
			}
		}
	}
	if !strings.Contains(m.p.Log(), "connecting again") {
		t.Errorf("the manager did not say it reconnected: %s", m.p.Log())
	}
}

// TestConfirmedRefused: a confirmed call is refused unless the request is
// request-level recoverable.
func TestConfirmedRefused(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil)
	for _, mode := range modes {
		f := e.waitEnded(e.put(mode, "confirm"))
		want := request.FormatFinal + ":confirmed: " + request.ErrNotConfirmable.Error()
		if mode == request.ModeRecoverable {
			want = request.FormatFinal + ":confirmed: <nil>"
		}
		if len(f.finals) != 1 || f.finals[0] != want {
			t.Errorf("%v: finals %q, want %q", mode, f.finals, want)
		}
	}
}
