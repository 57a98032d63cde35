package logrec

import (
	"bytes"
	"testing"
)

// Fuzz targets for every decoder of bytes read from the CF. None may
// panic whatever the bytes, and what a decoder accepts re-encodes to the
// same bytes (the decoders are strict: one encoding per value).

func FuzzLogMessage(f *testing.F) {
	for _, m := range sampleLogs() {
		b, err := m.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte("RULG\x01\x00\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeLog(b)
		if err != nil {
			return
		}
		again, err := m.Encode()
		if err != nil {
			t.Fatalf("accepted a message it cannot encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip changed the bytes:\n%x\n%x", b, again)
		}
	})
}

func FuzzOutRecord(f *testing.F) {
	f.Add((&Out{Sender: 1, Epoch: 2, LSNOut: 3}).Encode())
	f.Add(make([]byte, outSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := DecodeOut(b)
		if err != nil {
			return
		}
		if !bytes.Equal(o.Encode(), b) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

func FuzzOutputID(f *testing.F) {
	m := OutputID{Source: 5, Gen: 1, Seq: 9}.MsgID()
	f.Add(m[:])
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != 24 {
			return
		}
		var m [24]byte
		copy(m[:], b)
		id, err := ParseOutputID(m)
		if err != nil {
			return
		}
		if id.MsgID() != m {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

func FuzzSnapChunk(f *testing.F) {
	for _, c := range []*Chunk{{Index: 3, LSN: 9, Offset: 10, Data: []byte("abc")}, {Last: true, Offset: 2, Total: 4, Hash: 1, Data: []byte("xy")}} {
		b, _ := c.Encode()
		f.Add(b)
	}
	tr := Transfer{Gen: 1, Epoch: 2, Joiner: RestingJoiner, JoinerTag: 3}.CorrelID()
	f.Add(tr[:])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 24 {
			var c [24]byte
			copy(c[:], b)
			if tr, err := ParseTransfer(c); err == nil && tr.CorrelID() != c {
				t.Fatalf("transfer round trip changed the bytes")
			}
		}
		c, err := DecodeChunk(b)
		if err != nil {
			return
		}
		again, err := c.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("chunk round trip: %v", err)
		}
	})
}

func FuzzFrameworkState(f *testing.F) {
	b, _ := sampleFramework().Encode()
	f.Add(append(b, "tail"...))
	f.Add(b[:fsHeaderSize])
	f.Fuzz(func(t *testing.T, b []byte) {
		fw, n, err := DecodeFramework(b)
		if err != nil {
			return
		}
		if n < fsHeaderSize || n > len(b) {
			t.Fatalf("took %d of %d bytes", n, len(b))
		}
		again, err := fw.Encode()
		if err != nil || !bytes.Equal(again, b[:n]) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzResendSection(f *testing.F) {
	b, err := EncodeResend(sampleResend())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append(b, "handler"...))
	f.Add(b[:len(b)-3])
	empty, _ := EncodeResend(nil)
	f.Add(empty)
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, n, err := DecodeResend(b)
		if err != nil {
			return
		}
		if n < rsHeaderSize || n > len(b) {
			t.Fatalf("took %d of %d bytes", n, len(b))
		}
		again, err := EncodeResend(rs)
		if err != nil || !bytes.Equal(again, b[:n]) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
