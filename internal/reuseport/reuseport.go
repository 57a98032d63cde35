package reuseport

import (
	"context"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Listen opens a TCP listener on address bind (an IP address; "" for
// every interface) and port (0: one the kernel chooses). shared sets
// SO_REUSEPORT: the listener shares the port with every other listener of
// the same user that set it too (a group's generic port).
func Listen(bind string, port int, shared bool) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil && shared {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(context.Background(), "tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
}
