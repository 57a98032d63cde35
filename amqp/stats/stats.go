package stats

import (
	"errors"
	"path/filepath"
	"time"

	"github.com/qmgr/qmgr/internal/childstats"
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
	Refused   uint64 `json:"refused"`   // logins and connection opens refused (bad credentials, unknown vhost, no access)
	// Blocked: publishers are held (connection.blocked) by flow control.
	Blocked bool `json:"blocked"`
}

// MaxAge is how old figures may be before a reader takes them as none (the
// listener writes every WriteInterval).
const (
	WriteInterval = childstats.WriteInterval
	MaxAge        = childstats.MaxAge
)

// maxFileSize bounds what Read reads: a file of Figures is a few hundred
// bytes.
const maxFileSize = 4 << 10

// ErrBad: the file is not a valid figures file.
var ErrBad = errors.New("stats: bad AMQP figures file")

// format reads and decodes the file (package internal/childstats).
var format = childstats.Format[Figures]{MaxSize: maxFileSize, Bad: ErrBad}

// Path is the figures file of member's listener in data directory dataDir.
func Path(dataDir, member string) string {
	return filepath.Join(dataDir, "stats", "amqp-"+member+".json")
}

// Write replaces the figures file at path with f: written to a new file
// beside it and renamed over it (childstats.Write).
func Write(path string, f Figures) error { return childstats.Write(path, f) }

// Read reads the figures file at path (fs.ErrNotExist when there is none).
func Read(path string) (Figures, error) { return format.Read(path) }

// Decode decodes a figures file's bytes, refusing anything but one JSON
// object of known fields with sane values.
func Decode(b []byte) (Figures, error) { return format.Decode(b) }

// Stamp is who wrote f and when (childstats.Figures).
func (f Figures) Stamp() childstats.Stamp { return childstats.Stamp{Pid: f.Pid, Written: f.Written} }

// Check refuses negative counts (childstats.Figures).
func (f Figures) Check() error {
	if f.Connections < 0 || f.Channels < 0 || f.Consumers < 0 || f.GroupConnections < 0 {
		return errors.New("negative counts")
	}
	return nil
}

// Current reports whether figures f are of process pid and written at
// most MaxAge before now.
func (f Figures) Current(pid int, now time.Time) bool { return f.Stamp().Current(pid, now) }
