package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/groupproc"
)

// runAMQPDemo: three members, each with an AMQP listener of its own and
// the shared generic port; an unmodified RabbitMQ client (amqp091-go)
// publishes numbered persistent messages in confirm mode and another
// consumes them with manual acks, both through the generic port. Part
// way, the member serving the consumer is SIGKILLed: both clients
// reconnect to a survivor; every message arrives, none acknowledged comes
// again, and those the consumer held come back marked redelivered.
func runAMQPDemo(dir string, total int, out io.Writer) error {
	if dir == "" {
		d, err := os.MkdirTemp("", "qmgr-amqpdemo-")
		if err != nil {
			return err
		}
		dir = d
		defer os.RemoveAll(dir)
	}
	cfg := group.Config{Name: "AMQPDEMO", DataDir: filepath.Join(dir, "data"), CFDir: filepath.Join(dir, "cf"), AppSize: 256 << 20}.WithDefaults()
	g, err := groupproc.New(cfg, dir)
	if err != nil {
		return err
	}
	g.StartFlags = []string{"--heartbeat", "50ms", "--no-chinit"}
	g.ActiveTimeout = 10 * time.Second
	defer g.KillAll()
	fmt.Fprintf(out, "\nqmgr demo, part 3: AMQP 0-9-1 clients through the generic port while a member dies (in %s)\n", dir)
	generic, err := startAMQPMembers(g, out)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", generic)
	if err := declareDemoQueue(url); err != nil {
		return err
	}
	d := &amqpDemo{url: url, total: total, seen: make([]int32, total), out: out}
	return d.run(g)
}

// startAMQPMembers starts QM1..QM3 with AMQP ports and returns the
// generic port once it answers.
func startAMQPMembers(g *groupproc.Group, out io.Writer) (int, error) {
	ports, err := freePorts(4)
	if err != nil {
		return 0, err
	}
	generic := ports[3]
	for i, n := range demoMembers {
		if _, err := g.Start(n, "--amqp-port", strconv.Itoa(ports[i]), "--amqp-generic-port", strconv.Itoa(generic)); err != nil {
			return 0, err
		}
		fmt.Fprintf(out, "  %s: AMQP on 127.0.0.1:%d and the generic port %d (its listener is a child process)\n", n, ports[i], generic)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := rmq.Dial(fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", generic))
		if err == nil {
			c.Close()
			return generic, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("demo: the generic AMQP port does not answer: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts finds n free TCP ports on loopback.
func freePorts(n int) ([]int, error) {
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func declareDemoQueue(url string) error {
	c, err := rmq.Dial(url)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDeclare("demo.orders", true, false, false, false, nil)
	return err
}

// amqpDemo is the demo's clients and its tally.
type amqpDemo struct {
	url   string
	total int
	out   io.Writer

	seen        []int32 // per message: times acknowledged by the consumer
	acked       atomic.Int64
	redelivered atomic.Int64
	resent      atomic.Int64 // publishes sent again after their connection went unconfirmed
	ackLost     atomic.Int64 // redelivered after the consumer acked it: the ack died with the member
	dupes       atomic.Int64 // came again, not redelivered (must stay 0 unless published twice)
	consumerOn  atomic.Value // the member serving the consumer
}

// run publishes and consumes, kills the consumer's member at 40%, and
// checks the tally.
func (d *amqpDemo) run(g *groupproc.Group) error {
	d.consumerOn.Store("")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); errs <- d.publish(ctx) }()
	go func() { defer wg.Done(); errs <- d.consume(ctx) }()
	killed := d.killAt(ctx, g, int64(d.total*4/10))
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return d.report(killed)
}

// killAt SIGKILLs the consumer's member once n messages were acked.
func (d *amqpDemo) killAt(ctx context.Context, g *groupproc.Group, n int64) string {
	for d.acked.Load() < n || d.consumerOn.Load() == "" {
		if ctx.Err() != nil {
			return ""
		}
		time.Sleep(5 * time.Millisecond)
	}
	name := d.consumerOn.Load().(string)
	m := g.Member(name)
	m.Process.Signal(syscall.SIGKILL)
	fmt.Fprintf(d.out, "  %d messages acknowledged: SIGKILL %s (pid %d), which serves the consumer\n", d.acked.Load(), name, m.Process.Pid)
	return name
}

// publish sends every message in confirm mode, reconnecting when its
// connection goes, and sends again what was not confirmed.
func (d *amqpDemo) publish(ctx context.Context) error {
	next := 0
	for next < d.total {
		if ctx.Err() != nil {
			return fmt.Errorf("publisher: %d of %d confirmed: %w", next, d.total, ctx.Err())
		}
		n, err := d.publishSome(ctx, next)
		next = n
		if err != nil {
			d.resent.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

// publishSome publishes from message from on, in windows of 100
// confirms, until done or the connection fails; it returns the first
// message not yet confirmed.
func (d *amqpDemo) publishSome(ctx context.Context, from int) (int, error) {
	c, err := rmq.Dial(d.url)
	if err != nil {
		return from, err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return from, err
	}
	if err := ch.Confirm(false); err != nil {
		return from, err
	}
	for from < d.total {
		end := min(from+100, d.total)
		var dcs []*rmq.DeferredConfirmation
		for i := from; i < end; i++ {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "demo.orders", false, false,
				rmq.Publishing{DeliveryMode: 2, Body: []byte(strconv.Itoa(i))})
			if err != nil {
				return from, err
			}
			dcs = append(dcs, dc)
		}
		for _, dc := range dcs {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return from, errors.Join(err, errors.New("publish not confirmed"))
			}
		}
		from = end
	}
	return from, nil
}

// consume takes every message, reconnecting when its connection goes.
func (d *amqpDemo) consume(ctx context.Context) error {
	for d.acked.Load() < int64(d.total) {
		if ctx.Err() != nil {
			return fmt.Errorf("consumer: %d of %d acknowledged: %w", d.acked.Load(), d.total, ctx.Err())
		}
		if err := d.consumeSome(ctx); err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func (d *amqpDemo) consumeSome(ctx context.Context) error {
	c, err := rmq.Dial(d.url)
	if err != nil {
		return err
	}
	defer c.Close()
	node, _ := c.Properties["node"].(string)
	if prev := d.consumerOn.Load().(string); prev != "" && prev != node {
		fmt.Fprintf(d.out, "  the consumer reconnected through the generic port and reached %s\n", node)
	}
	d.consumerOn.Store(node)
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	ch.Qos(100, 0, false)
	ds, err := ch.Consume("demo.orders", "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for d.acked.Load() < int64(d.total) {
		select {
		case m, ok := <-ds:
			if !ok {
				return errors.New("deliveries ended")
			}
			d.tally(m)
			if err := m.Ack(false); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// tally counts a delivery.
func (d *amqpDemo) tally(m rmq.Delivery) {
	if m.Redelivered {
		d.redelivered.Add(1)
	}
	i, err := strconv.Atoi(string(m.Body))
	if err != nil || i < 0 || i >= d.total {
		d.dupes.Add(1)
		return
	}
	if atomic.AddInt32(&d.seen[i], 1) > 1 {
		if m.Redelivered {
			d.ackLost.Add(1) // acks are not confirmed in AMQP: one in flight when the member died
		} else {
			d.dupes.Add(1)
		}
		return
	}
	d.acked.Add(1)
}

// report prints the outcome and fails on a loss or an unexplained
// duplicate.
func (d *amqpDemo) report(killed string) error {
	missing := 0
	for _, n := range d.seen {
		if n == 0 {
			missing++
		}
	}
	fmt.Fprintf(d.out, "  %d messages published (persistent, confirmed), %d consumed and acknowledged, %d missing\n", d.total, d.acked.Load(), missing)
	fmt.Fprintf(d.out, "  %d came again marked redelivered (held by the consumer when %s died); %d publisher reconnections\n",
		d.redelivered.Load(), killed, d.resent.Load())
	if n := d.ackLost.Load(); n > 0 {
		fmt.Fprintf(d.out, "  %d of them the consumer had acknowledged, but its acks were still in flight when %s died\n"+
			"  (AMQP does not confirm acks: a consumer must be idempotent for that window, as with RabbitMQ)\n", n, killed)
	}
	if missing > 0 {
		return fmt.Errorf("demo: %d messages lost", missing)
	}
	// A duplicate can only be a publish sent again after its confirm was
	// lost with the connection: the publisher's at-least-once.
	if dup := d.dupes.Load(); dup > 0 {
		if d.resent.Load() == 0 {
			return fmt.Errorf("demo: %d messages came twice though none was published twice", dup)
		}
		fmt.Fprintf(d.out, "  %d came twice: published again after their confirm was lost with the publisher's connection\n", dup)
	}
	fmt.Fprintln(d.out, "  nothing lost; nothing delivered twice but what the member's death explains")
	return nil
}
