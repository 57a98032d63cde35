package chaos

import (
	"io"
	"net"
	"sync"
	"time"
)

// Proxy forwards TCP connections from its own port to a target address;
// the nemesis cuts the connections through it (a reset, as when a
// network path fails) and refuses new ones for a while (the partner
// down: each connection accepted is reset at once).
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	conns map[net.Conn]bool
	down  bool
	cuts  int
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Port is the port the proxy listens on.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			reset(c)
			continue
		}
		p.wg.Add(1)
		go p.forward(c)
	}
}

func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	t, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(c)
		return
	}
	if !p.track(c, t) {
		reset(c)
		reset(t)
		return
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			c.Close()
			t.Close()
			p.mu.Lock()
			delete(p.conns, c)
			delete(p.conns, t)
			p.mu.Unlock()
		})
	}
	go func() { io.Copy(t, c); end() }()
	io.Copy(c, t)
	end()
}

// track registers a forwarded pair unless the proxy went down meanwhile.
func (p *Proxy) track(c, t net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		return false
	}
	p.conns[c], p.conns[t] = true, true
	return true
}

// reset closes c with a RST (SO_LINGER 0) instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// Cut resets every connection through the proxy; it returns how many
// pairs it cut.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns) / 2
	for c := range p.conns {
		reset(c)
		delete(p.conns, c)
	}
	p.cuts += n
	return n
}

// SetDown makes the partner unreachable (true: every connection cut and
// new ones reset) or reachable again.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.Cut()
	}
}

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.SetDown(true)
	p.wg.Wait()
	return err
}
