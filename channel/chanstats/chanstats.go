package chanstats

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/internal/childstats"
)

// Figures are a channel initiator's figures at one moment, by channel.
// Counters count from the initiator's start (a restarted initiator starts
// again at 0, which Prometheus takes as a counter reset).
type Figures struct {
	Pid      int       `json:"pid"`     // the channel initiator process that wrote them
	Written  time.Time `json:"written"` // when
	Channels []Channel `json:"channels"`
}

// Channel is one channel's counts in the initiator, by its instances
// (sender or receiver) since the initiator started.
type Channel struct {
	Name string `json:"name"`
	// SentBytes and ReceivedBytes are the bytes of the MSG frames'
	// payloads (transmission header, properties and body of each
	// message; not the frame headers nor control frames) of the batches
	// counted in Batches.
	SentBytes     uint64 `json:"sent_bytes"`
	ReceivedBytes uint64 `json:"received_bytes"`
	// Batches: batches committed on both sides (a sender's, once its
	// partner confirmed and it committed; a receiver's, once it
	// committed); Messages: their messages.
	Batches  uint64 `json:"batches"`
	Messages uint64 `json:"messages"`
	// Takeovers: times this initiator claimed the channel from an
	// instance that died (its member or initiator killed while running
	// it).
	Takeovers uint64 `json:"takeovers"`
}

// MaxChannels is the most channels a file carries (a writer leaves out
// those beyond it); the group's status table has fewer slots.
const MaxChannels = 4096

// WriteInterval is how often the initiator writes its figures; MaxAge is
// how old figures may be before a reader takes them as none.
const (
	WriteInterval = childstats.WriteInterval
	MaxAge        = childstats.MaxAge
)

// maxFileSize bounds what Read reads: a channel's entry is at most about
// 230 bytes (a 48-byte name, five 20-digit counters and the keys).
const maxFileSize = 256 + MaxChannels*256

// ErrBad: the file is not a valid figures file.
var ErrBad = errors.New("chanstats: bad channel figures file")

// format reads and decodes the file (package internal/childstats).
var format = childstats.Format[Figures]{MaxSize: maxFileSize, Bad: ErrBad}

// Path is the figures file of member's channel initiator in data
// directory dataDir.
func Path(dataDir, member string) string {
	return filepath.Join(dataDir, "stats", "chinit-"+member+".json")
}

// Write replaces the figures file at path with f: written to a new file
// beside it and renamed over it (childstats.Write).
func Write(path string, f Figures) error { return childstats.Write(path, f) }

// Read reads the figures file at path (fs.ErrNotExist when there is none).
func Read(path string) (Figures, error) { return format.Read(path) }

// Decode decodes a figures file's bytes, refusing anything but one JSON
// object of known fields with valid, distinct channel names.
func Decode(b []byte) (Figures, error) { return format.Decode(b) }

// Stamp is who wrote f and when (childstats.Figures).
func (f Figures) Stamp() childstats.Stamp {
	return childstats.Stamp{Pid: f.Pid, Written: f.Written}
}

// Check refuses invalid or repeated channel names, and too many
// (childstats.Figures); the counts are unsigned, so JSON refuses
// negative ones.
func (f Figures) Check() error {
	if len(f.Channels) > MaxChannels {
		return fmt.Errorf("%d channels, over %d", len(f.Channels), MaxChannels)
	}
	seen := make(map[string]bool, len(f.Channels))
	for _, c := range f.Channels {
		if !defs.ValidName(c.Name) {
			return fmt.Errorf("channel name %q", c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("channel %s twice", c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// Current reports whether figures f are of process pid and written at
// most MaxAge before now.
func (f Figures) Current(pid int, now time.Time) bool { return f.Stamp().Current(pid, now) }
