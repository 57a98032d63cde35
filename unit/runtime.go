package unit

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/unit/logrec"
	"github.com/qmgr/qmgr/unit/role"
)

// ReplicaConfig configures one replica.
type ReplicaConfig struct {
	Connect  mq.ConnectOptions // the group and member to connect through
	Service  string            // the SERVICE
	Position int               // 0..REPLICAS-1
	// BatchSize is the most inputs the primary takes in one unit of work
	// (default and most: logrec.MaxInputsPerMessage).
	BatchSize int
	// Poll is how long a waiting get or browse sleeps before the replica
	// looks at its role again (default 100 ms).
	Poll   time.Duration
	Logger *slog.Logger
	// Claim is the claim id the member that started the replica made its
	// position starting with (QMGR_UNIT_CLAIM); 0: the replica claims the
	// position itself (tests, a replica started by hand).
	Claim uint64
	// ChunkSize is the most snapshot bytes a donor puts in one chunk
	// (default and most: logrec.MaxChunkData; tests make it small).
	ChunkSize int
	// TransferStall is how long a snapshot transfer may make no progress
	// (default 10 s), counted from when the donor's stream is built: a
	// donor whose joiner restores nothing for that long gives the
	// transfer up (its chunks removed, its hold cleared) and goes on with
	// its own work, unless the joiner already got every chunk (it may
	// still become active at the snapshot's LSN: the hold stays); a
	// joiner that receives nothing for twice that, its donor not busy
	// with a donation, fails stop.
	TransferStall time.Duration
}

// replica is one running replica. Not safe for concurrent use: its
// connection is used by one goroutine.
type replica struct {
	cfg    ReplicaConfig
	h      Handler
	log    *slog.Logger
	c      *mq.Conn
	svc    defs.Service
	o      *lockfree.Owner
	s      *lockfree.Structure
	pos    uint8
	tag    uint32
	source uint64 // xxhash64 of the unit's name

	in, logq, state *mq.Queue
	dests           map[string]*mq.Queue
	stop            mq.Interrupter

	rec     *role.Role // the role record as last read
	gen     uint64
	applied uint64            // the last LSN processed
	dseq    map[string]uint64 // framework state: next sequence number per destination
	resend  []output          // outputs above LSN_out, in LSN order
	lsnOut  uint64            // the last LSN_out seen (committed, for the sender)
	inputs  uint64
	outputs uint64
	pending pendingOut       // what the unit of work in progress sent
	cur     *mq.BrowseCursor // the log browse of a secondary (nil: never one)

	snap     *mq.Queue       // SYSTEM.UNIT.<n>.SNAP, opened at the first transfer
	donating *donation       // the transfer this replica gives (nil: none)
	hold     uint64          // the log is kept above it for a joiner (0: none)
	joining  bool            // receiving a snapshot
	chunks   uint32          // joiner: chunks restored
	givenUp  map[uint32]bool // W tags of joiners whose transfer stalled: not served again
}

// RunWith runs a replica of cfg.Service in cfg.Position until ctx ends
// (nil then) or the replica must stop (an error: fail-stop, its state is
// not to be used again).
func RunWith(ctx context.Context, cfg ReplicaConfig, h Handler) (err error) {
	if cfg.BatchSize <= 0 || cfg.BatchSize > logrec.MaxInputsPerMessage {
		cfg.BatchSize = logrec.MaxInputsPerMessage
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 100 * time.Millisecond
	}
	if cfg.TransferStall <= 0 {
		cfg.TransferStall = 10 * time.Second
	}
	if cfg.ChunkSize <= 0 || cfg.ChunkSize > logrec.MaxChunkData {
		cfg.ChunkSize = logrec.MaxChunkData
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Position < 0 || cfg.Position >= defs.MaxReplicas {
		return fmt.Errorf("%w: position %d", ErrConfig, cfg.Position)
	}
	r := &replica{cfg: cfg, h: h, pos: uint8(cfg.Position), dests: map[string]*mq.Queue{}, dseq: map[string]uint64{},
		log: cfg.Logger.With("unit", cfg.Service, "pos", cfg.Position)}
	if r.c, err = mq.Connect(cfg.Connect); err != nil {
		return fmt.Errorf("unit %s position %d: connect: %w", cfg.Service, cfg.Position, err)
	}
	defer r.c.Disconnect()
	stopped := context.AfterFunc(ctx, r.stop.Interrupt)
	defer stopped()
	if err := r.open(); err != nil {
		return fmt.Errorf("unit %s position %d: %w", cfg.Service, cfg.Position, err)
	}
	if err := r.register(); err != nil {
		return fmt.Errorf("unit %s position %d: register: %w", cfg.Service, cfg.Position, err)
	}
	for ctx.Err() == nil {
		if err := r.readRole(); err != nil {
			return err
		}
		if r.rec.Pos[r.pos].State == role.Vacant || r.rec.Pos[r.pos].Tag != r.tag {
			return fmt.Errorf("%w: unit %s position %d is no longer this replica's", ErrRole, cfg.Service, cfg.Position)
		}
		if r.rec.Primary == r.pos {
			if r.cur != nil {
				// Promoted: apply the rest of the log, then take input.
				if err := r.catchUp(); err != nil {
					r.c.Backout()
					return fmt.Errorf("unit %s position %d: %w", cfg.Service, cfg.Position, err)
				}
				r.cur = nil
				r.log.Info("promoted to primary", "epoch", r.rec.Epoch, "applied", r.applied)
			}
			if err = r.serveJoiners(); err == nil {
				err = r.primaryBatch(ctx)
			}
		} else {
			err = r.secondary(ctx)
		}
		if errors.Is(err, mq.ErrInterrupted) && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.c.Backout()
			return fmt.Errorf("unit %s position %d: %w", cfg.Service, cfg.Position, err)
		}
	}
	return nil
}

func (r *replica) open() error {
	p := mqconn.Of(r.c)
	if err := p.Defs.View(func(tx *defs.Tx) error { var err error; r.svc, err = tx.Service(r.cfg.Service); return err }); err != nil {
		return fmt.Errorf("%w: SERVICE(%s): %v", ErrConfig, r.cfg.Service, err)
	}
	if r.cfg.Position >= r.svc.Replicas {
		return fmt.Errorf("%w: position %d, REPLICAS(%d)", ErrConfig, r.cfg.Position, r.svc.Replicas)
	}
	if r.svc.Logging != "LATE" {
		return fmt.Errorf("%w: LOGGING(%s) is not built yet (only LATE)", ErrConfig, r.svc.Logging)
	}
	var err error
	if r.o, r.s, err = p.OwnerIn(r.svc.CFStruct); err != nil {
		return err
	}
	r.tag = uint32(r.c.Tag())
	r.source = xxhash.Sum64String(r.svc.Name)
	if r.in, err = r.c.Open(r.svc.Input, mq.OpenOptions{Input: true}); err != nil {
		return err
	}
	if r.logq, err = r.c.Open(defs.UnitQueue(r.svc.Name, defs.UnitLog), mq.OpenOptions{Input: true, Output: true, Browse: true}); err != nil {
		return err
	}
	r.state, err = r.c.Open(defs.UnitQueue(r.svc.Name, defs.UnitState), mq.OpenOptions{Input: true, Output: true, Browse: true})
	return err
}

// readRole reads the role record.
func (r *replica) readRole() error {
	buf := make([]byte, r.s.StatusSize())
	if _, err := r.s.ReadStatus(r.svc.StatusBase, buf); err != nil {
		return err
	}
	rec, err := role.Decode(buf)
	if err != nil {
		return err
	}
	r.rec = rec
	return nil
}

// transition applies ev to the role record by compare-and-swap, reading
// it again while others change it.
func (r *replica) transition(ev role.Event) (role.Effect, error) {
	buf := make([]byte, r.s.StatusSize())
	for try := 0; try < 1000; try++ {
		if _, err := r.s.ReadStatus(r.svc.StatusBase, buf); err != nil {
			return 0, err
		}
		rec, err := role.Decode(buf)
		if err != nil {
			return 0, err
		}
		ev.Now = time.Now().UnixNano()
		n, eff, err := role.Next(rec, ev)
		if err != nil {
			return 0, err
		}
		after, err := n.Encode()
		if err != nil {
			return 0, err
		}
		err = r.o.CompareAndSwapStatus(r.svc.StatusBase, buf, after)
		if err == nil {
			r.rec = n
			return eff, nil
		}
		if !errors.Is(err, lockfree.ErrStatusChanged) {
			return 0, err
		}
	}
	return 0, fmt.Errorf("%w: the role record keeps changing", ErrRole)
}

// progress reads position k's progress record (nil: never written).
func (r *replica) progress(k uint8) *role.Progress {
	buf := make([]byte, r.s.StatusSize())
	if _, err := r.s.ReadStatus(r.svc.StatusBase+1+int(k), buf); err != nil {
		return nil
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return nil
	}
	return p
}

// applied returns every position's applied LSN as its progress says.
func (r *replica) appliedAll() (a [role.MaxReplicas]uint64) {
	for k := uint8(0); k < role.MaxReplicas; k++ {
		if p := r.progress(k); p != nil && r.rec != nil && p.Tag == r.rec.Pos[k].Tag {
			a[k] = p.Applied
		}
	}
	return a
}

// publish writes this replica's progress record.
func (r *replica) publish() error {
	seen := uint8(role.SeenSecondary)
	switch {
	case r.rec.Primary == r.pos && r.rec.Sender == r.pos:
		seen = role.SeenPrimarySender
	case r.rec.Primary == r.pos:
		seen = role.SeenPrimary
	case r.rec.Sender == r.pos:
		seen = role.SeenSender
	}
	if r.joining {
		seen = role.SeenJoiner
	}
	p := role.Progress{Position: r.pos, Role: seen, Tag: r.tag, Epoch: r.rec.Epoch, Received: r.applied, Applied: r.applied,
		LSNOut: r.lsnOut, ResendInputs: uint64(r.resendInputs()), Heartbeat: time.Now().UnixNano(),
		Inputs: r.inputs, Outputs: r.outputs, XferJoiner: role.None, Hold: r.hold, Chunks: r.chunks}
	if d := r.donating; d != nil {
		p.Flags |= role.FlagDonorBusy
		p.XferJoiner, p.XferTag = d.joiner, d.tag
	}
	b, err := p.Encode()
	if err != nil {
		return err
	}
	return r.o.UpdateStatus(r.svc.StatusBase+1+int(r.pos), func([]byte) []byte { return b })
}

func (r *replica) resendInputs() int {
	n, last := 0, uint64(0)
	for _, o := range r.resend {
		if o.lsn != last {
			n, last = n+1, o.lsn
		}
	}
	return n
}

// register claims the position and registers in it: the first replica
// of a generation becomes primary and sender; a later one joins: while
// the log still holds the generation from LSN 1 it replays it from there,
// else it receives a snapshot from its donor (transfer.go).
func (r *replica) register() error {
	id := r.cfg.Claim
	if id == 0 {
		var claim [8]byte
		for binary.LittleEndian.Uint64(claim[:]) == 0 {
			rand.Read(claim[:])
		}
		id = binary.LittleEndian.Uint64(claim[:])
		if _, err := r.transition(role.Event{Kind: role.EvClaim, Pos: r.pos, Claim: id}); err != nil {
			return err
		}
	}
	if err := r.readRole(); err != nil {
		return err
	}
	eff, err := r.transition(role.Event{Kind: role.EvRegister, Pos: r.pos, Claim: id, Tag: r.tag, Pid: uint32(os.Getpid()),
		Applied: r.appliedAll()})
	if err != nil {
		return err
	}
	r.gen = r.rec.Gen
	if eff&role.EffStateLost != 0 {
		r.log.Warn("unit state lost: a new generation starts", "generation", r.gen)
	}
	if r.rec.Primary == r.pos {
		// A new generation: its log starts empty. What an older
		// generation left there cannot be replayed (step 13 moves it to
		// the DEADQ); here it must be empty.
		return r.publish()
	}
	// Joining: while the log holds this generation from LSN 1, replay it
	// from there (the primary's trim counts a joiner at LSN 0 from its
	// registration on: the log cannot lose its head after this check,
	// unless a trim that read the role record before the registration
	// races it; the first browse then finds the gap and the replica fails
	// stop). Otherwise a snapshot from the donor.
	snapLSN := uint64(0)
	if err := r.checkLogFromStart(); errors.Is(err, ErrLogGap) {
		r.log.Info("the log is trimmed: joining by snapshot", "donor", int(r.rec.Pos[r.pos].Donor), "why", err)
		if snapLSN, err = r.join(); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if _, err := r.transition(role.Event{Kind: role.EvRestored, Pos: r.pos, Tag: r.tag, SnapLSN: snapLSN}); err != nil {
		return err
	}
	r.joining = false
	if snapLSN > 0 {
		cpXferRestored.Hit()
		r.log.Info("restored from a snapshot", "lsn", snapLSN, "chunks", r.chunks)
	}
	return r.publish()
}

// checkLogFromStart fails with ErrLogGap unless a joiner can replay the
// generation's log from LSN 1: its first message starts there, or it is
// empty and the primary has applied nothing.
func (r *replica) checkLogFromStart() error {
	cur, err := r.logq.Browse()
	if err != nil {
		return err
	}
	m, err := cur.Next(mq.GetOptions{})
	if errors.Is(err, mq.ErrNoMessage) {
		if p := r.progress(r.rec.Primary); r.rec.Primary != role.None && p != nil && p.Tag == r.rec.Pos[r.rec.Primary].Tag && p.Applied > 0 {
			return fmt.Errorf("%w: the log is trimmed to the primary's LSN %d", ErrLogGap, p.Applied)
		}
		return nil
	}
	if err != nil {
		return err
	}
	lm, err := logrec.DecodeLog(m.Body)
	if err != nil {
		return fmt.Errorf("log message %x: %w", m.CorrelID, err)
	}
	if lm.Gen != r.gen || lm.FirstLSN > 1 {
		return fmt.Errorf("%w: the log starts at generation %d LSN %d", ErrLogGap, lm.Gen, lm.FirstLSN)
	}
	return nil
}

// newCtx makes the context of input lsn.
func (r *replica) newCtx(lsn, epoch uint64, replay bool, choices []logrec.Choice) *Ctx {
	return &Ctx{lsn: lsn, epoch: epoch, replay: replay, choices: choices, log: r.log}
}

// apply runs the handler on in and keeps its outputs, numbered per
// destination, in the resend queue.
func (r *replica) apply(c *Ctx, in *Input) error {
	if err := r.h.Handle(c, in); err != nil {
		// Step 5: a failing handler stops the replica; the design's
		// BOQNAME output comes with the failure handling.
		return fmt.Errorf("handler failed on input %d: %w", in.LSN, err)
	}
	if c.diverged != nil {
		return c.diverged
	}
	if c.replay && c.next != len(c.choices) {
		return fmt.Errorf("%w: input %d used %d of the primary's %d choices", ErrDiverged, in.LSN, c.next, len(c.choices))
	}
	for _, o := range c.sends {
		next := max(r.dseq[o.dest], 1) // numbered from 1
		o.seq, r.dseq[o.dest] = next, next+1
		o.msg.MsgID = logrec.OutputID{Source: r.source, Gen: uint32(r.gen), Seq: o.seq}.MsgID()
		r.resend = append(r.resend, o)
	}
	r.applied = in.LSN
	r.inputs++
	return nil
}

func inputOf(m *mq.Message, lsn uint64) *Input {
	return &Input{LSN: lsn, MsgID: m.MsgID, CorrelID: m.CorrelID, Format: m.Format, Priority: m.Priority,
		Persistent: m.Persistent, PutTime: m.PutTime, ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr,
		Properties: m.Properties, Body: m.Body}
}

// primaryBatch is one unit of work of a LATE primary: get up to a batch
// of inputs, process them, log them, send their outputs while it is the
// sender, trim the log, commit, publish progress.
func (r *replica) primaryBatch(ctx context.Context) error {
	epoch := r.rec.Epoch
	var recs []logrec.Record
	persistent := false
	first := r.applied + 1
	for len(recs) < r.cfg.BatchSize {
		opt := mq.GetOptions{Syncpoint: true}
		if len(recs) == 0 {
			opt.Wait, opt.Interrupt = r.cfg.Poll, &r.stop
		}
		m, err := r.in.Get(opt)
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		lsn := r.applied + 1
		c := r.newCtx(lsn, epoch, false, nil)
		in := inputOf(m, lsn)
		if err := r.apply(c, in); err != nil {
			return err
		}
		persistent = persistent || m.Persistent
		lin := &logrec.Input{LSN: lsn, MsgID: m.MsgID, CorrelID: m.CorrelID, Format: m.Format, Priority: uint8(m.Priority),
			Persistent: m.Persistent, PutTime: m.PutTime.UnixNano(), ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr,
			Properties: m.Properties, Body: m.Body, Choices: c.choices}
		if !m.Expiry.IsZero() {
			lin.Expiry = m.Expiry.UnixNano()
		}
		recs = append(recs, logrec.Record{Kind: logrec.KindInput, Input: lin})
	}
	if len(recs) == 0 {
		return r.publish() // idle: a heartbeat of sorts
	}
	lm := logrec.LogMessage{Epoch: epoch, Gen: r.gen, FirstLSN: first, LastLSN: r.applied, Completed: r.applied, Records: recs}
	if persistent {
		lm.Flags = logrec.FlagPersistent
	}
	body, err := lm.Encode()
	if err != nil {
		return err
	}
	msg := &mq.Message{CorrelID: logrec.LogCorrelID(epoch, first), Format: "MQRULOG", Priority: 5, Body: body, Persistence: mq.NotPersistent}
	if persistent {
		msg.Persistence = mq.Persistent
	}
	if err := r.logq.Put(msg, mq.PutOptions{Syncpoint: true}); err != nil {
		return fmt.Errorf("log LSNs %d..%d: %w", first, r.applied, err)
	}
	if err := r.readRole(); err != nil {
		return err
	}
	if r.rec.Sender == r.pos {
		if err := r.send(); err != nil {
			return err
		}
	}
	if err := r.trim(); err != nil {
		return err
	}
	if err := r.c.Commit(); err != nil {
		// The inputs are processed in memory but not logged: this state
		// is ahead of the log, and the inputs come again. Fail-stop.
		return fmt.Errorf("commit of LSNs %d..%d: %w", first, r.applied, err)
	}
	r.committedSend()
	r.dropSent()
	return r.publish()
}

// trim gets, in the caller's unit of work, the log messages every
// secondary has applied and every donor's hold lets go (design 5.1: T =
// min of the active secondaries' applied LSNs and the holds). A joiner
// waiting for a snapshot (its progress says so) counts only through its
// donor's hold: the log above the snapshot's LSN s is kept, since before
// the donor set hold = s no trim passed the donor's applied LSN, which s
// is. Any other joiner counts at its snapshot LSN, 0 until restored, so
// no trim passes it while it may replay the log from LSN 1.
func (r *replica) trim() error {
	t := trimBound(r.rec, r.pos, r.applied, r.hold, r.progress)
	cur, err := r.logq.Browse()
	if err != nil {
		return err
	}
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return err
		}
		lm, err := logrec.DecodeLog(m.Body)
		if err != nil {
			return fmt.Errorf("trim: log message %x: %w", m.CorrelID, err)
		}
		if lm.LastLSN > t {
			return nil
		}
		if _, err := r.logq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &m.CorrelID}); err != nil {
			return fmt.Errorf("trim: get log message %x: %w", m.CorrelID, err)
		}
	}
}

// trimBound is the LSN the log may be trimmed to (trim), for the primary
// in position self with applied and hold, by the role record rec and the
// progress records as progress reads them.
//
// The active positions (their applied LSNs and holds) are read before the
// joining ones: a donor clears its hold only after its joiner's progress
// shows it restored (or once the joiner can never finish, or is gone), so
// a joiner whose progress, read later, still says JOINER was held by a
// hold this bound saw; read the other way round, the joiner could restore
// and its donor clear the hold between the two reads, and neither would
// count.
func trimBound(rec *role.Role, self uint8, applied, hold uint64, progress func(uint8) *role.Progress) uint64 {
	t := applied
	if hold != 0 {
		t = min(t, hold)
	}
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := rec.Pos[k]
		if k == self || e.State == role.Vacant || e.State == role.Starting || e.State == role.Joining {
			continue
		}
		a := uint64(0)
		if p := progress(k); p != nil && p.Tag == e.Tag {
			a = p.Applied
			if p.Hold != 0 {
				a = min(a, p.Hold)
			}
		}
		t = min(t, a)
	}
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := rec.Pos[k]
		if k == self || e.State != role.Joining {
			continue
		}
		if p := progress(k); p != nil && p.Tag == e.Tag && p.Role == role.SeenJoiner {
			continue // through its donor's hold
		}
		t = min(t, e.SnapLSN)
	}
	return t
}

// pendingOut is what send put in the current unit of work.
type pendingOut struct {
	lsnOut, outputs uint64
	ok              bool
}

// send puts, in the caller's unit of work, the outputs above OUT's LSN_out
// up to this replica's applied LSN, and replaces OUT. OUT, got under
// syncpoint, serialises senders: whoever holds it sends what is above its
// LSN_out, so an output is put once whichever replica puts it.
func (r *replica) send() error {
	m, err := r.state.Get(mq.GetOptions{Syncpoint: true, Wait: 10 * time.Second, CorrelID: &logrec.OutCorrelID})
	if err != nil {
		return fmt.Errorf("get OUT: %w", err)
	}
	out, err := logrec.DecodeOut(m.Body)
	if err != nil {
		return fmt.Errorf("OUT record: %w", err)
	}
	if out.LSNOut > r.applied {
		// Another sender is ahead of this replica: nothing to put.
		return r.putOut(out)
	}
	n := uint64(0)
	for i := range r.resend {
		o := &r.resend[i]
		if o.lsn <= out.LSNOut || o.lsn > r.applied {
			continue
		}
		q, err := r.dest(o.dest)
		if err != nil {
			return err
		}
		msg := o.msg
		if err := q.Put(&msg, mq.PutOptions{Syncpoint: true}); err != nil {
			return fmt.Errorf("output %d to %s (LSN %d): %w", o.seq, o.dest, o.lsn, err)
		}
		n++
	}
	if out.Sender != r.pos {
		out.Sender, out.Epoch = r.pos, r.rec.Epoch
	}
	out.Gen, out.LSNOut, out.Outputs = r.gen, r.applied, out.Outputs+n
	r.pending = pendingOut{lsnOut: r.applied, outputs: n, ok: true}
	return r.putOut(out)
}

func (r *replica) putOut(out logrec.Out) error {
	out.Updated = time.Now().UnixNano()
	return r.state.Put(&mq.Message{CorrelID: logrec.OutCorrelID, Format: "MQRUOUT", Body: out.Encode(), Persistence: mq.NotPersistent},
		mq.PutOptions{Syncpoint: true})
}

// committedSend records what the committed unit of work sent.
func (r *replica) committedSend() {
	if r.pending.ok {
		r.lsnOut = max(r.lsnOut, r.pending.lsnOut)
		r.outputs += r.pending.outputs
	}
	r.pending = pendingOut{}
}

// dropSent drops from the resend queue what LSN_out covers (the sender's
// progress when another replica sends).
func (r *replica) dropSent() {
	if r.rec.Sender != r.pos && r.rec.Sender != role.None {
		if p := r.progress(r.rec.Sender); p != nil && p.Tag == r.rec.Pos[r.rec.Sender].Tag {
			r.lsnOut = max(r.lsnOut, p.LSNOut)
		}
	}
	i := sort.Search(len(r.resend), func(i int) bool { return r.resend[i].lsn > r.lsnOut })
	r.resend = append(r.resend[:0], r.resend[i:]...)
}

func (r *replica) dest(name string) (*mq.Queue, error) {
	if q, ok := r.dests[name]; ok {
		return q, nil
	}
	q, err := r.c.Open(name, mq.OpenOptions{Output: true})
	if err != nil {
		return nil, fmt.Errorf("open output queue %s: %w", name, err)
	}
	r.dests[name] = q
	return q, nil
}

// follow reads the next log message (waiting up to wait) and applies its
// inputs with the logged choices; ok is false when none came.
func (r *replica) follow(wait time.Duration) (ok bool, err error) {
	bo := mq.BrowseOptions{Wait: wait, StopAtUncommitted: true, Interrupt: &r.stop}
	m, err := r.cur.NextWith(mq.GetOptions{}, bo)
	if errors.Is(err, mq.ErrNoMessage) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	lm, err := logrec.DecodeLog(m.Body)
	if err != nil {
		return false, fmt.Errorf("log message %x: %w", m.CorrelID, err)
	}
	if lm.Gen != r.gen {
		return false, fmt.Errorf("%w: log message of generation %d, this replica's is %d", ErrLogGap, lm.Gen, r.gen)
	}
	if lm.LastLSN != 0 && lm.LastLSN <= r.applied {
		return true, nil // applied already (a message seen again)
	}
	if lm.FirstLSN != 0 && lm.FirstLSN != r.applied+1 {
		return false, fmt.Errorf("%w: next message starts at LSN %d, this replica applied %d", ErrLogGap, lm.FirstLSN, r.applied)
	}
	for i := range lm.Records {
		rec := &lm.Records[i]
		if rec.Kind != logrec.KindInput {
			continue // CHECK: divergence checks come later
		}
		in := rec.Input
		c := r.newCtx(in.LSN, lm.Epoch, true, in.Choices)
		input := &Input{LSN: in.LSN, MsgID: in.MsgID, CorrelID: in.CorrelID, Format: in.Format, Priority: int(in.Priority),
			Persistent: in.Persistent, PutTime: time.Unix(0, in.PutTime), ReplyToQ: in.ReplyToQ, ReplyToQMgr: in.ReplyToQMgr,
			Properties: in.Properties, Body: in.Body}
		if err := r.apply(c, input); err != nil {
			return false, err
		}
	}
	return true, nil
}

// catchUp applies what is left of the log before a promoted secondary
// takes input: its predecessor's last unit of work was resolved before
// the promotion (the death transition waits for the recovery of its
// connection), so the log ends where it ends.
func (r *replica) catchUp() error {
	for {
		ok, err := r.follow(0)
		if err != nil {
			return fmt.Errorf("catch-up after promotion: %w", err)
		}
		if !ok {
			return nil
		}
	}
}

// secondary follows the log until its role changes: it applies each
// message's inputs with the logged choices, sends while it is the sender
// (taking the role by hand-over once caught up), and publishes progress.
func (r *replica) secondary(ctx context.Context) error {
	if r.cur == nil {
		var err error
		if r.cur, err = r.logq.Browse(); err != nil {
			return err
		}
	}
	for ctx.Err() == nil {
		if _, err := r.follow(r.cfg.Poll); err != nil {
			return err
		}
		if err := r.readRole(); err != nil {
			return err
		}
		if r.rec.Primary == r.pos || r.rec.Pos[r.pos].Tag != r.tag {
			return nil // promoted, or no longer ours: the caller decides
		}
		if r.rec.Sender != r.pos {
			if err := r.maybeHandOver(); err != nil {
				return err
			}
		}
		if r.rec.Sender == r.pos && r.applied > r.lsnOut {
			if err := r.send(); err != nil {
				return err
			}
			if err := r.c.Commit(); err != nil {
				return fmt.Errorf("commit of the outputs up to LSN %d: %w", r.applied, err)
			}
			r.committedSend()
		}
		r.dropSent()
		if err := r.publish(); err != nil {
			return err
		}
		if err := r.serveJoiners(); err != nil {
			return err
		}
	}
	return nil
}

// maybeHandOver takes the sender role once this replica has applied
// everything OUT says is sent (its resend queue then holds every output
// above LSN_out: a restored joiner's came in its snapshot, 14.1), when
// design 6.3 gives it the role: FANOUT, from a primary acting as sender;
// CHAIN, whenever it is the chain's last (a replica restored since the
// sender took the role is appended behind it).
func (r *replica) maybeHandOver() error {
	if r.rec.Fanout && r.rec.Sender != r.rec.Primary {
		return nil
	}
	if !r.rec.Fanout && (len(r.rec.Chain) == 0 || r.rec.Chain[len(r.rec.Chain)-1] != r.pos) {
		return nil
	}
	m, err := r.state.Browse()
	if err != nil {
		return err
	}
	om, err := m.Next(mq.GetOptions{CorrelID: &logrec.OutCorrelID})
	if err != nil {
		return nil // held by the sender's unit of work: look again later
	}
	out, err := logrec.DecodeOut(om.Body)
	if err != nil {
		return fmt.Errorf("OUT record: %w", err)
	}
	var applied [role.MaxReplicas]uint64
	applied[r.pos] = r.applied
	_, err = r.transition(role.Event{Kind: role.EvHandOver, Pos: r.pos, Tag: r.tag, Applied: applied, LSNOut: out.LSNOut})
	if errors.Is(err, role.ErrNotAllowed) || errors.Is(err, role.ErrStale) {
		return nil // not caught up yet, or the roles moved: later
	}
	if err == nil {
		r.lsnOut = out.LSNOut
		cpXferHandOver.Hit()
		r.log.Info("took the sender role", "epoch", r.rec.Epoch, "lsn_out", out.LSNOut)
	}
	return err
}
