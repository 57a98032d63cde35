package stats

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	p := Path(dir, "QM1")
	if _, err := Read(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of no file: %v, want ErrNotExist", err)
	}
	now := time.Now().Round(0)
	want := Figures{Pid: 42, Written: now, Connections: 3, Channels: 5, Consumers: 2, GroupConnections: 4, Published: 100, Delivered: 90, Refused: 1, Blocked: true}
	for i := range 2 { // the second replaces the first
		want.Published += uint64(i)
		if err := Write(p, want); err != nil {
			t.Fatal(err)
		}
		got, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Written.Equal(want.Written) {
			t.Fatalf("written %v, want %v", got.Written, want.Written)
		}
		got.Written = want.Written
		if got != want {
			t.Fatalf("read %+v, want %+v", got, want)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("mode %v, want 0660", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(p + ".*.tmp"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	f, _ := Read(p)
	if !f.Current(42, now.Add(MaxAge)) || f.Current(43, now) || f.Current(42, now.Add(MaxAge+time.Second)) {
		t.Fatal("Current: wrong pid or age accepted, or the right ones refused")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, b := range []string{
		``, `{}`, `[]`, `null`, `{"pid":1}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","connections":-1}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","extra":1}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z"}{"pid":2,"written":"2026-01-01T00:00:00Z"}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","published":-5}`,
	} {
		if _, err := Decode([]byte(b)); !errors.Is(err, ErrBad) {
			t.Errorf("Decode(%q): %v, want ErrBad", b, err)
		}
	}
	if _, err := Decode([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z"}`)); err != nil {
		t.Errorf("a minimal file refused: %v", err)
	}
}

// TestReadRefusesAPlantedLink: a symbolic link in place of the file (to a
// file the reader could read) is not followed.
func TestReadRefusesAPlantedLink(t *testing.T) {
	dir := t.TempDir()
	p := Path(dir, "QM1")
	if err := Write(p, Figures{Pid: 1, Written: time.Now()}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.json")
	os.Rename(p, other)
	if err := os.Symlink(other, p); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); err == nil {
		t.Fatal("Read followed a symbolic link")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"pid":7,"written":"2026-12-03T12:00:00Z","connections":1,"channels":2,"consumers":1,"group_connections":2,"published":10,"delivered":9,"refused":0,"blocked":false}`))
	f.Add([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"pid":-1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fg, err := Decode(b)
		if err != nil {
			return
		}
		if fg.Pid <= 0 || fg.Connections < 0 || fg.Channels < 0 || fg.Consumers < 0 || fg.GroupConnections < 0 || fg.Written.IsZero() {
			t.Fatalf("accepted %+v from %q", fg, b)
		}
	})
}
