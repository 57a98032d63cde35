package stats

import (
	"bytes"
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

// Figures are a listener's AMQP figures at one moment. Counters count
// from the listener's start (a restarted listener starts again at 0,
// which Prometheus takes as a counter reset).
type Figures struct {
	Pid     int       `json:"pid"`     // the listener process that wrote them
	Written time.Time `json:"written"` // when
	// Open now.
	Connections int64 `json:"connections"`
	Channels    int64 `json:"channels"`
	Consumers   int64 `json:"consumers"`
	// GroupConnections are the group connection slots its clients hold.
	GroupConnections int64 `json:"group_connections"`
	// Since the listener started.
	Published uint64 `json:"published"` // publishes handled (routed or not)
	Delivered uint64 `json:"delivered"` // deliveries written (basic.deliver and basic.get-ok)
	Refused   uint64 `json:"refused"`   // connections refused (over the limit, failed logins, bad handshakes)
	// Blocked: publishers are held (connection.blocked) by flow control.
	Blocked bool `json:"blocked"`
}

// MaxAge is how old figures may be before a reader takes them as none (the
// listener writes every WriteInterval).
const (
	WriteInterval = time.Second
	MaxAge        = 5 * WriteInterval
)

// maxFileSize bounds what Read reads: a file of Figures is a few hundred
// bytes.
const maxFileSize = 4 << 10

// ErrBad: the file is not a valid figures file.
var ErrBad = errors.New("stats: bad AMQP figures file")

// Path is the figures file of member's listener in data directory dataDir.
func Path(dataDir, member string) string {
	return filepath.Join(dataDir, "stats", "amqp-"+member+".json")
}

// Write replaces the figures file at path with f: written to a new file
// beside it and renamed over it.
func Write(path string, f Figures) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := ownedfs.MkdirAll(filepath.Dir(path)); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp) // one this process left, killed between create and rename
	w, err := ownedfs.Create(tmp, os.O_WRONLY)
	if err != nil {
		return fmt.Errorf("stats: %w", err)
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
		return fmt.Errorf("stats: write %s: %w", path, err)
	}
	return nil
}

// Read reads the figures file at path (fs.ErrNotExist when there is none).
func Read(path string) (Figures, error) {
	f, err := ownedfs.Open(path, unix.O_RDONLY)
	if err != nil {
		return Figures{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return Figures{}, fmt.Errorf("stats: read %s: %w", path, err)
	}
	return Decode(b)
}

// Decode decodes a figures file's bytes, refusing anything but one JSON
// object of known fields with sane values.
func Decode(b []byte) (Figures, error) {
	var f Figures
	if len(b) > maxFileSize {
		return f, fmt.Errorf("%w: %d bytes", ErrBad, len(b))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return Figures{}, fmt.Errorf("%w: %v", ErrBad, err)
	}
	if d.More() {
		return Figures{}, fmt.Errorf("%w: more than one object", ErrBad)
	}
	if f.Pid <= 0 || f.Written.IsZero() || f.Connections < 0 || f.Channels < 0 || f.Consumers < 0 || f.GroupConnections < 0 {
		return Figures{}, fmt.Errorf("%w: pid %d, written %v, negative counts or none", ErrBad, f.Pid, f.Written)
	}
	return f, nil
}

// Current reports whether figures f are of process pid and written at
// most MaxAge before now.
func (f Figures) Current(pid int, now time.Time) bool {
	return f.Pid == pid && pid > 0 && now.Sub(f.Written) <= MaxAge
}
