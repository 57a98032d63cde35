package cli

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/httpd"
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

// TestHTTPTokenNotInherited: the member takes QMGR_HTTP_TOKEN out of its
// environment whether or not it serves HTTP, so its child processes (the
// channel initiator, the AMQP listener) never inherit the token.
func TestHTTPTokenNotInherited(t *testing.T) {
	for _, hc := range []httpd.Config{{}, {Addr: "127.0.0.1:0"}} {
		t.Setenv(httpTokenEnv, "0123456789abcdef0123")
		h, err := listenHTTP(hc, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatalf("listenHTTP(%+v): %v", hc, err)
		}
		if h.s != nil {
			h.s.Close(context.Background())
		}
		if v, ok := os.LookupEnv(httpTokenEnv); ok {
			t.Errorf("with --http %q, %s is still in the environment: %q", hc.Addr, httpTokenEnv, v)
		}
	}
}
