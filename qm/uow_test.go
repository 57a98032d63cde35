package qm

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// TestLongRunningUOWIsBackedOut: an application keeps a unit of work open
// (a get and a persistent put under syncpoint) past the member's limits: it
// is logged as long-running, then backed out, its connection broken, and
// the member counts it (DISPLAY QMGR LONGUOWS). A short unit of work of
// another connection is left alone.
func TestLongRunningUOWIsBackedOut(t *testing.T) {
	cfg := testConfig(t, "QM1")
	cfg.UOWWarnAge = 2 * time.Second
	cfg.UOWMaxAge = 4 * time.Second
	logs := logTo(t, &cfg)
	m := startMember(t, cfg)
	mustExec(t, m, "DEFINE QLOCAL(P)")
	putOne(t, cfg, "QM1", "P", "g0")
	app := startApp(t, cfg, "QM1")
	for _, cmd := range []string{"open P", "getsp P", "pput P x"} {
		if r := app.do(cmd); r != "reason 0 <nil>" && r != "got g0" {
			t.Fatalf("%s: %s", cmd, r)
		}
	}
	// Another connection commits every 100 ms all along.
	c := connect(t, cfg, "QM1")
	defer c.Disconnect()
	h, err := c.Open("P", mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	done := time.Now().Add(6 * time.Second)
	for i := 0; time.Now().Before(done); i++ {
		if err := h.Put(&mq.Message{Body: []byte(fmt.Sprintf("s%d", i))}, mq.PutOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if err := c.Commit(); err != nil {
			t.Fatalf("a short unit of work: %v", err)
		}
	}
	if r := app.do("commit"); !strings.HasPrefix(r, fmt.Sprintf("reason %d ", mq.RCConnectionBroken)) {
		t.Fatalf("commit of a unit of work open past the limit: %s\n%s", r, logs())
	}
	if body, n := getBody(t, c, "P"); body != "g0" || n != 1 {
		t.Fatalf("P: %q backout count %d, want g0 back with backout count 1", body, n)
	}
	ph, err := c.Open("P", mq.OpenOptions{Input: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range drainBodies(t, ph) {
		if !strings.HasPrefix(b, "s") {
			t.Fatalf("P holds %q after the backout", b)
		}
	}
	for _, want := range []string{`msg="long-running unit of work"`, `msg="backing out a long-running unit of work: the connection is broken"`} {
		if !strings.Contains(logs(), want) {
			t.Fatalf("the member's log lacks %s:\n%s", want, logs())
		}
	}
	if r := mustExec(t, m, "DISPLAY QMGR LONGUOWS"); !strings.Contains(r.Text, "LONGUOWS(1)") {
		t.Fatalf("display: %s", r.Text)
	}
	if strings.Count(logs(), `msg="long-running unit of work"`) != 1 {
		t.Fatalf("the short units of work were reported too:\n%s", logs())
	}
}
