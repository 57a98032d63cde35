package listen

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/qmgr/qmgr/amqp"
)

// ErrConfig: a Config that Validate refuses.
var ErrConfig = errors.New("listen: invalid configuration")

// Config configures a member's AMQP listener. The zero value of a field
// means its default (WithDefaults).
type Config struct {
	// Addr is the member's own port, "host:port" ("" for none).
	Addr string
	// GenericAddr is the group's generic port, "host:port", which every
	// member's listener shares (SO_REUSEPORT); "" for none. At least one
	// of Addr and GenericAddr is required.
	GenericAddr string
	// TLSCertFile and TLSKeyFile are a PEM certificate (chain) and its key:
	// with them both ports speak TLS only; both or neither.
	TLSCertFile, TLSKeyFile string
	// MaxConnections is the most client connections held at once, both
	// ports together (default DefaultMaxConnections); one over is closed
	// at once. Each holds a descriptor and two goroutines.
	MaxConnections int
	// AMQP is the protocol's limits (amqp.Config, its own defaults); its
	// HandshakeTimeout also bounds the TLS handshake.
	AMQP amqp.Config
}

// DefaultMaxConnections is Config.MaxConnections's default: thousands of
// idle clients, well within the descriptors Go gives a process (it raises
// the soft limit to the hard one).
const DefaultMaxConnections = 4096

// WithDefaults returns c with its zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	c.AMQP = c.AMQP.WithDefaults()
	return c
}

// Validate refuses a configuration (after WithDefaults) that cannot work.
// It changes nothing and reads no file (a missing certificate is Run's
// error).
func (c Config) Validate() error {
	if c.Addr == "" && c.GenericAddr == "" {
		return fmt.Errorf("%w: no address to listen on (Addr, GenericAddr)", ErrConfig)
	}
	for _, a := range []struct{ name, addr string }{{"Addr", c.Addr}, {"GenericAddr", c.GenericAddr}} {
		if a.addr == "" {
			continue
		}
		if _, _, err := splitAddr(a.addr); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrConfig, a.name, a.addr, err)
		}
	}
	if c.Addr != "" && c.Addr == c.GenericAddr && !strings.HasSuffix(c.Addr, ":0") {
		return fmt.Errorf("%w: Addr and GenericAddr are both %q", ErrConfig, c.Addr)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return fmt.Errorf("%w: a TLS certificate needs its key and a key its certificate (TLSCertFile %q, TLSKeyFile %q)", ErrConfig, c.TLSCertFile, c.TLSKeyFile)
	}
	if c.MaxConnections < 1 {
		return fmt.Errorf("%w: MaxConnections %d: want 1 or more", ErrConfig, c.MaxConnections)
	}
	if err := c.AMQP.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// splitAddr splits "host:port" into an IP address ("" for every
// interface) and a port (0: the kernel chooses).
func splitAddr(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q: want 0 to 65535", p)
	}
	return host, port, nil
}
