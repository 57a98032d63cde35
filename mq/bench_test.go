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
