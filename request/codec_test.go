package request

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/qmgr/qmgr/internal/layouttable"
)

func TestLayoutTables(t *testing.T) {
	layouttable.Verify(t,
		layouttable.Layout{File: "doc.go", Title: "Request header layout", Prefix: "rh", SizeName: "rhSize", Except: []string{"rhVersionNow"}},
		layouttable.Layout{File: "doc.go", Title: "State record layout", Prefix: "sr", SizeName: "srSize", Except: []string{"srVersionNow", "srSizeV1"}},
		layouttable.Layout{File: "doc.go", Title: "Unexpected Message Queue header layout", Prefix: "uh", SizeName: "uhSize", Except: []string{"uhVersionNow", "uhQueueLen"}},
		layouttable.Layout{File: "doc.go", Title: "Call id layout", Prefix: "ci", SizeName: "ciSize", Except: []string{"ciKeyLen", "ciTagAttempt", "ciTagRecord", "ciTagLive", "ciTagTomb"}},
	)
}

func sampleRecord() *Record {
	var id ID
	copy(id[:], "request-id-0123456789ab")
	return &Record{
		Mode: ModeRecoverable, Status: StatusFinalReplied, Attempts: 3, NextSeq: 4, FinalIdx: 3,
		RequestID: id, Created: time.Unix(0, 1700000000123456789), Updated: time.Unix(0, 1700000001000000000),
		Lock: 1700000000000000042, Manager: "RM1", Step: "booking hotel", ReplyToQ: "TRAVEL.REPLY", ReplyQMgr: "QM1",
		Pending: []PendingCall{{Attempt: 3, Seq: 3, Sent: time.Unix(0, 1700000000500000000), Timeout: 5 * time.Second, Queue: "PAYMENT"}},
		Journal: []Entry{
			{Kind: EntryCall, Outcome: OutcomeReplied, Attempt: 1, Seq: 1, Name: "FLIGHT", Hash: SentHash("", []byte("book")), Value: []byte("AF123")},
			{Kind: EntrySave, Name: "price", Value: []byte("420")},
			{Kind: EntryFinal, Hash: SentHash("", []byte("booked"))},
			{Kind: EntryCall, Outcome: OutcomeWithdrawn, Attempt: 2, Seq: 2, Name: "HOTEL"},
			{Kind: EntryReply},
			{Kind: EntryCall, Outcome: OutcomePending, Attempt: 3, Seq: 3, Name: "PAYMENT"},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range []*Record{sampleRecord(), {Mode: ModeNonRecoverable, Status: StatusRunning, Attempts: 1, NextSeq: 1, Created: time.Unix(5, 0), Updated: time.Unix(6, 0)}} {
		b := r.Encode()
		got, err := ParseRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Encode(), b) {
			t.Fatalf("re-encoding differs")
		}
		if got.Created.UnixNano() != r.Created.UnixNano() || got.Manager != r.Manager || !reflect.DeepEqual(got.Journal, r.Journal) || len(got.Pending) != len(r.Pending) {
			t.Fatalf("got %+v, want %+v", got, r)
		}
	}
}

// encodeV1 is r as a version 1 record: no lock, no hashes (what managers
// before version 2 wrote).
func encodeV1(r *Record) []byte {
	b := r.Encode()
	out := append([]byte(nil), b[:srSizeV1]...)
	binary.LittleEndian.PutUint16(out[srVersion:], 1)
	d := decoder{b: b[srTail:]}
	for range 4 {
		out = putString(out, d.str())
	}
	for range r.Pending {
		out = append(out, d.bytes(24)...)
		out = putString(out, d.str())
	}
	for range r.Journal {
		out = append(out, d.bytes(11)...)
		out = putString(out, d.str())
		d.u64() // the hash
		n := d.u32()
		out = binary.LittleEndian.AppendUint32(out, n)
		out = append(out, d.bytes(int(n))...)
	}
	return out
}

func TestRecordVersion1(t *testing.T) {
	r := sampleRecord()
	got, err := ParseRecord(encodeV1(r))
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.Lock = 0
	want.Journal = nil
	for _, e := range r.Journal {
		e.Hash = 0
		want.Journal = append(want.Journal, e)
	}
	if got.Lock != 0 || !reflect.DeepEqual(got.Journal, want.Journal) || got.Manager != r.Manager || got.Attempts != r.Attempts || len(got.Pending) != 1 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// Rewritten, it is a record of this version with the same content.
	again, err := ParseRecord(got.Encode())
	if err != nil || !reflect.DeepEqual(again.Journal, want.Journal) {
		t.Fatalf("%+v %v", again, err)
	}
}

func TestRecordNewerVersion(t *testing.T) {
	b := sampleRecord().Encode()
	binary.LittleEndian.PutUint16(b[srVersion:], srVersionNow+1)
	if _, err := ParseRecord(b); !errors.Is(err, ErrRecordVersion) || !errors.Is(err, ErrBadHeader) {
		t.Fatalf("a newer version: %v", err)
	}
}

func TestRecordRefusesDamage(t *testing.T) {
	b := sampleRecord().Encode()
	for i := 0; i < len(b); i++ { // every truncation
		if _, err := ParseRecord(b[:i]); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	for _, off := range []int{srMagic, srVersion, srMode, srStatus, srFinalIdx, srPending, srJournal} {
		c := bytes.Clone(b)
		c[off] ^= 0xff
		if _, err := ParseRecord(c); !errors.Is(err, ErrBadHeader) {
			t.Fatalf("byte %d changed: %v", off, err)
		}
	}
	if _, err := ParseRecord(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestRequestHeader(t *testing.T) {
	b := RequestHeader{Mode: ModeRestartable, Format: "JSON"}.Encode([]byte("body"))
	h, body, err := ParseRequestHeader(b)
	if err != nil || h.Mode != ModeRestartable || h.Format != "JSON" || string(body) != "body" {
		t.Fatalf("%+v %q %v", h, body, err)
	}
	c := bytes.Clone(b)
	c[rhMode] = 9
	if _, _, err := ParseRequestHeader(c); !errors.Is(err, ErrBadHeader) {
		t.Fatal(err)
	}
	if _, _, err := ParseRequestHeader(b[:rhSize-1]); !errors.Is(err, ErrBadHeader) {
		t.Fatal(err)
	}
}

func TestUnexpectedHeader(t *testing.T) {
	h := UnexpectedHeader{Reason: ReasonTimedOut, RequestID: ID{1, 2, 3}, CorrelID: [24]byte{9}, OrigQ: "SYSTEM.REQUEST.REPLY", Time: time.Unix(0, 42), OrigFormat: "MQSTR"}
	b := h.Encode([]byte("late"))
	got, body, err := ParseUnexpectedHeader(b)
	if err != nil || string(body) != "late" || got.Reason != h.Reason || got.RequestID != h.RequestID || got.CorrelID != h.CorrelID || got.OrigQ != h.OrigQ || !got.Time.Equal(h.Time) || got.OrigFormat != h.OrigFormat {
		t.Fatalf("%+v %q %v", got, body, err)
	}
	if _, _, err := ParseUnexpectedHeader(b[:uhSize-1]); !errors.Is(err, ErrBadHeader) {
		t.Fatal(err)
	}
}

func TestCallID(t *testing.T) {
	k := KeyOf(ID{7})
	c := CallID{Key: k, Attempt: 2, Seq: 5}
	got, err := ParseCallID(c.Bytes())
	if err != nil || got != c {
		t.Fatalf("%+v %v", got, err)
	}
	for _, tag := range []uint32{ciTagRecord, ciTagLive, ciTagTomb} {
		if _, err := ParseCallID(tagID(k, tag)); !errors.Is(err, ErrNotCallID) {
			t.Fatalf("tag %x parsed as a call id", tag)
		}
	}
	if _, err := ParseCallID([24]byte{}); !errors.Is(err, ErrNotCallID) {
		t.Fatal("zero parsed as a call id")
	}
	id := ID{0xab, 0xcd}
	if p, err := ParseID(id.String()); err != nil || p != id {
		t.Fatal(p, err)
	}
	if _, err := ParseID("xyz"); err == nil {
		t.Fatal("bad id accepted")
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(sampleRecord().Encode())
	f.Add((&Record{Mode: ModeRestartable, Status: StatusRunning, Attempts: 1}).Encode())
	f.Add([]byte("RQST"))
	f.Add(encodeV1(sampleRecord()))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		if binary.LittleEndian.Uint16(b[srVersion:]) == 1 {
			// Read as this version, which it re-encodes to: then canonical.
			b = r.Encode()
			if r, err = ParseRecord(b); err != nil {
				t.Fatalf("a version 1 record re-encoded does not parse: %v", err)
			}
		}
		// What decodes re-encodes to the same bytes: the format is canonical.
		if !bytes.Equal(r.Encode(), b) {
			t.Fatalf("%x decodes to %+v which encodes to %x", b, r, r.Encode())
		}
	})
}

func FuzzParseRequestHeader(f *testing.F) {
	f.Add(RequestHeader{Mode: ModeRecoverable, Format: "MQSTR"}.Encode([]byte("x")))
	f.Add([]byte("RQH \x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := ParseRequestHeader(b)
		if err != nil {
			return
		}
		if len(body) != len(b)-rhSize || h.Mode > ModeRecoverable {
			t.Fatalf("%+v %d", h, len(body))
		}
	})
}

func FuzzParseUnexpectedHeader(f *testing.F) {
	f.Add(UnexpectedHeader{Reason: ReasonPurged, OrigQ: "Q", Time: time.Unix(1, 0)}.Encode([]byte("body")))
	f.Add([]byte("RQUH"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := ParseUnexpectedHeader(b)
		if err != nil {
			return
		}
		if len(body) != len(b)-uhSize || len(h.OrigQ) > uhQueueLen {
			t.Fatalf("%+v %d", h, len(body))
		}
	})
}

func FuzzParseCallID(f *testing.F) {
	seed := CallID{Key: KeyOf(ID{1}), Attempt: 1, Seq: 1}.Bytes()
	f.Add(seed[:])
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		var id [24]byte
		copy(id[:], b)
		c, err := ParseCallID(id)
		if err != nil {
			return
		}
		if c.Bytes() != id {
			t.Fatalf("%x parses to %+v which renders %x", id, c, c.Bytes())
		}
	})
}
