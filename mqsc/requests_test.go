package mqsc_test

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/qm"
	"github.com/qmgr/qmgr/request"
)

// TestDisplayRequests: DISPLAY REQUESTS shows the state records on the
// request managers' state queue (not their live markers nor tombstones),
// by request id, with mode, status, attempts, step and pending calls.
func TestDisplayRequests(t *testing.T) {
	m, q := startRequestsMember(t)
	id, _ := request.ParseID("0123456789abcdef0123456789abcdef0123456789abcdef")
	rec := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 2, NextSeq: 3, RequestID: id,
		Created: time.Now().Add(-time.Minute), Updated: time.Now(), Manager: "RM1", Step: "HOTEL",
		Pending: []request.PendingCall{{Attempt: 2, Seq: 2, Sent: time.Now(), Timeout: time.Second, Queue: "HOTEL"}}}
	for _, f := range []string{request.FormatLive, request.FormatState, request.FormatTombstone} {
		if err := q.Put(&mq.Message{Format: f, Body: rec.Encode()}, mq.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r := m.Exec("DISPLAY REQUESTS")
	// The second column moves right: the id is wider than 40 characters.
	want := "AMQ8960I: Display request details.\n" +
		"   REQID(0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF) MANAGER(RM1)\n" +
		"   MODE(RECOVERABLE)                                       STATUS(RUNNING)\n" +
		"   ATTEMPTS(2)                                             STEP(HOTEL)\n" +
		"   PENDING(1)                                              AGE(*)\n" +
		"   IDLE(*)\n"
	m1 := regexp.MustCompile(`AGE\(([0-9]+)\)`).FindStringSubmatch(r.Text)
	if m1 == nil {
		t.Fatalf("no AGE in %q", r.Text)
	}
	if age, err := strconv.Atoi(m1[1]); err != nil || age < 60 {
		t.Errorf("AGE: %q, want 60 s or more", m1)
	}
	text := regexp.MustCompile(`(AGE|IDLE)\([0-9]+\)`).ReplaceAllString(r.Text, "$1(*)")
	if !r.OK || text != want {
		t.Fatalf("DISPLAY REQUESTS:\n%s\nwant:\n%s\n%s", r.Text, want, r.Error)
	}
	r = m.Exec("DISPLAY REQUESTS(0123*) STEP")
	if len(r.Objects) != 1 || string(r.Objects[0]) != `{"REQID":"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF","STEP":"HOTEL"}` {
		t.Fatalf("%q", r.Objects)
	}
	if r := m.Exec("DISPLAY REQUESTS(FF*)"); !r.OK || strings.Contains(r.Text, "REQID") {
		t.Fatalf("%+v", r)
	}
}

// TestDisplayRequestsHostileText: the manager name and step label of a
// state record are bytes any application that can put to the state queue
// wrote: DISPLAY REQUESTS shows their control characters and invalid
// UTF-8 escaped, so that they cannot forge lines of its output (another
// request) or drive the terminal.
func TestDisplayRequestsHostileText(t *testing.T) {
	m, q := startRequestsMember(t)
	id, _ := request.ParseID("0123456789abcdef0123456789abcdef0123456789abcdef")
	rec := &request.Record{Mode: request.ModeRecoverable, Status: request.StatusRunning, Attempts: 1, NextSeq: 1, RequestID: id,
		Created: time.Now(), Updated: time.Now(), Manager: "RM\x1b[2J\xff", Step: "HOTEL\n   REQID(FEEDFACE) MANAGER(FAKE)\r"}
	if err := q.Put(&mq.Message{Format: request.FormatState, Body: rec.Encode()}, mq.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	r := m.Exec("DISPLAY REQUESTS")
	if !r.OK {
		t.Fatal(r.Error)
	}
	lines := strings.Split(strings.TrimSuffix(r.Text, "\n"), "\n")
	if len(lines) != 6 || strings.ContainsAny(r.Text, "\x1b\r\xff") || strings.Contains(r.Text, "\n   REQID(FEEDFACE)") {
		t.Fatalf("DISPLAY REQUESTS shows the record's bytes as they are:\n%q", r.Text)
	}
}

// startRequestsMember starts a golden member with the request managers'
// queues defined, and opens their state queue for output.
func startRequestsMember(t *testing.T) (*qm.Member, *mq.Queue) {
	t.Helper()
	dir := t.TempDir()
	m := startGoldenMember(t, dir)
	if r := m.Exec(request.Definitions()); !r.OK {
		t.Fatal(r.Error)
	}
	c, err := mq.Connect(mq.ConnectOptions{Group: "T", DataDir: dir + "/data", CFDir: dir + "/cf", QMgr: "QM1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect() })
	q, err := c.Open(request.DefaultStateQueue, mq.OpenOptions{Output: true})
	if err != nil {
		t.Fatal(err)
	}
	return m, q
}
