package amqp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	rmq "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/shm"
)

// faultBroker delivers, to any consumer, a body that is a slice of a
// mapping whose file was truncated (a view of a CF entry or a data set
// whose file went away under it), and keeps what SendContentProps said.
type faultBroker struct {
	testBroker
	body []byte
	mu   sync.Mutex
	errs []error
}

func (b *faultBroker) Session(c *Conn, user, vhost string) (Session, error) {
	return &faultSession{b}, nil
}

type faultSession struct{ b *faultBroker }

func (s *faultSession) OpenChannel(ch *Channel) (ChannelHandler, error) {
	return &faultChannel{b: s.b, ch: ch}, nil
}

func (s *faultSession) Close() {}

type faultChannel struct {
	b  *faultBroker
	ch *Channel
}

func (f *faultChannel) Handle(m Method, content *Content) error {
	c, ok := m.(*BasicConsume)
	if !ok {
		return ConnectionException(ReplyNotImplemented, m, "%s", m.Name())
	}
	if err := f.ch.Send(&BasicConsumeOk{ConsumerTag: c.ConsumerTag}); err != nil {
		return err
	}
	err := f.ch.SendContentProps(&BasicDeliver{ConsumerTag: c.ConsumerTag, DeliveryTag: 1, RoutingKey: c.Queue}, nil, f.b.body)
	f.b.mu.Lock()
	f.b.errs = append(f.b.errs, err)
	f.b.mu.Unlock()
	return err
}

func (f *faultChannel) Close() {}

// TestDeliverFaultIsAnError: a delivery's body is a view of shared memory
// (a CF entry, or a data set's mapping); its file truncated under it makes
// the copy into the connection's buffer (bodies below VectoredBodySize, and
// any body over TLS) fault. SendContentProps must fail with shm.ErrFault
// and the connection end, not the process die of SIGBUS.
func TestDeliverFaultIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "body")
	const size = 16 << 10
	if err := os.WriteFile(path, bytes.Repeat([]byte{7}, size), 0o600); err != nil {
		t.Fatal(err)
	}
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	m, err := unix.Mmap(int(fd.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	b := &faultBroker{body: m}
	addr := serve(t, Config{}, b)
	conn, err := rmq.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("q", "ctag", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		errs := append([]error(nil), b.errs...)
		b.mu.Unlock()
		if len(errs) > 0 {
			if !errors.Is(errs[0], shm.ErrFault) {
				t.Fatalf("delivery of a body whose file was truncated: %v, want shm.ErrFault", errs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no delivery attempted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-conn.NotifyClose(make(chan *rmq.Error, 1)):
	case <-time.After(10 * time.Second):
		t.Fatal("the connection stayed open after a delivery failed half way")
	}
}
