package logrec

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleInput(lsn uint64, choices bool) *Input {
	in := &Input{
		LSN:         lsn,
		Source:      Source{ID: 0xfeed, Gen: 2, Seq: lsn + 10},
		MsgID:       [24]byte{1, 2, 3},
		CorrelID:    [24]byte{9: 7},
		Format:      "MQSTR",
		Priority:    4,
		Persistent:  lsn%2 == 0,
		Expiry:      0,
		PutTime:     1_700_000_000_000_000_000 + int64(lsn),
		ReplyToQ:    "REPLY.Q",
		ReplyToQMgr: "QM1",
		Properties:  []byte("k=v"),
		Body:        []byte(`{"id":1,"from":"a","to":"b","amount":5}`),
	}
	if choices {
		in.Choices = []Choice{
			{Kind: ChoiceTime, Data: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
			{Kind: ChoiceSeed, Data: bytes.Repeat([]byte{0xab}, 16)},
			{Kind: ChoiceBytes, Data: []byte("chosen")},
			{Kind: ChoiceBytes},
			{Kind: ChoiceFailed, Data: Failed{Time: 1_700_000_000_000_000_001, DLH: true, Queue: "SYSTEM.DEAD.LETTER.QUEUE"}.Encode()},
		}
	}
	return in
}

// sampleLogs: one message of each shape the primary writes.
func sampleLogs() []*LogMessage {
	late := &LogMessage{Flags: FlagPersistent, Epoch: 3, Gen: 1, FirstLSN: 10, LastLSN: 12, Completed: 12, OutHash: 0x1234,
		Records: []Record{
			{Kind: KindInput, Input: sampleInput(10, true)},
			{Kind: KindInput, Input: sampleInput(11, false)},
			{Kind: KindInput, Input: sampleInput(12, true)},
			{Kind: KindCheck, LSN: 12, CheckHash: 99, CheckLen: 4096},
		}}
	early := &LogMessage{Epoch: 4, Gen: 1, FirstLSN: 13, LastLSN: 14, Completed: 12,
		Records: []Record{
			{Kind: KindChoices, LSN: 12, Choices: []Choice{{Kind: ChoiceTime, Data: make([]byte, 8)}}},
			{Kind: KindInputEarly, Input: sampleInput(13, false)},
			{Kind: KindInputEarly, Input: sampleInput(14, false)},
		}}
	ref := &LogMessage{Epoch: 4, Gen: 2, FirstLSN: 1, LastLSN: 1, Completed: 0,
		Records: []Record{{Kind: KindInputRef, Ref: &InputRef{LSN: 1, MsgID: [24]byte{5}, PutTime: 77, BodyLen: 40, Hash: 0xdead}}}}
	choicesOnly := &LogMessage{Epoch: 4, Gen: 2, Completed: 1,
		Records: []Record{{Kind: KindChoices, LSN: 1}}}
	// LOGGING(INDEPENDENT): the previous batch's choices and a check, an
	// input by reference, one from a unit logged in full (got from EARLY),
	// another by reference.
	indep := &LogMessage{Epoch: 5, Gen: 2, FirstLSN: 8, LastLSN: 10, Completed: 7, OutHash: 0x77,
		Records: []Record{
			{Kind: KindChoices, LSN: 7, Choices: []Choice{{Kind: ChoiceSeed, Data: make([]byte, 16)}}},
			{Kind: KindCheck, LSN: 7, CheckHash: 5, CheckLen: 64},
			{Kind: KindInputRef, Ref: &InputRef{LSN: 8, MsgID: [24]byte{8}, PutTime: 78, BodyLen: 12, Hash: 0xbeef}},
			{Kind: KindInputEarly, Input: sampleInput(9, false)},
			{Kind: KindInputRef, Ref: &InputRef{LSN: 10, Source: Source{ID: 3, Gen: 1, Seq: 4}, MsgID: [24]byte{10}, BodyLen: 1, Hash: 1}},
		}}
	return []*LogMessage{late, early, ref, choicesOnly, indep}
}

func TestLogRoundTrip(t *testing.T) {
	for i, m := range sampleLogs() {
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		got, err := DecodeLog(b)
		if err != nil {
			t.Fatalf("message %d: decode: %v", i, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("message %d: round trip\n got %+v\nwant %+v", i, got, m)
		}
		// Every proper prefix is refused, with an error, not a panic.
		for n := 0; n < len(b); n++ {
			if _, err := DecodeLog(b[:n]); err == nil {
				t.Fatalf("message %d: prefix of %d of %d bytes accepted", i, n, len(b))
			}
		}
		// A byte past the end is refused too.
		if _, err := DecodeLog(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("message %d: trailing byte: %v", i, err)
		}
	}
}

func TestLogRefusesWhatItCannotHold(t *testing.T) {
	bad := []*LogMessage{
		{Records: nil},
		{FirstLSN: 5, LastLSN: 5, Records: []Record{{Kind: KindInput, Input: sampleInput(6, false)}}},               // gap
		{FirstLSN: 5, LastLSN: 6, Records: []Record{{Kind: KindInput, Input: sampleInput(5, false)}}},               // last wrong
		{FirstLSN: 5, LastLSN: 5, Completed: 6, Records: []Record{{Kind: KindInput, Input: sampleInput(5, false)}}}, // completed past last
		{FirstLSN: 1, LastLSN: 1, Records: []Record{{Kind: KindInputEarly, Input: sampleInput(1, true)}}},           // early with choices
		{Records: []Record{{Kind: KindCheck}}}, // LSN 0
		{Records: []Record{{Kind: 9, LSN: 1}}}, // kind
		{FirstLSN: 1, LastLSN: 1, Records: []Record{{Kind: KindInput, Input: &Input{LSN: 1, Format: "TOOLONGFMT"}}}}, // format
		{FirstLSN: 1, LastLSN: 1, Records: []Record{{Kind: KindInput, Input: &Input{LSN: 1, Priority: 10}}}},         // priority
		{Records: []Record{{Kind: KindChoices, LSN: 1, Choices: []Choice{{Kind: ChoiceTime, Data: []byte{1}}}}}},     // TIME length
		{Records: []Record{{Kind: KindChoices, LSN: 1, Choices: []Choice{{Kind: ChoiceBytes, Data: make([]byte, MaxChoiceBytes)}}}}},
	}
	for i, m := range bad {
		if _, err := m.Encode(); !errors.Is(err, ErrInvalid) {
			t.Errorf("case %d: Encode: %v, want ErrInvalid", i, err)
		}
	}
	many := &LogMessage{FirstLSN: 1, LastLSN: MaxInputsPerMessage + 1}
	for l := uint64(1); l <= MaxInputsPerMessage+1; l++ {
		many.Records = append(many.Records, Record{Kind: KindInputRef, Ref: &InputRef{LSN: l}})
	}
	if _, err := many.Encode(); !errors.Is(err, ErrInvalid) {
		t.Errorf("%d inputs: %v", MaxInputsPerMessage+1, err)
	}
}

func TestDecodeLogDamage(t *testing.T) {
	b, err := sampleLogs()[0].Encode()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		mut  func(b []byte)
		want error
	}{
		"magic":        {func(b []byte) { b[0] = 'X' }, ErrBadMagic},
		"version":      {func(b []byte) { b[lgVersion] = 2 }, ErrVersion},
		"count zero":   {func(b []byte) { le.PutUint16(b[lgCount:], 0) }, ErrCorrupt},
		"count huge":   {func(b []byte) { le.PutUint16(b[lgCount:], MaxRecords) }, ErrTruncated},
		"reserved":     {func(b []byte) { b[60] = 1 }, ErrCorrupt},
		"record len":   {func(b []byte) { le.PutUint32(b[lgRecords+rcLen:], 1<<31) }, ErrTruncated},
		"record kind":  {func(b []byte) { b[lgRecords+rcKind] = 0 }, ErrCorrupt},
		"persistent 2": {func(b []byte) { b[lgRecords+rcBody+inPersistent] = 2 }, ErrCorrupt},
		"first LSN":    {func(b []byte) { le.PutUint64(b[lgFirst:], 11) }, ErrCorrupt},
		"props len":    {func(b []byte) { le.PutUint32(b[lgRecords+rcBody+inPropsLen:], 1<<30) }, ErrTruncated},
	}
	for name, c := range cases {
		d := bytes.Clone(b)
		c.mut(d)
		if _, err := DecodeLog(d); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
}

func TestLogCorrelIDSorts(t *testing.T) {
	a, b := LogCorrelID(1, 300), LogCorrelID(2, 5)
	if bytes.Compare(a[:], b[:]) >= 0 {
		t.Fatal("a later epoch's CorrelID does not sort after")
	}
	e, f, err := ParseLogCorrelID(a)
	if err != nil || e != 1 || f != 300 {
		t.Fatalf("parse: %d %d %v", e, f, err)
	}
	a[20] = 1
	if _, _, err := ParseLogCorrelID(a); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reserved: %v", err)
	}
}

func TestOutRoundTrip(t *testing.T) {
	o := Out{Sender: 1, Epoch: 7, Gen: 2, LSNOut: 1000, Outputs: 1001, OutHash: 0xabc, Updated: 12345, Part: 2}
	b := o.Encode()
	got, err := DecodeOut(b)
	if err != nil || got != o {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	b[otSender+1] = 1
	if _, err := DecodeOut(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reserved: %v", err)
	}
	if _, err := DecodeOut(b[:10]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short: %v", err)
	}
}

func TestOutputID(t *testing.T) {
	id := OutputID{Source: 0x0102030405060708, Gen: 3, Seq: 256}
	m := id.MsgID()
	if !IsOutputID(m) {
		t.Fatal("not recognised")
	}
	got, err := ParseOutputID(m)
	if err != nil || got != id {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	next := OutputID{Source: id.Source, Gen: id.Gen, Seq: id.Seq + 1}.MsgID()
	if bytes.Compare(m[:], next[:]) >= 0 {
		t.Fatal("sequence order is not MsgID order")
	}
	if _, err := ParseOutputID([24]byte{'X'}); !errors.Is(err, ErrBadMagic) {
		t.Fatalf("foreign MsgID: %v", err)
	}
	if _, err := ParseOutputID(OutputID{Source: 1}.MsgID()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("sequence 0: %v", err)
	}
}

func TestTransferAndChunks(t *testing.T) {
	tr := Transfer{Gen: 2, Epoch: 9, Joiner: 1, JoinerTag: 0x77}
	got, err := ParseTransfer(tr.CorrelID())
	if err != nil || got != tr {
		t.Fatalf("transfer: %+v %v", got, err)
	}
	stream := bytes.Repeat([]byte("state"), 100)
	cs := []*Chunk{
		{Index: 0, LSN: 40, Offset: 0, Data: stream[:200]},
		{Last: true, Index: 1, LSN: 40, Offset: 200, Total: uint64(len(stream)), Hash: 5, Data: stream[200:]},
	}
	for _, c := range cs {
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeChunk(b)
		if err != nil || !reflect.DeepEqual(d, c) {
			t.Fatalf("chunk %d: %+v %v", c.Index, d, err)
		}
	}
	bad := &Chunk{Last: true, Offset: 1, Total: 5, Data: []byte("ab")}
	b, _ := bad.Encode()
	if _, err := DecodeChunk(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("inconsistent total: %v", err)
	}
	if _, err := (&Chunk{Data: make([]byte, MaxChunkData+1)}).Encode(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("oversize: %v", err)
	}
}

func sampleFramework() *Framework {
	return &Framework{LSN: 500, Gen: 2, OutHash: 77,
		Dests:   []Dest{{Name: "AUDIT", Next: 3}, {Name: "CONFIRM", Next: 501}},
		Sources: []SourceState{{ID: 1, Gen: 1, Next: 4}, {ID: 1, Gen: 2, Next: 1}, {ID: 9, Gen: 0, Next: 2}}}
}

func TestFrameworkRoundTrip(t *testing.T) {
	f := sampleFramework()
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	stream := append(bytes.Clone(b), "handler bytes"...)
	got, n, err := DecodeFramework(stream)
	if err != nil || !reflect.DeepEqual(got, f) || n != len(b) {
		t.Fatalf("round trip: %+v %d %v", got, n, err)
	}
	for i := 0; i < len(b); i++ {
		if _, _, err := DecodeFramework(b[:i]); err == nil {
			t.Fatalf("prefix of %d accepted", i)
		}
	}
	unsorted := sampleFramework()
	unsorted.Dests[0], unsorted.Dests[1] = unsorted.Dests[1], unsorted.Dests[0]
	if _, err := unsorted.Encode(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unsorted: %v", err)
	}
	unsorted.Sort()
	if _, err := unsorted.Encode(); err != nil {
		t.Fatalf("sorted: %v", err)
	}
	empty := &Framework{LSN: 1}
	b, _ = empty.Encode()
	if got, _, err := DecodeFramework(b); err != nil || !reflect.DeepEqual(got, empty) {
		t.Fatalf("empty: %+v %v", got, err)
	}
}

func sampleResend() []Resend {
	return []Resend{
		{LSN: 7, Seq: 1, Dest: "CONFIRM", MsgID: OutputID{Source: 5, Gen: 1, Seq: 1}.MsgID(), Format: "MQSTR", Priority: 4, Persistence: 2,
			ReplyToQ: "R", ReplyToQMgr: "QM1", Properties: []byte("p=1"), Body: []byte("seven")},
		{LSN: 7, Seq: 1, Dest: "AUDIT", Priority: PriorityDefault, Expiry: 99, Body: []byte("x")},
		{LSN: 9, Seq: 2, Dest: "CONFIRM", CorrelID: [24]byte{1}},
	}
}

// TestResendRoundTrip: the resend section of a snapshot (14.1) decodes to
// what was encoded, says how many bytes it took, refuses every truncation
// and entries out of LSN order, and encodes nothing invalid.
func TestResendRoundTrip(t *testing.T) {
	rs := sampleResend()
	b, err := EncodeResend(rs)
	if err != nil {
		t.Fatal(err)
	}
	stream := append(append([]byte(nil), b...), "handler bytes"...)
	got, n, err := DecodeResend(stream)
	if err != nil || n != len(b) || !reflect.DeepEqual(got, rs) {
		t.Fatalf("round trip: n %d of %d, err %v\n got %+v\nwant %+v", n, len(b), err, got, rs)
	}
	for i := range b {
		if _, _, err := DecodeResend(b[:i]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("truncated to %d bytes: %v, want ErrTruncated", i, err)
		}
	}
	if got, n, err := DecodeResend(mustResend(t, nil)); err != nil || n != rsHeaderSize || got != nil {
		t.Fatalf("empty section: %v %d %v", got, n, err)
	}
	swapped := []Resend{rs[2], rs[0]}
	if _, err := EncodeResend(swapped); !errors.Is(err, ErrInvalid) {
		t.Fatalf("entries out of LSN order encoded: %v", err)
	}
	for _, bad := range []Resend{{LSN: 1, Seq: 1}, {LSN: 1, Dest: "Q"}, {LSN: 1, Seq: 1, Dest: "Q", Priority: 10}, {LSN: 1, Seq: 1, Dest: "Q", Persistence: 3}} {
		if _, err := EncodeResend([]Resend{bad}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v encoded: %v", bad, err)
		}
	}
	// A count larger than the bytes could hold is refused before anything
	// is allocated.
	huge := mustResend(t, nil)
	le.PutUint32(huge[rsCount:], 1<<31)
	if _, _, err := DecodeResend(huge); !errors.Is(err, ErrTruncated) {
		t.Fatalf("count 2^31 in 16 bytes: %v", err)
	}
}

func mustResend(t *testing.T, rs []Resend) []byte {
	t.Helper()
	b, err := EncodeResend(rs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFailedChoice: a FAILED choice's bytes round-trip, and bytes that are
// not one are refused, never a panic.
func TestFailedChoice(t *testing.T) {
	for _, f := range []Failed{{Time: 5, Queue: "IN.BO"}, {Time: -1, DLH: true, Queue: strings.Repeat("Q", MaxFailedQueue)}} {
		g, err := DecodeFailed(f.Encode())
		if err != nil || g != f {
			t.Fatalf("%+v: decoded %+v, %v", f, g, err)
		}
	}
	for _, b := range [][]byte{nil, make([]byte, 9), append(make([]byte, 8), 2, 'Q'), make([]byte, 10+MaxFailedQueue)} {
		if _, err := DecodeFailed(b); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%x: %v", b, err)
		}
		if err := validChoice(Choice{Kind: ChoiceFailed, Data: b}); err == nil {
			t.Fatalf("%x: a valid FAILED choice", b)
		}
	}
}
