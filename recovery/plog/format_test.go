package plog

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestEncodingIsTheDocumentedOne: the bytes of each record type are the
// ones the package documentation's grammar gives, built here field by
// field without the package's encoder. Records carry no format version
// (logs written by an older build are replayed), so a change of the
// encoding must fail here, not only in a round trip.
func TestEncodingIsTheDocumentedOne(t *testing.T) {
	le := binary.LittleEndian
	u8 := func(v uint8) []byte { return []byte{v} }
	u32 := func(v uint32) []byte { return le.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return le.AppendUint64(nil, v) }
	str := func(s string) []byte { return append([]byte{byte(len(s))}, s...) }
	byts := func(b string) []byte { return append(u32(uint32(len(b))), b...) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	s := samples()
	put := s[0]
	id, cid, format := make([]byte, 24), make([]byte, 24), []byte("MQSTR   ")
	id[0], cid[23] = 1, 2
	want := map[int][]byte{
		0: cat(u64(77), u8(0), str("APPL1"), str("Q.ONE"), u64(1234), id, cid, format, u8(4),
			u64(uint64(put.PutTime)), u64(uint64(put.Expiry)), u32(2), str("R"), str("QM2"), byts("p=1"), byts("hello")),
		2: cat(u64(77), u8(0), str("APPL1"), str("Q.ONE"), u64(1234)),
		4: cat(u64(77), u8(0)),
		5: cat(u64(78), u8(0)),
		6: cat(u64(0), u8(FlagCommitted), str("APPL1"), str("Q.ONE")),
	}
	for i, w := range want {
		r := s[i]
		if got := Append(nil, &r); !bytes.Equal(got, w) {
			t.Errorf("%v record:\n got % x\nwant % x", r.Type, got, w)
		}
	}
}
