package chanstats

import (
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestWriteRead(t *testing.T) {
	p := Path(t.TempDir(), "QM1")
	if _, err := Read(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of no file: %v, want ErrNotExist", err)
	}
	now := time.Now().Round(0)
	want := Figures{Pid: 42, Written: now, Channels: []Channel{
		{Name: "TO.B", SentBytes: 1 << 40, Batches: 7, Messages: 700, Takeovers: 1},
		{Name: "TO.A", ReceivedBytes: 12345, Batches: 3, Messages: 30},
	}}
	if err := Write(p, want); err != nil {
		t.Fatal(err)
	}
	got, err := Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Written.Equal(now) {
		t.Fatalf("written %v, want %v", got.Written, now)
	}
	got.Written = now
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read %+v, want %+v", got, want)
	}
	if !got.Current(42, now.Add(MaxAge)) || got.Current(43, now) || got.Current(42, now.Add(MaxAge+time.Second)) {
		t.Fatal("Current: wrong pid or age accepted, or the right ones refused")
	}
}

func TestDecodeRefuses(t *testing.T) {
	const w = `"pid":1,"written":"2026-01-01T00:00:00Z"`
	for _, b := range []string{
		``, `{}`, `null`, `{"pid":1}`,
		`{` + w + `,"extra":1}`,
		`{` + w + `}{` + w + `}`,
		`{` + w + `,"channels":[{"name":"A","sent_bytes":-1}]}`,
		`{` + w + `,"channels":[{"name":"A","bytes":1}]}`,
		`{` + w + `,"channels":[{"name":""}]}`,
		`{` + w + `,"channels":[{"name":"A B"}]}`,
		`{` + w + `,"channels":[{"name":"` + strings.Repeat("A", 49) + `"}]}`,
		`{` + w + `,"channels":[{"name":"A"},{"name":"A"}]}`,
		`{` + w + `,"channels":[` + manyChannels(MaxChannels+1) + `]}`,
	} {
		if _, err := Decode([]byte(b)); !errors.Is(err, ErrBad) {
			t.Errorf("Decode(%.80q): %v, want ErrBad", b, err)
		}
	}
	for _, b := range []string{`{` + w + `}`, `{` + w + `,"channels":[` + manyChannels(MaxChannels) + `]}`} {
		if _, err := Decode([]byte(b)); err != nil {
			t.Errorf("Decode(%.80q) refused: %v", b, err)
		}
	}
}

// manyChannels is n channel entries of distinct names and the largest
// counts (the largest file a writer writes, for n = MaxChannels).
func manyChannels(n int) string {
	const max = 18446744073709551615
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":"%s%08d","sent_bytes":%d,"received_bytes":%d,"batches":%d,"messages":%d,"takeovers":%d}`,
			strings.Repeat("C", 40), i, uint64(max), uint64(max), uint64(max), uint64(max), uint64(max))
	}
	return b.String()
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"pid":7,"written":"2026-12-03T12:00:00Z","channels":[{"name":"TO.B","sent_bytes":100,"received_bytes":0,"batches":1,"messages":10,"takeovers":1}]}`))
	f.Add([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z","channels":[]}`))
	f.Add([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z","channels":[{"name":"A"},{"name":"A"}]}`))
	f.Add([]byte(`{"pid":-1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fg, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBad) {
				t.Fatalf("refusal %v is not ErrBad", err)
			}
			return
		}
		if fg.Pid <= 0 || fg.Written.IsZero() || len(fg.Channels) > MaxChannels {
			t.Fatalf("accepted %+v from %q", fg, b)
		}
		seen := map[string]bool{}
		for _, c := range fg.Channels {
			if c.Name == "" || len(c.Name) > 48 || seen[c.Name] {
				t.Fatalf("accepted channel %q from %q", c.Name, b)
			}
			seen[c.Name] = true
		}
	})
}
