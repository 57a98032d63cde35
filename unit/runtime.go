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
	"github.com/qmgr/qmgr/procid"
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
	// wake is interrupted when the role record changes (roleWatch) and
	// when ctx ends: it ends the waits a role change must end (the
	// secondary's log browse, the primary's wait for input). Reset
	// before each read of the role record.
	wake mq.Interrupter

	rec     *role.Role // the role record as last read
	gen     uint64
	applied uint64            // the last LSN processed
	dseq    map[string]uint64 // framework state: next sequence number per destination
	resend  []output          // outputs above LSN_out, in LSN order
	lsnOut  uint64            // the last LSN_out seen (committed, for the sender)
	inputs  uint64
	outputs uint64
	pending pendingOut         // what the unit of work in progress sent
	cur     *mq.BrowseCursor   // the log browse of a secondary (nil: never one)
	held    *logrec.LogMessage // browsed, not yet applied: the CHAIN gate holds it (chain.go)

	snap     *mq.Queue       // SYSTEM.UNIT.<n>.SNAP, opened at the first transfer
	donating *donation       // the transfer this replica gives (nil: none)
	hold     uint64          // the log is kept above it for a joiner (0: none)
	joining  bool            // receiving a snapshot
	chunks   uint32          // joiner: chunks restored
	givenUp  map[uint32]bool // W tags of joiners whose transfer stalled: not served again
	halted   bool            // primary: halted by flow control (design 5.4)
	beatAt   time.Time       // when publish last wrote the progress record
	resting  *[24]byte       // primary: the resting snapshot it restored, removed with its first batch (rest.go)

	srcState // inputs from other units: source table, EARLY (source.go)

	el earlyLog // LOGGING(EARLY): inputs read ahead, choices not logged yet (early.go)
	il indepLog // LOGGING(INDEPENDENT): the inputs the primary holds as views (independent.go)

	sendBackoff time.Duration // after a send that stopped at a full destination (0: none)
	sendRetry   time.Time     // not before then
	idleTrimmed uint64        // primary: the bound of its last idle trim (idle.go)

	// Divergence checks (diverge.go).
	outHash     uint64 // framework state: the output hash at applied
	checkLSN    uint64 // the LSN of this replica's last state hash
	checkHash   uint64 // that hash
	divergedLSN uint64 // where this replica diverged (0: it did not)
	promoting   bool   // catching up after a promotion: a hash difference is reported, not fatal
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
	stopped := context.AfterFunc(ctx, func() { r.stop.Interrupt(); r.wake.Interrupt() })
	defer stopped()
	if err := r.open(); err != nil {
		return fmt.Errorf("unit %s position %d: %w", cfg.Service, cfg.Position, err)
	}
	w := r.watchRole()
	defer w.stop(r)
	if err := r.register(); err != nil {
		return fmt.Errorf("unit %s position %d: register: %w", cfg.Service, cfg.Position, err)
	}
	for ctx.Err() == nil {
		r.rearm()
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
				// INDEPENDENT: the inputs the log names, held again.
				if err := r.indepRetake(); err != nil {
					r.c.Backout()
					return fmt.Errorf("unit %s position %d: %w", cfg.Service, cfg.Position, err)
				}
				// A resting snapshot of this generation is still on SNAP
				// when the primary that restored it died before its first
				// batch: this replica's state is that snapshot's (it
				// joined from it) until this primary logs input, and then
				// it is stale. The first batch removes it, as the restorer's
				// would have; left there, it would be restored again when
				// every replica dies (register), the inputs since lost.
				cid, _, ok, err := r.findResting(r.gen)
				if err != nil {
					r.c.Backout()
					return fmt.Errorf("unit %s position %d: promoted: %w", cfg.Service, cfg.Position, err)
				}
				if ok {
					r.resting = &cid
				}
				r.log.Info("promoted to primary", "epoch", r.rec.Epoch, "applied", r.applied)
			}
			if err = r.serveJoinersSettled(); err == nil { // EARLY: its choices logged first (early.go)
				if r.rec.State == role.Stopping {
					err = r.rest()
				} else {
					err = r.primaryBatch(ctx)
				}
			}
		} else {
			err = r.secondary(ctx)
		}
		if errors.Is(err, errRested) {
			return nil // STOP SERVICE: this replica's part is done (rest.go)
		}
		if errors.Is(err, mq.ErrInterrupted) && ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.c.Backout()
			r.failStopped(err)
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
	if r.svc.Logging != "LATE" && r.svc.Logging != "EARLY" && r.svc.Logging != "INDEPENDENT" {
		return fmt.Errorf("%w: LOGGING(%s) is not LATE, EARLY or INDEPENDENT", ErrConfig, r.svc.Logging)
	}
	var err error
	if r.o, r.s, err = p.OwnerIn(r.svc.CFStruct); err != nil {
		return err
	}
	r.tag = uint32(r.c.Tag())
	r.source = xxhash.Sum64String(r.svc.Name)
	// INDEPENDENT: the secondaries read their inputs in place (browse).
	if r.in, err = r.c.Open(r.svc.Input, mq.OpenOptions{Input: true, Browse: r.indepLogging()}); err != nil {
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
	p := role.Progress{Position: r.pos, Role: seen, Tag: r.tag, Epoch: r.rec.Epoch, Received: r.received(), Applied: r.applied,
		LSNOut: r.lsnOut, ResendInputs: uint64(r.resendInputs()), Heartbeat: time.Now().UnixNano(),
		Inputs: r.inputs, Outputs: r.outputs, XferJoiner: role.None, Hold: r.hold, Chunks: r.chunks,
		OutHash: r.outHash, CheckLSN: r.checkLSN, CheckHash: r.checkHash, DivergedLSN: r.divergedLSN}
	if r.divergedLSN != 0 {
		p.Flags |= role.FlagDiverged
	}
	if r.halted {
		p.Flags |= role.FlagHalted
	}
	p.ResendBytes = uint64(r.resendBytes())
	if d := r.donating; d != nil {
		p.Flags |= role.FlagDonorBusy
		p.XferJoiner, p.XferTag = d.joiner, d.tag
	}
	b, err := p.Encode()
	if err != nil {
		return err
	}
	if err := r.o.UpdateStatus(r.svc.StatusBase+1+int(r.pos), func([]byte) []byte { return b }); err != nil {
		return err
	}
	r.beatAt = time.Now()
	return nil
}

// heartbeat publishes unless publish did within half a Poll: a long step
// (a snapshot transfer) calls it as it goes, so the member's hung-replica
// kill (UnitHeartbeatTimeout) does not take a busy replica for a hung one.
func (r *replica) heartbeat() error {
	if time.Since(r.beatAt) < r.cfg.Poll/2 {
		return nil
	}
	return r.publish()
}

// resendBytes is what the resend queue buffers: its outputs' bodies and
// properties.
func (r *replica) resendBytes() int {
	n := 0
	for i := range r.resend {
		n += len(r.resend[i].msg.Body) + len(r.resend[i].msg.Properties)
	}
	return n
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
	// With no primary this replica may start the unit: from the resting
	// snapshot STOP SERVICE left, if there is a complete one (rest.go).
	var rcid [24]byte
	have := false
	if r.rec.Primary == role.None && r.rec.Gen > 0 {
		var err error
		if rcid, _, have, err = r.findResting(r.rec.Gen); err != nil {
			return err
		}
	}
	eff, err := r.transition(role.Event{Kind: role.EvRegister, Pos: r.pos, Claim: id, Tag: r.tag, Pid: uint32(os.Getpid()), StartTime: procid.Self().Start,
		Applied: r.appliedAll(), HaveResting: have})
	if err != nil {
		return err
	}
	r.gen = r.rec.Gen
	if eff&role.EffStateLost != 0 {
		r.log.Warn("unit state lost: a new generation starts", "generation", r.gen)
	}
	if eff&role.EffRestoreResting != 0 {
		if err := r.restoreResting(rcid); err != nil {
			return err
		}
	}
	if r.rec.Primary == r.pos {
		// A new generation: its log starts empty. What an older
		// generation left there cannot be replayed: it goes to the DEADQ
		// (lost.go).
		if eff&role.EffStateLost != 0 {
			if err := r.stateLost(); err != nil {
				r.c.Backout()
				return err
			}
		}
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
		// An empty log: the primary's applied LSN decides, once its
		// progress record names it (a primary that restores a resting
		// snapshot publishes after the restore: until then its record may
		// be its predecessor's, before the stop).
		for {
			if r.rec.Primary == role.None {
				return fmt.Errorf("%w: no primary", ErrLogGap)
			}
			if p := r.progress(r.rec.Primary); p != nil && p.Tag == r.rec.Pos[r.rec.Primary].Tag {
				if p.Applied > 0 {
					return fmt.Errorf("%w: the log is trimmed to the primary's LSN %d", ErrLogGap, p.Applied)
				}
				return nil
			}
			if r.stop.Interrupted() {
				return mq.ErrInterrupted
			}
			time.Sleep(r.cfg.Poll / 4)
			if err := r.readRole(); err != nil {
				return err
			}
		}
	}
	if err != nil {
		return err
	}
	lm, err := logrec.DecodeLog(m.Body)
	if err != nil {
		return fmt.Errorf("log message %x: %w", m.CorrelID, err)
	}
	if lm.Gen != r.gen || lm.FirstLSN != 1 { // 0: CHOICES alone (EARLY), their inputs trimmed
		return fmt.Errorf("%w: the log starts at generation %d LSN %d", ErrLogGap, lm.Gen, lm.FirstLSN)
	}
	return nil
}

// newCtx makes the context of input lsn.
func (r *replica) newCtx(lsn, epoch uint64, replay bool, choices []logrec.Choice) *Ctx {
	return &Ctx{lsn: lsn, epoch: epoch, replay: replay, choices: choices, log: r.log}
}

// apply runs the handler on in and keeps its outputs, numbered per
// destination, in the resend queue. A handler that fails (an error or a
// panic) has its Sends dropped and the input becomes the input's one
// output, to the input queue's BOQNAME as it came or else to the DEADQ
// behind a dead-letter header (design 2); its state is what the handler
// left. The primary makes that decision and logs it as the input's last
// choice (FAILED: the queue, and the header's time), so every replica
// puts the same output in its resend queue; a replica whose handler
// fails where the primary's did not, or the other way round, diverged.
func (r *replica) apply(c *Ctx, in *Input) error {
	herr := r.handle(c, in)
	if c.diverged != nil {
		return c.diverged
	}
	var failed *logrec.Failed
	if c.replay {
		n := len(c.choices)
		if n > 0 && c.choices[n-1].Kind == logrec.ChoiceFailed {
			f, err := logrec.DecodeFailed(c.choices[n-1].Data)
			if err != nil {
				return fmt.Errorf("input %d: %w", in.LSN, err)
			}
			failed, n = &f, n-1
		}
		switch {
		case herr != nil && failed == nil:
			return fmt.Errorf("%w: the handler failed on input %d, the primary's did not: %v", ErrDiverged, in.LSN, herr)
		case herr == nil && failed != nil:
			return fmt.Errorf("%w: the handler did not fail on input %d, the primary's did", ErrDiverged, in.LSN)
		case c.next != n:
			return fmt.Errorf("%w: input %d used %d of the primary's %d choices", ErrDiverged, in.LSN, c.next, n)
		}
	} else if herr != nil {
		f, err := r.failedDest()
		if err != nil {
			return fmt.Errorf("handler failed on input %d: %w; %v", in.LSN, herr, err)
		}
		c.choices = append(c.choices, logrec.Choice{Kind: logrec.ChoiceFailed, Data: f.Encode()})
		failed = &f
	}
	if failed != nil {
		if !c.replay {
			r.log.Warn("the handler failed: the input goes aside", "lsn", in.LSN, "queue", failed.Queue, "dlh", failed.DLH, "err", herr)
		}
		c.sends = []output{r.failedOutput(in, *failed)}
	}
	for _, o := range c.sends {
		next := max(r.dseq[o.dest], 1) // numbered from 1
		o.seq, r.dseq[o.dest] = next, next+1
		o.msg.MsgID = logrec.OutputID{Source: r.source, Gen: uint32(r.gen), Seq: o.seq}.MsgID()
		r.outHash = foldOutput(r.outHash, &o)
		r.resend = append(r.resend, o)
	}
	if err := r.srcApplied(in.Source); err != nil {
		return err
	}
	r.applied = in.LSN
	r.inputs++
	return nil
}

// handle runs the handler; a panic is its error.
func (r *replica) handle(c *Ctx, in *Input) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return r.h.Handle(c, in)
}

// failedDest is where the primary moves an input its handler failed on:
// the input queue's BOQNAME, else the queue manager's DEADQ behind a
// dead-letter header; with neither, an error (the replica fails stop and
// the input stays on its queue).
func (r *replica) failedDest() (logrec.Failed, error) {
	var q defs.Queue
	var m defs.QMgr
	err := mqconn.Of(r.c).Defs.View(func(tx *defs.Tx) error {
		var err error
		if q, err = tx.Queue(r.svc.Input); err != nil {
			return err
		}
		m, err = tx.QMgr()
		return err
	})
	if err != nil {
		return logrec.Failed{}, fmt.Errorf("read the input queue's BOQNAME and the DEADQ: %w", err)
	}
	f := logrec.Failed{Time: time.Now().UnixNano()}
	switch {
	case q.BOQName != "":
		f.Queue = q.BOQName
	case m.DeadQ != "":
		f.Queue, f.DLH = m.DeadQ, true
	default:
		return f, fmt.Errorf("the input queue %s has no BOQNAME and the queue manager no DEADQ to move the input to", r.svc.Input)
	}
	if len(f.Queue) > logrec.MaxFailedQueue {
		return f, fmt.Errorf("queue name %q too long", f.Queue)
	}
	return f, nil
}

// failedOutput is the output an input the handler failed on becomes.
func (r *replica) failedOutput(in *Input, f logrec.Failed) output {
	m := mq.Message{CorrelID: in.CorrelID, Format: in.Format, Priority: in.Priority, Persistence: mq.NotPersistent,
		ReplyToQ: in.ReplyToQ, ReplyToQMgr: in.ReplyToQMgr,
		Properties: append([]byte(nil), in.Properties...), Body: append([]byte(nil), in.Body...)}
	if in.Persistent {
		m.Persistence = mq.Persistent
	}
	if f.DLH {
		m.Body = mq.DLH{Reason: mq.RCUnitHandlerFailed, DestQ: r.svc.Input, OrigFormat: in.Format, Time: time.Unix(0, f.Time)}.Encode(in.Body)
		m.Format = mq.FormatDeadLetter
	}
	return output{lsn: in.LSN, dest: f.Queue, msg: m}
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
	if r.earlyLogging() {
		return r.earlyPrimaryBatch(ctx) // early.go
	}
	if r.rec.Sender == r.pos && r.sendDue() {
		// Outputs not sent yet (a send stopped at a full destination, or
		// a promoted primary's predecessor's): send them on their own,
		// input or not (a batch with input tries too).
		if err := r.sendAlone(); err != nil {
			return err
		}
		r.dropSent()
	}
	room, err := r.flowRoom()
	if err != nil || room == 0 {
		return err
	}
	epoch := r.rec.Epoch
	var recs []logrec.Record
	persistent := false
	first := r.applied + 1
	taken := 0 // duplicates dropped and early inputs moved aside (source.go)
	for lim := min(r.cfg.BatchSize, room); len(recs) < lim && taken < lim; {
		opt := mq.GetOptions{Syncpoint: true}
		if len(recs) == 0 && taken == 0 {
			opt.Wait, opt.Interrupt = r.sendWait(r.cfg.Poll), &r.wake
		}
		m, src, err := r.nextInput(opt)
		if errors.Is(err, mq.ErrNoMessage) || errors.Is(err, mq.ErrInterrupted) && !r.stop.Interrupted() {
			break // none came, or the role record changed (watchRole)
		}
		if err != nil {
			return err
		}
		if m == nil {
			taken++
			continue
		}
		lsn := r.applied + 1
		c := r.newCtx(lsn, epoch, false, nil)
		in := inputOf(m, lsn)
		in.Source = src
		if err := r.apply(c, in); err != nil {
			return err
		}
		persistent = persistent || m.Persistent
		lin := messageInput(m, lsn, src)
		lin.Choices = c.choices
		recs = append(recs, logrec.Record{Kind: logrec.KindInput, Input: lin})
		if r.checkDue(lsn) {
			ck, err := r.checkRecord()
			if err != nil {
				return err
			}
			recs = append(recs, ck)
		}
	}
	if len(recs) == 0 {
		if taken > 0 {
			// Only duplicates dropped or early inputs moved: nothing
			// logged, nothing processed.
			if err := r.flushEarly(); err != nil {
				return err
			}
			if err := r.c.Commit(); err != nil {
				return fmt.Errorf("commit of duplicate or early inputs: %w", err)
			}
		}
		// Idle: a heartbeat; what the sender sent since dropped from the
		// resend queue (SENT and RESENDQ stay current) and trimmed from
		// the log (idle.go).
		return r.idle()
	}
	lm := logrec.LogMessage{Epoch: epoch, Gen: r.gen, FirstLSN: first, LastLSN: r.applied, Completed: r.applied, OutHash: r.outHash, Records: recs}
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
	if err := r.removeResting(); err != nil {
		return err
	}
	if err := r.flushEarly(); err != nil {
		return err
	}
	if err := r.c.Commit(); err != nil {
		// The inputs are processed in memory but not logged: this state
		// is ahead of the log, and the inputs come again. Fail-stop.
		return fmt.Errorf("commit of LSNs %d..%d: %w", first, r.applied, err)
	}
	r.committedSend()
	r.dropSent()
	r.resting = nil
	return r.publish()
}

// flowRoom is the flow control of design 5.4: how many inputs the
// primary may take now. The slowest replica it must keep the log for
// (the trim bound T) and the sender's LSN_out may be at most RESENDQ
// inputs behind it, and its resend queue may buffer at most RESENDMB MiB
// of outputs. With no room it marks itself halted (published), waits up
// to Poll for the laggard's progress record to change (WaitStatus: woken
// by its publish) and returns 0; the caller's loop reads the role record,
// serves joiners and comes back.
func (r *replica) flowRoom() (int, error) {
	room, behind, lag, ver := r.flowBound()
	if room > 0 {
		if r.halted {
			r.halted = false
			r.log.Info("unit_halted ended: the primary takes input again", "applied", r.applied, "behind", behind)
		}
		return room, nil
	}
	if !r.halted {
		r.halted = true
		r.log.Warn("unit_halted: the primary takes no input while a replica is RESENDQ inputs behind or the resend queue holds RESENDMB",
			"applied", r.applied, "behind", behind, "laggard", lag, "resendq", r.svc.ResendQ, "resend_bytes", r.resendBytes())
	}
	if err := r.publish(); err != nil {
		return 0, err
	}
	if lag < 0 {
		time.Sleep(min(r.cfg.Poll, 10*time.Millisecond)) // the resend queue: it drains at the next LSN_out
		r.dropSent()
		return 0, nil
	}
	if _, err := r.s.WaitStatus(r.svc.StatusBase+1+lag, ver, r.cfg.Poll, nil); err != nil {
		return 0, err
	}
	r.dropSent()
	return 0, nil
}

// flowBound is flowRoom's measure, without its waits: the room, how far
// behind the laggard is, which it is (-1: this replica's own unsent
// outputs) and its progress record's version.
func (r *replica) flowBound() (room int, behind uint64, lag int, ver uint64) {
	t := uint64(0)
	t, lag, ver = r.trimBound()
	behind = r.applied - t
	if r.rec.Sender == r.pos && r.applied-r.lsnOut > behind {
		behind, lag = r.applied-r.lsnOut, -1 // its own outputs blocked: it retries them
	}
	if s := r.rec.Sender; s != r.pos && s != role.None {
		if p, v := r.progressV(s); p != nil && p.Tag == r.rec.Pos[s].Tag && p.LSNOut < r.applied && r.applied-p.LSNOut > behind {
			behind, lag, ver = r.applied-p.LSNOut, int(s), v
		}
	}
	if q := uint64(max(r.svc.ResendQ, 1)); behind < q {
		room = int(q - behind)
	}
	if mb := r.svc.ResendMB; mb > 0 && r.resendBytes() >= mb<<20 {
		room = 0
	}
	return room, behind, lag, ver
}

// progressV reads position k's progress record and its version (nil:
// never written).
func (r *replica) progressV(k uint8) (*role.Progress, uint64) {
	buf := make([]byte, r.s.StatusSize())
	v, err := r.s.ReadStatus(r.svc.StatusBase+1+int(k), buf)
	if err != nil {
		return nil, v
	}
	p, err := role.DecodeProgress(buf)
	if err != nil {
		return nil, v
	}
	return p, v
}

// trimBound is T of design 5.1 for this replica (the primary): the
// bound of trimBound below, read from the role record and the progress
// records now.
func (r *replica) trimBound() (t uint64, lag int, ver uint64) {
	return trimBound(r.rec, r.pos, r.applied, r.hold, r.progressV)
}

// trimBound is the LSN the log may be trimmed to (trim) for the primary
// in position self with applied and hold, by the role record rec and the
// progress records as progress reads them (with their versions): the min
// of the active secondaries' applied LSNs and of every donor's hold (the
// primary's too), with the position that sets it (-1: the primary) and
// the version of its progress record as read (flowRoom waits for it to
// change). A joiner waiting for a snapshot (its progress says so) counts
// only through its donor's hold: the log above the snapshot's LSN s is
// kept, since before the donor set hold = s no trim passed the donor's
// applied LSN, which s is. Any other joiner counts at its snapshot LSN, 0
// until restored, so no trim passes it while it may replay the log from
// LSN 1.
//
// The active positions (their applied LSNs and holds) are read before the
// joining ones: a donor clears its hold only after its joiner's progress
// shows it restored (or once the joiner can never finish, or is gone), so
// a joiner whose progress, read later, still says JOINER was held by a
// hold this bound saw; read the other way round, the joiner could restore
// and its donor clear the hold between the two reads, and neither would
// count.
func trimBound(rec *role.Role, self uint8, applied, hold uint64, progress func(uint8) (*role.Progress, uint64)) (t uint64, lag int, ver uint64) {
	t, lag = applied, -1
	if hold != 0 {
		t = min(t, hold)
	}
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := rec.Pos[k]
		if k == self || e.State == role.Vacant || e.State == role.Starting || e.State == role.Joining {
			continue
		}
		a := uint64(0)
		p, v := progress(k)
		if p != nil && p.Tag == e.Tag {
			a = p.Applied
			if p.Hold != 0 {
				a = min(a, p.Hold)
			}
		}
		if a < t {
			t, lag, ver = a, int(k), v
		}
	}
	for k := uint8(0); k < role.MaxReplicas; k++ {
		e := rec.Pos[k]
		if k == self || e.State != role.Joining {
			continue
		}
		p, v := progress(k)
		if p != nil && p.Tag == e.Tag && p.Role == role.SeenJoiner {
			continue // through its donor's hold
		}
		if e.SnapLSN < t {
			t, lag, ver = e.SnapLSN, int(k), v
		}
	}
	return t, lag, ver
}

// trim gets, in the caller's unit of work, the log messages every
// secondary has applied and every donor's hold lets go (design 5.1: T =
// min of the active secondaries' applied LSNs and the holds; trimBound).
//
// Nor past LSN_out as this replica last saw it: an input whose outputs
// are not sent stays in the log, so that if every replica dies it is
// among the log messages the next generation moves to the DEADQ (lost.go)
// rather than gone with the resend queues. Flow control keeps LSN_out
// within RESENDQ inputs of the primary, so the log window does not grow.
func (r *replica) trim() error { return r.trimSent(r.lsnOut) }

// trimSent is trim bounded by sent, the LSN whose outputs are sent (as
// committed, or as the caller's unit of work commits them).
func (r *replica) trimSent(sent uint64) error {
	t, _, _ := r.trimBound()
	t = min(t, sent)
	cur, err := r.logq.Browse()
	if err != nil {
		return err
	}
	upTo := uint64(0) // the last input the trimmed messages log
	for {
		m, err := cur.Next(mq.GetOptions{})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		lm, err := logrec.DecodeLog(m.Body)
		if err != nil {
			return fmt.Errorf("trim: log message %x: %w", m.CorrelID, err)
		}
		if lm.LastLSN > t {
			break
		}
		if _, err := r.logq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &m.CorrelID}); err != nil {
			return fmt.Errorf("trim: get log message %x: %w", m.CorrelID, err)
		}
		upTo = max(upTo, lm.LastLSN)
	}
	// INDEPENDENT: the inputs leave their queue with their log messages,
	// in this unit of work (independent.go).
	return r.indepAdopt(upTo)
}

// pendingOut is what send put in the current unit of work.
type pendingOut struct {
	lsnOut, outputs uint64
	ok              bool
	blocked         bool // it stopped at a full destination
}

// errBlocked: an output cannot be put now (its destination is full, or
// it was refused and the DEADQ cannot take it either); the send stops
// before it and is tried again later.
var errBlocked = errors.New("unit: output blocked")

// Backoff of a sender whose destination is full (design 5.4: mq has no
// wait for room).
const (
	sendBackoffMin = time.Millisecond
	sendBackoffMax = 50 * time.Millisecond
)

// send puts, in the caller's unit of work, the outputs above OUT's LSN_out
// up to this replica's applied LSN, and replaces OUT. OUT, got under
// syncpoint, serialises senders: whoever holds it sends what is above its
// LSN_out, so an output is put once whichever replica puts it.
//
// An output whose destination is full (or the CF structure) stops the
// send before it: OUT then says what was put, to the output (LSN_out the
// LSN before its, Part the outputs of its LSN put before it), the caller
// commits that, and the send is tried again after a backoff (1 ms
// doubling to 50 ms; pending.blocked). An output refused for good (its
// queue unknown, the message too long for it, a remote queue's route
// unknown, the object not a queue it can put to) goes to the DEADQ
// instead, behind a dead-letter header with the put's reason, its
// destination, and its MsgID the output's identity (unit, generation,
// the destination's sequence): it counts as sent, so LSN_out and the
// sequences go on as if it had been put.
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
	lsnOut, part, blocked := r.applied, uint64(0), false
	idx, last := uint64(0), uint64(0) // o's index among its LSN's outputs
	for i := range r.resend {
		o := &r.resend[i]
		if o.lsn != last {
			idx, last = 0, o.lsn
		} else {
			idx++
		}
		if o.lsn <= out.LSNOut || o.lsn > r.applied || o.lsn == out.LSNOut+1 && idx < out.Part {
			continue
		}
		err := r.putOutput(o)
		if errors.Is(err, errBlocked) {
			lsnOut, part, blocked = o.lsn-1, idx, true
			if r.sendBackoff == 0 {
				r.log.Warn("an output cannot be put: the sender retries", "lsn", o.lsn, "dest", o.dest, "seq", o.seq, "err", err)
			}
			break
		}
		if err != nil {
			return err
		}
		n++
	}
	if out.Sender != r.pos {
		out.Sender, out.Epoch = r.pos, r.rec.Epoch
	}
	out.Gen, out.LSNOut, out.Part, out.Outputs = r.gen, lsnOut, part, out.Outputs+n
	r.pending = pendingOut{lsnOut: lsnOut, outputs: n, ok: true, blocked: blocked}
	return r.putOut(out)
}

// putOutput puts o in the caller's unit of work, or its dead letter.
func (r *replica) putOutput(o *output) error {
	q, err := r.dest(o.dest)
	if err == nil {
		msg := o.msg
		if err = q.Put(&msg, mq.PutOptions{Syncpoint: true}); err == nil {
			return nil
		}
	}
	switch mq.ReasonOf(err) {
	case mq.RCQFull, mq.RCStorageMediumFull:
		return fmt.Errorf("%w: output %d to %s (LSN %d): %w", errBlocked, o.seq, o.dest, o.lsn, err)
	case mq.RCUnknownObjectName, mq.RCMsgTooBigForQ, mq.RCUnknownRemoteQMgr, mq.RCUnknownXmitQ, mq.RCNotValidForType:
		return r.deadLetter(o, err)
	}
	return fmt.Errorf("output %d to %s (LSN %d): %w", o.seq, o.dest, o.lsn, err)
}

// deadLetter puts o, refused by its destination for cause, on the queue
// manager's DEADQ behind a dead-letter header. No DEADQ, or one that
// cannot take it now: errBlocked (the output waits, nothing is lost).
func (r *replica) deadLetter(o *output, cause error) error {
	var m defs.QMgr
	if err := mqconn.Of(r.c).Defs.View(func(tx *defs.Tx) error { var err error; m, err = tx.QMgr(); return err }); err != nil {
		return fmt.Errorf("output %d to %s (LSN %d): %w; read the DEADQ: %v", o.seq, o.dest, o.lsn, cause, err)
	}
	if m.DeadQ == "" {
		return fmt.Errorf("%w: output %d to %s (LSN %d): %w, and the queue manager has no DEADQ", errBlocked, o.seq, o.dest, o.lsn, cause)
	}
	d := o.msg
	d.Body = mq.DLH{Reason: mq.ReasonOf(cause), DestQ: o.dest, DestQMgr: r.c.QMgr(), OrigFormat: o.msg.Format, Time: time.Now()}.Encode(o.msg.Body)
	d.Format = mq.FormatDeadLetter
	q, err := r.dest(m.DeadQ)
	if err == nil {
		err = q.Put(&d, mq.PutOptions{Syncpoint: true})
	}
	switch rc := mq.ReasonOf(err); {
	case err == nil:
		r.log.Warn("unit output refused by its destination: moved to the DEADQ", "lsn", o.lsn, "dest", o.dest, "seq", o.seq,
			"deadq", m.DeadQ, "reason", mq.ReasonOf(cause))
		return nil
	case rc == mq.RCQFull || rc == mq.RCStorageMediumFull || rc == mq.RCUnknownObjectName || rc == mq.RCMsgTooBigForQ:
		return fmt.Errorf("%w: output %d to %s (LSN %d): %w; the DEADQ %s: %w", errBlocked, o.seq, o.dest, o.lsn, cause, m.DeadQ, err)
	default:
		return fmt.Errorf("output %d to %s (LSN %d), to the DEADQ %s: %w", o.seq, o.dest, o.lsn, m.DeadQ, err)
	}
}

// sendDue reports whether this sender has outputs to put and its backoff
// after a blocked send has passed.
func (r *replica) sendDue() bool {
	return r.applied > r.lsnOut && !time.Now().Before(r.sendRetry)
}

// sendWait bounds a wait by when a blocked send is tried again.
func (r *replica) sendWait(d time.Duration) time.Duration {
	if r.rec.Sender == r.pos && r.applied > r.lsnOut && r.sendBackoff > 0 {
		return max(min(d, time.Until(r.sendRetry)), time.Millisecond)
	}
	return d
}

func (r *replica) putOut(out logrec.Out) error {
	out.Updated = time.Now().UnixNano()
	return r.state.Put(&mq.Message{CorrelID: logrec.OutCorrelID, Format: "MQRUOUT", Body: out.Encode(), Persistence: mq.NotPersistent},
		mq.PutOptions{Syncpoint: true})
}

// committedSend records what the committed unit of work sent, and sets
// the backoff of a send that stopped at a full destination.
func (r *replica) committedSend() {
	if r.pending.ok {
		r.lsnOut = max(r.lsnOut, r.pending.lsnOut)
		r.outputs += r.pending.outputs
		switch {
		case r.pending.blocked:
			r.sendBackoff = min(max(2*r.sendBackoff, sendBackoffMin), sendBackoffMax)
			r.sendRetry = time.Now().Add(r.sendBackoff)
		case r.sendBackoff > 0:
			r.log.Info("the blocked outputs are put: the sender goes on", "lsn_out", r.lsnOut)
			r.sendBackoff, r.sendRetry = 0, time.Time{}
		}
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
//
// A wait is ended by a change of the role record (watchRole) too: ok is
// false then.
func (r *replica) follow(wait time.Duration) (ok bool, err error) {
	lm, err := r.nextLog(wait) // CHAIN: gated by the predecessor (chain.go)
	if errors.Is(err, mq.ErrNoMessage) || errors.Is(err, mq.ErrInterrupted) && !r.stop.Interrupted() {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if lm.Gen != r.gen {
		return false, fmt.Errorf("%w: log message of generation %d, this replica's is %d", ErrLogGap, lm.Gen, r.gen)
	}
	if r.earlyLogging() {
		return true, r.earlyFollow(lm) // early.go
	}
	if lm.LastLSN != 0 && lm.LastLSN <= r.applied {
		return true, nil // applied already (a message seen again)
	}
	if lm.FirstLSN != 0 && lm.FirstLSN != r.applied+1 {
		return false, fmt.Errorf("%w: next message starts at LSN %d, this replica applied %d", ErrLogGap, lm.FirstLSN, r.applied)
	}
	for i := range lm.Records {
		rec := &lm.Records[i]
		if rec.Kind == logrec.KindCheck {
			if err := r.verifyCheck(rec); err != nil {
				return false, err
			}
			continue
		}
		if rec.Kind != logrec.KindInput {
			continue
		}
		in := rec.Input
		c := r.newCtx(in.LSN, lm.Epoch, true, in.Choices)
		input := &Input{LSN: in.LSN, MsgID: in.MsgID, CorrelID: in.CorrelID, Format: in.Format, Priority: int(in.Priority),
			Persistent: in.Persistent, PutTime: time.Unix(0, in.PutTime), ReplyToQ: in.ReplyToQ, ReplyToQMgr: in.ReplyToQMgr,
			Properties: in.Properties, Body: in.Body, Source: in.Source}
		if err := r.apply(c, input); err != nil {
			return false, err
		}
	}
	return true, r.verifyOutHash(lm)
}

// catchUp applies what is left of the log before a promoted secondary
// takes input: its predecessor's last unit of work was resolved before
// the promotion (the death transition waits for the recovery of its
// connection), so the log ends where it ends.
func (r *replica) catchUp() error {
	r.promoting = true
	defer func() { r.promoting = false }()
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
		r.rearm()
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
		if r.rec.Sender == r.pos && r.sendDue() {
			if err := r.sendAlone(); err != nil {
				return err
			}
		}
		r.dropSent()
		if err := r.publish(); err != nil {
			return err
		}
		if err := r.serveJoiners(); err != nil {
			return err
		}
		if ok, err := r.secondaryRested(); err != nil || ok {
			if ok {
				r.log.Info("stopped: the resting snapshot stands at this replica's LSN", "lsn", r.applied)
				return errRested
			}
			return err
		}
		if _, err := r.follow(r.sendWait(r.cfg.Poll)); err != nil {
			return err
		}
	}
	return nil
}

// sendAlone is a unit of work of its own that sends.
//
// A primary trims in it too, up to what the send completes (in the same
// unit of work): otherwise inputs whose outputs it sends after its last
// batch stay in the log for as long as no input comes.
func (r *replica) sendAlone() error {
	if err := r.send(); err != nil {
		return err
	}
	if r.rec.Primary == r.pos && r.pending.ok {
		if err := r.trimSent(max(r.lsnOut, r.pending.lsnOut)); err != nil {
			return err
		}
	}
	if err := r.c.Commit(); err != nil {
		return fmt.Errorf("commit of the outputs up to LSN %d: %w", r.pending.lsnOut, err)
	}
	r.committedSend()
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
