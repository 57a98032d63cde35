package request

import (
	"context"
	"errors"
	"fmt"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
)

// Crash points of a subordinate server (Serve), in order.
var (
	cpServeGot       = crashpoint.New("request.serve.got")       // a call got under syncpoint, the handler not run
	cpServeReplied   = crashpoint.New("request.serve.replied")   // the handler ran and its reply is put, not committed
	cpServeCommitted = crashpoint.New("request.serve.committed") // the call, the reply and the handler's puts committed
)

// Handler performs one call of a subordinate server and returns its
// reply. Whatever it puts and gets through the Serve connection, under
// syncpoint, commits with the call and its reply, or not at all.
type Handler func(call *mq.Message) (reply []byte, err error)

// Serve is a subordinate server's loop on queue, until ctx ends (nil) or
// the connection fails: it gets a call under syncpoint, runs h, puts the
// reply to the call's reply-to queue with the call's CorrelID, and commits
// the three (and what h did through conn) together. So a call is performed
// once with respect to the server's unit of work: if the server dies
// before the commit, nothing of it happened and the call is taken again;
// after, the call is gone and its reply is out. An error from h backs the
// call out (it is taken again, its backout count raised), and so does a
// reply-to queue that cannot take the reply for good (it does not exist):
// give the queue a BOTHRESH and BOQNAME so that a call that always fails
// is moved aside. Other errors of the reply's put (a full queue) back the
// call out and end Serve.
func Serve(ctx context.Context, conn *mq.Conn, queue string, h Handler) error {
	q, err := conn.Open(queue, mq.OpenOptions{Input: true})
	if err != nil {
		return fmt.Errorf("request: serve %s: %w", queue, err)
	}
	defer q.Close()
	var intr mq.Interrupter
	defer context.AfterFunc(ctx, intr.Interrupt)()
	outs := map[string]*mq.Queue{}
	defer func() {
		for _, o := range outs {
			o.Close()
		}
	}()
	for {
		call, err := q.Get(mq.GetOptions{Syncpoint: true, Wait: mq.WaitForever, Interrupt: &intr})
		if errors.Is(err, mq.ErrInterrupted) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("request: serve %s: %w", queue, err)
		}
		cpServeGot.Hit()
		reply, err := runHandler(h, call)
		if err != nil {
			if berr := conn.Backout(); berr != nil {
				return fmt.Errorf("request: serve %s: back out a failed call: %w", queue, berr)
			}
			continue
		}
		if call.ReplyToQ != "" {
			if err := putServeReply(conn, outs, call, reply); err != nil {
				if berr := conn.Backout(); berr != nil {
					return fmt.Errorf("request: serve %s: back out a call whose reply failed (%v): %w", queue, err, berr)
				}
				if undeliverable(err) {
					// A poison call, as one whose handler fails: taken
					// again, and moved aside at the queue's BOTHRESH.
					continue
				}
				return fmt.Errorf("request: serve %s: %w", queue, err)
			}
		}
		cpServeReplied.Hit()
		if err := conn.Commit(); err != nil {
			return fmt.Errorf("request: serve %s: commit: %w", queue, err)
		}
		cpServeCommitted.Hit()
	}
}

// putServeReply puts the reply of call to its reply-to queue, under
// syncpoint, opening it (and keeping it in outs) the first time.
func putServeReply(conn *mq.Conn, outs map[string]*mq.Queue, call *mq.Message, reply []byte) error {
	out := outs[call.ReplyToQ]
	if out == nil {
		var err error
		if out, err = conn.Open(call.ReplyToQ, mq.OpenOptions{Output: true}); err != nil {
			return fmt.Errorf("open reply queue %s: %w", call.ReplyToQ, err)
		}
		outs[call.ReplyToQ] = out
	}
	p := mq.NotPersistent
	if call.Persistent {
		p = mq.Persistent
	}
	if err := out.Put(&mq.Message{CorrelID: call.CorrelID, Body: reply, Persistence: p}, mq.PutOptions{Syncpoint: true}); err != nil {
		return fmt.Errorf("reply to %s: %w", call.ReplyToQ, err)
	}
	return nil
}

func runHandler(h Handler, call *mq.Message) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("request: handler panicked: %v", r)
		}
	}()
	return h(call)
}
