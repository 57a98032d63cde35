package channel

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spinConn is a TCP connection whose reads spin a little before they park.
//
// A running channel's reads alternate with bursts of work thousands of
// times a second: the receiver waits for the next batch while the sender
// gets it from the transmission queue, the sender waits for a CONFIRM
// while the receiver commits. Through Go's network poller, each such wait
// parks the goroutine; its thread looks for other work and sleeps in
// epoll_wait or on a futex, and a thread is woken again when the data
// comes. Those context switches cost more than the wait itself: on this
// project's 2-core virtual machines they were a quarter of a channel's
// processor time (perf record, finish_task_switch), and both ends sat idle
// a third of the time waiting for each other.
//
// When the socket is empty, a spinConn's read reads it again without
// blocking, for up to max, and only then parks in the network poller, as
// a plain connection would at once. It spins only while waits are short:
// a wait that outlasts the spin turns spinning off, and a parked wait
// shorter than max turns it on again. An idle or trickling channel parks
// at once; only a busy one spends processor time on spinning, and then
// at most max per wait.
//
// Deadlines and Close are the connection's own: a deadline is checked by
// the network poller when the spin ends (a read may overrun it by at most
// max), and Close waits for a spinning read to let go of the descriptor
// (at most max).
type spinConn struct {
	*net.TCPConn
	rc  syscall.RawConn
	max time.Duration
	// spin: the next wait spins (the last wait was shorter than max).
	// Only the reading goroutine uses it.
	spin bool
}

// newSpinConn wraps c when it is a TCP connection and max is positive;
// any other connection is returned as it is.
func newSpinConn(c net.Conn, max time.Duration) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok || max <= 0 {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &spinConn{TCPConn: tc, rc: rc, max: max, spin: true}
}

// Read reads into b, spinning up to max on an empty socket when the last
// wait was short.
func (c *spinConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var rerr error
	var waited time.Time // when the socket was first found empty
	spinning := c.spin
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), b)
			if rerr == unix.EINTR {
				continue
			}
			if rerr != unix.EAGAIN {
				return true
			}
			if waited.IsZero() {
				waited = time.Now()
			}
			// No runtime.Gosched in the loop: it wakes an idle P's thread
			// to look for work (wakep), a context switch every few
			// iterations; the spin is short enough to hold the P.
			if !spinning || time.Since(waited) > c.max {
				spinning = false
				return false // park in the network poller until readable
			}
		}
	})
	if !waited.IsZero() {
		c.spin = time.Since(waited) < c.max
	}
	switch {
	case err != nil:
		return 0, c.opError(err)
	case rerr != nil:
		return 0, c.opError(os.NewSyscallError("read", rerr))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *spinConn) opError(err error) error {
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
