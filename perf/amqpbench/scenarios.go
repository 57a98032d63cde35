package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"
)

// target is a broker under measurement.
type target struct {
	name string // "qmgr" or "rabbitmq"
	url  string
	// cpu is the processor time the broker's processes used so far, by
	// part (qmgr: its members and its broker processes).
	cpu func() map[string]time.Duration
	// servePID is the process that serves the AMQP connections of url.
	servePID func() (int, error)
}

// sample is one run of a throughput scenario.
type sample struct {
	rate     float64 // messages per second (delivered or confirmed)
	other    float64 // the scenario's second count per second: publishes, or deliveries (confirm)
	usPerMsg float64 // the broker's processor time per message, µs
	// clientUs is the benchmark client's (this process's) processor time
	// per message, µs: the client shares the machine's cores with the
	// broker, so it bounds what any broker can reach here.
	clientUs float64
	// parts is usPerMsg by part of the broker.
	parts map[string]float64
}

// body is every benchmark message's 64-byte body.
var body = make([]byte, 64)

// runSeq numbers the queues and exchanges of runs, so no run sees another's.
var runSeq atomic.Int64

// window lets a run warm up, then counts what counter and other gain over
// o.duration and the processor time the broker used meanwhile.
func window(o options, t *target, counter, other *atomic.Int64) sample {
	time.Sleep(o.warmup)
	c0, p0, cpu0, self0, t0 := counter.Load(), other.Load(), t.cpu(), selfCPU(), time.Now()
	time.Sleep(o.duration)
	c1, p1, cpu1, self1, el := counter.Load(), other.Load(), t.cpu(), selfCPU(), time.Since(t0)
	s := sample{rate: float64(c1-c0) / el.Seconds(), other: float64(p1-p0) / el.Seconds(), parts: map[string]float64{}}
	if c1 > c0 {
		s.clientUs = float64((self1 - self0).Microseconds()) / float64(c1-c0)
		for part, t1 := range cpu1 {
			us := float64((t1 - cpu0[part]).Microseconds()) / float64(c1-c0)
			s.parts[part] = us
			s.usPerMsg += us
		}
	}
	return s
}

// selfCPU is the processor time (user and system) this process, the
// benchmark client, has used so far; zero when the kernel will not say.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clients are a scenario's clients: connections to close and goroutines to
// wait for when it ends.
type clients struct {
	stop  chan struct{}
	wg    sync.WaitGroup
	conns []*rmq.Connection
	mu    sync.Mutex
	err   error
}

func newClients() *clients { return &clients{stop: make(chan struct{})} }

func (r *clients) dial(url string) (*rmq.Channel, error) {
	c, err := rmq.Dial(url)
	if err != nil {
		return nil, err
	}
	r.conns = append(r.conns, c)
	return c.Channel()
}

// fail records a client's first error.
func (r *clients) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

func (r *clients) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

// end stops the clients, closes the connections and says the first error.
func (r *clients) end() error {
	close(r.stop)
	for _, c := range r.conns {
		c.Close()
	}
	r.wg.Wait()
	return r.err
}

// consume starts a consumer of queue on a connection of its own: prefetch
// 100, manual ack of every message (PerfTest's default: no multiple ack).
func (r *clients) consume(url, queue string, delivered *atomic.Int64) error {
	ch, err := r.dial(url)
	if err != nil {
		return err
	}
	if err := ch.Qos(100, 0, false); err != nil {
		return err
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for d := range ds {
			if err := d.Ack(false); err != nil {
				if !r.stopped() {
					r.fail(fmt.Errorf("ack: %w", err))
				}
				return
			}
			delivered.Add(1)
		}
	}()
	return nil
}

// flow bounds a publisher's lead over its consumers: it publishes while
// the messages published and not yet delivered (each publish counting
// copies times, one per queue it reaches) are at most max per queue; max
// 0 leaves it unbounded.
type flow struct {
	delivered *atomic.Int64
	copies    int64
	max       int64
}

// wait waits until a publisher that has published n may publish again, or
// the clients stop.
func (f flow) wait(r *clients, n int64) {
	for f.max > 0 && n*f.copies-f.delivered.Load() > f.max*f.copies && !r.stopped() {
		time.Sleep(100 * time.Microsecond)
	}
}

// publish starts a publisher on a connection of its own, publishing
// transient 64-byte messages to exchange with key as fast as it can
// within fl.
func (r *clients) publish(url, exchange, key string, published *atomic.Int64, fl flow) error {
	ch, err := r.dial(url)
	if err != nil {
		return err
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		msg := rmq.Publishing{Body: body, DeliveryMode: rmq.Transient}
		for !r.stopped() {
			fl.wait(r, published.Load())
			if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, msg); err != nil {
				if !r.stopped() {
					r.fail(fmt.Errorf("publish: %w", err))
				}
				return
			}
			published.Add(1)
		}
	}()
	return nil
}

// admin runs declarations on a connection of its own and closes it.
func admin(url string, f func(ch *rmq.Channel) error) error {
	c, err := rmq.Dial(url)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	return f(ch)
}

// publishConsume: one publisher, one consumer, a transient queue.
func publishConsume(t *target, o options) (sample, error) {
	queue := fmt.Sprintf("bench.pc.%d", runSeq.Add(1))
	if err := admin(t.url, func(ch *rmq.Channel) error {
		_, err := ch.QueueDeclare(queue, false, false, false, false, nil)
		return err
	}); err != nil {
		return sample{}, err
	}
	defer deleteQueues(t.url, queue)
	var delivered, published atomic.Int64
	r := newClients()
	err := r.consume(t.url, queue, &delivered)
	if err == nil {
		err = r.publish(t.url, "", queue, &published, flow{&delivered, 1, int64(o.backlog)})
	}
	var s sample
	if err == nil {
		s = window(o, t, &delivered, &published)
	}
	return s, errors.Join(err, r.end())
}

// confirmPersistent: 8 publishers of persistent messages to a durable
// queue in confirm mode, each with at most o.window unconfirmed, and one
// consumer; the figure is confirms per second.
func confirmPersistent(t *target, o options) (sample, error) {
	queue := fmt.Sprintf("bench.cp.%d", runSeq.Add(1))
	if err := admin(t.url, func(ch *rmq.Channel) error {
		_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
		return err
	}); err != nil {
		return sample{}, err
	}
	defer deleteQueues(t.url, queue)
	var delivered, confirmed, nacked atomic.Int64
	r := newClients()
	err := r.consume(t.url, queue, &delivered)
	for i := 0; i < o.confirmPublishers && err == nil; i++ {
		err = r.publishConfirmed(t.url, queue, o.confirmWindow, &confirmed, &nacked)
	}
	var s sample
	if err == nil {
		s = window(o, t, &confirmed, &delivered)
	}
	err = errors.Join(err, r.end())
	if n := nacked.Load(); n > 0 && err == nil {
		err = fmt.Errorf("%d publishes nacked", n)
	}
	return s, err
}

// publishConfirmed starts a publisher in confirm mode on a connection of
// its own with at most window publishes unconfirmed.
func (r *clients) publishConfirmed(url, queue string, window int, confirmed, nacked *atomic.Int64) error {
	ch, err := r.dial(url)
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan rmq.Confirmation, window+1))
	credit := make(chan struct{}, window)
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		for c := range confirms {
			if c.Ack {
				confirmed.Add(1)
			} else {
				nacked.Add(1)
			}
			<-credit
		}
	}()
	go func() {
		defer r.wg.Done()
		msg := rmq.Publishing{Body: body, DeliveryMode: rmq.Persistent}
		for {
			select {
			case credit <- struct{}{}:
			case <-r.stop:
				return
			}
			if err := ch.PublishWithContext(context.Background(), "", queue, false, false, msg); err != nil {
				if !r.stopped() {
					r.fail(fmt.Errorf("publish: %w", err))
				}
				return
			}
		}
	}()
	return nil
}

// fanout: one publisher to a fanout exchange bound to 4 queues, a
// consumer on each; the figure is deliveries per second, all consumers
// together.
func fanout(t *target, o options) (sample, error) {
	n := runSeq.Add(1)
	exchange := fmt.Sprintf("bench.fan.%d", n)
	var queues []string
	for i := range 4 {
		queues = append(queues, fmt.Sprintf("bench.fan.%d.%d", n, i))
	}
	if err := admin(t.url, func(ch *rmq.Channel) error {
		if err := ch.ExchangeDeclare(exchange, "fanout", false, false, false, false, nil); err != nil {
			return err
		}
		for _, q := range queues {
			if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
				return err
			}
			if err := ch.QueueBind(q, "", exchange, false, nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return sample{}, err
	}
	defer admin(t.url, func(ch *rmq.Channel) error { return ch.ExchangeDelete(exchange, false, false) })
	defer deleteQueues(t.url, queues...)
	var delivered, published atomic.Int64
	r := newClients()
	var err error
	for _, q := range queues {
		if err = r.consume(t.url, q, &delivered); err != nil {
			break
		}
	}
	if err == nil {
		err = r.publish(t.url, exchange, "", &published, flow{&delivered, int64(len(queues)), int64(o.backlog)})
	}
	var s sample
	if err == nil {
		s = window(o, t, &delivered, &published)
	}
	return s, errors.Join(err, r.end())
}

// deleteQueues deletes a run's queues (with what is left on them).
func deleteQueues(url string, queues ...string) error {
	return admin(url, func(ch *rmq.Channel) error {
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				return err
			}
		}
		return nil
	})
}

// memory is the resident memory of t's serving process before and after n
// idle clients connected, each with one channel open.
func memory(t *target, n int) (before, after memUse, err error) {
	pid, err := t.servePID()
	if err != nil {
		return before, after, err
	}
	if before, err = memOf(pid); err != nil {
		return before, after, err
	}
	conns := make([]*rmq.Connection, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				c, err := rmq.Dial(t.url)
				if err != nil {
					errs[w] = fmt.Errorf("connection %d: %w", i, err)
					return
				}
				conns[i] = c
				if _, err := c.Channel(); err != nil {
					errs[w] = fmt.Errorf("channel of connection %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return before, after, err
	}
	time.Sleep(time.Second) // let the broker finish its part of the handshakes
	after, err = memOf(pid)
	return before, after, err
}
