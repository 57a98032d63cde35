package xmit

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
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

// validNameBytes is validName byte by byte: the definition the word-wise
// one must agree with.
func validNameBytes(b []byte) bool {
	end := false
	for _, c := range b {
		switch {
		case c == 0:
			end = true
		case end || c < 0x20 || c > 0x7e:
			return false
		}
	}
	return true
}

func TestValidNameAgrees(t *testing.T) {
	// Every byte value at every position of a name, after a printable
	// prefix of each length, with and without a NUL before it.
	b := make([]byte, NameLen)
	check := func() {
		t.Helper()
		if got, want := validName(b), validNameBytes(b); got != want {
			t.Fatalf("validName(%q) = %v, byte by byte %v", b, got, want)
		}
	}
	for pos := 0; pos < NameLen; pos++ {
		for c := 0; c < 256; c++ {
			for _, nul := range []bool{false, true} {
				clear(b)
				for i := 0; i < pos; i++ {
					b[i] = 'A' + byte(i%26)
				}
				if nul && pos > 0 {
					b[pos/2] = 0
				}
				b[pos] = byte(c)
				check()
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte{0, 0x1f, 0x20, 'a', 0x7e, 0x7f, 0x80, 0xff}
	for i := 0; i < 200000; i++ {
		n := rng.IntN(NameLen + 1)
		for j := range b {
			if j < n {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			} else {
				b[j] = 0
			}
		}
		check()
	}
}

func BenchmarkValidName(b *testing.B) {
	name := make([]byte, NameLen)
	copy(name, "SYSTEM.CLUSTER.TRANSMIT.QUEUE")
	for b.Loop() {
		if !validName(name) {
			b.Fatal("invalid")
		}
	}
}

func TestNamesAllocateOnce(t *testing.T) {
	var n Names
	names := [][]byte{[]byte("QM1"), []byte("TARGET"), nil, []byte("MQSTR")}
	for _, b := range names {
		if got := n.String(b); got != string(b) {
			t.Fatalf("String(%q) = %q", b, got)
		}
	}
	if a := testing.AllocsPerRun(100, func() {
		for _, b := range names {
			n.String(b)
		}
	}); a != 0 {
		t.Fatalf("%v allocations for names seen before", a)
	}
	// Many distinct names: each comes back right, and the map stays bounded.
	for i := 0; i < 3*maxNames; i++ {
		b := []byte(fmt.Sprintf("Q%d", i))
		if got := n.String(b); got != string(b) {
			t.Fatalf("String(%q) = %q", b, got)
		}
	}
	if len(n.m) > maxNames {
		t.Fatalf("%d names kept", len(n.m))
	}
	var none *Names
	if none.String([]byte("X")) != "X" {
		t.Fatal("nil Names")
	}
}

// A Checker passes a header whose names are the last valid header's
// without scanning them, and checks everything else every time: a header
// with other names is checked in full, bad fields fail whatever the names.
func TestCheckerRemembersOnlyValidNames(t *testing.T) {
	h, props, body := sample()
	good, _ := Append(nil, &h, props, body)
	var c Checker
	for i := 0; i < 2; i++ {
		if err := c.Check(good, len(good)); err != nil {
			t.Fatalf("pass %d: %v", i, err)
		}
	}
	for name, mut := range map[string]func(b []byte){
		"bad queue name":      func(b []byte) { b[offQueue+1] = 0x7f },
		"bad reply-to qmgr":   func(b []byte) { b[offReplyQM] = 1 },
		"priority, same name": func(b []byte) { b[offPriority] = 10 },
		"flags, same name":    func(b []byte) { b[offFlags] = 4 },
		"props past the end":  func(b []byte) { b[offPropLen+2] = 1 },
		"magic, same name":    func(b []byte) { b[3] = '2' },
	} {
		b := append([]byte(nil), good...)
		mut(b)
		if err := c.Check(b, len(b)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s after a good header: %v", name, err)
		}
		if err := c.Check(good, len(good)); err != nil {
			t.Fatalf("the good header after %s: %v", name, err)
		}
	}
}

// Names reuses the last header's decoded names only when its name fields
// are the same bytes.
func TestNamesFollowTheHeaders(t *testing.T) {
	var n Names
	h, props, body := sample()
	for _, dest := range []string{"TARGET.Q", "TARGET.Q", "OTHER", "TARGET.Q"} {
		h.DestQueue = dest
		h.ReplyToQ = dest + ".R"
		b, _ := Append(nil, &h, props, body)
		got, _, _, err := n.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got != h {
			t.Fatalf("decoded %+v, want %+v", got, h)
		}
	}
}
