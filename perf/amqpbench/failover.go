package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"
)

// failoverOnce: a consumer through QM1 holds held unacknowledged messages;
// QM1 (with its AMQP service) is SIGKILLed; the consumer reconnects (to
// the generic port) and consumes again. It returns the milliseconds from
// the kill to the first redelivery, after checking that every held
// message came back once, redelivered, and restarts QM1.
func failoverOnce(q *qmgrSide, held int) (float64, error) {
	queue := fmt.Sprintf("bench.fo.%d", runSeq.Add(1))
	if err := admin(q.url("QM2"), func(ch *rmq.Channel) error {
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			return err
		}
		for i := range held {
			m := rmq.Publishing{Body: []byte(strconv.Itoa(i)), DeliveryMode: rmq.Persistent}
			if err := ch.PublishWithContext(context.Background(), "", queue, false, false, m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, err
	}
	c, ds, err := consumer(q.url("QM1"), queue, held)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	for i := range held {
		if _, err := next(ds, 10*time.Second); err != nil {
			return 0, fmt.Errorf("held delivery %d: %w", i, err)
		}
	}
	t0 := time.Now()
	q.kill("QM1")
	c2, ds2, err := reconnect(q.genericURL("QM2"), queue, held, 30*time.Second)
	if err != nil {
		return 0, err
	}
	first, err := next(ds2, 30*time.Second)
	el := time.Since(t0)
	if err == nil {
		err = allBack(first, ds2, held)
	} else {
		err = fmt.Errorf("no redelivery: %w", err)
	}
	c2.Close() // before the queue goes: its consumer would be cancelled
	if err != nil {
		return 0, err
	}
	deleteQueues(q.url("QM2"), queue)
	if err := q.start("QM1"); err != nil {
		return 0, fmt.Errorf("restart QM1: %w", err)
	}
	return float64(el.Microseconds()) / 1000, nil
}

// consumer connects to url and consumes queue with prefetch held, manual
// ack.
func consumer(url, queue string, held int) (*rmq.Connection, <-chan rmq.Delivery, error) {
	c, err := rmq.Dial(url)
	if err != nil {
		return nil, nil, err
	}
	ch, err := c.Channel()
	if err == nil {
		err = ch.Qos(held, 0, false)
	}
	var ds <-chan rmq.Delivery
	if err == nil {
		ds, err = ch.Consume(queue, "", false, false, false, false, nil)
	}
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, ds, nil
}

// reconnect retries consumer until it succeeds or within passed.
func reconnect(url, queue string, held int, within time.Duration) (*rmq.Connection, <-chan rmq.Delivery, error) {
	deadline := time.Now().Add(within)
	for {
		c, ds, err := consumer(url, queue, held)
		if err == nil {
			return c, ds, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("reconnect within %v: %w", within, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// next is the next delivery, or an error after within.
func next(ds <-chan rmq.Delivery, within time.Duration) (rmq.Delivery, error) {
	select {
	case d, ok := <-ds:
		if !ok {
			return d, fmt.Errorf("the connection closed")
		}
		return d, nil
	case <-time.After(within):
		return rmq.Delivery{}, fmt.Errorf("none within %v", within)
	}
}

// allBack checks that the held messages come back exactly once each,
// redelivered, and acknowledges them.
func allBack(first rmq.Delivery, ds <-chan rmq.Delivery, held int) error {
	seen := map[string]bool{}
	d := first
	for i := 0; ; i++ {
		if !d.Redelivered {
			return fmt.Errorf("message %q came back without redelivered", d.Body)
		}
		if seen[string(d.Body)] {
			return fmt.Errorf("message %q came back twice", d.Body)
		}
		seen[string(d.Body)] = true
		if err := d.Ack(false); err != nil {
			return err
		}
		if i == held-1 {
			break
		}
		var err error
		if d, err = next(ds, 10*time.Second); err != nil {
			return fmt.Errorf("%d of %d held messages came back: %w", len(seen), held, err)
		}
	}
	if d, err := next(ds, 200*time.Millisecond); err == nil {
		return fmt.Errorf("message %q more than the %d held", d.Body, held)
	}
	return nil
}
