package mq_test

import (
	"bytes"
	"testing"

	"github.com/qmgr/qmgr/mq"
)

// BenchmarkViewRelease: a 256-byte message put and got as a view into a
// reused View, then released; with and without properties (an AMQP
// message's header). go test -bench ViewRelease -benchmem ./mq
func BenchmarkViewRelease(b *testing.B) {
	for _, c := range []struct {
		name  string
		props []byte
	}{{"bare", nil}, {"properties", []byte("content-type=application/json;x-trace=0123456789abcdef")}} {
		b.Run(c.name, func(b *testing.B) {
			g := member(b, "DEFINE QLOCAL(Q)")
			conn := connect(b, g)
			q := open(b, conn, "Q")
			m := mq.Message{Body: bytes.Repeat([]byte("b"), 256), Properties: c.props, Persistence: mq.NotPersistent}
			var v mq.View
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := q.Put(&m, mq.PutOptions{}); err != nil {
					b.Fatal(err)
				}
				if err := q.GetViewInto(mq.GetOptions{}, &v); err != nil {
					b.Fatal(err)
				}
				if err := v.Release(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReleaseViews: a consumer's acks of views of persistent
// messages got outside syncpoint (an AMQP consumer with prefetch 100):
// each view released by its own Release (one durable log wait each) or
// the batch by one ReleaseViews (one wait for the lot). The messages are
// put under syncpoint and committed outside the timing; an op is one
// message released. go test -run X -bench ReleaseViews ./mq
func BenchmarkReleaseViews(b *testing.B) {
	const batch = 100
	for _, mode := range []string{"one-by-one", "batch"} {
		b.Run(mode, func(b *testing.B) {
			g := member(b, "DEFINE QLOCAL(Q)")
			conn := connect(b, g)
			q := open(b, conn, "Q")
			m := mq.Message{Body: bytes.Repeat([]byte("b"), 256), Persistence: mq.Persistent}
			vs := make([]mq.View, batch)
			ps := make([]*mq.View, batch)
			for i := range vs {
				ps[i] = &vs[i]
			}
			b.ResetTimer()
			for done := 0; done < b.N; done += batch {
				b.StopTimer()
				n := min(batch, b.N-done)
				for i := 0; i < n; i++ {
					if err := q.Put(&m, mq.PutOptions{Syncpoint: true}); err != nil {
						b.Fatal(err)
					}
				}
				if err := conn.Commit(); err != nil {
					b.Fatal(err)
				}
				if got, err := q.GetViewsInto(mq.GetOptions{}, vs[:n]); err != nil || got != n {
					b.Fatalf("views: %d of %d, %v", got, n, err)
				}
				b.StartTimer()
				if mode == "batch" {
					if err := conn.ReleaseViews(ps[:n]); err != nil {
						b.Fatal(err)
					}
					continue
				}
				for i := 0; i < n; i++ {
					if err := vs[i].Release(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
