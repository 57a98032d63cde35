package amqp

// Adversarial review of issue 15 (branch i15-review).

import (
	"runtime"
	"testing"
)

// TestReviewPendingContentReservesNothing: a content header makes its
// channel reserve min(body-size, 1 MiB) at once (contentFrame: make([]byte,
// 0, min(h.BodySize, 1<<20))), before a byte of the body has come, and
// MaxPendingContent counts only the bytes that came. A client that opens
// many channels and sends on each a basic.publish and a header announcing
// a large body, and nothing more, makes the server hold a megabyte a
// channel (2 GiB a connection at channel_max 2047) with a few hundred
// bytes sent each, far over the bound MaxPendingContent promises.
func TestReviewPendingContentReservesNothing(t *testing.T) {
	const bound = 4 << 20
	addr := serve(t, Config{MaxMessageSize: bound, MaxPendingContent: bound}, &testBroker{})
	r := dialRaw(t, addr)
	r.open()
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const channels = 200
	for ch := uint16(2); ch < 2+channels; ch++ {
		r.send(ch, &ChannelOpen{})
		if _, m := r.recv(); m.Name() != "channel.open-ok" {
			t.Fatalf("open %d: %s", ch, m.Name())
		}
		r.send(ch, &BasicPublish{RoutingKey: "q"})
		h, _ := AppendHeaderFrame(nil, ch, &ContentHeader{ClassID: 60, BodySize: bound})
		r.write(h)
	}
	// Handled in order: once this is answered, every header was read.
	r.send(2+channels, &ChannelOpen{})
	if _, m := r.recv(); m.Name() != "channel.open-ok" {
		t.Fatalf("got %s", m.Name())
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if grown > 4*bound {
		t.Fatalf("the server's heap grew by %d MiB for %d unfinished contents of 0 bytes received (MaxPendingContent %d MiB)",
			grown>>20, channels, bound>>20)
	}
}
