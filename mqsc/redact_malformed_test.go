package mqsc

import (
	"strings"
	"testing"
)

// TestRedactMalformed: no secret survives Redact, whether the command is
// well formed or not (an unterminated quote or parenthesis, a quote inside
// an unquoted value, AUTHKEY( inside another attribute's quoted value,
// continuation lines).
func TestRedactMalformed(t *testing.T) {
	const s = "s3cretS3cretS3cret"
	for _, in := range []string{
		"ALTER CHANNEL(X) AUTHKEY('" + s,
		"ALTER CHANNEL(X) AUTHKEY(" + s,
		"ALTER CHANNEL(X) AUTHKEY(" + s + "'x)",
		"ALTER CHANNEL(X) AUTHKEY('" + s + "'x)",
		"ALTER CHANNEL(X) DESCR('AUTHKEY(''') AUTHKEY('" + s + "')",
		"ALTER CHANNEL(X) DESCR(')') AUTHKEY('a)" + s + "')",
		"ALTER CHANNEL(X) AUTHKEY('ab''c)" + s + "')",
		"ALTER CHANNEL(X) AUTHKEY('" + s + "''')",
		"ALTER CHANNEL(X) AUTHKEY('" + s + "') DESCR('x''')",
		"ALTER CHANNEL(X) +\n AUTHKEY('" + s + "')",
		"ALTER CHANNEL(X) authkey ( '" + s + "' )",
		// A quote that does not start a value (in a comment, inside a
		// malformed value) hides nothing after it.
		"* Bob's channel\nDEFINE CHANNEL(X) CHLTYPE(RCVR) AUTHKEY(" + s + ")",
		"* Bob's channel\nDEFINE CHANNEL(X) CHLTYPE(RCVR) AUTHKEY('" + s + "')",
		"DEFINE CHANNEL(X) CHLTYPE(RCVR) DESCR(Bob's) AUTHKEY(" + s + ")",
		"DEFINE CHANNEL(X) CHLTYPE(RCVR) DESCR(Bob's) AUTHKEY('" + s + "') DESCR('x')",
		"DEFINE CHANNEL(X) DESCR('never ends AUTHKEY(" + s + ")",
		"DEFINE CHANNEL(X) DESCR('open\nDEFINE CHANNEL(Y) AUTHKEY('" + s + "')",
	} {
		if red := Redact(in); strings.Contains(red, s) {
			t.Errorf("Redact(%q) = %q", in, red)
		}
	}
	for in, want := range map[string]string{
		"DEFINE CHANNEL(X) CHLTYPE(RCVR) AUTHKEY('" + s + "') DESCR('keep')": "DEFINE CHANNEL(X) CHLTYPE(RCVR) AUTHKEY(********) DESCR('keep')",
		"DISPLAY CHANNEL(X) DESCR('AUTHKEY(x)')":                             "DISPLAY CHANNEL(X) DESCR('AUTHKEY(x)')",
		"DEFINE CHANNEL(MYAUTHKEY(1)) CHLTYPE(RCVR)":                         "DEFINE CHANNEL(MYAUTHKEY(1)) CHLTYPE(RCVR)",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
