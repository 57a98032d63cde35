package childstats

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qmgr/qmgr/internal/ownedfs"
)

// WriteInterval is how often a child writes its figures (Keep); MaxAge is
// how old figures may be before a reader takes them as none.
const (
	WriteInterval = time.Second
	MaxAge        = 5 * WriteInterval
)

// ErrBad: the file is not a valid figures file. Format.Bad, when set,
// is wrapped as well.
var ErrBad = errors.New("childstats: bad figures file")

// Stamp is who wrote figures and when.
type Stamp struct {
	Pid     int       // the child process that wrote them
	Written time.Time // when
}

// MaxSkew is how far ahead of a reader's clock figures may be stamped
// and still be current (a clock stepped back a little since).
const MaxSkew = time.Second

// Current reports whether figures stamped s are of process pid and
// written at most MaxAge before now, and not more than MaxSkew after it:
// figures stamped further ahead (a clock stepped back since, or a file
// that lies) would stay current until the clock caught up.
func (s Stamp) Current(pid int, now time.Time) bool {
	age := now.Sub(s.Written)
	return s.Pid == pid && pid > 0 && age <= MaxAge && age >= -MaxSkew
}

// Figures is what a child's figures type provides: its stamp, and a check
// of its values (negative counts, names no writer writes) beyond the
// stamp's, which Decode checks itself.
type Figures interface {
	Stamp() Stamp
	Check() error
}

// Format is how one child's figures file is read.
type Format[T Figures] struct {
	// MaxSize bounds the file (bytes); a larger one is refused.
	MaxSize int
	// Bad is the caller's sentinel every refusal wraps besides ErrBad
	// (nil: ErrBad alone).
	Bad error
}

// Read reads the figures file at path (fs.ErrNotExist when there is
// none; an *ownedfs.Error when it is not the group's, or not a regular
// file).
func (fm Format[T]) Read(path string) (T, error) {
	var zero T
	// O_NONBLOCK: a FIFO planted at path opens at once (and is refused:
	// not a regular file) instead of waiting in open for a writer that
	// may never come, with the member's scrape and stop behind it. A
	// regular file's reads do not heed it.
	f, err := ownedfs.Open(path, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return zero, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(fm.MaxSize)+1))
	if err != nil {
		return zero, fmt.Errorf("childstats: read %s: %w", path, err)
	}
	return fm.Decode(b)
}

// Decode decodes a figures file's bytes, refusing anything but one JSON
// object of known fields, stamped, whose values pass T's Check.
func (fm Format[T]) Decode(b []byte) (T, error) {
	var f, zero T
	if len(b) > fm.MaxSize {
		return zero, fm.bad("%d bytes, over %d", len(b), fm.MaxSize)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return zero, fm.bad("%v", err)
	}
	if d.More() {
		return zero, fm.bad("more than one object")
	}
	if s := f.Stamp(); s.Pid <= 0 || s.Written.IsZero() {
		return zero, fm.bad("pid %d, written %v: no writer", s.Pid, s.Written)
	}
	if err := f.Check(); err != nil {
		return zero, fm.bad("%v", err)
	}
	return f, nil
}

// bad is a refusal: ErrBad and fm.Bad wrapped, with the detail.
func (fm Format[T]) bad(format string, args ...any) error {
	detail := fmt.Sprintf(format, args...)
	if fm.Bad == nil {
		return fmt.Errorf("%w: %s", ErrBad, detail)
	}
	return fmt.Errorf("%w: %w: %s", fm.Bad, ErrBad, detail)
}

// Write replaces the figures file at path with f as JSON: written to a
// new file (mode 0660) beside it and renamed over it, so a reader sees
// the whole new file or the old one.
func Write(path string, f any) error {
	b, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("childstats: %w", err)
	}
	if err := ownedfs.MkdirAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("childstats: %w", err)
	}
	// One writer per file (a member's one child of its kind, restarted only
	// once dead), so one temporary name: one a killed writer left between
	// create and rename is removed here, never left for good.
	tmp := path + ".tmp"
	os.Remove(tmp)
	w, err := ownedfs.Create(tmp, os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("childstats: %w", err)
	}
	_, err = w.Write(b)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("childstats: write %s: %w", path, err)
	}
	return nil
}

// Keep writes take(stamp) to path (Write) at once and then every
// WriteInterval until ctx ends or done is called; done waits for the
// writer and removes the file. A write that fails is passed to warn and
// tried again at the next tick.
func Keep(ctx context.Context, path string, take func(Stamp) any, warn func(error)) (done func()) {
	ctx, cancel := context.WithCancel(ctx)
	ended := make(chan struct{})
	write := func() {
		if err := Write(path, take(Stamp{Pid: os.Getpid(), Written: time.Now()})); err != nil {
			warn(err)
		}
	}
	go func() {
		defer close(ended)
		t := time.NewTicker(WriteInterval)
		defer t.Stop()
		for write(); ; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				write()
			}
		}
	}()
	return func() {
		cancel()
		<-ended
		os.Remove(path)
	}
}
