package childstats

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/internal/ownedfs"
)

// figs is a figures type of the tests: a stamp and one count that must
// not be negative.
type figs struct {
	Pid     int       `json:"pid"`
	Written time.Time `json:"written"`
	N       int64     `json:"n"`
}

func (f figs) Stamp() Stamp { return Stamp{Pid: f.Pid, Written: f.Written} }

func (f figs) Check() error {
	if f.N < 0 {
		return fmt.Errorf("n %d", f.N)
	}
	return nil
}

var errTest = errors.New("test: bad figures")

var format = Format[figs]{MaxSize: 256, Bad: errTest}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "stats", "x-QM1.json") // stats/ is created
	if _, err := format.Read(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read of no file: %v, want ErrNotExist", err)
	}
	now := time.Now().Round(0)
	for i := range 2 { // the second replaces the first
		want := figs{Pid: 42, Written: now, N: int64(7 + i)}
		if err := Write(p, want); err != nil {
			t.Fatal(err)
		}
		got, err := format.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Written.Equal(want.Written) || got.Pid != want.Pid || got.N != want.N {
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
	if left, _ := filepath.Glob(p + "*.tmp"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// TestWriteAfterAKilledWriter: a writer killed between creating its
// temporary file and renaming it leaves the file; the next write (by the
// restarted child, another pid) replaces it and leaves none.
func TestWriteAfterAKilledWriter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stats", "x.json")
	if err := os.MkdirAll(filepath.Dir(p), 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", []byte("half"), 0o660); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, figs{Pid: 7, Written: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(p + "*.tmp"); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestCurrent(t *testing.T) {
	now := time.Now()
	s := Stamp{Pid: 42, Written: now}
	if !s.Current(42, now.Add(MaxAge)) {
		t.Error("the writer's recent figures refused")
	}
	if s.Current(43, now) {
		t.Error("another process's figures taken")
	}
	if s.Current(42, now.Add(MaxAge+time.Second)) {
		t.Error("stale figures taken")
	}
	if (Stamp{Written: now}).Current(0, now) {
		t.Error("figures of pid 0 taken for a child of pid 0 (none)")
	}
	// Stamped in the future (the clock stepped back since, or a file
	// that lies): taken as current it would stay so until the clock
	// catches up, whatever its writer does meanwhile.
	if (Stamp{Pid: 42, Written: now.Add(time.Hour)}).Current(42, now) {
		t.Error("figures stamped an hour ahead taken")
	}
	if !(Stamp{Pid: 42, Written: now.Add(MaxSkew)}).Current(42, now) {
		t.Error("figures stamped within MaxSkew ahead refused")
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, b := range []string{
		``, `{}`, `[]`, `null`, `"x"`, `{"pid":1}`, `{"written":"2026-01-01T00:00:00Z"}`,
		`{"pid":0,"written":"2026-01-01T00:00:00Z"}`,
		`{"pid":-3,"written":"2026-01-01T00:00:00Z"}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","n":-1}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","extra":1}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z"}{"pid":2,"written":"2026-01-01T00:00:00Z"}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z"} x`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","n":"5"}`,
		`{"pid":1,"written":"2026-01-01T00:00:00Z","n":1` + strings.Repeat(" ", 256) + `}`, // over MaxSize
	} {
		_, err := format.Decode([]byte(b))
		if !errors.Is(err, ErrBad) || !errors.Is(err, errTest) {
			t.Errorf("Decode(%.60q): %v, want ErrBad and the format's sentinel", b, err)
		}
	}
	if _, err := format.Decode([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z"}`)); err != nil {
		t.Errorf("a minimal file refused: %v", err)
	}
	if _, err := (Format[figs]{MaxSize: 100}).Decode([]byte(`{}`)); !errors.Is(err, ErrBad) {
		t.Errorf("without a sentinel of the format: %v, want ErrBad", err)
	}
}

// TestReadRefusesTooLarge: Read stops at MaxSize+1 bytes and refuses.
func TestReadRefusesTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.json")
	big := `{"pid":1,"written":"2026-01-01T00:00:00Z","n":1` + strings.Repeat(" ", 1<<20) + `}`
	if err := os.WriteFile(p, []byte(big), 0o660); err != nil {
		t.Fatal(err)
	}
	if _, err := format.Read(p); !errors.Is(err, errTest) {
		t.Fatalf("Read of a file over MaxSize: %v, want refused", err)
	}
}

// TestReadRefusesAPlantedLink: a symbolic link in place of the file (to a
// file the reader could read) is not followed.
func TestReadRefusesAPlantedLink(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x-QM1.json")
	if err := Write(p, figs{Pid: 1, Written: time.Now()}); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.json")
	if err := os.Rename(p, other); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, p); err != nil {
		t.Fatal(err)
	}
	if _, err := format.Read(p); err == nil {
		t.Fatal("Read followed a symbolic link")
	}
}

// TestReadRefusesAPlantedFIFO: a FIFO in place of the file (mkfifo
// needs nothing but write access to the stats directory) is refused at
// once. An open for reading waits for a writer: the member's scrape,
// which reads the file under Member.Observe, would never return, and the
// member's stop, which waits for Observe's readers, with it.
func TestReadRefusesAPlantedFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x-QM1.json")
	if err := unix.Mkfifo(p, 0o660); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := format.Read(p)
		read <- err
	}()
	select {
	case err := <-read:
		if !errors.Is(err, ownedfs.ErrWrongType) {
			t.Fatalf("Read of a FIFO: %v, want ownedfs.ErrWrongType", err)
		}
	case <-time.After(5 * time.Second):
		// Let the reader go: a writer comes and goes.
		if w, err := os.OpenFile(p, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-read
		t.Fatal("Read of a FIFO still waits after 5s (for a writer that never comes)")
	}
}

// TestReadRefusesOpenToOthers: a file others may write is not the
// group's (ownedfs.Open).
func TestReadRefusesOpenToOthers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x-QM1.json")
	if err := Write(p, figs{Pid: 1, Written: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := format.Read(p); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Read of a file others may write: %v, want ErrPermission", err)
	}
}

// TestKeep: Keep writes at once, stamped with this process, again each
// interval, and done removes the file.
func TestKeep(t *testing.T) {
	p := filepath.Join(t.TempDir(), "stats", "x-QM1.json")
	var n int64
	taken := make(chan int64, 100)
	done := Keep(context.Background(), p, func(s Stamp) any {
		n++
		taken <- n
		return figs{Pid: s.Pid, Written: s.Written, N: n}
	}, func(err error) { t.Errorf("write: %v", err) })
	// The writer takes twice (the first write and one tick) before the
	// file is read: the second is the one read or a later one.
	<-taken
	<-taken
	got, err := format.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Stamp().Current(os.Getpid(), time.Now()) || got.N < 1 {
		t.Fatalf("read %+v: not this process's recent figures", got)
	}
	done()
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after done: %v, want the file removed", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"pid":7,"written":"2026-12-03T12:00:00Z","n":3}`))
	f.Add([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"pid":1,"written":"2026-01-01T00:00:00Z","n":-1}`))
	f.Add([]byte(`{"pid":-1}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fg, err := format.Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBad) || !errors.Is(err, errTest) {
				t.Fatalf("refusal %v without the sentinels", err)
			}
			return
		}
		if len(b) > format.MaxSize || fg.Pid <= 0 || fg.Written.IsZero() || fg.N < 0 {
			t.Fatalf("accepted %+v from %q", fg, b)
		}
	})
}
