package xmit

import (
	"bytes"
	"errors"
	"testing"
)

func sample() (Header, []byte, []byte) {
	h := Header{DestQMgr: "REMOTE", DestQueue: "TARGET.Q", Priority: 7, Persistent: true,
		Expiry: 123456789, PutTime: 987654321, ReplyToQ: "REPLY", ReplyToQMgr: "QSG1"}
	copy(h.MsgID[:], "message-id-0123456789abc")
	copy(h.CorrelID[:], "correl")
	copy(h.Format[:], "MQSTR   ")
	return h, []byte("props"), []byte("hello, world")
}

func TestRoundTrip(t *testing.T) {
	h, props, body := sample()
	b, err := Append(nil, &h, props, body)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != Size(len(props), len(body)) {
		t.Fatalf("size %d", len(b))
	}
	h2, p2, b2, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if h2 != h || !bytes.Equal(p2, props) || !bytes.Equal(b2, body) {
		t.Fatalf("round trip: %+v %q %q", h2, p2, b2)
	}
}

func TestDecodeRefuses(t *testing.T) {
	h, props, body := sample()
	good, _ := Append(nil, &h, props, body)
	for name, mut := range map[string]func(b []byte) []byte{
		"short":        func(b []byte) []byte { return b[:HeaderSize-1] },
		"magic":        func(b []byte) []byte { b[0] = 'Y'; return b },
		"priority":     func(b []byte) []byte { b[offPriority] = 10; return b },
		"flags":        func(b []byte) []byte { b[offFlags] = 2; return b },
		"props length": func(b []byte) []byte { b[offPropLen] = 0xff; b[offPropLen+1] = 0xff; return b },
		"name":         func(b []byte) []byte { b[offQueue+2] = 0; b[offQueue+3] = 'X'; return b },
		"control char": func(b []byte) []byte { b[offQMgr] = 7; return b },
		"no queue":     func(b []byte) []byte { clear(b[offQueue : offQueue+NameLen]); return b },
	} {
		b := mut(append([]byte(nil), good...))
		if _, _, _, err := Decode(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
	long := h
	long.DestQueue = string(bytes.Repeat([]byte{'Q'}, NameLen+1))
	if _, err := Append(nil, &long, nil, nil); !errors.Is(err, ErrFormat) {
		t.Errorf("long name: %v", err)
	}
}

// FuzzDecode: any input either decodes to a header that encodes and
// decodes again to the same values, or is refused with ErrFormat; never a
// panic.
func FuzzDecode(f *testing.F) {
	h, props, body := sample()
	good, _ := Append(nil, &h, props, body)
	f.Add(good)
	f.Add(good[:HeaderSize])
	f.Add([]byte("XQH1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, p, body, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error not ErrFormat: %v", err)
			}
			return
		}
		again, err := Append(nil, &h, p, body)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		h2, p2, b2, err := Decode(again)
		if err != nil || h2 != h || !bytes.Equal(p2, p) || !bytes.Equal(b2, body) {
			t.Fatalf("re-decode differs: %v", err)
		}
	})
}
