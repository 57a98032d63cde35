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

// BenchmarkGetPastHeld is a channel's four lanes: each takes a batch of
// 50 under syncpoint past the other three lanes' held batches, and the
// oldest commits; per message.
func BenchmarkGetPastHeld(b *testing.B) {
	const lanes, batch = 4, 50
	s := newStructure(b, Params{Owners: 8, Queues: 2, Entries: 1 << 14, Elements: 1 << 14, Segments: 1024})
	var os [lanes]*Owner
	for i := range os {
		os[i] = register(b, s)
	}
	q := mustQueue(b, os[0], "XQ", QueueAttrs{})
	m := Message{Body: make([]byte, 64)}
	var r Message
	fill := func() {
		for i := 0; i < 4096; i++ {
			if err := os[0].Put(q, &m, PutOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	}
	fill()
	b.ReportAllocs()
	b.ResetTimer()
	l := 0
	for i := 0; i < b.N; i += batch {
		for k := 0; k < batch; k++ {
			if err := os[l].Get(q, GetOptions{Syncpoint: true}, &r); err != nil {
				b.StopTimer()
				for _, o := range os {
					o.Commit()
				}
				fill()
				b.StartTimer()
				k--
				continue
			}
		}
		l = (l + 1) % lanes
		os[l].Commit() // the oldest: three batches stay held
	}
}

// BenchmarkViewBatch is a channel sender's loop: a batch of 50 views under
// syncpoint, then commit; per message, taken one call per view (one) or
// in one scan (batch).
func BenchmarkViewBatch(b *testing.B) {
	for _, mode := range []string{"one", "batch"} {
		b.Run(mode, func(b *testing.B) {
			const batch = 50
			s := newStructure(b, Params{Owners: 4, Queues: 2, Entries: 1 << 14, Elements: 1 << 14, Segments: 1024})
			o := register(b, s)
			q := mustQueue(b, o, "XQ", QueueAttrs{})
			m := Message{Body: make([]byte, 64)}
			fill := func() {
				for i := 0; i < 8192; i++ {
					if err := o.Put(q, &m, PutOptions{}); err != nil {
						b.Fatal(err)
					}
				}
			}
			fill()
			vs := make([]View, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				n := 0
				var err error
				if mode == "batch" {
					n, err = o.GetViewsInto(q, GetOptions{Syncpoint: true}, vs)
				} else {
					for n < batch {
						if err = o.GetViewInto(q, GetOptions{Syncpoint: true}, &vs[n]); err != nil {
							break
						}
						n++
					}
				}
				if n < batch {
					b.StopTimer()
					o.Commit()
					fill()
					b.StartTimer()
					continue
				}
				if err != nil {
					b.Fatal(err)
				}
				o.Commit()
			}
		})
	}
}

// BenchmarkPutGetBatch64 is one owner putting 64 messages of 64 bytes with
// PutBatch and getting them with GetBatch, outside syncpoint: the batch
// paths' per-message cost.
func BenchmarkPutGetBatch64(b *testing.B) {
	s := newStructure(b, Params{Owners: 4, Queues: 2, Entries: 1 << 14, Elements: 1024})
	o := register(b, s)
	q := mustQueue(b, o, "Q", QueueAttrs{})
	msgs := make([]Message, 64)
	for i := range msgs {
		msgs[i].Body = make([]byte, 64)
	}
	got := make([]Message, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += len(msgs) {
		for k := range msgs {
			msgs[k].MsgID = [24]byte{1}
		}
		if _, err := o.PutBatch(q, msgs, PutOptions{}); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < len(msgs); {
			k, err := o.GetBatch(q, GetOptions{}, got[n:])
			if err != nil {
				b.Fatal(err)
			}
			n += k
		}
	}
}
