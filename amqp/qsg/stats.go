package qsg

import (
	"sync/atomic"

	"github.com/qmgr/qmgr/amqp/stats"
)

// counters are the broker's figures for its member's metrics (Stats).
// Each is written by the goroutine doing what it counts (a connection's
// reader, a consumer's goroutine) with an atomic add, and read by Stats
// from any goroutine; no ordering between them is needed.
type counters struct {
	sessions  atomic.Int64  // open sessions (connections past login)
	channels  atomic.Int64  // open channels
	published atomic.Uint64 // publishes handled
	delivered atomic.Uint64 // deliveries written (basic.deliver, basic.get-ok)
	refused   atomic.Uint64 // logins and sessions refused
}

// Stats are the broker's figures now (without the writer's pid and time,
// which the listener adds: package amqp/stats).
func (b *Broker) Stats() stats.Figures {
	b.consumers.mu.Lock()
	consumers := 0
	for _, cs := range b.consumers.byQueue {
		consumers += len(cs)
	}
	b.consumers.mu.Unlock()
	b.flow.mu.Lock()
	blocked := b.flow.blocked
	b.flow.mu.Unlock()
	return stats.Figures{
		Connections:      b.count.sessions.Load(),
		Channels:         b.count.channels.Load(),
		Consumers:        int64(consumers),
		GroupConnections: b.mqConns.Load(),
		Published:        b.count.published.Load(),
		Delivered:        b.count.delivered.Load(),
		Refused:          b.count.refused.Load(),
		Blocked:          blocked,
	}
}
