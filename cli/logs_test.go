package cli

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// logEvents returns the fields of every line of log (slog's text format:
// key=value, a value quoted when it needs to be) whose event is event.
func logEvents(t *testing.T, log, event string) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, line := range strings.Split(log, "\n") {
		if f := logFields(line); f["event"] == event {
			out = append(out, f)
		}
	}
	return out
}

// logFields parses one line of slog's text format.
func logFields(line string) map[string]string {
	f := map[string]string{}
	for line = strings.TrimSpace(line); line != ""; line = strings.TrimSpace(line) {
		eq := strings.IndexByte(line, '=')
		if eq < 0 {
			break
		}
		key, rest := line[:eq], line[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
			val, rest = rest[:sp], rest[sp:]
		} else {
			val, rest = rest, ""
		}
		f[key] = val
		line = rest
	}
	return f
}

// fieldInt is field key of f as an integer (-1 when it is not one).
func fieldInt(f map[string]string, key string) int {
	n, err := strconv.Atoi(f[key])
	if err != nil {
		return -1
	}
	return n
}

// TestRecoveryLogLines: a member SIGKILLed while an application's unit of
// work through it holds 3 messages and has put 1 more: the survivor logs
// the peer recovery as one line (event=peer_recovered) naming the dead
// member, its pid and incarnation, the connections recovered and the 4
// messages backed out, and how long it took; the connection's own line
// says the same of it. A backup taken by command then logs one line
// (event=backup_taken) with its trigger and message count.
func TestRecoveryLogLines(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	g := newTestGroup(t)
	g.start("QM1")
	qm2 := g.start("QM2")
	g.mqsc("DEFINE QLOCAL(Q) DEFPSIST(YES)")
	if code, _, errs := g.run("", "put", "--name", "QM1", "--queue", "Q", "--count", "5", "--persistent"); code != 0 {
		t.Fatalf("put: %s", errs)
	}
	c := g.connect("QM2") // an application through QM2, in this process: it stays alive
	q, err := c.Open("Q", mq.OpenOptions{Input: true, Output: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := q.Get(mq.GetOptions{Syncpoint: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Put(&mq.Message{Body: []byte("uncommitted")}, mq.PutOptions{Syncpoint: true}); err != nil {
		t.Fatal(err)
	}
	pid := qm2.Process.Pid
	g.kill("QM2")
	var rec map[string]string
	waitFor(t, "the peer recovery's log line", 30*time.Second, func() bool {
		ls := logEvents(t, g.harness().Log("QM1"), "peer_recovered")
		if len(ls) > 0 {
			rec = ls[0]
		}
		return rec != nil
	})
	if rec["msg"] != "recovered a dead member" || rec["qmgr"] != "QM1" || rec["peer"] != "QM2" || fieldInt(rec, "pid") != pid ||
		fieldInt(rec, "incarnation") != 1 || fieldInt(rec, "connections") < 1 ||
		fieldInt(rec, "messages_backed_out") != 4 || fieldInt(rec, "messages_committed") != 0 {
		t.Errorf("peer recovery line %v: want QM1 recovering QM2 (pid %d, incarnation 1), 4 messages backed out, none committed", rec, pid)
	}
	if d, err := time.ParseDuration(rec["took"]); err != nil || d <= 0 {
		t.Errorf("peer recovery line: took=%q is not a duration", rec["took"])
	}
	var conn map[string]string
	for _, l := range logEvents(t, g.harness().Log("QM1"), "connection_recovered") {
		if fieldInt(l, "slot") == c.Tag().Slot() {
			conn = l
		}
	}
	if conn == nil || fieldInt(conn, "messages_backed_out") != 4 || conn["revoked"] != "true" {
		t.Errorf("the application's connection: line %v, want 4 messages backed out, revoked", conn)
	}
	c.Disconnect()

	g.mqsc("BACKUP CFSTRUCT(APPL1)")
	bk := logEvents(t, g.harness().Log("QM1"), "backup_taken")
	if len(bk) != 1 || bk[0]["structure"] != "APPL1" || bk[0]["trigger"] != "command" || fieldInt(bk[0], "messages") != 5 {
		t.Errorf("backup lines %v: want one, of APPL1, by command, 5 messages", bk)
	}
	if len(bk) == 1 {
		if _, err := time.ParseDuration(bk[0]["took"]); err != nil {
			t.Errorf("backup line: took=%q is not a duration", bk[0]["took"])
		}
	}
}
