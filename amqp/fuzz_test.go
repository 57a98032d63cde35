package amqp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzDecodeMethod: any bytes either decode to a method whose encoding
// decodes and encodes to the same bytes again, or fail with one of the
// codec's errors; never a panic.
func FuzzDecodeMethod(f *testing.F) {
	for _, m := range allMethods() {
		b, err := AppendMethodFrame(nil, 0, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[frameHeaderSize : len(b)-1])
	}
	full, _ := AppendMethodFrame(nil, 0, &ConnectionStartOk{
		ClientProperties: Table{"product": "x", "capabilities": Table{"publisher_confirms": true}, "a": []any{int32(1), nil}},
		Mechanism:        "PLAIN", Response: "\x00guest\x00guest", Locale: "en_US"})
	f.Add(full[frameHeaderSize : len(full)-1])
	f.Fuzz(func(t *testing.T, payload []byte) {
		m, err := DecodeMethod(payload)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrUnknownMethod) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		once, err := AppendMethodFrame(nil, 0, m)
		if err != nil {
			t.Fatalf("%s decoded but does not encode: %v", m.Name(), err)
		}
		m2, err := DecodeMethod(once[frameHeaderSize : len(once)-1])
		if err != nil {
			t.Fatalf("%s: its own encoding does not decode: %v", m.Name(), err)
		}
		twice, _ := AppendMethodFrame(nil, 0, m2)
		if !bytes.Equal(once, twice) {
			t.Fatalf("%s: encodings differ\n% x\n% x", m.Name(), once, twice)
		}
	})
}

// FuzzDecodeContentHeader: the same for content headers.
func FuzzDecodeContentHeader(f *testing.F) {
	for _, p := range []Properties{{}, {Flags: FlagPriority}, {ContentType: "a", Headers: Table{"k": []byte("v")}, DeliveryMode: 2, Timestamp: 9, ClusterID: "c"}} {
		b, err := AppendHeaderFrame(nil, 0, &ContentHeader{ClassID: 60, BodySize: 5, Props: p})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[frameHeaderSize : len(b)-1])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		h, err := DecodeContentHeader(payload)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		once, err := AppendHeaderFrame(nil, 0, &h)
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		h2, err := DecodeContentHeader(once[frameHeaderSize : len(once)-1])
		if err != nil {
			t.Fatalf("its own encoding does not decode: %v", err)
		}
		twice, _ := AppendHeaderFrame(nil, 0, &h2)
		if !bytes.Equal(once, twice) {
			t.Fatalf("encodings differ\n% x\n% x", once, twice)
		}
	})
}

// FuzzReadFrame: a stream of bytes yields frames within the limit, then
// an end or an error; never a panic or a frame over frame_max.
func FuzzReadFrame(f *testing.F) {
	m, _ := AppendMethodFrame(nil, 1, &ChannelOpen{})
	f.Add(append(AppendHeartbeat(m), AppendBodyFrames(nil, 1, FrameMinSize, []byte("body"))...))
	f.Add([]byte{FrameBody, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr := NewFrameReader(bytes.NewReader(b))
		for range 1000 {
			fr, err := fr.ReadFrame()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrFrame) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if len(fr.Payload)+frameHeaderSize+frameEndSize > FrameMinSize {
				t.Fatalf("a frame of %d bytes passed a limit of %d", len(fr.Payload), FrameMinSize)
			}
		}
	})
}
