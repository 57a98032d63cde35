package unit

import (
	"errors"
	"fmt"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
)

// LOGGING(INDEPENDENT) (design 5.1, claim 4; design 14 items 58-): as
// EARLY (early.go: one log message per batch holds the batch's inputs and
// the previous batch's choices; secondaries apply an input once a
// message's completed-through covers it), except how an input travels:
//
//   - the primary takes each input from the input queue as a view outside
//     syncpoint (held there, not removed) and logs an INPUT_REF record:
//     its MsgID, body length and logrec.Input.Hash (headers and body: two
//     messages of one MsgID that differ in anything the handler is given
//     are told apart). An input it gets
//     under syncpoint instead (from EARLY, or pulled by MsgID: inputs from
//     other units, source.go), and one with an expiry (takeInput), is
//     logged in full, as INPUT_EARLY.
//   - a secondary reads each referenced input in place: it browses the
//     input queue by MsgID with held messages included and takes the
//     first whose length and hash match (a reused MsgID: it looks
//     further).
//   - the trim adopts the views of the inputs whose log messages it
//     removes into its unit of work (View.Adopt), whose commit removes
//     them: an input leaves its queue only once every replica has applied
//     it (T, claim 26), with its log message, never before.
//   - a dead primary's views go back to the queue with its connection's
//     recovery; the promoted primary takes again, as views, those the log
//     still names (indepRetake), without logging them again.
//   - STOP SERVICE: the resting snapshot's last unit of work, which
//     trims the whole log, adopts every view (rest.go).
//   - every replica dead: the next generation's primary moves the inputs
//     the old log names to the DEADQ with the log (lost.go), as LATE's
//     logged inputs go there: none is processed a second time.
//
// The unit must be its input queue's only consumer: between a dead
// primary's recovery and its successor's indepRetake the inputs it held
// are available to any getter, and one taken then is an input the log
// names and nobody can read again (the successor fails stop: ErrLogGap).

// Crash points of LOGGING(INDEPENDENT): a batch's inputs taken as views,
// before the unit of work that logs them puts anything (they go back
// unlogged with the connection); a trim's views adopted, its unit of work
// not committed (backed out: the inputs and their log messages stay).
var (
	cpIndepTaken   = crashpoint.New("unit.indep.taken")
	cpIndepAdopted = crashpoint.New("unit.indep.adopted")
)

// heldInput is an input the primary holds as a view: logged, not
// trimmed.
type heldInput struct {
	lsn uint64
	v   *mq.View
}

// indepLog is a replica's part in LOGGING(INDEPENDENT).
type indepLog struct {
	views []heldInput // primary: the inputs it holds, in LSN order
	got   *mq.View    // the view the last takeInput took (nil: a get under syncpoint)
}

// indepLogging reports whether the unit runs with LOGGING(INDEPENDENT).
func (r *replica) indepLogging() bool { return r.svc.Logging == "INDEPENDENT" }

// takeInput gets the next message of the input queue for nextInput:
// under the caller's syncpoint, or with INDEPENDENT as a view outside it
// (kept in il.got, a copy of the message returned).
//
// An input with an expiry is adopted into the caller's unit of work at
// once instead (il.got stays nil: it is logged in full, as EARLY logs it,
// and leaves the queue with the batch): held until every replica applied
// it, it could expire first, and a browse does not return an expired
// message, so a secondary would not find it.
func (r *replica) takeInput(opt mq.GetOptions) (*mq.Message, error) {
	r.il.got = nil
	if !r.indepLogging() {
		return r.in.Get(opt)
	}
	opt.Syncpoint = false
	v, err := r.in.GetView(opt)
	if err != nil {
		return nil, err
	}
	if !v.Expiry.IsZero() {
		if err := v.Adopt(); err != nil {
			return nil, fmt.Errorf("adopt input MsgID %x (it expires) into the batch: %w", v.MsgID, err)
		}
		return viewMessage(v), nil
	}
	r.il.got = v
	return viewMessage(v), nil
}

// dropTaken makes the input takeInput took part of the caller's unit of
// work (a duplicate dropped, an early input moved to EARLY): its commit
// removes it, as it would a get under syncpoint.
func (r *replica) dropTaken() error {
	v := r.il.got
	r.il.got = nil
	if v == nil {
		return nil
	}
	if err := v.Adopt(); err != nil {
		return fmt.Errorf("adopt input MsgID %x into the batch: %w", v.MsgID, err)
	}
	return nil
}

// viewMessage copies a view's message (the handler keeps what it likes of
// its input: nothing may alias the mapping).
func viewMessage(v *mq.View) *mq.Message {
	return &mq.Message{MsgID: v.MsgID, CorrelID: v.CorrelID, Format: v.Format, Priority: v.Priority,
		Persistence: v.Persistence, Persistent: v.Persistence == mq.Persistent, Expiry: v.Expiry, PutTime: v.PutTime,
		BackoutCount: v.BackoutCount, ReplyToQ: v.ReplyToQ, ReplyToQMgr: v.ReplyToQMgr,
		Properties: append([]byte(nil), v.Properties...), Body: v.Bytes()}
}

// inputRecord is the log record of input in as the primary took it: an
// INPUT_REF when takeInput took it as a view (v), else INPUT_EARLY.
func inputRecord(in *logrec.Input, v *mq.View) logrec.Record {
	if v == nil {
		return logrec.Record{Kind: logrec.KindInputEarly, Input: in}
	}
	return logrec.Record{Kind: logrec.KindInputRef, Ref: &logrec.InputRef{LSN: in.LSN, Source: in.Source, MsgID: in.MsgID,
		PutTime: in.PutTime, BodyLen: uint32(len(in.Body)), Hash: in.Hash()}}
}

// indepHold keeps the views of a committed batch (views[i] is nil for an
// input logged in full) until the trim adopts them.
func (r *replica) indepHold(ins []logrec.Record, views []*mq.View) {
	for i, v := range views {
		if v != nil {
			r.il.views = append(r.il.views, heldInput{lsn: ins[i].Ref.LSN, v: v})
		}
	}
}

// indepAdopt adopts, into the caller's unit of work, the views of the
// inputs up to upTo, whose log messages that unit of work removes: its
// commit removes the inputs too.
func (r *replica) indepAdopt(upTo uint64) error {
	n := 0
	for ; n < len(r.il.views) && r.il.views[n].lsn <= upTo; n++ {
		h := r.il.views[n]
		if err := h.v.Adopt(); err != nil {
			return fmt.Errorf("trim: adopt input LSN %d (MsgID %x): %w", h.lsn, h.v.MsgID, err)
		}
	}
	if n == 0 {
		return nil
	}
	r.il.views = r.il.views[n:]
	cpIndepAdopted.Hit()
	return nil
}

// readInPlace is a secondary's read of input ref: on the input queue,
// where the primary holds it (or, the primary dead, where it went back).
func (r *replica) readInPlace(ref *logrec.InputRef) (*logrec.Input, error) {
	cur, err := r.in.Browse()
	if err != nil {
		return nil, err
	}
	for {
		m, err := cur.NextWith(mq.GetOptions{MsgID: &ref.MsgID}, mq.BrowseOptions{IncludeHeld: true})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil, fmt.Errorf("%w: input LSN %d (MsgID %x, %d bytes) is not on the input queue %s", ErrLogGap,
				ref.LSN, ref.MsgID, ref.BodyLen, r.svc.Input)
		}
		if err != nil {
			return nil, fmt.Errorf("read input LSN %d on %s: %w", ref.LSN, r.svc.Input, err)
		}
		if in, ok := refMatch(ref, m); ok {
			return in, nil
		}
		// Another message with this MsgID (another body, or the same
		// body with other headers: a retry with another CorrelID, say):
		// look further.
	}
}

// refMatch reports whether m is the input ref names (its length and
// logrec.Input.Hash, headers included), and returns it as that input.
func refMatch(ref *logrec.InputRef, m *mq.Message) (*logrec.Input, bool) {
	if uint32(len(m.Body)) != ref.BodyLen {
		return nil, false
	}
	in := messageInput(m, ref.LSN, ref.Source)
	return in, in.Hash() == ref.Hash
}

// messageInput is message m as the log records input lsn from source src
// (its choices, for an INPUT record, added by the caller).
func messageInput(m *mq.Message, lsn uint64, src logrec.Source) *logrec.Input {
	in := &logrec.Input{LSN: lsn, MsgID: m.MsgID, CorrelID: m.CorrelID, Format: m.Format, Priority: uint8(m.Priority),
		Persistent: m.Persistent, PutTime: m.PutTime.UnixNano(), ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr,
		Properties: m.Properties, Body: m.Body, Source: src}
	if !m.Expiry.IsZero() {
		in.Expiry = m.Expiry.UnixNano()
	}
	return in
}

// indepRetake: a promoted primary takes as views the inputs its
// predecessor's log messages still in the log name (the predecessor's
// views went back when its connection was recovered, before the
// promotion), so that the trim removes them as it would have: nothing is
// logged again. Before it takes any input: taken as new, a logged input
// would be processed twice.
func (r *replica) indepRetake() error {
	if !r.indepLogging() {
		return nil
	}
	var others []*mq.View // same MsgID, another message: given back at the end
	defer func() { requeueAll(others) }()
	held := make(map[uint64]bool, len(r.il.views))
	for _, h := range r.il.views {
		held[h.lsn] = true
	}
	cur, err := r.logq.Browse()
	if err != nil {
		return err
	}
	n := 0
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return fmt.Errorf("promoted: browse the log: %w", err)
		}
		lm, err := logrec.DecodeLog(m.Body)
		if err != nil {
			return fmt.Errorf("promoted: log message %x: %w", m.CorrelID, err)
		}
		for i := range lm.Records {
			if ref := lm.Records[i].Ref; lm.Records[i].Kind == logrec.KindInputRef && !held[ref.LSN] {
				v, err := r.takeRef(ref, &others)
				if err != nil {
					return fmt.Errorf("promoted: %w", err)
				}
				r.il.views = append(r.il.views, heldInput{lsn: ref.LSN, v: v})
				held[ref.LSN] = true
				n++
			}
		}
	}
	if n > 0 {
		r.log.Info("promoted: took again the inputs the log names", "inputs", n)
	}
	return nil
}

// takeRef takes input ref as a view outside syncpoint: the first message
// with its MsgID whose length and hash match, among those an earlier
// takeRef set aside in others first (a later input of the MsgID, ahead of
// an earlier one by its priority, is met first), then on the queue; the
// others it meets are added to others, still held (the caller gives them
// back).
func (r *replica) takeRef(ref *logrec.InputRef, others *[]*mq.View) (*mq.View, error) {
	for i, v := range *others {
		if v.MsgID != ref.MsgID || uint32(v.Len()) != ref.BodyLen {
			continue // cheap checks first: viewMessage copies the body
		}
		if _, ok := refMatch(ref, viewMessage(v)); ok {
			*others = append((*others)[:i], (*others)[i+1:]...)
			return v, nil
		}
	}
	for {
		v, err := r.in.GetView(mq.GetOptions{MsgID: &ref.MsgID})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil, fmt.Errorf("%w: input LSN %d (MsgID %x, %d bytes) is not on the input queue %s (does another application get from it?)",
				ErrLogGap, ref.LSN, ref.MsgID, ref.BodyLen, r.svc.Input)
		}
		if err != nil {
			return nil, fmt.Errorf("take input LSN %d from %s: %w", ref.LSN, r.svc.Input, err)
		}
		if uint32(v.Len()) == ref.BodyLen {
			if _, ok := refMatch(ref, viewMessage(v)); ok {
				return v, nil
			}
		}
		*others = append(*others, v)
	}
}

// requeueAll gives back the views takeRef set aside.
func requeueAll(vs []*mq.View) {
	for _, v := range vs {
		v.Requeue()
	}
}

// lostInputs moves the inputs an old generation's log message lm names
// from the input queue to the DEADQ dq, in the caller's unit of work
// (stateLost): they were logged, some of their outputs maybe sent, and
// the state that processed them is gone; taken as new input they would be
// processed a second time. An input not found (it cannot be: trim removes
// inputs with their log messages) is reported and passed over. others is
// stateLost's, across every log message (takeRef).
func (r *replica) lostInputs(lm *logrec.LogMessage, dq *mq.Queue, others *[]*mq.View) (int, error) {
	n := 0
	for i := range lm.Records {
		ref := lm.Records[i].Ref
		if lm.Records[i].Kind != logrec.KindInputRef {
			continue
		}
		v, err := r.takeRef(ref, others)
		if errors.Is(err, ErrLogGap) {
			r.log.Warn("unit state lost: a logged input is not on the input queue", "lsn", ref.LSN, "msgid", fmt.Sprintf("%x", ref.MsgID))
			continue
		}
		if err != nil {
			return n, fmt.Errorf("state lost: %w", err)
		}
		if err := v.Adopt(); err != nil {
			return n, fmt.Errorf("state lost: adopt input LSN %d: %w", ref.LSN, err)
		}
		m := viewMessage(v)
		d := mq.Message{MsgID: m.MsgID, CorrelID: m.CorrelID, Format: mq.FormatDeadLetter, Persistence: m.Persistence,
			ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr, Properties: m.Properties,
			Body: mq.DLH{Reason: mq.RCUnitStateLost, DestQ: r.svc.Input, DestQMgr: r.c.QMgr(), OrigFormat: m.Format, Time: time.Now()}.Encode(m.Body)}
		if err := dq.Put(&d, mq.PutOptions{Syncpoint: true}); err != nil {
			return n, fmt.Errorf("state lost: put input LSN %d on the DEADQ: %w", ref.LSN, err)
		}
		n++
	}
	return n, nil
}
