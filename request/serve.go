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
	cpServePoison    = crashpoint.New("request.serve.poison")    // a poison call's failure reply put and the call moved aside, not committed
)

// Handler performs one call of a subordinate server and returns its
// reply. Whatever it puts and gets through the Serve connection, under
// syncpoint, commits with the call and its reply, or not at all.
type Handler func(call *mq.Message) (reply []byte, err error)

// ServeOptions control Serve.
type ServeOptions struct {
	// MaxTries is how many runs of its handler a call gets: a call backed
	// out that many times (its handler failed, its reply could not be
	// put, or its server died holding it) is a poison call. 0: the
	// queue's BOTHRESH less one (mq moves a call away at BOTHRESH itself,
	// before Serve sees it), or no limit when the queue has no BOTHRESH
	// (or BOTHRESH(1), which leaves no try to spare). A MaxTries of
	// BOTHRESH or more is BOTHRESH less one.
	MaxTries int
	// PoisonQueue is where a poison call goes; "": the queue's BOQNAME.
	// With neither, the call is removed: its failure reply is all that
	// is left of it.
	PoisonQueue string
}

// Serve is ServeWith with the zero ServeOptions: a call gets BOTHRESH-1
// runs of its handler, then is answered with a failure and moved to the
// queue's BOQNAME.
func Serve(ctx context.Context, conn *mq.Conn, queue string, h Handler) error {
	return ServeWith(ctx, conn, queue, h, ServeOptions{})
}

// ServeWith is a subordinate server's loop on queue, until ctx ends (nil)
// or the connection fails: it gets a call under syncpoint, runs h, puts
// the reply to the call's reply-to queue with the call's CorrelID, and
// commits the three (and what h did through conn) together. So a call is
// performed once with respect to the server's unit of work: if the server
// dies before the commit, nothing of it happened and the call is taken
// again; after, the call is gone and its reply is out. An error from h
// backs the call out (it is taken again, its backout count raised), and
// so does a reply-to queue that cannot take the reply for good (it does
// not exist). Other errors of the reply's put (a full queue) back the
// call out and end ServeWith.
//
// A call taken with a backout count of opt's MaxTries (by default the
// queue's BOTHRESH less one: give server queues a BOTHRESH and BOQNAME)
// is a poison call: its handler is not run again. In one unit of work,
// its caller gets a failure reply (Format FormatCallFailed, CorrelID the
// call's, the body saying why in text: the request's Call returns a
// *CallFailedError at once instead of waiting for its timeout), and the
// call is moved to opt.PoisonQueue or BOQNAME. It was never performed. A
// call that queue cannot take for good (it does not exist) is removed,
// its failure reply saying so, as with neither queue: backed out, it
// would be taken again first, for ever. A
// failure reply the reply-to queue cannot take for good is left out; any
// other failure of the two puts backs the call out and ends ServeWith.
func ServeWith(ctx context.Context, conn *mq.Conn, queue string, h Handler, opt ServeOptions) error {
	q, err := conn.Open(queue, mq.OpenOptions{Input: true})
	if err != nil {
		return fmt.Errorf("request: serve %s: %w", queue, err)
	}
	defer q.Close()
	limit := opt.MaxTries
	if bo := q.Def().BOThresh; bo > 1 && (limit <= 0 || limit > bo-1) {
		limit = bo - 1
	}
	aside := opt.PoisonQueue
	if aside == "" {
		aside = q.Def().BOQName
	}
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
		if limit > 0 && call.BackoutCount >= limit {
			if err := poison(conn, outs, call, aside); err != nil {
				if berr := conn.Backout(); berr != nil {
					return fmt.Errorf("request: serve %s: back out a poison call (%v): %w", queue, err, berr)
				}
				return fmt.Errorf("request: serve %s: a poison call: %w", queue, err)
			}
			cpServePoison.Hit()
			if err := conn.Commit(); err != nil {
				return fmt.Errorf("request: serve %s: commit: %w", queue, err)
			}
			continue
		}
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
					// again, and given up on at the limit.
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

// poison answers call, a poison call got under syncpoint, with a failure
// reply and moves it to aside ("": removes it), in conn's unit of work.
func poison(conn *mq.Conn, outs map[string]*mq.Queue, call *mq.Message, aside string) error {
	why := fmt.Sprintf("backed out %d times (its handler failed, or its server died holding it, each time): not performed", call.BackoutCount)
	if aside != "" {
		m := *call
		m.Persistence = persistenceOf(call)
		switch err := putTo(conn, outs, aside, &m); {
		case err == nil:
			why += "; moved to " + aside
		case undeliverable(err):
			// For good (no such queue): as with no queue to move it to.
			// Backed out, it would be taken again first, for ever.
			why += fmt.Sprintf("; not moved to %s (%v): removed", aside, err)
		default:
			return fmt.Errorf("move the call to %s: %w", aside, err)
		}
	} else {
		why += "; removed"
	}
	if call.ReplyToQ == "" {
		return nil
	}
	err := putTo(conn, outs, call.ReplyToQ, &mq.Message{CorrelID: call.CorrelID, Format: FormatCallFailed, Body: []byte(why), Persistence: persistenceOf(call)})
	if err != nil && !undeliverable(err) {
		return fmt.Errorf("failure reply to %s: %w", call.ReplyToQ, err)
	}
	return nil
}

// putServeReply puts the reply of call to its reply-to queue, under
// syncpoint.
func putServeReply(conn *mq.Conn, outs map[string]*mq.Queue, call *mq.Message, reply []byte) error {
	return putTo(conn, outs, call.ReplyToQ, &mq.Message{CorrelID: call.CorrelID, Body: reply, Persistence: persistenceOf(call)})
}

// putTo puts m to queue under syncpoint, opening it (and keeping it in
// outs) the first time.
func putTo(conn *mq.Conn, outs map[string]*mq.Queue, queue string, m *mq.Message) error {
	out := outs[queue]
	if out == nil {
		var err error
		if out, err = conn.Open(queue, mq.OpenOptions{Output: true}); err != nil {
			return fmt.Errorf("open %s: %w", queue, err)
		}
		outs[queue] = out
	}
	if err := out.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
		return fmt.Errorf("put to %s: %w", queue, err)
	}
	return nil
}

// persistenceOf is the persistence of what answers call: the call's.
func persistenceOf(call *mq.Message) mq.Persistence {
	if call.Persistent {
		return mq.Persistent
	}
	return mq.NotPersistent
}

func runHandler(h Handler, call *mq.Message) (reply []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("request: handler panicked: %v", r)
		}
	}()
	return h(call)
}
