package amqpprobe

import (
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/amqp"
)

// Start sends the protocol header on c and reads the server's first frame,
// which must be connection.start on channel 0, within 10 seconds.
func Start(c net.Conn) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(amqp.ProtocolHeader[:]); err != nil {
		return err
	}
	fr := amqp.NewFrameReader(c)
	fr.SetMax(1 << 20)
	f, err := fr.ReadFrame()
	if err != nil {
		return fmt.Errorf("first frame: %w", err)
	}
	if f.Type != amqp.FrameMethod || f.Channel != 0 {
		return fmt.Errorf("first frame: type %d channel %d, want a method frame on channel 0", f.Type, f.Channel)
	}
	m, err := amqp.DecodeMethod(f.Payload)
	if err != nil {
		return fmt.Errorf("first method: %w", err)
	}
	if _, ok := m.(*amqp.ConnectionStart); !ok {
		return fmt.Errorf("first method %s, want connection.start", m.Name())
	}
	return nil
}

// Dial connects to addr and probes it with Start.
func Dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return Start(c)
}

// Closed reports, within a deadline, whether the server closed c having
// sent nothing: a read ends with EOF or a reset.
func Closed(c net.Conn, within time.Duration) error {
	c.SetReadDeadline(time.Now().Add(within))
	n, err := c.Read(make([]byte, 64))
	switch {
	case n > 0:
		return fmt.Errorf("read %d bytes, want the socket closed", n)
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		return nil
	default:
		return fmt.Errorf("read: %v, want EOF", err)
	}
}
