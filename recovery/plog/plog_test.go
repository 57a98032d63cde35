package plog

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func samples() []Record {
	put := Record{Type: TypePut, UOW: 77, Structure: "APPL1", Queue: "Q.ONE", Key: 1234,
		Priority: 4, PutTime: 1e18, Expiry: -1, BackoutCount: 2, ReplyToQ: "R", ReplyToQMgr: "QM2",
		Properties: []byte("p=1"), Body: []byte("hello")}
	put.MsgID[0], put.CorrelID[23], put.Format = 1, 2, [8]byte{'M', 'Q', 'S', 'T', 'R', ' ', ' ', ' '}
	return []Record{
		put,
		{Type: TypePut, Flags: FlagCommitted, Structure: "S", Queue: "Q", Key: 9, Properties: []byte{}, Body: []byte{}},
		{Type: TypeGet, UOW: 77, Structure: "APPL1", Queue: "Q.ONE", Key: 1234},
		{Type: TypeGet, Flags: FlagCommitted, Structure: "APPL1", Queue: "Q.ONE", Key: 5},
		{Type: TypeCommit, UOW: 77},
		{Type: TypeBackout, UOW: 78},
		{Type: TypeClear, Flags: FlagCommitted, Structure: "APPL1", Queue: "Q.ONE"},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, r := range samples() {
		b := Append(nil, &r)
		got, err := Decode(r.Type, b)
		if err != nil {
			t.Fatalf("%v: %v", r.Type, err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("%v: decoded\n%+v\nwant\n%+v", r.Type, got, r)
		}
		for n := range len(b) {
			if _, err := Decode(r.Type, b[:n]); !errors.Is(err, ErrBadRecord) {
				t.Fatalf("%v cut to %d bytes: %v", r.Type, n, err)
			}
		}
		if _, err := Decode(r.Type, append(b, 0)); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("%v with a byte more: %v", r.Type, err)
		}
	}
	if _, err := Decode(9, nil); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("unknown type: %v", err)
	}
	head := AppendHead(nil, &samples()[0], 5)
	if got, err := Decode(TypePut, append(head, "hello"...)); err != nil || string(got.Body) != "hello" {
		t.Fatalf("head and body apart: %q, %v", got.Body, err)
	}
}

// FuzzDecode: Decode never panics, and what it accepts encodes back to the
// same bytes.
func FuzzDecode(f *testing.F) {
	for _, r := range samples() {
		f.Add(uint8(r.Type), Append(nil, &r))
	}
	f.Add(uint8(1), []byte{})
	f.Add(uint8(2), []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, typ uint8, b []byte) {
		r, err := Decode(Type(typ), b)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("error without ErrBadRecord: %v", err)
			}
			return
		}
		if again := Append(nil, &r); string(again) != string(b) {
			t.Fatalf("re-encoded differently:\n%x\n%x", again, b)
		}
	})
}

// TestOffloadedPut: a put flagged offloaded carries a reference of
// OffloadRefSize bytes as its body; any other size, or the flag on
// another type, is a bad record.
func TestOffloadedPut(t *testing.T) {
	ref := make([]byte, OffloadRefSize)
	ref[16] = 1
	r := Record{Type: TypePut, Flags: FlagCommitted | FlagOffloaded, Structure: "S", Queue: "Q", Key: 7, Body: ref}
	got, err := Decode(TypePut, Append(nil, &r))
	if err != nil || got.Flags != r.Flags || !bytes.Equal(got.Body, ref) {
		t.Fatalf("offloaded put: %+v %v", got, err)
	}
	r.Body = ref[:20]
	if _, err := Decode(TypePut, Append(nil, &r)); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("offloaded put with a %d-byte reference: %v", len(r.Body), err)
	}
	g := Record{Type: TypeGet, Flags: FlagOffloaded, Structure: "S", Queue: "Q", Key: 7}
	if _, err := Decode(TypeGet, Append(nil, &g)); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("get flagged offloaded: %v", err)
	}
}
