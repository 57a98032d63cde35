// Package sdnotify tells the service manager (systemd, Type=notify) about
// the service's state: one datagram of newline-separated KEY=VALUE
// assignments to the unix datagram socket named by $NOTIFY_SOCKET (a path,
// or an abstract socket when it starts with "@"). Outside systemd the
// variable is unset and Notify does nothing. See sd_notify(3).
package sdnotify

import (
	"fmt"
	"net"
	"os"
)

// EnvSocket is the variable that names the socket.
const EnvSocket = "NOTIFY_SOCKET"

// States a service sends.
const (
	Ready    = "READY=1"    // startup finished: the member is active
	Stopping = "STOPPING=1" // an orderly stop began
)

// Notify sends state (lines of KEY=VALUE) to the socket in $NOTIFY_SOCKET.
// It reports whether a socket was named; without one it does nothing.
func Notify(state string) (bool, error) {
	addr := os.Getenv(EnvSocket)
	if addr == "" {
		return false, nil
	}
	return true, send(addr, state)
}

// send writes state as one datagram to the socket at addr.
func send(addr, state string) error {
	ua := &net.UnixAddr{Name: addr, Net: "unixgram"}
	if addr[0] == '@' {
		ua.Name = "\x00" + addr[1:] // abstract namespace
	}
	c, err := net.DialUnix("unixgram", nil, ua)
	if err != nil {
		return fmt.Errorf("sdnotify: %s %s: %w", EnvSocket, addr, err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: %s %s: %w", EnvSocket, addr, err)
	}
	return nil
}
