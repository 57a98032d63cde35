package request

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/qmgr/qmgr/mq"
)

// Ctx is a running request, as its program sees it. It is not safe for
// concurrent use: a program runs on one goroutine.
type Ctx struct {
	w       *worker
	req     *Request
	key     Key
	rec     *Record // as last committed, plus the changes of the step in progress
	attempt uint32
	// journal is every step of this run: on a resumption, the journal
	// recorded (replayed: pos < len(journal)) and then the live steps.
	journal   []Entry
	pos       int
	saved     map[string][]byte
	step      string
	finalSent bool
	cancelled bool
	// fatal: a step could not be done or committed; the request is
	// abandoned (backed out) when the program returns.
	fatal error
	// strays: a call timed out without being withdrawn, so its reply may
	// come after the end (the request leaves a tombstone).
	strays bool
	// last is the state record as this run last read or committed it,
	// and next the one the step in progress writes: writeRecord refuses
	// to replace a record that is not last (ErrTakenOver), which fences
	// a run whose lock was backed out from the one that took over.
	last, next []byte
	// doomed: a step could not be recorded (ErrStateTooBig); the run
	// fails, as its mode says, when the program returns.
	doomed error
	// ending: the record is written as ended: without the journal's
	// values, which no replay needs any more.
	ending bool
	// persistent: the request message is persistent (persistence).
	persistent bool
}

// CallOptions control a call.
type CallOptions struct {
	// Timeout of the call; 0: Config.CallTimeout.
	Timeout time.Duration
	// Confirmed asks for a confirmed exchange: refused (ErrNotConfirmable)
	// unless the request is request-level recoverable, whose calls are
	// all confirmed exchanges anyway.
	Confirmed bool
	// Format of the call message.
	Format string
}

// RequestID is the request's id.
func (c *Ctx) RequestID() ID { return c.req.ID }

// Mode is the request's recovery mode.
func (c *Ctx) Mode() Mode { return c.rec.Mode }

// Attempt is the attempt running (restartable: 1 to Config.MaxAttempts);
// for the other modes, how many times the request was taken. A resumed
// recoverable request replays its journal with a higher Attempt: what its
// calls and replies send before the end of the journal must not depend on
// it (replay compares their bytes: ErrNondeterministic); log it, or save
// it (Save) and use what Load gives back.
func (c *Ctx) Attempt() int { return int(c.attempt) }

// Replaying reports whether the program is replaying its journal: what it
// does now was done before, and the Ctx gives back what it returned then.
func (c *Ctx) Replaying() bool { return c.pos < len(c.journal) }

// Log is the manager's logger, with the request's id.
func (c *Ctx) Log() *slog.Logger { return c.w.m.cfg.Log.With("request", c.req.ID) }

// Step names the step the program is at: DISPLAY REQUESTS shows it. It is
// written with the request's next commit.
func (c *Ctx) Step(label string) { c.step = label }

// Load is the value saved under key (nil if none).
func (c *Ctx) Load(key string) []byte { return c.saved[key] }

// Save keeps v under key for the rest of the request (Load). A
// request-level recoverable request commits it before Save returns: a
// resumption replays it, and Load gives back the value saved, even if the
// program computes another one (save a non-deterministic value, then use
// what Load returns). In the other modes it lives as long as the attempt.
func (c *Ctx) Save(key string, v []byte) error {
	if c.saved == nil {
		c.saved = map[string][]byte{}
	}
	if c.Replaying() {
		e := c.journal[c.pos]
		if e.Kind != EntrySave || e.Name != key {
			return c.diverged("Save(" + key + ")")
		}
		c.pos++
		c.saved[key] = e.Value
		return nil
	}
	if err := c.live(); err != nil {
		return err
	}
	v = bytes.Clone(v)
	c.saved[key] = v
	c.journal = append(c.journal, Entry{Kind: EntrySave, Name: key, Value: v})
	c.pos = len(c.journal)
	if c.rec.Mode != ModeRecoverable {
		return nil
	}
	return c.commitRecord()
}

// Call sends body to queue as a request, with the manager's reply queue as
// its reply-to queue and a call id as its CorrelID, and waits for the
// reply (at most opt.Timeout). A recoverable request's call is a confirmed
// exchange: the call and the record saying it was sent commit together,
// then the reply and the record saying it came; a resumption never sends a
// recorded call again, and takes its reply when it comes. A timeout is a
// *CallTimeoutError (errors.Is ErrCallTimeout) saying whether the call was
// withdrawn; a call its server gave up on (Serve: a poison call, never
// performed) a *CallFailedError (errors.Is ErrCallFailed), journaled.
func (c *Ctx) Call(queue string, body []byte, opt CallOptions) ([]byte, error) {
	if opt.Confirmed && c.rec.Mode != ModeRecoverable {
		return nil, ErrNotConfirmable
	}
	sent := SentHash(opt.Format, body)
	if c.Replaying() {
		idx := c.pos
		e := c.journal[idx]
		if e.Kind != EntryCall || e.Name != queue {
			return nil, c.diverged("Call(" + queue + ")")
		}
		if e.Hash != 0 && e.Hash != sent {
			return nil, c.diverged("Call(" + queue + ") with other bytes than it sent")
		}
		c.pos++
		switch e.Outcome {
		case OutcomeReplied:
			return e.Value, nil
		case OutcomeTimedOut, OutcomeWithdrawn:
			return nil, &CallTimeoutError{Queue: queue, Seq: e.Seq, Withdrawn: e.Outcome == OutcomeWithdrawn}
		case OutcomeFailed:
			return nil, &CallFailedError{Queue: queue, Seq: e.Seq, Reason: string(e.Value)}
		}
		// Sent before the failure, its reply not taken: wait for it.
		p := PendingCall{Attempt: e.Attempt, Seq: e.Seq, Sent: time.Now(), Timeout: c.timeout(opt), Queue: queue}
		for _, q := range c.rec.Pending {
			if q.Attempt == e.Attempt && q.Seq == e.Seq {
				p = q
			}
		}
		return c.await(idx, p)
	}
	if err := c.live(); err != nil {
		return nil, err
	}
	q, err := c.w.w.open(queue, optOut)
	if err != nil {
		return nil, c.stepFailed(fmt.Errorf("request: call %s: %w", queue, err))
	}
	p := PendingCall{Attempt: c.attempt, Seq: c.rec.NextSeq, Sent: time.Now(), Timeout: c.timeout(opt), Queue: queue}
	id := CallID{Key: c.key, Attempt: p.Attempt, Seq: p.Seq}.Bytes()
	err = q.Put(&mq.Message{CorrelID: id, ReplyToQ: c.w.m.cfg.ReplyQueue, Format: opt.Format, Body: body, Persistence: c.persistence()}, mq.PutOptions{Syncpoint: true})
	if err != nil {
		return nil, c.stepFailed(fmt.Errorf("request: call %s: %w", queue, err))
	}
	c.rec.NextSeq++
	c.rec.Pending = append(c.rec.Pending, p)
	c.journal = append(c.journal, Entry{Kind: EntryCall, Outcome: OutcomePending, Attempt: p.Attempt, Seq: p.Seq, Name: queue, Hash: sent})
	c.pos = len(c.journal)
	if err := c.writeRecord(); err != nil {
		return nil, err
	}
	cpCallPut.Hit()
	if err := c.commit(); err != nil {
		return nil, err
	}
	cpCallCommitted.Hit()
	return c.await(c.pos-1, p)
}

func (c *Ctx) timeout(opt CallOptions) time.Duration {
	if opt.Timeout > 0 {
		return opt.Timeout
	}
	return c.w.m.cfg.CallTimeout
}

// await waits for the reply of the call of journal entry idx.
func (c *Ctx) await(idx int, p PendingCall) ([]byte, error) {
	cfg := &c.w.m.cfg
	id := CallID{Key: c.key, Attempt: p.Attempt, Seq: p.Seq}.Bytes()
	rq, err := c.w.w.open(cfg.ReplyQueue, optIn)
	if err != nil {
		return nil, c.fail(err)
	}
	deadline := p.Sent.Add(p.Timeout)
	for {
		wait := min(cfg.CancelCheck, time.Until(deadline))
		if wait < 0 {
			wait = 0
		}
		m, err := rq.Get(mq.GetOptions{Syncpoint: true, Wait: wait, CorrelID: &id})
		if err == nil {
			return c.replied(idx, p, m)
		}
		if !errors.Is(err, mq.ErrNoMessage) {
			return nil, c.fail(fmt.Errorf("request: get the reply of call %d: %w", p.Seq, err))
		}
		if c.w.m.abort.Load() {
			return nil, c.fail(ErrAbandoned)
		}
		if c.cancelSeen() {
			return nil, ErrCancelled
		}
		if !time.Now().Before(deadline) {
			return c.timedOut(idx, p)
		}
	}
}

// replied records the reply m of the call of entry idx, got under
// syncpoint, and commits both. A FormatCallFailed reply (its server gave
// up on the call) is a *CallFailedError.
func (c *Ctx) replied(idx int, p PendingCall, m *mq.Message) ([]byte, error) {
	cpReplyGot.Hit()
	c.journal[idx].Outcome = OutcomeReplied
	if m.Format == FormatCallFailed {
		c.journal[idx].Outcome = OutcomeFailed
	}
	if len(m.Body) > 0 {
		c.journal[idx].Value = m.Body
	}
	c.dropPending(p)
	if err := c.writeRecord(); err != nil {
		return nil, err
	}
	if err := c.commit(); err != nil {
		return nil, err
	}
	cpReplyCommitted.Hit()
	if m.Format == FormatCallFailed {
		return nil, &CallFailedError{Queue: p.Queue, Seq: p.Seq, Reason: string(m.Body)}
	}
	return m.Body, nil
}

// timedOut ends the call of entry idx: in one unit of work, the reply if
// it came after all, else the call taken back from the server's queue if
// it is still there (withdrawn: never performed).
func (c *Ctx) timedOut(idx int, p PendingCall) ([]byte, error) {
	id := CallID{Key: c.key, Attempt: p.Attempt, Seq: p.Seq}.Bytes()
	rq, err := c.w.w.open(c.w.m.cfg.ReplyQueue, optIn)
	if err != nil {
		return nil, c.fail(err)
	}
	if m, err := rq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &id}); err == nil {
		return c.replied(idx, p, m)
	}
	withdrawn := c.withdraw(p)
	c.journal[idx].Outcome = OutcomeTimedOut
	if withdrawn {
		c.journal[idx].Outcome = OutcomeWithdrawn
	} else {
		c.strays = true
	}
	c.dropPending(p)
	if err := c.writeRecord(); err != nil {
		return nil, err
	}
	if err := c.commit(); err != nil {
		return nil, err
	}
	return nil, &CallTimeoutError{Queue: p.Queue, Seq: p.Seq, Withdrawn: withdrawn}
}

// withdraw tries to get call p back from its server's queue, in w's unit
// of work.
func (c *Ctx) withdraw(p PendingCall) bool {
	q, err := c.w.w.open(p.Queue, optIn)
	if err != nil {
		return false
	}
	id := CallID{Key: c.key, Attempt: p.Attempt, Seq: p.Seq}.Bytes()
	_, err = q.Get(mq.GetOptions{Syncpoint: true, CorrelID: &id})
	return err == nil
}

func (c *Ctx) dropPending(p PendingCall) {
	out := c.rec.Pending[:0]
	for _, q := range c.rec.Pending {
		if q.Attempt != p.Attempt || q.Seq != p.Seq {
			out = append(out, q)
		}
	}
	c.rec.Pending = out
}

// Reply sends an intermediate reply (Format FormatReply, CorrelID the
// request id) to the request's reply-to queue. A resumption that replays
// it does not send it again; a restartable request restarted from the top
// sends it again.
func (c *Ctx) Reply(body []byte) error {
	return c.reply(body, false)
}

// FinalReply sends the final reply (Format FormatFinal), committed with the
// record saying it was sent: a request sends one at most. A restartable
// request that fails after it restarts from that point, not from the top.
func (c *Ctx) FinalReply(body []byte) error {
	return c.reply(body, true)
}

func (c *Ctx) reply(body []byte, final bool) error {
	if final && c.finalSent {
		return ErrFinalReplySent
	}
	kind := EntryReply
	if final {
		kind = EntryFinal
	}
	sent := SentHash("", body)
	if c.Replaying() {
		if e := c.journal[c.pos]; e.Kind != kind {
			return c.diverged(fmt.Sprintf("a reply (final %v)", final))
		} else if e.Hash != 0 && e.Hash != sent {
			return c.diverged(fmt.Sprintf("a reply (final %v) with other bytes than it sent", final))
		}
		c.pos++
		c.finalSent = c.finalSent || final
		return nil
	}
	if err := c.live(); err != nil {
		return err
	}
	if c.req.ReplyToQ == "" {
		return ErrNoReplyQueue
	}
	format := FormatReply
	if final {
		format = FormatFinal
	}
	if err := c.putReply(format, body); err != nil {
		return err
	}
	c.journal = append(c.journal, Entry{Kind: kind, Hash: sent})
	c.pos = len(c.journal)
	if final {
		c.rec.FinalIdx = uint32(len(c.journal))
		c.rec.Status = StatusFinalReplied
		c.finalSent = true
	}
	if err := c.writeRecord(); err != nil {
		return err
	}
	if final {
		cpFinalPut.Hit()
	}
	if err := c.commit(); err != nil {
		return err
	}
	if final {
		cpFinalCommitted.Hit()
	}
	return nil
}

// putReply puts a reply to the request's reply-to queue in w's unit of
// work.
func (c *Ctx) putReply(format string, body []byte) error {
	q, err := c.w.w.open(c.req.ReplyToQ, optOut)
	if err != nil {
		return c.stepFailed(fmt.Errorf("request: reply to %s: %w", c.req.ReplyToQ, err))
	}
	err = q.Put(&mq.Message{CorrelID: c.req.ID, Format: format, Body: body, Persistence: c.persistence()}, mq.PutOptions{Syncpoint: true})
	if err != nil {
		return c.stepFailed(fmt.Errorf("request: reply to %s: %w", c.req.ReplyToQ, err))
	}
	return nil
}

// persistence of what a request writes: a recoverable request's messages
// survive the loss of a structure too, and so do those of a request whose
// request message does (persistent): a request that comes back after the
// loss of its structure must find its state, or it would run again from
// the top (a second final reply, a non-recoverable request not purged).
func (c *Ctx) persistence() mq.Persistence {
	if c.rec.Mode == ModeRecoverable || c.persistent {
		return mq.Persistent
	}
	return mq.NotPersistent
}

// live is checked before every live step: a failed step, a cancel or an
// abrupt stop ends the program's run.
func (c *Ctx) live() error {
	if c.fatal != nil {
		return c.fatal
	}
	if c.doomed != nil {
		return c.doomed
	}
	if c.cancelled {
		return ErrCancelled
	}
	if c.w.m.abort.Load() {
		return c.fail(ErrAbandoned)
	}
	if c.cancelSeen() {
		return ErrCancelled
	}
	return nil
}

// cancelSeen looks for a cancel of the request (browsing: the cancel is
// consumed by the unit of work that ends the request).
func (c *Ctx) cancelSeen() bool {
	if c.cancelled {
		return true
	}
	q, err := c.w.w.open(c.w.m.cfg.CancelQueue, optBrows)
	if err != nil {
		return false
	}
	cur, err := q.Browse()
	if err != nil {
		return false
	}
	id := [24]byte(c.req.ID)
	if _, err := cur.Next(mq.GetOptions{CorrelID: &id}); err == nil {
		c.cancelled = true
	}
	return c.cancelled
}

// diverged is a replay that does not match the journal.
func (c *Ctx) diverged(what string) error {
	e := c.journal[c.pos]
	return fmt.Errorf("%w: %s where entry %d of the journal is of kind %d (%s)", ErrNondeterministic, what, c.pos, e.Kind, e.Name)
}

// fail makes err the request's fatal error: it is abandoned.
func (c *Ctx) fail(err error) error {
	if c.fatal == nil {
		c.fatal = err
	}
	return c.fatal
}

// stepFailed backs out the step in progress after an error the program
// may handle (a queue that does not exist, a full queue); an error of the
// connection is fatal.
func (c *Ctx) stepFailed(err error) error {
	if broken(err) {
		return c.fail(err)
	}
	if berr := c.w.w.c.Backout(); berr != nil {
		return c.fail(berr)
	}
	c.next = nil
	return err
}

// storedJournal is the part of the journal the record keeps: all of it
// for a recoverable request, up to the final reply for a restartable one
// (its restart point), none for a non-recoverable one.
func (c *Ctx) storedJournal() ([]Entry, uint32) {
	switch c.rec.Mode {
	case ModeRecoverable:
		return c.journal, c.rec.FinalIdx
	case ModeRestartable:
		if n := int(c.rec.FinalIdx); n > 0 && n <= len(c.journal) {
			return c.journal[:n], c.rec.FinalIdx
		}
	}
	return nil, 0
}

// encoded is the record as it is written now.
func (c *Ctx) encoded() []byte {
	r := *c.rec
	r.Journal, r.FinalIdx = c.storedJournal()
	if c.ending {
		j := make([]Entry, len(r.Journal))
		for i, e := range r.Journal {
			e.Value = nil
			j[i] = e
		}
		r.Journal = j
	}
	r.Updated = time.Now()
	r.Step = c.step
	r.Manager = c.w.m.cfg.Name
	return r.Encode()
}

// create puts the record and the live marker, and commits them.
func (c *Ctx) create() error {
	q, err := c.w.w.open(c.w.m.cfg.StateQueue, optAll)
	if err != nil {
		return c.fail(err)
	}
	b := c.encoded()
	c.next = b
	for _, m := range []*mq.Message{
		{CorrelID: tagID(c.key, ciTagLive), Format: FormatLive, Body: b, Persistence: c.persistence()},
		{CorrelID: tagID(c.key, ciTagRecord), Format: FormatState, Body: b, Persistence: c.persistence()},
	} {
		if err := q.Put(m, mq.PutOptions{Syncpoint: true}); err != nil {
			return c.fail(fmt.Errorf("request: create the state of %s: %w", c.req.ID, err))
		}
	}
	return c.commit()
}

// claim makes sure, once the state it created is committed, that no other
// request message with this request id (a duplicate, Record.Lock) created
// its state too: it looks for their live markers, which stay until the
// end (a record is invisible while a step replaces it). If there is one,
// it takes its own record and marker back and fails with errClaimLost:
// the request message goes back to the input queue, and taken again it
// finds the other's state (then it is the duplicate) or none. Two that
// created theirs at once may both give way; neither can go on without
// the other seeing its marker, since each looks after its own commit.
func (c *Ctx) claim() error {
	cfg := &c.w.m.cfg
	live, err := browseRecords(c.w.w, cfg.StateQueue, tagID(c.key, ciTagLive))
	if err != nil {
		return c.fail(err)
	}
	if !slices.ContainsFunc(live, func(r browsed) bool { return otherLock(r.rec, c.rec.Lock) }) {
		return nil
	}
	q, err := c.w.w.open(cfg.StateQueue, optAll)
	if err != nil {
		return c.fail(err)
	}
	// The record first: got, it fences the withdrawal. Not there as this
	// run created it, the request was taken over (this run's lock lost
	// since its create) and another run goes on with the same marker,
	// which must stay.
	for _, tag := range []uint32{ciTagRecord, ciTagLive} {
		all, err := browseRecords(c.w.w, cfg.StateQueue, tagID(c.key, tag))
		if err != nil {
			return c.fail(err)
		}
		got := false
		for _, r := range all {
			if !bytes.Equal(r.raw, c.last) {
				continue // another's; or ours, replaced by another's step
			}
			id := r.msgID
			if _, err := q.Get(mq.GetOptions{Syncpoint: true, MsgID: &id}); err == nil {
				got = true
			} else if !errors.Is(err, mq.ErrNoMessage) {
				return c.fail(fmt.Errorf("request: withdraw the state of %s: %w", c.req.ID, err))
			}
		}
		if tag == ciTagRecord && !got {
			if err := c.w.w.c.Backout(); err != nil {
				return c.fail(err)
			}
			return c.fail(fmt.Errorf("%w: the state record of %s changed before its claim", ErrTakenOver, c.req.ID))
		}
	}
	if err := c.w.w.c.Commit(); err != nil {
		return c.fail(fmt.Errorf("request: withdraw the state of %s: %w", c.req.ID, err))
	}
	return errClaimLost
}

// writeRecord replaces the record, in w's unit of work: the old one got by
// CorrelID, the new one put.
func (c *Ctx) writeRecord() error {
	q, err := c.w.w.open(c.w.m.cfg.StateQueue, optAll)
	if err != nil {
		return c.fail(err)
	}
	id := tagID(c.key, ciTagRecord)
	if err := c.takeRecords(q, id); err != nil {
		return err
	}
	b := c.encoded()
	if max := q.Def().MaxMsgL; max > 0 && len(b) > max {
		return c.tooBig(fmt.Errorf("%w: %d bytes, %s has MAXMSGL(%d)", ErrStateTooBig, len(b), q.Name(), max))
	}
	if err := q.Put(&mq.Message{CorrelID: id, Format: FormatState, Body: b, Persistence: c.persistence()}, mq.PutOptions{Syncpoint: true}); err != nil {
		if mq.ReasonOf(err) == mq.RCMsgTooBigForQ {
			return c.tooBig(fmt.Errorf("%w: %w", ErrStateTooBig, err))
		}
		return c.fail(fmt.Errorf("request: the state record of %s: %w", c.req.ID, err))
	}
	c.next = b
	return nil
}

// takeRecords gets, in w's unit of work, every record of the request
// (CorrelID id) from state queue q, and fails the run with ErrTakenOver
// unless one of them is the one it last read or committed (c.last) and
// none of the others is further on (moreAdvanced): its lock was lost and
// another run has written since. The others are stale (mostAdvanced says
// how a second one comes) and go with the step; one that cannot be read
// fails the run (errBadState), to be quarantined at its next take.
func (c *Ctx) takeRecords(q *mq.Queue, id [24]byte) error {
	ours := false
	var others []*Record
	for {
		old, err := q.Get(mq.GetOptions{Syncpoint: true, CorrelID: &id})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return c.fail(fmt.Errorf("request: the state record of %s: %w", c.req.ID, err))
		}
		if !ours && bytes.Equal(old.Body, c.last) {
			ours = true
			continue
		}
		r, err := ParseRecord(old.Body)
		if err != nil {
			// Not this run's to remove (a newer manager's, maybe): the
			// request is abandoned, and its next take quarantines it.
			return c.fail(fmt.Errorf("%w: another state record of %s: %w", errBadState, c.req.ID, err))
		}
		others = append(others, r)
	}
	if !ours {
		return c.fail(fmt.Errorf("%w: the state record of %s changed under it", ErrTakenOver, c.req.ID))
	}
	if len(others) == 0 {
		return nil // the usual case: ours alone
	}
	// Ours, beside a record further on: another run created the state and
	// went on while this one, its lock lost before its own create
	// committed, still ran (a live run's create, unlike a dead one's
	// carried out late, is not the stale one). It is fenced, not the other.
	mine, err := ParseRecord(c.last)
	if err != nil {
		return c.fail(fmt.Errorf("request: the state record of %s as last committed: %w", c.req.ID, err))
	}
	for _, r := range others {
		if moreAdvanced(r, mine) {
			return c.fail(fmt.Errorf("%w: another run's state record of %s is further on", ErrTakenOver, c.req.ID))
		}
	}
	return c.takeMarkersOf(q, others)
}

// takeMarkersOf gets, in w's unit of work, the live markers of the other
// request messages (Record.Lock) whose records others the step removes:
// a marker without its record would say, for ever, that a step holds it
// (worker.readState), and the request would never be taken again.
func (c *Ctx) takeMarkersOf(q *mq.Queue, others []*Record) error {
	var locks []uint64
	for _, r := range others {
		if r.Lock != 0 && r.Lock != c.rec.Lock && !slices.Contains(locks, r.Lock) { // a version 1 marker (zero) is any record's: kept
			locks = append(locks, r.Lock)
		}
	}
	if len(locks) == 0 {
		return nil
	}
	live, err := browseRecords(c.w.w, c.w.m.cfg.StateQueue, tagID(c.key, ciTagLive))
	if errors.Is(err, errBadState) {
		// A marker that cannot be read: readState leaves the markers to
		// the records while it is there, and the end removes them all.
		return nil
	}
	if err != nil {
		return c.fail(fmt.Errorf("request: the live markers of %s: %w", c.req.ID, err))
	}
	for _, m := range live {
		if !slices.Contains(locks, m.rec.Lock) {
			continue
		}
		id := m.msgID
		if _, err := q.Get(mq.GetOptions{Syncpoint: true, MsgID: &id}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return c.fail(fmt.Errorf("request: a live marker of %s: %w", c.req.ID, err))
		}
	}
	return nil
}

// tooBig backs out the step whose record cannot be written (err) and
// dooms the run: the program gets err from this step and every later one,
// and the request, back to its last committed state, fails as its mode
// says when the program returns. Taking it again would only replay it to
// the same step.
func (c *Ctx) tooBig(err error) error {
	if c.ending {
		return c.fail(err) // ended, it cannot be smaller: a configuration error
	}
	if berr := c.w.w.c.Backout(); berr != nil {
		return c.fail(berr)
	}
	c.next = nil
	rec, perr := ParseRecord(c.last)
	if perr != nil {
		return c.fail(fmt.Errorf("request: the state record of %s as last committed: %w", c.req.ID, perr))
	}
	c.rec, c.journal, c.pos = rec, rec.Journal, len(rec.Journal)
	c.doomed = err
	c.w.m.cfg.Log.Error("request state too big: the run fails", "manager", c.w.m.cfg.Name, "request", c.req.ID, "err", err)
	return err
}

// commitRecord writes the record and commits.
func (c *Ctx) commitRecord() error {
	if err := c.writeRecord(); err != nil {
		return err
	}
	return c.commit()
}

func (c *Ctx) commit() error {
	if err := c.w.w.c.Commit(); err != nil {
		return c.fail(fmt.Errorf("request: commit a step of %s: %w", c.req.ID, err))
	}
	if c.next != nil {
		c.last, c.next = c.next, nil
	}
	return nil
}

// run runs the program until the request ends (restartable: attempt after
// attempt), and ends it.
func (c *Ctx) run() error {
	for {
		if c.cancelSeen() {
			return c.cancelEnd()
		}
		err := c.runProgram()
		if c.fatal != nil {
			return c.fatal
		}
		if c.doomed != nil {
			err = c.doomed
		}
		if c.cancelled || errors.Is(err, ErrCancelled) {
			return c.cancelEnd()
		}
		if c.Replaying() {
			// It returned before the end of its journal: the first run
			// went on from here, so this one is not the same program.
			err = fmt.Errorf("%w: it returned (%v) at entry %d of the %d of its journal", ErrNondeterministic, err, c.pos, len(c.journal))
		}
		if err == nil {
			return c.end(StatusDone, nil)
		}
		c.w.m.cfg.Log.Info("request program failed", "manager", c.w.m.cfg.Name, "request", c.req.ID, "mode", c.rec.Mode, "attempt", c.attempt, "err", err)
		switch c.rec.Mode {
		case ModeNonRecoverable:
			return c.end(StatusPurged, nil)
		case ModeRecoverable:
			var r *sysReply
			if c.rec.FinalIdx == 0 {
				r = &sysReply{FormatFailed, "request failed: " + err.Error()}
			}
			return c.end(StatusDone, r)
		}
		if ended, err := c.restart(); ended || err != nil {
			return err
		}
	}
}

func (c *Ctx) runProgram() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("request: the program panicked: %v", r)
		}
	}()
	c.pos, c.saved, c.finalSent, c.step, c.doomed = 0, nil, false, "", nil
	return c.w.m.cfg.Program(c, c.req)
}

// restart begins a restartable request's next attempt, or ends it when it
// had Config.MaxAttempts: with a final reply saying so, unless it sent its
// final reply already. An attempt after the final reply starts from it:
// the journal up to the final reply is replayed.
func (c *Ctx) restart() (ended bool, err error) {
	if int(c.rec.Attempts) >= c.w.m.cfg.MaxAttempts {
		var r *sysReply
		if c.rec.FinalIdx == 0 {
			r = &sysReply{FormatRetried, fmt.Sprintf("request retried %d times and will not be retried", c.rec.Attempts)}
		}
		return true, c.end(StatusDone, r)
	}
	c.rec.Attempts++
	c.attempt = c.rec.Attempts
	c.journal, _ = c.storedJournal()
	c.journal = c.journal[:len(c.journal):len(c.journal)]
	c.withdrawPending()
	return false, c.commitRecord()
}

// resumedOut ends a request-level recoverable request resumed
// Config.MaxResumes times already, instead of resuming it once more: with
// a final reply saying so (FormatRetried), unless it sent its final reply
// already. Its pending calls are withdrawn, as at any end.
func (c *Ctx) resumedOut() error {
	n := c.rec.Attempts - 1
	var r *sysReply
	if c.rec.FinalIdx == 0 {
		r = &sysReply{FormatRetried, fmt.Sprintf("request resumed %d times and will not be resumed again", n)}
	}
	c.w.m.cfg.Log.Warn("request resumed too many times: ended", "manager", c.w.m.cfg.Name, "request", c.req.ID, "resumes", n, "max", c.w.m.cfg.MaxResumes, "reply", r != nil)
	return c.end(StatusDone, r)
}

// withdrawPending tries to take back every pending call (in w's unit of
// work); those it cannot are no longer awaited: their replies go to the
// Unexpected Message Queue.
func (c *Ctx) withdrawPending() {
	for _, p := range c.rec.Pending {
		if !c.withdraw(p) {
			c.strays = true
		}
	}
	c.rec.Pending = nil
}

// cancelEnd ends a cancelled request: a non-recoverable one without a
// reply, the others with a "request purged" final reply unless they sent
// their final reply already.
func (c *Ctx) cancelEnd() error {
	var r *sysReply
	if c.rec.Mode != ModeNonRecoverable && c.rec.FinalIdx == 0 {
		r = &sysReply{FormatPurged, "request purged"}
	}
	return c.end(StatusCancelled, r)
}

// sysReply is a final reply the manager sends for the program.
type sysReply struct {
	format, text string
}

// putSysReply puts the manager's final reply r in w's unit of work (which
// may hold the withdrawals of the request's pending calls already). When
// the request's reply-to queue cannot take it for good (it does not
// exist, or is no local queue), it goes to the Unexpected Message Queue
// instead (ReasonUndeliverable): taking the request again would fail the
// same way, for ever. Other errors (a full queue) are left to abandon the
// request, which is taken again later.
func (c *Ctx) putSysReply(r *sysReply) error {
	cfg := &c.w.m.cfg
	m := &mq.Message{CorrelID: c.req.ID, Format: r.format, Body: []byte(r.text), Persistence: c.persistence()}
	q, err := c.w.w.open(c.req.ReplyToQ, optOut)
	if err == nil {
		if err = q.Put(m, mq.PutOptions{Syncpoint: true}); err == nil {
			return nil
		}
	}
	if !undeliverable(err) {
		return fmt.Errorf("request: reply to %s: %w", c.req.ReplyToQ, err)
	}
	umq, uerr := c.w.w.open(cfg.UnexpectedQueue, optOut)
	if uerr != nil {
		return fmt.Errorf("request: reply to %s: %w; to %s: %w", c.req.ReplyToQ, err, cfg.UnexpectedQueue, uerr)
	}
	h := UnexpectedHeader{Reason: ReasonUndeliverable, RequestID: c.req.ID, CorrelID: c.req.ID, OrigQ: c.req.ReplyToQ, Time: time.Now(), OrigFormat: r.format}
	m.Format, m.Body = FormatUnexpected, h.Encode(m.Body)
	if uerr := umq.Put(m, mq.PutOptions{Syncpoint: true}); uerr != nil {
		return fmt.Errorf("request: reply to %s: %w; to %s: %w", c.req.ReplyToQ, err, cfg.UnexpectedQueue, uerr)
	}
	cfg.Log.Warn("final reply undeliverable: moved to the Unexpected Message Queue", "manager", cfg.Name, "request", c.req.ID, "queue", c.req.ReplyToQ, "err", err)
	return nil
}

// undeliverable reports whether a put failed for good: no retry of the
// request can deliver it.
func undeliverable(err error) bool {
	switch mq.ReasonOf(err) {
	case mq.RCUnknownObjectName, mq.RCNotValidForType, mq.RCUnknownRemoteQMgr, mq.RCUnknownXmitQ, mq.RCXmitQUsageError, mq.RCNotAuthorized:
		return true
	}
	return false
}

// end ends the request: w's unit of work marks the record ended (with
// status) and sends r, if any; then l's removes the request, its record,
// marker and cancels (finish).
func (c *Ctx) end(status Status, r *sysReply) error {
	if len(c.rec.Pending) > 0 {
		c.withdrawPending()
	}
	if r != nil && c.req.ReplyToQ != "" {
		if err := c.putSysReply(r); err != nil {
			return c.fail(err)
		}
		c.rec.FinalIdx = uint32(len(c.journal)) + 1
		c.journal = append(c.journal, Entry{Kind: EntryFinal})
	}
	c.rec.Status = status
	c.ending = true
	if err := c.writeRecord(); err != nil {
		return err
	}
	// The tombstone commits with the record marked ended, before the
	// unit of work that removes the record and the live marker (finish):
	// a sweep while that one runs (both got, invisible) finds it, and
	// says how the request ended of a reply that comes then.
	if c.leavesTombstone(c.rec) {
		if err := c.putTombstone(c.next); err != nil {
			return c.fail(err)
		}
	}
	cpDonePut.Hit()
	if err := c.commit(); err != nil {
		return err
	}
	cpDoneCommitted.Hit()
	return c.finish()
}

// finish is l's unit of work that ends an ended request: the request
// message (held since it was taken), the record, the live marker and any
// cancels are removed together; a request whose replies may still come
// (it failed, was restarted or cancelled, or has a call timed out) leaves
// a tombstone on the tombstone queue, which expires after
// Config.TombstoneTTL (putTombstone).
// leavesTombstone reports whether a request that ends as rec says leaves
// a tombstone: one that may have replies still to come (purged,
// cancelled, restarted, resumed, a call pending or timed out, strays).
func (c *Ctx) leavesTombstone(rec *Record) bool {
	return c.strays || rec.Status != StatusDone || rec.Attempts > 1 || len(rec.Pending) > 0 || timedOutIn(rec.Journal)
}

func (c *Ctx) finish() error {
	cfg := &c.w.m.cfg
	st, err := c.w.l.open(cfg.StateQueue, optAll)
	if err != nil {
		return err
	}
	// Every record and marker of the request goes, not only the first:
	// a manager killed inside the commit that created them, its member
	// recovering the connection that held the request first, leaves a
	// second record and marker once that commit is carried out
	// (TestTakeoverWhileTheCreateIsInFlight). The record kept is the
	// one that ended.
	var rec *Record
	for _, tag := range []uint32{ciTagRecord, ciTagLive} {
		id := tagID(c.key, tag)
		for {
			m, err := st.Get(mq.GetOptions{Syncpoint: true, CorrelID: &id})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return err
			}
			if tag != ciTagRecord {
				continue
			}
			r, err := ParseRecord(m.Body)
			if err != nil {
				// Taken again, the request is quarantined.
				return fmt.Errorf("%w: a state record of %s: %w", errBadState, c.req.ID, err)
			}
			if rec == nil || r.Status >= StatusDone && rec.Status < StatusDone {
				rec = r
			}
		}
	}
	cq, err := c.w.l.open(cfg.CancelQueue, optIn)
	if err != nil {
		return err
	}
	for {
		id := [24]byte(c.req.ID)
		if _, err := cq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &id}); err != nil {
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			return err
		}
	}
	testHookBeforeFinishCommit(c.req.ID)
	if err := c.w.l.c.Commit(); err != nil {
		return fmt.Errorf("request: end %s: %w", c.req.ID, err)
	}
	cpEnded.Hit()
	if cfg.Ended != nil && rec != nil {
		cfg.Ended(c.req.ID, rec.Status)
	}
	return nil
}

func timedOutIn(j []Entry) bool {
	for _, e := range j {
		if e.Kind == EntryCall && e.Outcome == OutcomeTimedOut {
			return true
		}
	}
	return false
}
