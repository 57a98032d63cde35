package request_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/testproc"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

func init() {
	testproc.Register("filler", fillerMain)
}

// fillerMain takes every connection slot of the group but -leave, says
// READY, and holds them until SIGTERM.
func fillerMain(args []string) int {
	fs := flag.NewFlagSet("filler", flag.ContinueOnError)
	var cf connFlags
	cf.register(fs)
	leave := fs.Int("leave", 0, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	root, err := mq.Connect(cf.options())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conns := []*mq.Conn{root}
	for {
		c, err := root.Sibling()
		if errors.Is(err, mq.ErrMaxConns) {
			break
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		conns = append(conns, c)
	}
	for range *leave {
		conns[len(conns)-1].Disconnect()
		conns = conns[:len(conns)-1]
	}
	fmt.Println("READY")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	for i := len(conns) - 1; i >= 0; i-- {
		conns[i].Disconnect()
	}
	return 0
}

// TestReconnectPacing: while the group has no connection slot to spare
// (MQRC 2025: another process holds all but two), every session of a
// manager ends at once, its third connection refused: the manager must
// connect again less and less often, saying why (the reason code), not
// at once in a loop with a warning each time; once slots are free again
// it works.
func TestReconnectPacing(t *testing.T) {
	e := newEnv(t)
	filler := e.start("filler", "QM1", nil, "-leave", "2")
	var logs reviewLogBuffer
	e.reviewManager("QM1", request.Config{
		Name: "RMP", Workers: 1, CancelCheck: 20 * time.Millisecond, SweepInterval: 50 * time.Millisecond, ReconnectWait: 20 * time.Millisecond,
		Log:     slog.New(slog.NewTextHandler(&logs, nil)),
		Program: func(ctx *request.Ctx, req *request.Request) error { return ctx.FinalReply([]byte("done")) },
	})
	const ended = "connecting again"
	waitFor(t, 10*time.Second, "the first session to end", func() bool { return strings.Contains(logs.String(), ended) })
	start := strings.Count(logs.String(), ended)
	time.Sleep(2 * time.Second) // the slots stay taken "a while": what is measured is how often the manager connects meanwhile
	sessions := strings.Count(logs.String(), ended) - start
	filler.stop(t)
	// Working again: a request runs.
	id := e.put(request.ModeRecoverable, "ok")
	waitFor(t, 30*time.Second, "the request's final reply", func() bool { return len(e.facts(id).finals) > 0 })
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 {
		t.Errorf("final replies %q once the slots were free, want one", f.finals)
	}
	t.Logf("%d sessions in 2 s", sessions)
	if !slices.ContainsFunc(strings.Split(logs.String(), "\n"), func(l string) bool {
		return strings.Contains(l, ended) && strings.Contains(l, "reason=\"MQRC 2025")
	}) {
		t.Errorf("the manager did not say why its sessions ended (MQRC 2025)")
	}
	// Connecting again at once is hundreds of sessions in 2 s; backing
	// off from ReconnectWait (20 ms), about seven.
	if sessions > 20 {
		t.Errorf("%d sessions in 2 s while the slots were taken", sessions)
	}
	if t.Failed() {
		l := logs.String()
		if len(l) > 4000 {
			l = l[len(l)-4000:]
		}
		t.Logf("manager (tail):\n%s", l)
	}
}
