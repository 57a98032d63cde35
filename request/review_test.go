package request_test

import (
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// putTo puts a request of mode with body whose reply-to queue is replyTo
// and returns its id.
func (e *env) putTo(mode request.Mode, body, replyTo string) request.ID {
	e.t.Helper()
	q, err := e.c.Open(inputQ, mq.OpenOptions{Output: true})
	if err != nil {
		e.t.Fatal(err)
	}
	defer q.Close()
	m := &mq.Message{Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(body)), ReplyToQ: replyTo}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		e.t.Fatal(err)
	}
	return request.ID(m.MsgID)
}

// TestUndeliverableManagerReply: a request whose reply-to queue does not
// exist, and whose manager must send a final reply of its own (the
// recoverable one's FAILED, the restartable one's RETRIED after its X
// attempts, a cancelled one's PURGED), still ends: the reply that cannot
// be delivered goes to the Unexpected Message Queue saying so, instead of
// the request being taken again and again for ever.
func TestUndeliverableManagerReply(t *testing.T) {
	e := newEnv(t)
	e.start("server", "QM1", nil)
	e.start("manager", "QM1", nil)
	const noQ = "NO.SUCH.REPLYQ"
	cn := e.putTo(request.ModeRestartable, "wait", noQ)
	waitFor(t, 10*time.Second, "the request to wait for its call", func() bool {
		rs, err := request.List(e.c, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.RequestID == cn && r.Step == "waiting" {
				return true
			}
		}
		return false
	})
	if err := request.Cancel(e.c, "", cn); err != nil {
		t.Fatal(err)
	}
	rc := e.putTo(request.ModeRecoverable, "fail", noQ)
	rs := e.putTo(request.ModeRestartable, "fail", noQ)
	for _, c := range []struct {
		id     request.ID
		how    string
		format string
	}{{rc, "DONE", request.FormatFailed}, {rs, "DONE", request.FormatRetried}, {cn, "CANCELLED", request.FormatPurged}} {
		f := e.waitEnded(c.id)
		if how := e.endedBy(c.id); how != c.how {
			t.Errorf("%s: ended %s, want %s", c.id, how, c.how)
		}
		var got []string
		for _, m := range e.browse(request.DefaultUnexpectedQueue) {
			h, _, err := request.ParseUnexpectedHeader(m.Body)
			if err == nil && h.RequestID == c.id && h.Reason == request.ReasonUndeliverable {
				if h.OrigQ != noQ || h.OrigFormat != c.format {
					t.Errorf("%s: undeliverable reply %+v, want for %s of format %s", c.id, h, noQ, c.format)
				}
				got = append(got, h.OrigFormat)
			}
		}
		if len(got) != 1 {
			t.Errorf("%s: undeliverable replies on the Unexpected Message Queue %q, want one; facts %+v", c.id, got, f)
		}
	}
}
