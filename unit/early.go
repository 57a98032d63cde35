package unit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// LOGGING(EARLY) (design 5.1, claim 3). The primary logs each input
// before it processes it, and its choices after:
//
//   - the unit of work of batch b gets b's inputs and puts one log
//     message holding their INPUT_EARLY records and the CHOICES (and
//     CHECK) records of batch b-1, completed-through = b-1's last LSN and
//     the output hash there; the sender's outputs of b-1 and the trim go
//     in the same unit of work; one commit per batch. Then b is processed.
//     A primary with choices not logged does not wait for input: finding
//     none, it commits a message of CHOICES alone.
//   - a secondary reads INPUT_EARLY records into memory (pending) and
//     applies an input once a log message's completed-through reaches it,
//     with the CHOICES logged for it (none logged: it made none). It does
//     not run ahead on inputs needing no choice (design 14 item 48 says
//     why): a handler asking for a choice the primary did not log is
//     divergence at once, never a wait.
//   - a promoted primary applies the log to its end, then processes the
//     inputs its predecessor logged but whose choices it had not logged,
//     making the choices itself (nobody saw the dead primary's: a
//     primary's outputs are sent only in the unit of work that logs the
//     choices they came from), and logs them with its first batch.
//
// A primary's state is thus one batch ahead of its logged choices between
// its batches. Before it donates a snapshot or writes the resting one
// (STOP SERVICE) it logs them first (earlySettle), so that every snapshot
// stands at an LSN whose choices are logged: a replica restored from it
// and then promoted must be able to give its choices to the others.

// cpEarlyProcessed: an EARLY primary has processed a batch whose inputs
// are logged and whose choices are not (a death there leaves its
// successor choices to make).
var cpEarlyProcessed = crashpoint.New("unit.early.processed")

// earlyInput is a logged input a secondary has read and not applied.
type earlyInput struct {
	epoch uint64 // of the log message that carried it: Ctx.Epoch
	in    *logrec.Input
}

// earlyLog is a replica's part in LOGGING(EARLY).
type earlyLog struct {
	// Secondary: what it read ahead of applied.
	pending   []earlyInput               // logged inputs above applied, in LSN order
	choices   map[uint64][]logrec.Choice // logged choices of pending inputs
	checks    map[uint64]logrec.Record   // CHECK records of pending inputs
	completed uint64                     // the highest completed-through LSN read

	// Primary: what it processed since its last commit.
	unlogged   []logrec.Record // CHOICES and CHECK records, in LSN order
	persistent bool            // one of those inputs is persistent
	logged     uint64          // the completed-through LSN of its last commit
	primed     bool            // logged is set (at its first step as primary)
	// ahead is the source table as the batch being got leaves it (the
	// inputs got are processed only after the commit): nextInput judges
	// duplicates and early inputs by it (source.go, expectedNext).
	ahead map[srcKey]uint64
}

// earlyLogging reports whether the unit runs with LOGGING(EARLY).
// INDEPENDENT is EARLY with inputs logged by reference (independent.go).
func (r *replica) earlyLogging() bool { return r.svc.Logging == "EARLY" || r.indepLogging() }

// expectedNext is the next sequence number the primary is to take from
// source k: the source table's, or past the inputs of k an EARLY batch
// has got and not yet processed.
func (r *replica) expectedNext(k srcKey) uint64 {
	if n, ok := r.el.ahead[k]; ok {
		return n
	}
	return r.expected(k)
}

// adoptsNext is adopts for the input the primary gets next: a source
// whose start an EARLY batch has taken already is known.
func (r *replica) adoptsNext(k srcKey) bool {
	if _, ok := r.el.ahead[k]; ok {
		return false
	}
	return r.adopts(k)
}

// serveJoinersSettled serves joiners (transfer.go), after logging an
// EARLY primary's choices if it is to donate or to rest.
func (r *replica) serveJoinersSettled() error {
	if err := r.earlySettle(); err != nil {
		return err
	}
	return r.serveJoiners()
}

// earlySettle: an EARLY primary processes what a predecessor logged
// without choices (it was just promoted) and, when it is about to donate
// a snapshot or to stop, logs its choices so that its state stands at a
// logged point.
func (r *replica) earlySettle() error {
	if !r.earlyLogging() || r.rec.Primary != r.pos {
		return nil
	}
	if !r.el.primed {
		// What it applied as a secondary (or restored) has its choices
		// logged; what it adopts below has not.
		r.el.logged, r.el.primed = r.applied, true
	}
	if len(r.el.pending) > 0 {
		if err := r.earlyAdopt(); err != nil {
			return err
		}
	}
	if !r.choicesOwed() || r.rec.State != role.Stopping && !r.joinerWaiting() {
		return nil
	}
	if err := r.earlyCommit(r.rec.Epoch, nil, false); err != nil {
		return err
	}
	return r.publish()
}

// choicesOwed reports whether this primary has processed inputs whose
// completed-through LSN (and choices) it has not logged.
func (r *replica) choicesOwed() bool { return r.applied > r.el.logged }

// joinerWaiting reports whether serveJoiners is about to donate: no
// donation runs, and a joiner naming this replica its donor has
// announced that it wants a snapshot (one replaying the log from LSN 1
// needs none) and was not given up.
func (r *replica) joinerWaiting() bool {
	if r.donating != nil {
		return false
	}
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := r.rec.Pos[k]
		if e.State != role.Joining || e.Donor != r.pos || r.givenUp[e.Tag] {
			continue
		}
		if p := r.joinerProgress(k, e.Tag); p != nil && p.Role == role.SeenJoiner {
			return true
		}
	}
	return false
}

// earlyAdopt processes, as the new primary, the inputs its predecessor
// logged but whose choices it had not: the choices are made here and
// logged with the next batch.
func (r *replica) earlyAdopt() error {
	n := len(r.el.pending)
	for _, p := range r.el.pending {
		if err := r.earlyProcess(p.epoch, p.in); err != nil {
			return err
		}
	}
	r.el.pending, r.el.choices, r.el.checks = nil, nil, nil
	r.log.Info("promoted: made the choices of inputs logged without them", "inputs", n, "applied", r.applied)
	return nil
}

// earlyProcess processes a logged input as the primary and keeps its
// choices (and a CHECK after it, when due) to be logged.
func (r *replica) earlyProcess(epoch uint64, in *logrec.Input) error {
	c := r.newCtx(in.LSN, epoch, false, nil)
	if err := r.apply(c, logInput(in)); err != nil {
		return err
	}
	if len(c.choices) > 0 {
		r.el.unlogged = append(r.el.unlogged, logrec.Record{Kind: logrec.KindChoices, LSN: in.LSN, Choices: c.choices})
	}
	r.el.persistent = r.el.persistent || in.Persistent
	if r.checkDue(in.LSN) {
		ck, err := r.checkRecord()
		if err != nil {
			return err
		}
		r.el.unlogged = append(r.el.unlogged, ck)
	}
	return nil
}

// logInput is the Input a handler sees of a logged input.
func logInput(in *logrec.Input) *Input {
	return &Input{LSN: in.LSN, MsgID: in.MsgID, CorrelID: in.CorrelID, Format: in.Format, Priority: int(in.Priority),
		Persistent: in.Persistent, PutTime: time.Unix(0, in.PutTime), ReplyToQ: in.ReplyToQ, ReplyToQMgr: in.ReplyToQMgr,
		Properties: in.Properties, Body: in.Body, Source: in.Source}
}

// earlyPrimaryBatch is one batch of an EARLY primary: get inputs, log
// them with the previous batch's choices, send, trim, commit; then
// process them.
func (r *replica) earlyPrimaryBatch(ctx context.Context) error {
	if err := r.earlySettle(); err != nil { // a promoted primary's inheritance
		return err
	}
	if !r.choicesOwed() && r.rec.Sender == r.pos && r.sendDue() {
		// Only with every choice logged: an output goes out with (or
		// after) the choices it came from.
		if err := r.sendAlone(); err != nil {
			return err
		}
		r.dropSent()
	}
	var room int
	if !r.choicesOwed() {
		var err error
		if room, err = r.flowRoom(); err != nil || room == 0 {
			return err
		}
	} else {
		room, _, _, _ = r.flowBound() // choices to log: no wait for room
	}
	epoch := r.rec.Epoch
	ins, inputs, views, persistent, taken, err := r.earlyGather(room)
	if err != nil {
		return err
	}
	if len(ins) == 0 && !r.choicesOwed() && taken == 0 {
		return r.idle() // every choice logged: drop what was sent, trim (idle.go)
	}
	if len(views) > 0 {
		cpIndepTaken.Hit()
	}
	if err := r.earlyCommit(epoch, ins, persistent); err != nil {
		return err
	}
	r.indepHold(ins, views) // INDEPENDENT: held until the trim (independent.go)
	// Logged: now processed. The choices wait for the next commit.
	for _, in := range inputs {
		if err := r.earlyProcess(epoch, in); err != nil {
			return err
		}
	}
	r.el.ahead = nil
	if len(ins) > 0 {
		cpEarlyProcessed.Hit()
	}
	return r.publish()
}

// earlyGather gets, in the caller's unit of work, up to room inputs (and
// the batch size) as INPUT_EARLY records numbered from applied + 1; it
// waits for the first only when no choice is owed. taken counts the
// duplicates dropped and early inputs moved aside (source.go). inputs are
// the inputs got, in order; with INDEPENDENT, an input taken as a view
// (views[i] not nil) is logged as an INPUT_REF record (independent.go).
func (r *replica) earlyGather(room int) (ins []logrec.Record, inputs []*logrec.Input, views []*mq.View, persistent bool, taken int, err error) {
	first := r.applied + 1
	for lim := min(r.cfg.BatchSize, room); len(ins) < lim && taken < lim; {
		opt := mq.GetOptions{Syncpoint: true}
		if len(ins) == 0 && taken == 0 && !r.choicesOwed() {
			opt.Wait, opt.Interrupt = r.sendWait(r.cfg.Poll), &r.wake
		}
		m, src, err := r.nextInput(opt)
		if errors.Is(err, mq.ErrNoMessage) || errors.Is(err, mq.ErrInterrupted) && !r.stop.Interrupted() {
			break // none came, or the role record changed (watchRole)
		}
		if err != nil {
			return nil, nil, nil, false, 0, err
		}
		if m == nil {
			taken++
			continue
		}
		if src.ID != 0 {
			if r.el.ahead == nil {
				r.el.ahead = map[srcKey]uint64{}
			}
			r.el.ahead[srcKey{src.ID, src.Gen}] = src.Seq + 1
		}
		lin := messageInput(m, first+uint64(len(ins)), src)
		ins, inputs, views = append(ins, inputRecord(lin, r.il.got)), append(inputs, lin), append(views, r.il.got)
		r.il.got = nil
		persistent = persistent || m.Persistent
	}
	return ins, inputs, views, persistent, taken, nil
}

// earlyCommit puts, in the caller's unit of work (holding the gets of
// ins), one log message: the choices and checks not logged yet, then
// ins; sends what they complete while this replica is the sender, trims
// and commits.
func (r *replica) earlyCommit(epoch uint64, ins []logrec.Record, persistent bool) error {
	recs := append(r.el.unlogged[:len(r.el.unlogged):len(r.el.unlogged)], ins...)
	if len(recs) == 0 && r.choicesOwed() {
		// Inputs processed with no choice at all: an empty CHOICES record
		// carries the completed-through LSN.
		recs = []logrec.Record{{Kind: logrec.KindChoices, LSN: r.applied}}
	}
	if len(recs) == 0 {
		// Only duplicates dropped or early inputs moved.
		if err := r.flushEarly(); err != nil {
			return err
		}
		if err := r.c.Commit(); err != nil {
			return fmt.Errorf("commit of duplicate or early inputs: %w", err)
		}
		return nil
	}
	first, last, err := r.earlyPut(epoch, recs, len(ins), persistent || r.el.persistent)
	if err != nil {
		return err
	}
	if err := r.readRole(); err != nil {
		return err
	}
	if r.rec.Sender == r.pos {
		if err := r.send(); err != nil { // up to applied: the choices are in this unit of work
			return err
		}
	}
	sent := r.lsnOut
	if r.pending.ok {
		sent = max(sent, r.pending.lsnOut) // what this unit of work sends
	}
	if err := r.trimSent(sent); err != nil {
		return err
	}
	if err := r.removeResting(); err != nil {
		return err
	}
	if err := r.flushEarly(); err != nil {
		return err
	}
	if err := r.c.Commit(); err != nil {
		// The choices through applied are made in memory and not logged:
		// this state is ahead of the log. Fail-stop.
		return fmt.Errorf("commit of LSNs %d..%d with the choices through %d: %w", first, last, r.applied, err)
	}
	r.el.unlogged, r.el.persistent, r.el.logged = nil, false, r.applied
	r.committedSend()
	r.dropSent()
	r.resting = nil
	return nil
}

// earlyPut puts, in the caller's unit of work, the log message of recs,
// whose last n are the INPUT_EARLY records of LSNs first..last (0, 0
// none): completed-through is applied, with the output hash there. A
// message without inputs has the CorrelID of the next one with inputs
// (design 14 item 49).
func (r *replica) earlyPut(epoch uint64, recs []logrec.Record, n int, persistent bool) (first, last uint64, err error) {
	first = r.applied + 1
	lm := logrec.LogMessage{Epoch: epoch, Gen: r.gen, Completed: r.applied, OutHash: r.outHash, Records: recs}
	if n > 0 {
		last = first + uint64(n) - 1
		lm.FirstLSN, lm.LastLSN = first, last
	}
	msg := &mq.Message{CorrelID: logrec.LogCorrelID(epoch, first), Format: "MQRULOG", Priority: 5, Persistence: mq.NotPersistent}
	if persistent {
		lm.Flags, msg.Persistence = logrec.FlagPersistent, mq.Persistent
	}
	if msg.Body, err = lm.Encode(); err != nil {
		return first, last, err
	}
	if err := r.logq.Put(msg, mq.PutOptions{Syncpoint: true}); err != nil {
		return first, last, fmt.Errorf("log LSNs %d..%d with the choices through %d: %w", first, last, r.applied, err)
	}
	return first, last, nil
}

// earlyFollow takes one log message of an EARLY unit into a secondary:
// its inputs join pending, its choices and checks are kept for them, and
// every pending input its completed-through LSN covers is applied with
// its logged choices (none logged: it made none, and a handler asking
// for one has diverged). The output hash is compared where the message
// says it stands, if this replica stands there too.
func (r *replica) earlyFollow(lm *logrec.LogMessage) error {
	if lm.LastLSN != 0 && lm.LastLSN <= r.applied {
		return nil // applied already (a message seen again, or below a snapshot)
	}
	if err := r.earlyRead(lm); err != nil {
		return err
	}
	r.el.completed = max(r.el.completed, lm.Completed)
	if err := r.earlyApplyReady(); err != nil {
		return err
	}
	if lm.Completed != 0 && lm.Completed == r.applied && lm.OutHash != r.outHash {
		return r.diverged("output hash", lm.Completed, lm.OutHash, r.outHash,
			fmt.Sprintf("the outputs up to LSN %d hash %016x, the primary's %016x", lm.Completed, r.outHash, lm.OutHash))
	}
	return nil
}

// earlyRead takes a log message's records into memory: its inputs above
// what this replica received join pending, the choices and checks of
// inputs not applied are kept for them (a CHECK of the LSN it stands at
// is checked now).
func (r *replica) earlyRead(lm *logrec.LogMessage) error {
	recv := r.applied + uint64(len(r.el.pending))
	for i := range lm.Records {
		rec := &lm.Records[i]
		switch rec.Kind {
		case logrec.KindInputEarly, logrec.KindInputRef:
			switch lsn := inputLSN(rec); {
			case lsn <= recv: // read already
			case lsn == recv+1:
				in := rec.Input
				if rec.Kind == logrec.KindInputRef { // INDEPENDENT: on the input queue
					var err error
					if in, err = r.readInPlace(rec.Ref); err != nil {
						return err
					}
				}
				r.el.pending = append(r.el.pending, earlyInput{epoch: lm.Epoch, in: in})
				recv++
			default:
				return fmt.Errorf("%w: next input is LSN %d, this replica received %d", ErrLogGap, lsn, recv)
			}
		case logrec.KindChoices:
			if rec.LSN <= r.applied {
				continue
			}
			if rec.LSN > recv {
				return fmt.Errorf("%w: choices of LSN %d, whose input is not logged before them (received %d)", ErrLogGap, rec.LSN, recv)
			}
			if r.el.choices == nil {
				r.el.choices = map[uint64][]logrec.Choice{}
			}
			r.el.choices[rec.LSN] = rec.Choices
		case logrec.KindCheck:
			switch {
			case rec.LSN == r.applied:
				if err := r.verifyCheck(rec); err != nil {
					return err
				}
			case rec.LSN > r.applied:
				if r.el.checks == nil {
					r.el.checks = map[uint64]logrec.Record{}
				}
				r.el.checks[rec.LSN] = *rec
			}
		default:
			return fmt.Errorf("%w: a %v record in the log of a LOGGING(EARLY) unit", ErrConfig, rec.Kind)
		}
	}
	return nil
}

// earlyApplyReady applies the pending inputs whose choices are logged.
func (r *replica) earlyApplyReady() error {
	for len(r.el.pending) > 0 && r.el.pending[0].in.LSN <= r.el.completed {
		p := r.el.pending[0]
		lsn := p.in.LSN
		cs := r.el.choices[lsn]
		delete(r.el.choices, lsn)
		if err := r.apply(r.newCtx(lsn, p.epoch, true, cs), logInput(p.in)); err != nil {
			return err
		}
		r.el.pending = r.el.pending[1:]
		if ck, ok := r.el.checks[lsn]; ok {
			delete(r.el.checks, lsn)
			if err := r.verifyCheck(&ck); err != nil {
				return err
			}
		}
	}
	if len(r.el.pending) == 0 {
		r.el.pending = nil
	}
	return nil
}

// inputLSN is the LSN of an INPUT_EARLY or INPUT_REF record.
func inputLSN(rec *logrec.Record) uint64 {
	if rec.Kind == logrec.KindInputRef {
		return rec.Ref.LSN
	}
	return rec.Input.LSN
}
