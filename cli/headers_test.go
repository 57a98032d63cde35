package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// TestGetHeaders: qmgr get --browse --headers shows the Unexpected Message
// Queue's header (the promise of the README: the queue is browsable with
// qmgr get) and a dead-letter header as a JSON line, then the original
// body; a message of another format, and any message without --headers,
// is shown as it is; a header that does not parse is reported in the line
// and the body shown whole.
func TestGetHeaders(t *testing.T) {
	m, cfg := startInProcess(t, "HD")
	for _, c := range []string{"DEFINE QLOCAL(SYSTEM.REQUEST.UNEXPECTED)", "DEFINE QLOCAL(DLQ)"} {
		if r := m.Exec(c); !r.OK {
			t.Fatalf("%s: %s", c, r.Error)
		}
	}
	conn, err := mq.Connect(mq.ConnectOptions{Group: "HD", QMgr: "QM1", DataDir: cfg.Group.DataDir, CFDir: cfg.Group.CFDir})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Disconnect()
	at := time.Date(2026, 12, 4, 3, 0, 0, 5, time.UTC)
	var rid request.ID
	copy(rid[:], "REQ-1")
	put := func(q string, msgs ...*mq.Message) {
		h, err := conn.Open(q, mq.OpenOptions{Output: true})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for _, msg := range msgs {
			if err := h.Put(msg, mq.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	put("SYSTEM.REQUEST.UNEXPECTED",
		&mq.Message{Format: request.FormatUnexpected, Body: request.UnexpectedHeader{Reason: request.ReasonPurged, RequestID: rid, OrigQ: "TRAVEL.REPLY", Time: at, OrigFormat: "MQSTR"}.Encode([]byte("late reply"))},
		&mq.Message{Format: request.FormatUnexpected, Body: []byte("not a header")},
		&mq.Message{Format: "MQSTR", Body: []byte("plain")})
	put("DLQ", &mq.Message{Format: mq.FormatDeadLetter, Body: mq.DLH{Reason: mq.RCQFull, DestQ: "FULL.Q", DestQMgr: "QM1", OrigFormat: "MQSTR", Time: at}.Encode([]byte("refused"))})

	get := func(q string, args ...string) []string {
		var out, errOut bytes.Buffer
		args = append([]string{"get", "--group", "HD", "--data", cfg.Group.DataDir, "--cf-dir", cfg.Group.CFDir, "--browse", "--queue", q}, args...)
		if code := MainIO(args, nil, &out, &errOut); code != 0 {
			t.Fatalf("qmgr %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
		}
		return strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	}
	header := func(line string) shownHeader {
		t.Helper()
		var h shownHeader
		if !strings.HasPrefix(line, "# ") || json.Unmarshal([]byte(line[2:]), &h) != nil {
			t.Fatalf("not a header line: %q", line)
		}
		return h
	}
	lines := get("SYSTEM.REQUEST.UNEXPECTED", "--headers")
	if len(lines) != 5 {
		t.Fatalf("the Unexpected Message Queue with --headers: %q", lines)
	}
	h := header(lines[0])
	want := shownHeader{Header: "unexpected", Reason: request.ReasonPurged.String(), RequestID: "5245512d31" + strings.Repeat("00", 19),
		CorrelID: strings.Repeat("00", 24), OrigQ: "TRAVEL.REPLY", OrigFormat: "MQSTR", Time: "2026-12-04T03:00:00.000000005Z"}
	if h != want || lines[1] != "late reply" {
		t.Fatalf("the first message:\n%+v\n%q\nwant\n%+v", h, lines[1], want)
	}
	if h := header(lines[2]); h.Header != "unexpected" || h.Error == "" || lines[3] != "not a header" {
		t.Fatalf("a header that does not parse: %+v %q", h, lines[3])
	}
	if lines[4] != "plain" {
		t.Fatalf("a message of another format: %q", lines[4])
	}
	if raw := get("SYSTEM.REQUEST.UNEXPECTED"); len(raw) < 3 || !strings.HasPrefix(raw[0], "RQUH") {
		t.Fatalf("without --headers the body is shown as it is: %q", raw)
	}
	lines = get("DLQ", "--headers")
	if len(lines) != 2 || lines[1] != "refused" {
		t.Fatalf("the dead-letter queue with --headers: %q", lines)
	}
	if h := header(lines[0]); h.Header != "dead-letter" || h.Reason != mq.RCQFull.String() || h.DestQ != "FULL.Q" || h.DestQMgr != "QM1" || h.Time == "" {
		t.Fatalf("the dead-letter header: %+v", h)
	}
}
