package chaos

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
)

// Event is a line of the fault log: a fault the nemesis injected (and,
// for faults that last, when it was healed), or something the harness
// observed on its own (a member that exited without being killed, a
// member that was fenced).
type Event struct {
	Seq    int    `json:"n"`           // order of recording
	T      int64  `json:"t"`           // Now() when it began
	End    int64  `json:"end"`         // when it was healed or over; 0: not (yet) known
	Kind   string `json:"k"`           // a fault kind (Kill, Stop, ...) or an observation
	Fault  bool   `json:"fault"`       // injected by the nemesis
	Group  string `json:"g,omitempty"` // the group's label (A, B)
	Target string `json:"target,omitempty"`
	Detail string `json:"d,omitempty"`
}

func (e Event) String() string {
	b, _ := json.Marshal(e)
	return string(b)
}

// EventLog records events in memory and appends each to a file as it
// changes (a line per change, the last line of a Seq wins).
type EventLog struct {
	mu     sync.Mutex
	f      *os.File
	events []Event
	t0     int64
}

// NewEventLog creates the log at path; t0 is the run's start, for
// printing offsets.
func NewEventLog(path string, t0 int64) (*EventLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &EventLog{f: f, t0: t0}, nil
}

// Add records e (T defaults to now) and returns its sequence number.
func (l *EventLog) Add(e Event) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.T == 0 {
		e.T = Now()
	}
	e.Seq = len(l.events)
	l.events = append(l.events, e)
	l.write(e)
	return e.Seq
}

// Done records that event n is over (healed) now, with detail appended.
func (l *EventLog) Done(n int, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := &l.events[n]
	if e.End != 0 {
		return
	}
	e.End = Now()
	if detail != "" {
		if e.Detail != "" {
			e.Detail += "; "
		}
		e.Detail += detail
	}
	l.write(*e)
}

func (l *EventLog) write(e Event) {
	if l.f != nil {
		b, _ := json.Marshal(e)
		l.f.Write(append(b, '\n'))
	}
}

// Events is a copy of every event, in order.
func (l *EventLog) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]Event(nil), l.events...)
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Offset is t as seconds since the run started, for reports.
func (l *EventLog) Offset(t int64) string { return fmt.Sprintf("+%.3fs", float64(t-l.t0)/1e9) }

// Close closes the file.
func (l *EventLog) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// ReadEvents reads a fault log: the last line of each event wins.
func ReadEvents(path string) ([]Event, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	byN := map[int]Event{}
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var e Event
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return nil, fmt.Errorf("chaos: %s:%d: %w", path, i+1, err)
		}
		byN[e.Seq] = e
	}
	out := make([]Event, 0, len(byN))
	for _, e := range byN {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}
