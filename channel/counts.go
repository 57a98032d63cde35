package channel

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/qmgr/qmgr/channel/chanstats"
	"github.com/qmgr/qmgr/internal/childstats"
)

// chanCounts are one channel's figures in this channel initiator since it
// started (chanstats.Channel). The channel's instances add to them with
// atomic adds once per committed batch (a sender in confirm, a receiver
// at END_BATCH), startSender on a takeover; the figures writer
// (counters.figures) loads them once a second. Instances of one channel
// may overlap (an adopted receiver, a takeover), hence atomics; no
// ordering between the fields is promised (a reader may see a batch's
// messages before its bytes).
type chanCounts struct {
	sentBytes, receivedBytes atomic.Uint64
	batches, messages        atomic.Uint64
	takeovers                atomic.Uint64
}

// counters are the chanCounts of every channel this initiator ran, by
// name. mu is taken only when an instance starts (of), and by the
// writer: never on a message's path.
type counters struct {
	mu sync.Mutex
	m  map[string]*chanCounts
}

// of is channel name's counts, made on first use.
func (c *counters) of(name string) *chanCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*chanCounts{}
	}
	k := c.m[name]
	if k == nil {
		k = &chanCounts{}
		c.m[name] = k
	}
	return k
}

// figures is every channel's counts now, by name, at most
// chanstats.MaxChannels of them (the first by name).
func (c *counters) figures() []chanstats.Channel {
	c.mu.Lock()
	out := make([]chanstats.Channel, 0, len(c.m))
	for name, k := range c.m {
		out = append(out, chanstats.Channel{Name: name,
			SentBytes: k.sentBytes.Load(), ReceivedBytes: k.receivedBytes.Load(),
			Batches: k.batches.Load(), Messages: k.messages.Load(), Takeovers: k.takeovers.Load()})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b chanstats.Channel) int { return strings.Compare(a.Name, b.Name) })
	return out[:min(len(out), chanstats.MaxChannels)]
}

// writeFigures writes the initiator's figures for its member's metrics
// (package channel/chanstats) every chanstats.WriteInterval until ctx ends
// or done is called, which removes the file.
func (ci *Chinit) writeFigures(ctx context.Context) (done func()) {
	path := chanstats.Path(ci.cfg.Group.DataDir, ci.cfg.QMgr)
	return childstats.Keep(ctx, path, func(s childstats.Stamp) any {
		return chanstats.Figures{Pid: s.Pid, Written: s.Written, Channels: ci.counts.figures()}
	}, func(err error) {
		ci.log.Warn("channel figures for the member's metrics not written", "path", path, "err", err)
	})
}
