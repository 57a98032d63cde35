package unit

import (
	"errors"
	"fmt"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
)

// Inputs from another unit (design 5.4, first bullet; 3.5 output
// identity). Every output of a unit carries in its MsgID the unit's
// source id (xxhash64 of its name), its generation and a sequence number
// per destination, from 1. A unit receiving such inputs keeps, per
// (source id, generation), the next sequence number it expects: the
// *source table*, framework state like the destinations' sequence
// numbers, so it travels in every snapshot (transfer.go) and every
// replica, advancing it as it applies each logged input, agrees with the
// primary and with any new primary.
//
// The primary, getting an input whose MsgID is a unit's output:
//   - seq below the next expected: a duplicate, got in the batch's unit
//     of work and dropped, nothing logged;
//   - seq above it: early, got and put on SYSTEM.UNIT.<n>.EARLY (same
//     MsgID, INDXTYPE(MSGID)) in the same unit of work, nothing logged;
//     a copy of a message already there is dropped instead. The put waits
//     for the end of the batch (flushEarly): a message the batch itself
//     releases is taken back from memory, since a get does not see its
//     own unit of work's put. The missing seq is then looked for on the
//     input queue by MsgID, once per gap (pull): a lower priority may have
//     put it behind;
//   - seq equal: processed and logged with its source (the log's INPUT
//     record carries source id, generation and seq); then the source's
//     next seq is got from EARLY by MsgID, in the same batch if it is
//     there, and so on.
//
// A generation that began from a lost state (2 on) takes an unknown
// source's first input as its start, whatever its seq (adopts).
//
// EARLY holds only messages above their source's next expected seq, or
// equal to it while the primary has not yet looked (release): the move of
// the message before it and the get from EARLY happen in units of work
// that also log and commit the processing, so a new primary finds EARLY
// and the table as they were committed. It looks once for every source
// in the table before it takes input. (After a lost state EARLY may also
// keep messages below an adopted source's start: left there.)
//
// A source's seq that never arrives (its output dead-lettered as refused
// by this unit's input queue, or expired on the way) holds every later
// input of that source on EARLY: nothing here gives up on a gap.

// srcState is the replica's part in inputs from other units.
type srcState struct {
	src     map[srcKey]uint64 // framework state: the next seq expected per source (absent: 1)
	early   *mq.Queue         // SYSTEM.UNIT.<n>.EARLY, opened with release
	release map[srcKey]bool   // primary: sources whose next may be on EARLY (nil: not primary yet)
	// earlyBatch holds the early inputs got in the batch's unit of work
	// until flushEarly puts them on EARLY before the commit: one the
	// batch releases is taken from here (a get does not see the unit of
	// work's own put), and a second copy is found here.
	earlyBatch map[[24]byte]*mq.Message
	// onEarly is how many messages EARLY holds as this primary's
	// committed units of work left it (counted by a browse when it became
	// primary; it alone puts and gets there): at 0, the usual case, no
	// input costs a look on EARLY.
	onEarly int
	// pulled is, per source, the seq pull last looked for on the input
	// queue (primary only).
	pulled map[srcKey]uint64
	// Counters for the log: inputs dropped as duplicates, moved to EARLY,
	// got back from EARLY (this primary's; not state). All are rare in a
	// group (design 5.4), so each is logged.
	dups, moved, released uint64
}

// srcKey names one source of inputs: a unit in one of its generations.
type srcKey struct {
	id  uint64
	gen uint32
}

// expected is the next sequence number expected from k (from 1), as the
// inputs applied leave it; the primary takes by expectedNext (early.go).
func (r *replica) expected(k srcKey) uint64 { return max(r.src[k], 1) }

// adopts reports whether an input from k is taken as k's start whatever
// its seq: k is not in the table and this generation began from a lost
// state (generation 2 on: every replica died, the table with them). Its
// sources went on numbering where they were; expecting 1 would hold every
// input of theirs on EARLY for ever. In generation 1 an unknown source
// starts at 1 (design 3.5): a unit must exist before its sources' first
// output to it.
func (r *replica) adopts(k srcKey) bool {
	_, known := r.src[k]
	return !known && r.gen > 1
}

// srcApplied advances the source table past an applied input (every
// replica, in LSN order: the table is framework state). The input must be
// its source's next: the primary processes only that one, so a replica
// whose table expects another has diverged from the primary.
func (r *replica) srcApplied(s logrec.Source) error {
	if s.ID == 0 {
		return nil
	}
	k := srcKey{s.ID, s.Gen}
	if next := r.expected(k); s.Seq != next && !r.adopts(k) {
		return fmt.Errorf("%w: input from source %x generation %d seq %d, this replica's source table expects %d", ErrDiverged, s.ID, s.Gen, s.Seq, next)
	}
	if r.src == nil {
		r.src = map[srcKey]uint64{}
	}
	r.src[k] = s.Seq + 1
	return nil
}

// sourceOf is the unit output identity m carries, if it carries one.
func sourceOf(m *mq.Message) (logrec.Source, bool) {
	if !logrec.IsOutputID(m.MsgID) {
		return logrec.Source{}, false
	}
	id, err := logrec.ParseOutputID(m.MsgID)
	if err != nil {
		return logrec.Source{}, false // not one of ours after all: a plain input
	}
	return logrec.Source{ID: id.Source, Gen: id.Gen, Seq: id.Seq}, true
}

// nextInput gets, in the caller's unit of work, the next input for the
// primary to process: a message on EARLY that is now its source's next,
// else the next message of the input queue (opt says how to wait for
// it). A duplicate or an early message from the input queue is dealt
// with here (dropped, or moved to EARLY) and nextInput returns nil with
// no error: the caller counts it against its batch and asks again. An
// input to process from a unit comes with its source, and its source is
// marked for the EARLY lookup that follows it.
func (r *replica) nextInput(opt mq.GetOptions) (*mq.Message, logrec.Source, error) {
	r.il.got = nil // set by takeInput only: an input from EARLY is no view
	if r.release == nil {
		// First input as primary: any source may have its next on EARLY.
		if err := r.countEarly(); err != nil {
			return nil, logrec.Source{}, err
		}
		r.release = map[srcKey]bool{}
		for k := range r.src {
			r.release[k] = true
		}
	}
	for k := range r.release {
		m, err := r.fromEarly(k)
		if err != nil {
			return nil, logrec.Source{}, err
		}
		if m != nil {
			return m, logrec.Source{ID: k.id, Gen: k.gen, Seq: r.expectedNext(k)}, nil
		}
		delete(r.release, k)
	}
	m, err := r.takeInput(opt) // INDEPENDENT: a view (independent.go)
	if err != nil {
		return nil, logrec.Source{}, err
	}
	s, ok := sourceOf(m)
	if !ok {
		return m, logrec.Source{}, nil
	}
	k := srcKey{s.ID, s.Gen}
	switch next := r.expectedNext(k); {
	case s.Seq != next && r.adoptsNext(k):
		r.log.Info("unit input: a source unknown since the state was lost starts here", "source", s.ID, "gen", s.Gen, "seq", s.Seq)
	case s.Seq < next:
		r.dups++
		r.log.Info("unit input: a duplicate dropped", "source", s.ID, "gen", s.Gen, "seq", s.Seq, "expected", next, "dropped", r.dups)
		return nil, logrec.Source{}, r.dropTaken()
	case s.Seq > next:
		if err := r.toEarly(m, s, next); err != nil {
			return nil, logrec.Source{}, err
		}
		if err := r.dropTaken(); err != nil {
			return nil, logrec.Source{}, err
		}
		return r.pull(k, next)
	}
	r.release[k] = true
	return m, s, nil
}

// pull looks for k's next expected seq on the input queue by MsgID, once
// per seq, after an early input of k: inside a group the one reordering
// is by priority, and the missing input is then on the queue behind
// those of higher priority that passed it. Found, it is got to be
// processed now, before the early ones pile up on EARLY (and overflow
// it: TestEarlyBehindLowerPriority). Not found, it is still on its way
// and comes in its turn. A get by MsgID on a queue not indexed by it
// scans the queue, hence once per gap.
func (r *replica) pull(k srcKey, next uint64) (*mq.Message, logrec.Source, error) {
	if r.pulled[k] == next {
		return nil, logrec.Source{}, nil
	}
	if r.pulled == nil {
		r.pulled = map[srcKey]uint64{}
	}
	r.pulled[k] = next
	id := logrec.OutputID{Source: k.id, Gen: k.gen, Seq: next}.MsgID()
	m, err := r.in.Get(mq.GetOptions{Syncpoint: true, MsgID: &id})
	if errors.Is(err, mq.ErrNoMessage) {
		return nil, logrec.Source{}, nil
	}
	if err != nil {
		return nil, logrec.Source{}, fmt.Errorf("get source %x generation %d seq %d from the input queue: %w", k.id, k.gen, next, err)
	}
	r.log.Info("unit input: the next of a source taken from behind its early inputs", "source", k.id, "gen", k.gen, "seq", next)
	r.release[k] = true
	return m, logrec.Source{ID: k.id, Gen: k.gen, Seq: next}, nil
}

// fromEarly gets k's next expected message from EARLY, or from what this
// batch moved aside (nil: in neither).
func (r *replica) fromEarly(k srcKey) (*mq.Message, error) {
	id := logrec.OutputID{Source: k.id, Gen: k.gen, Seq: r.expectedNext(k)}.MsgID()
	if m, ok := r.earlyBatch[id]; ok {
		delete(r.earlyBatch, id)
		return m, nil
	}
	if r.onEarly == 0 {
		return nil, nil
	}
	m, err := r.early.Get(mq.GetOptions{Syncpoint: true, MsgID: &id})
	if errors.Is(err, mq.ErrNoMessage) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get source %x generation %d seq %d from EARLY: %w", k.id, k.gen, r.expectedNext(k), err)
	}
	r.onEarly--
	r.released++
	r.log.Info("unit input: released from EARLY", "source", k.id, "gen", k.gen, "seq", r.expectedNext(k), "released", r.released)
	return m, nil
}

// toEarly sets m aside, an input from a unit that came before its
// source's next expected seq, for flushEarly to put on EARLY, unless a
// copy is there or set aside already (a duplicate: dropped).
func (r *replica) toEarly(m *mq.Message, s logrec.Source, next uint64) error {
	there := false
	if r.onEarly > 0 {
		cur, err := r.early.Browse()
		if err != nil {
			return err
		}
		_, err = cur.Next(mq.GetOptions{MsgID: &m.MsgID})
		if err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return fmt.Errorf("browse EARLY: %w", err)
		}
		there = err == nil
	}
	if _, ok := r.earlyBatch[m.MsgID]; ok || there {
		r.dups++
		r.log.Info("unit input: a duplicate of an early input dropped", "source", s.ID, "gen", s.Gen, "seq", s.Seq, "dropped", r.dups)
		return nil
	}
	if r.earlyBatch == nil {
		r.earlyBatch = map[[24]byte]*mq.Message{}
	}
	r.earlyBatch[m.MsgID] = m
	r.log.Info("unit input: early, moved to EARLY", "source", s.ID, "gen", s.Gen, "seq", s.Seq, "expected", next, "moved", r.moved+uint64(len(r.earlyBatch)))
	return nil
}

// flushEarly puts the early inputs the batch set aside and did not
// release on EARLY, in the caller's unit of work (the one that got them),
// before its commit. EARLY full (or the structure): an error, the replica
// fails stop and the batch is backed out (left: EARLY's MAXDEPTH bounds
// how far ahead of its next expected seq a source may run).
func (r *replica) flushEarly() error {
	for id, m := range r.earlyBatch {
		e := *m
		e.Persistence = mq.NotPersistent
		if m.Persistent {
			e.Persistence = mq.Persistent
		}
		if err := r.early.Put(&e, mq.PutOptions{Syncpoint: true}); err != nil {
			return fmt.Errorf("move an early input (MsgID %x) to EARLY: %w", id, err)
		}
		r.onEarly++
		r.moved++
		delete(r.earlyBatch, id)
	}
	return nil
}

// countEarly opens EARLY and counts what it holds (onEarly).
func (r *replica) countEarly() error {
	q, err := r.c.Open(defs.UnitQueue(r.svc.Name, defs.UnitEarly), mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		return fmt.Errorf("open EARLY: %w", err)
	}
	r.early, r.onEarly = q, 0
	cur, err := q.Browse()
	if err != nil {
		return fmt.Errorf("browse EARLY: %w", err)
	}
	for {
		_, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("browse EARLY: %w", err)
		}
		r.onEarly++
	}
}

// sourceTable is the source table as the framework state carries it.
func (r *replica) sourceTable() []logrec.SourceState {
	t := make([]logrec.SourceState, 0, len(r.src))
	for k, next := range r.src {
		t = append(t, logrec.SourceState{ID: k.id, Gen: k.gen, Next: next})
	}
	return t
}

// setSourceTable makes the framework state's table this replica's.
func (r *replica) setSourceTable(t []logrec.SourceState) {
	r.src = make(map[srcKey]uint64, len(t))
	for _, s := range t {
		r.src[srcKey{s.ID, s.Gen}] = s.Next
	}
}
