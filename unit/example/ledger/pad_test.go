package ledger

import (
	"bytes"
	"testing"
)

// TestSnapshotWithPad: a ledger with ballast restores to the same state,
// ballast included; a snapshot without ballast (as every one before it)
// restores without; "pad n" inputs parse, and others are not pads.
func TestSnapshotWithPad(t *testing.T) {
	l := New()
	l.Apply(Transfer{ID: 1, From: "a", To: "b", Amount: 10}, 5, 7)
	for _, n := range []int{0, 1, 13, 1 << 20} {
		l.Pad, l.PadLen = padBytes(n), n
		if len(l.Pad) != n {
			t.Fatalf("padBytes(%d) gave %d bytes", n, len(l.Pad))
		}
		var b bytes.Buffer
		if err := l.Snapshot(&b); err != nil {
			t.Fatal(err)
		}
		r := New()
		if err := r.Restore(bytes.NewReader(b.Bytes())); err != nil {
			t.Fatalf("pad %d: %v", n, err)
		}
		if r.Digest() != l.Digest() || !bytes.Equal(r.Pad, l.Pad) || r.Balance("b") != 1010 {
			t.Fatalf("pad %d: restored state differs", n)
		}
	}
	if !bytes.Equal(padBytes(64), padBytes(64)) || bytes.Equal(padBytes(64)[:8], padBytes(64)[8:16]) {
		t.Fatal("padBytes is not deterministic, or repeats")
	}
	for in, want := range map[string]int{"pad 0": 0, "pad 4096": 4096} {
		if n, ok, err := parsePad([]byte(in)); !ok || err != nil || n != want {
			t.Fatalf("parsePad(%q) = %d %v %v", in, n, ok, err)
		}
	}
	for _, in := range []string{"pad -1", "pad x", "pad 2000000000"} {
		if _, ok, err := parsePad([]byte(in)); !ok || err == nil {
			t.Fatalf("parsePad(%q): ok %v err %v, want a refused pad", in, ok, err)
		}
	}
	if _, ok, _ := parsePad([]byte("1 a b 10")); ok {
		t.Fatal("a transfer parsed as a pad")
	}
	for _, bad := range []string{`{"Balances":{},"PadLen":4}` + "\nab", `{"Balances":{}}` + "\nx", `{"Balances":{},"PadLen":-1}`} {
		if err := New().Restore(bytes.NewReader([]byte(bad))); err == nil {
			t.Fatalf("restore of %q: no error", bad)
		}
	}
}

// FuzzRestore: Restore takes a snapshot from another replica (through the
// CF); whatever the bytes, it returns an error or a ledger, never panics.
func FuzzRestore(f *testing.F) {
	l := New()
	l.Apply(Transfer{ID: 1, From: "a", To: "b", Amount: 10}, 5, 7)
	var b bytes.Buffer
	l.Snapshot(&b)
	f.Add(b.Bytes())
	l.Pad, l.PadLen = padBytes(40), 40
	b.Reset()
	l.Snapshot(&b)
	f.Add(b.Bytes())
	f.Add([]byte(`{"Balances":null}`))
	f.Add([]byte(`{"Balances":{"a":1}}` + "\nxyz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := New()
		if err := r.Restore(bytes.NewReader(data)); err == nil && r.Balances == nil {
			t.Fatal("restored without a balance map")
		}
	})
}
