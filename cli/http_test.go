package cli

import (
	"strings"
	"testing"
)

// TestStartHTTPFlags: start refuses a bad --http or --http-token before it
// starts the member.
func TestStartHTTPFlags(t *testing.T) {
	g := newTestGroup(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--http-token", "0123456789abcdef0123"}, "--http-token needs --http"},
		{[]string{"--http", "127.0.0.1:0", "--http-token", "short"}, "at least 16"},
		{[]string{"--http", "127.0.0.1"}, "missing port"},
		{[]string{"--http", "127.0.0.1:70000"}, "0 to 65535"},
	} {
		code, out, errs := g.run("", append([]string{"start", "--name", "QM1", "--no-chinit"}, c.args...)...)
		if code == 0 || !strings.Contains(out+errs, c.want) {
			t.Errorf("start %q: exit %d, %q %q; want an error with %q", c.args, code, out, errs, c.want)
		}
	}
	if code, _, _ := g.run("", "status"); code == 0 {
		t.Fatal("a member started despite a bad --http flag")
	}
}
