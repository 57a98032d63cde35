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
