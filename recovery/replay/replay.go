package replay

import (
	"container/heap"
	"fmt"
	"io"
	"path/filepath"
	"sort"

	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/recovery/rlog"
	"github.com/qmgr/qmgr/vfs"
)

// Options say what to replay.
type Options struct {
	FS vfs.FS // nil: the operating system's
	// LogDirs are the members' log directories (every member's: a unit of
	// work's records are all in the log of the member it ran under).
	LogDirs []string
	// Structure is the application structure being rebuilt; records of
	// other structures are skipped.
	Structure string
	// From is the first LRSN that matters (0: the beginning).
	From uint64
	// Seed is what the structure held at SeedLRSN (a backup's messages
	// and start); nil for nothing. Replay may start before SeedLRSN
	// (units of work in flight then began earlier): operations before it
	// apply idempotently, and a clear before it leaves the seed alone.
	Seed     []plog.Record
	SeedLRSN uint64
	// Aborted holds the keys of units of work that were backed out after
	// their commit record may have reached a log (package defs records
	// them before the backout): their commit records count as backouts,
	// wherever they are.
	Aborted map[uint64]bool
}

// Message is a message that survives, and where it goes back.
type Message struct {
	plog.Record
	Seed bool // from the seed
	// Place is its place in the seed: a seed message's, or the place the
	// seed kept for a put under syncpoint that committed after the
	// backup started (-1: none).
	Place int
	// LRSN is the LRSN of the record that made it visible (its commit, or
	// the put itself outside syncpoint; 0 for a seed message), Index its
	// place among the operations of its unit of work.
	LRSN  uint64
	Index int
}

// before reports whether m goes back before n: messages with a place in
// the seed by place, then the others in the order they became visible.
func (m *Message) before(n *Message) bool {
	if (m.Place >= 0) != (n.Place >= 0) {
		return m.Place >= 0
	}
	if m.Place >= 0 {
		return m.Place < n.Place
	}
	if m.LRSN != n.LRSN {
		return m.LRSN < n.LRSN
	}
	return m.Index < n.Index
}

// Result is what replay found.
type Result struct {
	Messages []Message // in the order they go back (Message.before)
	Records  uint64    // log records read
	Bytes    uint64    // their payload bytes
	MaxLRSN  uint64    // the highest LRSN in any log
	Units    uint64    // units of work committed
	Dropped  uint64    // units of work backed out or never ended
}

// DirsIn returns the log directories under root (data directory/log) in
// fs (nil: the operating system's).
func DirsIn(fs vfs.FS, root string) ([]string, error) {
	if fs == nil {
		fs = vfs.OS()
	}
	names, err := fs.ListDirs(root)
	if err != nil {
		return nil, fmt.Errorf("replay: list %s: %w", root, err)
	}
	var dirs []string
	for _, n := range names {
		dirs = append(dirs, filepath.Join(root, n))
	}
	return dirs, nil
}

type source struct {
	r   *rlog.Reader
	rec rlog.Record
	dir string
}

type merge []*source

func (m merge) Len() int           { return len(m) }
func (m merge) Less(i, j int) bool { return m[i].rec.LRSN < m[j].rec.LRSN }
func (m merge) Swap(i, j int)      { m[i], m[j] = m[j], m[i] }
func (m *merge) Push(x any)        { *m = append(*m, x.(*source)) }
func (m *merge) Pop() any          { old := *m; x := old[len(old)-1]; *m = old[:len(old)-1]; return x }
func (s *source) next() (bool, error) {
	rec, err := s.r.Next()
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("replay: log %s: %w", s.dir, err)
	}
	s.rec = rec
	return true, nil
}

type state struct {
	structure string
	seedLRSN  uint64
	live      map[uint64]*Message
	places    map[uint64]int // key → its place in the seed, for puts the backup found uncommitted
	pending   map[uint64][]plog.Record
	aborted   map[uint64]bool
	free      [][]plog.Record // pending slices of ended units of work, for reuse
	res       *Result
}

// apply applies a put or get made visible by the record at lrsn (index:
// its place in its unit of work).
func (st *state) apply(r *plog.Record, lrsn uint64, index int) {
	switch r.Type {
	case plog.TypePut:
		if _, ok := st.live[r.Key]; !ok {
			place, ok := st.places[r.Key]
			if !ok {
				place = -1
			}
			st.live[r.Key] = &Message{Record: *r, Place: place, LRSN: lrsn, Index: index}
		}
	case plog.TypeGet:
		delete(st.live, r.Key)
	}
}

// Run replays the logs.
func Run(o Options) (*Result, error) {
	if o.FS == nil {
		o.FS = vfs.OS()
	}
	res := &Result{}
	st := &state{structure: o.Structure, seedLRSN: o.SeedLRSN, live: map[uint64]*Message{}, places: map[uint64]int{},
		pending: map[uint64][]plog.Record{}, aborted: o.Aborted, res: res}
	for i := range o.Seed {
		r := &o.Seed[i]
		if !r.Committed() {
			st.places[r.Key] = i
			continue
		}
		st.live[r.Key] = &Message{Record: *r, Seed: true, Place: i}
	}
	var h merge
	for _, dir := range o.LogDirs {
		r, err := rlog.NewReader(o.FS, dir, o.From)
		if err != nil {
			return nil, fmt.Errorf("replay: log %s: %w", dir, err)
		}
		s := &source{r: r, dir: dir}
		ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if ok {
			h = append(h, s)
		}
	}
	heap.Init(&h)
	for h.Len() > 0 {
		s := h[0]
		rec := s.rec
		res.Records++
		res.Bytes += uint64(len(rec.Payload))
		res.MaxLRSN = max(res.MaxLRSN, rec.LRSN)
		if err := st.record(rec); err != nil {
			return nil, fmt.Errorf("replay: log %s at LRSN %d: %w", s.dir, rec.LRSN, err)
		}
		ok, err := s.next()
		if err != nil {
			return nil, err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	res.Dropped += uint64(len(st.pending))
	res.Messages = make([]Message, 0, len(st.live))
	for _, m := range st.live {
		res.Messages = append(res.Messages, *m)
	}
	sort.Slice(res.Messages, func(i, j int) bool { return res.Messages[i].before(&res.Messages[j]) })
	return res, nil
}

// record handles one log record.
func (st *state) record(rec rlog.Record) error {
	t := plog.Type(rec.Type)
	r, err := plog.Decode(t, rec.Payload)
	if err != nil {
		return err
	}
	switch t {
	case plog.TypePut, plog.TypeGet:
		if r.Structure != st.structure {
			return nil
		}
		// The payload is the reader's: keep copies (one allocation).
		if t == plog.TypePut {
			b := make([]byte, len(r.Properties)+len(r.Body))
			n := copy(b, r.Properties)
			copy(b[n:], r.Body)
			r.Properties, r.Body = b[:n:n], b[n:]
		}
		if r.Committed() {
			// A put or get outside syncpoint carries a key of its own as
			// its unit of work: aborted, it never happened.
			if r.UOW == 0 || !st.aborted[r.UOW] {
				st.apply(&r, rec.LRSN, 0)
			}
			return nil
		}
		ops, ok := st.pending[r.UOW]
		if !ok && len(st.free) > 0 {
			ops, st.free = st.free[len(st.free)-1], st.free[:len(st.free)-1]
		}
		st.pending[r.UOW] = append(ops, r)
	case plog.TypeCommit:
		if st.aborted[r.UOW] {
			st.drop(r.UOW)
			return nil
		}
		ops, ok := st.pending[r.UOW]
		if !ok {
			return nil // none in this structure
		}
		for i := range ops {
			st.apply(&ops[i], rec.LRSN, i)
		}
		delete(st.pending, r.UOW)
		st.recycle(ops)
		st.res.Units++
	case plog.TypeClear:
		if r.Structure != st.structure {
			return nil
		}
		for k, m := range st.live {
			if m.Queue == r.Queue && (m.Seed && rec.LRSN >= st.seedLRSN || !m.Seed && m.LRSN < rec.LRSN) {
				delete(st.live, k)
			}
		}
	case plog.TypeBackout:
		st.drop(r.UOW)
	}
	return nil
}

// drop forgets the operations of unit of work uow, which backed out.
func (st *state) drop(uow uint64) {
	if ops, ok := st.pending[uow]; ok {
		delete(st.pending, uow)
		st.recycle(ops)
		st.res.Dropped++
	}
}

// recycle keeps the slice of an ended unit of work for another.
func (st *state) recycle(ops []plog.Record) {
	if len(st.free) < 1024 {
		clear(ops)
		st.free = append(st.free, ops[:0])
	}
}
