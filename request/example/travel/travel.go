// Package travel is the example of package request (issue 17): a
// travel-booking request manager that books a flight, a hotel and the
// payment through three subordinate servers, and then confirms the trip
// to its requester.
//
//	requester --TRAVEL.REQUESTS--> request manager (Book)
//	                                 |-- call --> TRAVEL.FLIGHT  (a flight server)
//	                                 |-- call --> TRAVEL.HOTEL   (a hotel server)
//	                                 |-- call --> TRAVEL.PAYMENT (a payment server)
//	requester <--TRAVEL.REPLIES---- final reply "booked <trip>: flight FL-..., hotel HO-..., paid PA-..."
//
// Each server performs a call in one unit of work with its reply and a
// line on the ledger (TRAVEL.LEDGER, CorrelID the call id, body the
// server's name): the ledger is what was booked, and how many times. The
// mode of a request (request.RequestHeader) says what a failure costs it:
// a non-recoverable trip is dropped, a restartable one books again from
// the top (a flight booked twice), a request-level recoverable one
// resumes where it was and books each thing once.
//
// Tests and qmgr demo --part requests (package cli/demo) run it: Manager
// and Servers are what their processes run, Definitions the MQSC of the
// queues, Put a requester's request, and Outcomes reads what became of
// each request from the queues.
package travel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/request"
)

// The example's queues.
const (
	Input   = "TRAVEL.REQUESTS" // the manager's input queue (no BOTHRESH)
	Replies = "TRAVEL.REPLIES"  // the requester's reply queue
	Flight  = "TRAVEL.FLIGHT"
	Hotel   = "TRAVEL.HOTEL"
	Payment = "TRAVEL.PAYMENT"
	Ledger  = "TRAVEL.LEDGER" // one message per call performed, CorrelID the call id
)

// Services are the subordinate servers' queues, in the order a booking
// calls them.
var Services = []string{Flight, Hotel, Payment}

// Definitions is the MQSC of the request managers' group-wide queues and
// of the example's own. The servers' queues move a call that failed five
// times to their backout queue.
func Definitions() string {
	s := request.Definitions()
	s += fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(100000) DESCR('travel: booking requests')\n", Input)
	s += fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(100000) DESCR('travel: confirmations')\n", Replies)
	s += fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(100000) DESCR('travel: what the servers booked')\n", Ledger)
	for _, q := range Services {
		s += fmt.Sprintf("DEFINE QLOCAL(%s) MAXDEPTH(100000) BOTHRESH(5) BOQNAME(%s.BO)\nDEFINE QLOCAL(%s.BO) MAXDEPTH(100000)\n", q, q, q)
	}
	return s
}

// Book is the request program: a trip's body is its name. It books the
// flight, keeps its reference, books the hotel, pays, and confirms. Each
// step is named (DISPLAY REQUESTS shows it).
func Book(ctx *request.Ctx, req *request.Request) error {
	refs := map[string]string{}
	for _, q := range Services {
		ctx.Step(q)
		r, err := ctx.Call(q, req.Body, request.CallOptions{})
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		refs[q] = string(r)
		if q == Flight {
			// The recoverable mode commits it: a resumption loads it
			// back instead of booking again.
			if err := ctx.Save("flight", r); err != nil {
				return err
			}
		}
	}
	ctx.Step("confirm")
	return ctx.FinalReply(fmt.Appendf(nil, "booked %s: flight %s, hotel %s, paid %s", req.Body, ctx.Load("flight"), refs[Hotel], refs[Payment]))
}

// ManagerConfig is a travel request manager's configuration: Book on
// Input, restartable by default, X = 3.
func ManagerConfig(name string, connect mq.ConnectOptions) request.Config {
	return request.Config{Name: name, Connect: connect, Input: Input, Program: Book, MaxAttempts: 3,
		CallTimeout: 20 * time.Second, SweepInterval: 200 * time.Millisecond}
}

// Servers serves the three subordinate queues until ctx ends, each on a
// connection of its own (siblings of root), each call taking delay: a
// reference for the booking, and a line on the ledger in the unit of work
// that performs the call.
func Servers(ctx context.Context, root *mq.Conn, delay time.Duration) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(Services))
	for _, q := range Services {
		c, err := root.Sibling()
		if err != nil {
			return err
		}
		defer c.Disconnect()
		ledger, err := c.Open(Ledger, mq.OpenOptions{Output: true})
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- request.Serve(ctx, c, q, func(call *mq.Message) ([]byte, error) {
				if delay > 0 {
					time.Sleep(delay) // the server's work, not synchronisation
				}
				if err := ledger.Put(&mq.Message{CorrelID: call.CorrelID, Body: []byte(q)}, mq.PutOptions{Syncpoint: true}); err != nil {
					return nil, err
				}
				return []byte(Reference(q, call.CorrelID)), nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, <-errs, <-errs)
}

// Reference is the booking reference a server gives a call: its kind and
// a hash of the call id.
func Reference(queue string, callID [24]byte) string {
	h := sha256.Sum256(callID[:])
	prefix := map[string]string{Flight: "FL-", Hotel: "HO-", Payment: "PA-"}[queue]
	return prefix + hex.EncodeToString(h[:3])
}

// Put sends trip as a request of mode, with Replies as its reply-to
// queue, and returns its id.
func Put(q *mq.Queue, mode request.Mode, trip string) (request.ID, error) {
	m := &mq.Message{Format: request.FormatRequest, Body: request.RequestHeader{Mode: mode}.Encode([]byte(trip)), ReplyToQ: Replies}
	if err := q.Put(m, mq.PutOptions{}); err != nil {
		return request.ID{}, err
	}
	return request.ID(m.MsgID), nil
}

// Outcome is what became of one request, from the queues.
type Outcome struct {
	ID     request.ID
	Mode   request.Mode
	Trip   string
	Finals []string        // its final replies: "FORMAT:body"
	Booked map[string]int  // calls performed (ledger lines), by server queue
	Tomb   *request.Record // its tombstone, if it left one
	Strays []request.UnexpectedHeader
	Live   bool // its record or live marker is still on the state queue
}

// Attempts is how many times the request ran (its tombstone's count;
// 1 when it left none).
func (o *Outcome) Attempts() int {
	if o.Tomb != nil {
		return int(o.Tomb.Attempts)
	}
	return 1
}

// Ended reports whether the request is over: a final reply, or a
// tombstone saying purged or cancelled, and no state left.
func (o *Outcome) Ended() bool {
	if o.Live {
		return false
	}
	return len(o.Finals) > 0 || o.Tomb != nil && (o.Tomb.Status == request.StatusPurged || o.Tomb.Status == request.StatusCancelled)
}

// Check says how the outcome breaks its mode's promise ("" it keeps it):
// non-recoverable, at most one final reply (none only if purged), no call
// performed twice; restartable, exactly one final reply, at most
// maxAttempts attempts, each call at most once per attempt;
// request-level recoverable, exactly one final reply and each booking
// made exactly once.
func (o *Outcome) Check(maxAttempts int) string {
	switch o.Mode {
	case request.ModeNonRecoverable:
		if len(o.Finals) > 1 {
			return fmt.Sprintf("%d final replies", len(o.Finals))
		}
		if len(o.Finals) == 0 && (o.Tomb == nil || o.Tomb.Status != request.StatusPurged && o.Tomb.Status != request.StatusCancelled) {
			return "no reply and not purged"
		}
		for q, n := range o.Booked {
			if n > 1 {
				return fmt.Sprintf("%s booked %d times", q, n)
			}
		}
	case request.ModeRestartable:
		if len(o.Finals) != 1 {
			return fmt.Sprintf("%d final replies", len(o.Finals))
		}
		if o.Attempts() > maxAttempts {
			return fmt.Sprintf("%d attempts", o.Attempts())
		}
		for q, n := range o.Booked {
			if n > o.Attempts() {
				return fmt.Sprintf("%s booked %d times in %d attempts", q, n, o.Attempts())
			}
		}
	case request.ModeRecoverable:
		if len(o.Finals) != 1 {
			return fmt.Sprintf("%d final replies", len(o.Finals))
		}
		for _, q := range Services {
			if o.Booked[q] != 1 {
				return fmt.Sprintf("%s booked %d times", q, o.Booked[q])
			}
		}
	}
	return ""
}

// Outcomes browses the reply queue, the ledger, the state and tombstone
// queues and the Unexpected Message Queue, and says what became of each request of
// trips (by id).
func Outcomes(c *mq.Conn, trips map[request.ID]Outcome) (map[request.ID]*Outcome, error) {
	out := map[request.ID]*Outcome{}
	byKey := map[request.Key]*Outcome{}
	for id, o := range trips {
		o := o
		o.ID, o.Booked, o.Finals, o.Strays, o.Tomb, o.Live = id, map[string]int{}, nil, nil, nil, false
		out[id] = &o
		byKey[request.KeyOf(id)] = &o
	}
	key := func(correl [24]byte) *Outcome { return byKey[request.Key(correl[:16])] }
	err := browse(c, Replies, func(m *mq.Message) error {
		if o := out[request.ID(m.CorrelID)]; o != nil && request.IsFinalFormat(m.Format) {
			o.Finals = append(o.Finals, m.Format+":"+string(m.Body))
		}
		return nil
	})
	if err == nil {
		err = browse(c, Ledger, func(m *mq.Message) error {
			if o := key(m.CorrelID); o != nil {
				o.Booked[string(m.Body)]++
			}
			return nil
		})
	}
	if err == nil {
		err = browse(c, request.DefaultStateQueue, func(m *mq.Message) error {
			if o := key(m.CorrelID); o != nil {
				o.Live = true // its record or live marker
			}
			return nil
		})
	}
	if err == nil {
		err = browse(c, request.DefaultTombstoneQueue, func(m *mq.Message) error {
			o := key(m.CorrelID)
			if o == nil || m.Format != request.FormatTombstone {
				return nil
			}
			r, err := request.ParseRecord(m.Body)
			if err != nil {
				return fmt.Errorf("travel: tombstone of %s: %w", o.ID, err)
			}
			o.Tomb = r
			return nil
		})
	}
	if err == nil {
		err = browse(c, request.DefaultUnexpectedQueue, func(m *mq.Message) error {
			h, _, err := request.ParseUnexpectedHeader(m.Body)
			if err != nil {
				return fmt.Errorf("travel: %s: %w", request.DefaultUnexpectedQueue, err)
			}
			o := key(h.CorrelID)
			if o == nil {
				o = out[h.RequestID]
			}
			if o != nil {
				o.Strays = append(o.Strays, h)
			}
			return nil
		})
	}
	return out, err
}

func browse(c *mq.Conn, queue string, f func(*mq.Message) error) error {
	q, err := c.Open(queue, mq.OpenOptions{Browse: true})
	if err != nil {
		return fmt.Errorf("travel: browse %s: %w", queue, err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		return fmt.Errorf("travel: browse %s: %w", queue, err)
	}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("travel: browse %s: %w", queue, err)
		}
		if err := f(m); err != nil {
			return err
		}
	}
}
