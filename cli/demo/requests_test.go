package demo_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/cli/demo"
)

// TestRequestsDemo: the request managers' demo (qmgr demo --part
// requests), small: a manager, the servers and a member SIGKILLed while
// trips of the three modes run; every trip keeps its mode's promise and
// the checker is clean.
func TestRequestsDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	var out bytes.Buffer
	c := demo.RequestsConfig{Dir: t.TempDir(), PerMode: 5, CallDelay: 100 * time.Millisecond}
	if err := demo.RunRequests(c, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"SIGKILL request manager RM1", "SIGKILL the travel servers", "SIGKILL member QM2",
		"all 15 trips ended", "NONRECOVERABLE:", "RESTARTABLE:", "RECOVERABLE:", "every trip kept its mode's promise", "checker: every structure clean"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out.String())
		}
	}
	t.Log(out.String())
}

func TestRequestsDemoConfig(t *testing.T) {
	for _, c := range []demo.RequestsConfig{{PerMode: 1}, {PerMode: 101}, {CallDelay: time.Nanosecond}, {CallDelay: time.Minute}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if d := (demo.RequestsConfig{}).WithDefaults(); d.PerMode != 8 || d.CallDelay != 150*time.Millisecond {
		t.Errorf("defaults %+v", d)
	}
}
