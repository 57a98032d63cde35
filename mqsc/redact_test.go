package mqsc

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, secret string }{
		{"DEFINE CHANNEL(A) CHLTYPE(RCVR) AUTHKEY(s3cretS3cretS3cret)", "s3cretS3cretS3cret"},
		{"alter channel(A) authkey ( 'it''s a (secret) value' ) BATCHSZ(5)", "it''s a (secret"},
		{"DEFINE CHANNEL(A) CHLTYPE(SDR) AUTHKEY('abc)def') XMITQ(X)", "abc)def"},
	} {
		got := Redact(c.in)
		if strings.Contains(got, c.secret) || !strings.Contains(got, "********") {
			t.Errorf("Redact(%q) = %q", c.in, got)
		}
	}
	if got := Redact("DEFINE QLOCAL(Q)"); got != "DEFINE QLOCAL(Q)" {
		t.Errorf("Redact changed a command without a secret: %q", got)
	}
}

// FuzzRedact: Redact reads command text from anyone who may send
// commands; it never panics, and in what it leaves that still parses,
// every secret attribute's value is withheld.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{
		"SET AMQPUSER(alice) PASSWORD('Hunter-2') TAGS(a)",
		"set amqpuser(alice) password(Hunter-2)",
		"SET AMQPUSER(alice) +\n PASSWORD('x''y')",
		"DEFINE CHANNEL(A) CHLTYPE(RCVR) AUTHKEY('0123456789abcdef')",
		"ALTER CHANNEL(A) DESCR('PASSWORD(x)') AUTHKEY(abc)",
		"SET AMQPUSER(a) PASSWORD('open",
		"* PASSWORD(x)\nSET AMQPUSER(a) PASSWORD ( 'p' )",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		cmds, err := Parse(out)
		if err != nil {
			return
		}
		for _, c := range cmds {
			for _, a := range c.Attrs {
				if isSecret(a.Key) && a.Raw != redacted {
					t.Fatalf("Redact(%q) = %q leaves %s(%s)", s, out, a.Key, a.Raw)
				}
			}
		}
	})
}

func isSecret(key string) bool {
	for _, n := range secretAttrs {
		if key == n {
			return true
		}
	}
	return false
}
