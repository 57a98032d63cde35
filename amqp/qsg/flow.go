package qsg

import (
	"fmt"
	"sync"
	"time"

	"github.com/qmgr/qmgr/amqp"
)

// Flow control. Publishers are held back before a structure fills: a
// watcher looks at the use of the structures the broker's queues live in
// every FlowInterval; above HighWater of their entries or elements every
// connection that understands it is told connection.blocked and any
// publish waits (its connection's frames stay unread, so TCP pushes the
// client back) until use falls under LowWater.
type flow struct {
	mu      sync.Mutex
	blocked bool
	reason  string
	open    chan struct{} // closed while not blocked; replaced when blocking
	conns   map[*amqp.Conn]bool
}

func newFlow() *flow {
	f := &flow{open: make(chan struct{}), conns: map[*amqp.Conn]bool{}}
	close(f.open)
	return f
}

// add and remove track the connections to tell.
func (f *flow) add(c *amqp.Conn) {
	f.mu.Lock()
	f.conns[c] = true
	blocked, reason := f.blocked, f.reason
	f.mu.Unlock()
	if blocked {
		c.SetBlocked(true, reason)
	}
}

func (f *flow) remove(c *amqp.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// set changes the state and tells every connection.
func (f *flow) set(blocked bool, reason string) {
	f.mu.Lock()
	if f.blocked == blocked {
		f.mu.Unlock()
		return
	}
	f.blocked, f.reason = blocked, reason
	if blocked {
		f.open = make(chan struct{})
	} else {
		close(f.open)
	}
	conns := make([]*amqp.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.SetBlocked(blocked, reason)
	}
}

// gate is closed while publishes may go on.
func (f *flow) gate() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open
}

// waitOpen holds a publish on connection c until publishing is open again,
// the connection goes or the broker closes (Hold first carries out what
// the connection's channels gathered: publishes, acks).
func (b *Broker) waitOpen(c *amqp.Conn) {
	gate := b.flow.gate()
	select {
	case <-gate:
		return
	default:
	}
	c.Hold(func(gone <-chan struct{}) {
		select {
		case <-gate:
		case <-gone:
		case <-b.closed:
		}
	})
}

// every runs f every interval until the broker closes, then closes done:
// the goroutine of the flow watcher and of the reaper.
func (b *Broker) every(interval time.Duration, f func(), done chan struct{}) {
	defer close(done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-b.closed:
			return
		case <-t.C:
			f()
		}
	}
}

// checkFlow compares the fullest structure of the broker's queues with the
// water marks.
func (b *Broker) checkFlow() {
	name, used := b.fullestStructure()
	b.flow.mu.Lock()
	blocked := b.flow.blocked
	b.flow.mu.Unlock()
	switch {
	case !blocked && used >= b.cfg.HighWater:
		reason := fmt.Sprintf("structure %s is %.0f%% full", name, used*100)
		b.cfg.Log.Warn("amqp: publishers blocked", "reason", reason)
		b.flow.set(true, reason)
	case blocked && used < b.cfg.LowWater:
		b.cfg.Log.Info("amqp: publishers unblocked", "structure", name, "used", used)
		b.flow.set(false, "")
	}
}

// fillSamples is how many words of each pool Fill reads: a few thousand
// loads per look, where a full scan of a 256 MiB structure would read a
// million.
const fillSamples = 4096

// fullestStructure is the structure, among those holding the queues the
// broker knows, whose entries or elements are most used, and that use.
func (b *Broker) fullestStructure() (string, float64) {
	structs := map[string]bool{}
	b.routes.mu.RLock()
	for _, q := range b.routes.queues {
		structs[q.CFStruct] = true
	}
	b.routes.mu.RUnlock()
	var worst string
	var most float64
	for name := range structs {
		s, err := b.parts.Group.Structure(name, false)
		if err != nil {
			continue
		}
		f := max(s.Fill(fillSamples))
		if f > most {
			worst, most = name, f
		}
	}
	return worst, most
}
