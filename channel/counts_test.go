package channel

import (
	"fmt"
	"testing"

	"github.com/qmgr/qmgr/channel/chanstats"
)

// TestCountersFigures: figures are every channel's counts by name, one
// entry per channel however often its instances start, and at most
// chanstats.MaxChannels of them (a file a reader accepts).
func TestCountersFigures(t *testing.T) {
	var c counters
	if f := c.figures(); len(f) != 0 {
		t.Fatalf("no channel yet: %+v", f)
	}
	b := c.of("B")
	b.sentBytes.Add(100)
	b.batches.Add(1)
	b.messages.Add(3)
	if c.of("B") != b {
		t.Fatal("a second instance of B counts apart")
	}
	c.of("A").takeovers.Add(1)
	c.of("A").receivedBytes.Add(7)
	f := c.figures()
	want := []chanstats.Channel{{Name: "A", ReceivedBytes: 7, Takeovers: 1}, {Name: "B", SentBytes: 100, Batches: 1, Messages: 3}}
	if fmt.Sprint(f) != fmt.Sprint(want) {
		t.Fatalf("figures %+v, want %+v", f, want)
	}
	for i := range chanstats.MaxChannels + 10 {
		c.of(fmt.Sprintf("C%05d", i))
	}
	if f := c.figures(); len(f) != chanstats.MaxChannels || f[0].Name != "A" {
		t.Fatalf("%d figures, first %q: want %d, A first", len(f), f[0].Name, chanstats.MaxChannels)
	}
}
