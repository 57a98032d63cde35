package request

import (
	"errors"
	"fmt"

	"github.com/qmgr/qmgr/mq"
)

// Cancel asks for request id to be cancelled: a cancel message (CorrelID
// the request id) on the cancel queue (queue; "" for
// DefaultCancelQueue). The request's manager sees it before its next step
// or while a call waits (within Config.CancelCheck) and ends the request
// as its mode says; a manager that takes the request later sees it first.
func Cancel(c *mq.Conn, queue string, id ID) error {
	if queue == "" {
		queue = DefaultCancelQueue
	}
	q, err := c.Open(queue, mq.OpenOptions{Output: true})
	if err != nil {
		return fmt.Errorf("request: cancel %s: %w", id, err)
	}
	defer q.Close()
	if err := q.Put(&mq.Message{CorrelID: id, Format: FormatCancel}, mq.PutOptions{}); err != nil {
		return fmt.Errorf("request: cancel %s: %w", id, err)
	}
	return nil
}

// List is the state records of the requests in flight on the state queue
// (queue; "" for DefaultStateQueue), in the queue's order: what DISPLAY
// REQUESTS shows. Messages that are not records are left out.
func List(c *mq.Conn, queue string) ([]*Record, error) {
	if queue == "" {
		queue = DefaultStateQueue
	}
	q, err := c.Open(queue, mq.OpenOptions{Browse: true})
	if err != nil {
		return nil, fmt.Errorf("request: list %s: %w", queue, err)
	}
	defer q.Close()
	cur, err := q.Browse()
	if err != nil {
		return nil, fmt.Errorf("request: list %s: %w", queue, err)
	}
	var out []*Record
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("request: list %s: %w", queue, err)
		}
		if m.Format != FormatState {
			continue
		}
		if r, err := ParseRecord(m.Body); err == nil {
			out = append(out, r)
		}
	}
}
