package lockfree

import "testing"

// BenchmarkPutGet64 is one owner putting and getting 64-byte messages
// outside syncpoint: the per-message cost without contention.
func BenchmarkPutGet64(b *testing.B) {
	s := newStructure(b, Params{Owners: 4, Queues: 2, Entries: 1 << 14, Elements: 1024})
	o := register(b, s)
	q := mustQueue(b, o, "Q", QueueAttrs{})
	m := Message{Body: make([]byte, 64)}
	var r Message
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.MsgID = [24]byte{1}
		if err := o.Put(q, &m, PutOptions{}); err != nil {
			b.Fatal(err)
		}
		if err := o.Get(q, GetOptions{}, &r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutGet64Syncpoint commits every 64 messages on both sides.
func BenchmarkPutGet64Syncpoint(b *testing.B) {
	s := newStructure(b, Params{Owners: 4, Queues: 2, Entries: 1 << 14, Elements: 1024})
	o := register(b, s)
	q := mustQueue(b, o, "Q", QueueAttrs{})
	m := Message{Body: make([]byte, 64)}
	var r Message
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		for k := 0; k < 64; k++ {
			m.MsgID = [24]byte{1}
			o.Put(q, &m, PutOptions{Syncpoint: true})
		}
		o.Commit()
		for k := 0; k < 64; k++ {
			if err := o.Get(q, GetOptions{Syncpoint: true}, &r); err != nil {
				b.Fatal(err)
			}
		}
		o.Commit()
	}
}
