package request_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/qmgr/qmgr/request"
)

// TestStopWithAProgramBlockedOutsideItsCtx: a program blocked on
// something of its own never reaches a step, so Stop, its ctx ended, cannot
// abandon its request there. Stop must return (ErrStopTimeout) instead of
// waiting for ever; the request, abandoned at its next step once the
// program comes back, is then run to its end by another manager.
func TestStopWithAProgramBlockedOutsideItsCtx(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	program := func(ctx *request.Ctx, req *request.Request) error {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release // the program's own business, not its Ctx
		return ctx.FinalReply([]byte("done"))
	}
	m, err := request.Start(request.Config{Name: "RMSTOP", Connect: e.connect("QM1"), Input: inputQ, Program: program, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	id := e.put(request.ModeRecoverable, "ok")
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the program did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- m.Stop(ctx) }()
	select {
	case err := <-stopped:
		if !errors.Is(err, request.ErrStopTimeout) {
			t.Errorf("Stop: %v, want ErrStopTimeout", err)
		}
	case <-time.After(request.StopGrace + 10*time.Second):
		close(release)
		t.Fatal("Stop still waits for a program blocked outside its Ctx")
	}
	close(release)
	<-m.Done()
	e.reviewManager("QM1", request.Config{Name: "RMNEXT", Program: program, Workers: 1})
	f := e.reviewWaitGone(id)
	if len(f.finals) != 1 {
		t.Errorf("final replies %q, want one", f.finals)
	}
}
