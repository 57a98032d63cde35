package amqp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qmgr/qmgr/amqp/internal/specgen"
)

func TestMethodsGenerated(t *testing.T) {
	want, err := specgen.Generate(specgen.Spec)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("methods_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("methods_gen.go differs from specgen.Spec: run go generate ./amqp")
	}
}

// fill sets every field of the method m points to a random value.
func fill(r *rand.Rand, v reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(r.Uint64())
		case reflect.Bool:
			f.SetBool(r.IntN(2) == 1)
		case reflect.String:
			f.SetString(strings.Repeat("x", r.IntN(256)))
		case reflect.Map:
			f.Set(reflect.ValueOf(Table{"k": int32(r.Int32()), "s": "v"}))
		}
	}
}

func TestEveryMethodRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, m := range allMethods() {
		for range 20 {
			fill(r, reflect.ValueOf(m).Elem())
			b, err := AppendMethodFrame(nil, 7, m)
			if err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			fr := NewFrameReader(bytes.NewReader(b))
			fr.SetMax(1 << 20)
			f, err := fr.ReadFrame()
			if err != nil || f.Type != FrameMethod || f.Channel != 7 {
				t.Fatalf("%s: frame %+v, %v", m.Name(), f, err)
			}
			got, err := DecodeMethod(f.Payload)
			if err != nil {
				t.Fatalf("%s: %v", m.Name(), err)
			}
			if !reflect.DeepEqual(got, m) {
				t.Fatalf("%s: sent %+v, decoded %+v", m.Name(), m, got)
			}
		}
	}
}

// TestKnownBytes checks the encoding against bytes written by hand from
// the specification, so that a symmetric mistake in both directions of the
// codec cannot pass.
func TestKnownBytes(t *testing.T) {
	for _, c := range []struct {
		m    Method
		want []byte
	}{
		{&ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60},
			[]byte{0, 10, 0, 30, 0x07, 0xff, 0, 2, 0, 0, 0, 60}},
		{&QueueDeclare{Queue: "q", Durable: true, AutoDelete: true},
			[]byte{0, 50, 0, 10, 0, 0, 1, 'q', 0b1010, 0, 0, 0, 0}},
		{&BasicNack{DeliveryTag: 5, Multiple: true, Requeue: true},
			[]byte{0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 5, 0b11}},
		{&ExchangeUnbindOk{}, []byte{0, 40, 0, 51}},
		{&BasicPublish{Exchange: "e", RoutingKey: "rk", Mandatory: true},
			[]byte{0, 60, 0, 40, 0, 0, 1, 'e', 2, 'r', 'k', 1}},
	} {
		b, err := AppendMethodFrame(nil, 1, c.m)
		if err != nil {
			t.Fatal(err)
		}
		want := append([]byte{FrameMethod, 0, 1, 0, 0, 0, byte(len(c.want))}, c.want...)
		want = append(want, FrameEnd)
		if !bytes.Equal(b, want) {
			t.Errorf("%s:\n got % x\nwant % x", c.m.Name(), b, want)
		}
	}
}

func TestTableEveryFieldType(t *testing.T) {
	in := Table{
		"t": true, "b": int8(-2), "B": uint8(200), "s": int16(-300), "u": uint16(60000),
		"I": int32(-70000), "i": uint32(4000000000), "l": int64(-1 << 40), "f": float32(1.5),
		"d": float64(-2.25), "D": Decimal{Scale: 2, Value: 12345}, "S": "str", "x": []byte{0, 1},
		"A": []any{int32(1), "two", Table{"n": nil}}, "T": time.Unix(1700000000, 0).UTC(),
		"F": Table{"inner": int64(3)}, "V": nil,
	}
	e := encoder{}
	e.table(in)
	if e.err != nil {
		t.Fatal(e.err)
	}
	d := decoder{b: e.b}
	out := d.table()
	if err := d.end("table"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("sent %#v\ngot  %#v", in, out)
	}
	// An int goes as a long-long-int.
	e = encoder{}
	e.table(Table{"n": 7})
	d = decoder{b: e.b}
	if got := d.table()["n"]; got != int64(7) {
		t.Fatalf("int came back as %#v", got)
	}
}

func TestTableRefusesDeepNesting(t *testing.T) {
	deep := Table{}
	for range maxTableDepth + 1 {
		deep = Table{"n": deep}
	}
	e := encoder{}
	e.table(deep)
	if !errors.Is(e.err, ErrSyntax) {
		t.Fatalf("encoding %d levels: %v", maxTableDepth+2, e.err)
	}
	// The same bytes built by hand: the decoder refuses them too.
	raw := []byte{0, 0, 0, 0}
	for range maxTableDepth + 1 {
		inner := raw
		raw = []byte{0, 0, 0, 0, 1, 'n', 'F'}
		raw = append(raw, inner...)
		n := len(raw) - 4
		raw[0], raw[1], raw[2], raw[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	}
	d := decoder{b: raw}
	d.table()
	if !errors.Is(d.err, ErrSyntax) {
		t.Fatalf("decoding %d levels: %v", maxTableDepth+2, d.err)
	}
}

func TestPropertiesRoundTrip(t *testing.T) {
	h := ContentHeader{ClassID: 60, BodySize: 1 << 33, Props: Properties{
		Flags:       FlagPriority, // present with its zero value
		ContentType: "text/plain", ContentEncoding: "gzip",
		Headers:      Table{"x": "y", "n": int32(1)},
		DeliveryMode: 2, CorrelationID: "c", ReplyTo: "r", Expiration: "60000",
		MessageID: "m", Timestamp: 1700000000, Type: "t", UserID: "guest", AppID: "a",
	}}
	b, err := AppendHeaderFrame(nil, 3, &h)
	if err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(bytes.NewReader(b))
	f, err := fr.ReadFrame()
	if err != nil || f.Type != FrameHeader || f.Channel != 3 {
		t.Fatalf("frame %+v, %v", f, err)
	}
	got, err := DecodeContentHeader(f.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := h
	want.Props.Flags = h.Props.present()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sent %+v\ngot  %+v", want, got)
	}
	if got.Props.Flags&FlagPriority == 0 || got.Props.Flags&FlagClusterID != 0 {
		t.Fatalf("flags %#x", got.Props.Flags)
	}
}

func TestFrameReaderRefuses(t *testing.T) {
	ok := AppendHeartbeat(nil)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"bad end", append(ok[:len(ok)-1:len(ok)-1], 0xCD), ErrFrame},
		{"unknown type", append([]byte{9}, ok[1:]...), ErrFrame},
		{"over frame_max", []byte{FrameBody, 0, 1, 0, 0, 0x10, 0}, ErrFrame},
		{"cut short", ok[:5], io.ErrUnexpectedEOF},
		{"cut in payload", []byte{FrameBody, 0, 1, 0, 0, 0, 4, 1, 2}, io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
	} {
		_, err := NewFrameReader(bytes.NewReader(c.b)).ReadFrame()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	// Exactly FrameMinSize is allowed before tuning.
	body := AppendBodyFrames(nil, 1, FrameMinSize, make([]byte, 10000))
	fr := NewFrameReader(bytes.NewReader(body))
	var n int
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n += len(f.Payload)
	}
	if n != 10000 {
		t.Fatalf("read %d body bytes", n)
	}
}

func TestDecodeMethodRefuses(t *testing.T) {
	good, _ := AppendMethodFrame(nil, 1, &BasicAck{DeliveryTag: 1})
	payload := good[frameHeaderSize : len(good)-1]
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"unknown", []byte{0, 99, 0, 1}, ErrUnknownMethod},
		{"short ids", []byte{0}, ErrSyntax},
		{"short args", payload[:len(payload)-2], ErrSyntax},
		{"trailing", append(append([]byte{}, payload...), 0), ErrSyntax},
		{"long string past end", []byte{0, 20, 0, 11, 0xff, 0xff, 0xff, 0xff}, ErrSyntax},
		{"bad field type", []byte{0, 10, 0, 11, 0, 0, 0, 3, 1, 'k', 'Z', 0, 0, 0, 0, 0, 0}, ErrSyntax},
	} {
		if _, err := DecodeMethod(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestProtocolHeader(t *testing.T) {
	if err := NewFrameReader(bytes.NewReader(ProtocolHeader[:])).ReadProtocolHeader(); err != nil {
		t.Fatal(err)
	}
	err := NewFrameReader(strings.NewReader("AMQP\x00\x00\x08\x00")).ReadProtocolHeader()
	if !errors.Is(err, ErrProtocolHeader) {
		t.Fatal(err)
	}
	err = NewFrameReader(strings.NewReader("GET / HTTP/1.1\r\n")).ReadProtocolHeader()
	if !errors.Is(err, ErrProtocolHeader) {
		t.Fatal(err)
	}
}

// TestBodyVectorsAreBodyFrames: the vectored form of a body is byte for
// byte what AppendBodyFrames writes, whatever the pieces and frame size.
func TestBodyVectorsAreBodyFrames(t *testing.T) {
	body := make([]byte, 300000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	for _, cuts := range [][]int{{}, {1}, {131063}, {100, 200000}, {131064, 131065}} {
		var pieces [][]byte
		prev := 0
		for _, c := range cuts {
			pieces = append(pieces, body[prev:c])
			prev = c
		}
		pieces = append(pieces, body[prev:])
		for _, fm := range []uint32{FrameMinSize, 131072, 1 << 20} {
			want := AppendBodyFrames(nil, 3, fm, pieces...)
			var got []byte
			for _, v := range bodyVectors(3, fm, pieces...) {
				got = append(got, v...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("cuts %v frame_max %d: vectored body differs (%d vs %d bytes)", cuts, fm, len(got), len(want))
			}
		}
	}
}
