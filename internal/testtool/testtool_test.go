package testtool

import (
	"errors"
	"testing"
)

// recorder is a testing.TB that records how a test ended.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()                        {}
func (r *recorder) Skipf(format string, a ...any)  { r.skipped = true }
func (r *recorder) Fatalf(format string, a ...any) { r.failed = true }

func TestNeed(t *testing.T) {
	missing := func() error { return errors.New("not found") }
	present := func() error { return nil }
	for _, c := range []struct {
		env                  string
		probe                func() error
		wantSkip, wantFailed bool
	}{
		{"", present, false, false},
		{"1", present, false, false},
		{"", missing, true, false},
		{"0", missing, true, false},
		{"1", missing, false, true},
	} {
		t.Setenv(EnvRequire, c.env)
		r := &recorder{TB: t}
		Need(r, "tool", "apt-get install tool", c.probe)
		if r.skipped != c.wantSkip || r.failed != c.wantFailed {
			t.Errorf("%s=%q, probe error %v: skipped %v failed %v, want %v %v", EnvRequire, c.env, c.probe(), r.skipped, r.failed, c.wantSkip, c.wantFailed)
		}
	}
}
