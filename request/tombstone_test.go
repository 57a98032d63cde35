package request_test

import (
	"testing"

	"github.com/qmgr/qmgr/request"
)

// TestTombstoneStorm: a storm of requests that fail (each leaves a
// tombstone, for TombstoneTTL: 10 min here) must not stop requests from
// running or ending. A tombstone is advisory: it only lets the sweeper say
// why a late reply is unexpected. Here the state queue holds 12 messages
// (three workers' requests in flight need 6: a record and a live marker
// each) and 30 requests fail.
func TestTombstoneStorm(t *testing.T) {
	e := newEnv(t)
	if out, err := e.g.MQSC("QM1", "ALTER QLOCAL("+request.DefaultStateQueue+") MAXDEPTH(12)"); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil, "-workers", "3")
	var failing []request.ID
	for i := range 30 {
		failing = append(failing, e.put(modes[i%2], "fail")) // non-recoverable: purged; restartable: retried
	}
	for _, id := range failing {
		e.waitEnded(id)
	}
	// New requests still run, and end.
	for _, mode := range modes {
		f := e.waitEnded(e.put(mode, "ok"))
		if len(f.finals) != 1 || f.finals[0] != request.FormatFinal+":FLIGHT-ok+HOTEL-ok" {
			t.Errorf("%v after the storm: finals %q", mode, f.finals)
		}
	}
}
