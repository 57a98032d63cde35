package request

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/mq"
)

// Crash points of a request's life, in the order a request hits them
// (tests SIGKILL a manager at each: QMGR_CRASHPOINT=name:n).
var (
	cpStarted        = crashpoint.New("request.start.committed") // the state record and live marker committed, the program not run yet
	cpCallPut        = crashpoint.New("request.call.put")        // a call put and recorded pending, not committed
	cpCallCommitted  = crashpoint.New("request.call.committed")  // the call committed: the server may take it
	cpReplyGot       = crashpoint.New("request.reply.got")       // a call's reply got and recorded, not committed
	cpReplyCommitted = crashpoint.New("request.reply.committed") // the reply consumed and recorded, committed
	cpFinalPut       = crashpoint.New("request.final.put")       // the final reply put and recorded, not committed
	cpFinalCommitted = crashpoint.New("request.final.committed") // the final reply committed
	cpDonePut        = crashpoint.New("request.done.put")        // the record marked ended (with a reply of the manager's), not committed
	cpDoneCommitted  = crashpoint.New("request.done.committed")  // the record marked ended, committed; the request message not yet removed
	cpEnded          = crashpoint.New("request.end.committed")   // the request message, record and marker removed: the request is over
	cpQuarantinePut  = crashpoint.New("request.quarantine.put")  // a request whose state cannot be read, its records and markers moved to the Unexpected Message Queue, not committed
)

// Program runs one request. It must be deterministic given its request
// and what its Ctx returns (calls' replies, loaded values): a request that
// resumes after a failure runs its program again from the top, and the
// Ctx replays the journal (see the package doc).
type Program func(ctx *Ctx, req *Request) error

// Request is a request as its program sees it.
type Request struct {
	ID          ID     // the request message's MsgID
	Mode        Mode   // its recovery mode
	Format      string // the body's format (the request header's, or the message's)
	Body        []byte // without the request header
	ReplyToQ    string
	ReplyToQMgr string
	PutTime     time.Time
}

// Manager is a running request manager: it takes requests from its input
// queue and runs its program on each, Config.Workers at a time.
type Manager struct {
	cfg      Config
	stopping atomic.Bool // take no more requests
	abort    atomic.Bool // abandon the requests running
	running  atomic.Int64
	done     chan struct{}
	stopc    chan struct{} // closed by Stop
	stopOnce sync.Once

	mu    sync.Mutex
	intrs map[*mq.Interrupter]struct{} // the waiting takes, interrupted by Stop and when a session ends

	waits stateWaits // the requests whose record was found held by a unit of work being recovered
}

// Start checks cfg, connects (through cfg.Connect.QMgr, or any active
// member), checks the queues and starts the manager. It fails, starting
// nothing, when a queue is missing or the input queue has a backout
// threshold.
func Start(cfg Config) (*Manager, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, done: make(chan struct{}), stopc: make(chan struct{}), intrs: map[*mq.Interrupter]struct{}{}}
	root, err := m.connect()
	if err != nil {
		return nil, fmt.Errorf("request: manager %s: connect: %w", cfg.Name, err)
	}
	if err := m.checkQueues(root); err != nil {
		root.Disconnect()
		return nil, err
	}
	go m.run(root)
	return m, nil
}

// checkQueues makes sure every queue the manager uses exists and that
// none of the input, state, reply and cancel queues has a backout
// threshold (which would move a request, a record, a reply or a cancel
// away behind the manager's back: each is got again after a backout).
func (m *Manager) checkQueues(c *mq.Conn) error {
	biggest, umqMax := 0, 0 // MAXMSGL of the queues whose messages may be moved to the UMQ, and the UMQ's
	for _, name := range []string{m.cfg.Input, m.cfg.StateQueue, m.cfg.ReplyQueue, m.cfg.CancelQueue, m.cfg.UnexpectedQueue, m.cfg.TombstoneQueue} {
		q, err := c.Open(name, mq.OpenOptions{Browse: true})
		if err != nil {
			if def := m.cfg.definitionOf(name); def != "" && errors.Is(err, mq.ErrUnknownObject) {
				// E.g. the tombstone queue, which deployments of an
				// earlier version lack: say what to run.
				return fmt.Errorf("request: queue %s is not defined; define it with %q (request.Definitions has the MQSC of every group-wide queue): %w", name, def, err)
			}
			if errors.Is(err, mq.ErrUnknownObject) {
				return fmt.Errorf("request: queue %s is not defined (request.Definitions has the MQSC of the group-wide ones): %w", name, err)
			}
			return fmt.Errorf("request: open %s: %w", name, err)
		}
		d := q.Def()
		q.Close()
		switch name {
		case m.cfg.UnexpectedQueue:
			umqMax = d.MaxMsgL
		case m.cfg.TombstoneQueue:
		default:
			biggest = max(biggest, d.MaxMsgL)
		}
		if name != m.cfg.UnexpectedQueue && name != m.cfg.TombstoneQueue && d.BOThresh > 0 { // those two are never got again after a backout
			return fmt.Errorf("request: queue %s has BOTHRESH(%d): a request manager's input, state, reply and cancel queues must have none (the manager decides what becomes of a request that failed, and takes again what a failure backed out)", name, d.BOThresh)
		}
	}
	if umqMax < biggest+uhSize {
		// A message of the largest size cannot be moved there behind its
		// header: it would be moved again and again, and fail each time.
		m.cfg.Log.Warn("the Unexpected Message Queue's MAXMSGL leaves no room for a header in front of the largest message of the other queues: such a message cannot be moved there",
			"queue", m.cfg.UnexpectedQueue, "maxmsgl", umqMax, "want_at_least", biggest+uhSize)
	}
	return nil
}

// connect connects through the configured member, or any active one.
func (m *Manager) connect() (*mq.Conn, error) {
	o := m.cfg.Connect
	c, err := mq.Connect(o)
	if err != nil && o.QMgr != "" {
		o.QMgr = ""
		c, err = mq.Connect(o)
	}
	return c, err
}

// Running is how many requests the manager is running now.
func (m *Manager) Running() int { return int(m.running.Load()) }

// Done is closed when the manager has stopped.
func (m *Manager) Done() <-chan struct{} { return m.done }

// StopGrace is how long Stop waits, once its ctx has ended, for the
// running requests to reach their next step and be abandoned.
const StopGrace = 2 * time.Second

// Stop stops taking requests and waits for the running ones to end. If ctx
// ends first, the running requests are abandoned at their next step (each
// goes back to the input queue, and is taken again as its mode says) and
// Stop waits StopGrace for that. A program that does not come back to its
// Ctx within it (blocked on something of its own) is left running, and
// Stop returns ErrStopTimeout: its request goes back to the input queue at
// its next step, or when the process exits.
func (m *Manager) Stop(ctx context.Context) error {
	m.stopping.Store(true)
	m.stopOnce.Do(func() { close(m.stopc) })
	m.interruptAll()
	select {
	case <-m.done:
		return nil
	case <-ctx.Done():
	}
	m.abort.Store(true)
	m.interruptAll()
	grace := time.NewTimer(StopGrace)
	defer grace.Stop()
	select {
	case <-m.done:
		return nil
	case <-grace.C:
		return fmt.Errorf("%w: %w", ErrStopTimeout, ctx.Err())
	}
}

func (m *Manager) interruptAll() {
	m.mu.Lock()
	for i := range m.intrs {
		i.Interrupt()
	}
	m.mu.Unlock()
}

func (m *Manager) register(i *mq.Interrupter) func() {
	m.mu.Lock()
	m.intrs[i] = struct{}{}
	m.mu.Unlock()
	if m.stopping.Load() {
		i.Interrupt()
	}
	return func() {
		m.mu.Lock()
		delete(m.intrs, i)
		m.mu.Unlock()
	}
}

// run runs sessions, one per connection to a member, until Stop. After a
// session that lasted Config.MaxBackoff or longer (a member died, say) it
// connects again at once; after one that ended sooner, it waits first:
// ReconnectWait, then twice as long after each further quick one, at most
// MaxBackoff. So a session that ends at once every time (every connection
// slot of the group taken, MQRC 2025; a queue it needs unusable) does not
// spin connect and disconnect.
func (m *Manager) run(root *mq.Conn) {
	defer close(m.done)
	quick := 0 // sessions in a row that ended sooner than MaxBackoff
	for {
		began := time.Now()
		err := m.session(root)
		root.Disconnect()
		if m.stopping.Load() {
			return
		}
		lived := time.Since(began)
		wait := time.Duration(0)
		if lived < m.cfg.MaxBackoff {
			quick++
			wait = backoff(m.cfg.ReconnectWait, m.cfg.MaxBackoff, quick)
		} else {
			quick = 0
		}
		m.cfg.Log.Warn("request manager session ended; connecting again", "manager", m.cfg.Name, "err", err, "reason", mq.ReasonOf(err),
			"lived", lived.Round(time.Millisecond), "quick", quick, "wait", wait)
		if !m.pause(wait) {
			return
		}
		for {
			if m.stopping.Load() {
				return
			}
			var cerr error
			if root, cerr = m.connect(); cerr == nil {
				break
			}
			time.Sleep(m.cfg.ReconnectWait) // pacing between attempts to reach a member, not synchronisation
		}
		m.cfg.Log.Info("request manager connected", "manager", m.cfg.Name, "member", root.QMgr())
	}
}

// pause waits d, or less if the manager stops: then it reports false.
func (m *Manager) pause(d time.Duration) bool {
	if d <= 0 {
		return !m.stopping.Load()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.stopc:
		return false
	case <-t.C:
		return !m.stopping.Load()
	}
}

// session is the workers and sweeper on one connection (root) and its
// siblings. The first worker whose connection broke ends it: every worker
// stops taking, and the manager connects again.
type session struct {
	m     *Manager
	ended atomic.Bool
	errc  chan error
	quit  chan struct{} // closed when ended is set
}

func (m *Manager) session(root *mq.Conn) error {
	s := &session{m: m, errc: make(chan error, m.cfg.Workers+1), quit: make(chan struct{})}
	var conns []*mq.Conn
	defer func() {
		for _, c := range conns {
			c.Disconnect()
		}
	}()
	sibling := func() (*mq.Conn, error) {
		c, err := root.Sibling()
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	var workers []*worker
	for i := 0; i < m.cfg.Workers; i++ {
		l, err := sibling()
		if err != nil {
			return err
		}
		w, err := sibling()
		if err != nil {
			return err
		}
		workers = append(workers, &worker{m: m, s: s, l: newHandles(l), w: newHandles(w)})
	}
	var sw *sweeper
	if m.cfg.SweepInterval > 0 {
		c, err := sibling()
		if err != nil {
			return err
		}
		sw = &sweeper{m: m, s: s, h: newHandles(c)}
	}
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.errc <- w.loop()
		}()
	}
	if sw != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.errc <- sw.loop()
		}()
	}
	var first error
	for range len(workers) + btoi(sw != nil) {
		if err := <-s.errc; err != nil && first == nil {
			first = err
			s.ended.Store(true)
			close(s.quit)
			m.interruptAll()
		}
	}
	wg.Wait()
	return first
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// stopTaking reports whether a worker must take no more requests.
func (s *session) stopTaking() bool { return s.m.stopping.Load() || s.ended.Load() }

// handles is a connection and the queues it opened, by name and options.
type handles struct {
	c  *mq.Conn
	qs map[handleKey]*mq.Queue
}

type handleKey struct {
	name string
	opts mq.OpenOptions
}

func newHandles(c *mq.Conn) *handles { return &handles{c: c, qs: map[handleKey]*mq.Queue{}} }

func (h *handles) open(name string, opts mq.OpenOptions) (*mq.Queue, error) {
	k := handleKey{name, opts}
	if q := h.qs[k]; q != nil {
		return q, nil
	}
	q, err := h.c.Open(name, opts)
	if err != nil {
		return nil, err
	}
	h.qs[k] = q
	return q, nil
}

var (
	optIn    = mq.OpenOptions{Input: true}
	optOut   = mq.OpenOptions{Output: true}
	optAll   = mq.OpenOptions{Input: true, Output: true, Browse: true}
	optBrows = mq.OpenOptions{Browse: true, Input: true}
)

// broken reports whether err means the connection is gone (its member
// died or stopped, or it was revoked).
func broken(err error) bool {
	switch mq.ReasonOf(err) {
	case mq.RCConnectionBroken, mq.RCQMgrNotAvailable, mq.RCQMgrStopping:
		return true
	}
	return false
}

// worker runs requests one at a time on its two connections: l holds the
// request message (the lock) for the request's whole run, w commits its
// steps.
type worker struct {
	m    *Manager
	s    *session
	l, w *handles
}

// loop takes requests until the manager stops or the session ends; it
// returns an error when a connection broke.
func (w *worker) loop() error {
	in, err := w.l.open(w.m.cfg.Input, optIn)
	if err != nil {
		return err
	}
	var intr mq.Interrupter
	defer w.m.register(&intr)()
	for !w.s.stopTaking() {
		msg, err := in.Get(mq.GetOptions{Syncpoint: true, Wait: mq.WaitForever, Interrupt: &intr})
		if errors.Is(err, mq.ErrInterrupted) {
			continue
		}
		if err != nil {
			return fmt.Errorf("request: take from %s: %w", w.m.cfg.Input, err)
		}
		w.m.running.Add(1)
		err = w.handle(msg)
		w.m.running.Add(-1)
		if err != nil {
			// Abandon the request: it goes back to the input queue, its
			// backout count raised, and is taken again as its mode says.
			w.w.c.Backout()
			w.l.c.Backout()
			if broken(err) || errors.Is(err, ErrAbandoned) {
				return err
			}
			if errors.Is(err, errStateInFlight) {
				w.stateInFlight(ID(msg.MsgID))
				continue
			}
			if errors.Is(err, errClaimLost) {
				w.m.cfg.Log.Info("request created by two request messages with its id at once; taking it again later", "manager", w.m.cfg.Name, "request", ID(msg.MsgID))
				// Pacing, with jitter so that two that gave way to each
				// other do not meet again.
				time.Sleep(w.m.cfg.ReconnectWait/2 + rand.N(w.m.cfg.ReconnectWait))
				continue
			}
			w.m.cfg.Log.Error("request abandoned", "manager", w.m.cfg.Name, "request", ID(msg.MsgID), "err", err)
			time.Sleep(w.m.cfg.ReconnectWait) // pacing: a persistent failure (a full queue) must not spin
		}
	}
	return nil
}

// handle runs request message msg, taken under syncpoint on l, to its end.
// An error leaves it to be backed out.
func (w *worker) handle(msg *mq.Message) error {
	cfg := &w.m.cfg
	id := ID(msg.MsgID)
	req := &Request{ID: id, Format: msg.Format, Body: msg.Body, ReplyToQ: msg.ReplyToQ, ReplyToQMgr: msg.ReplyToQMgr, PutTime: msg.PutTime}
	mode := ModeDefault
	if msg.Format == FormatRequest {
		h, body, err := ParseRequestHeader(msg.Body)
		if err != nil {
			return w.reject(msg, err)
		}
		mode, req.Format, req.Body = h.Mode, h.Format, body
	}
	if mode == ModeDefault {
		mode = cfg.DefaultMode
	}
	c := &Ctx{w: w, req: req, key: KeyOf(id), persistent: msg.Persistent}
	lock := msg.Token
	rec, raw, held, err := w.readState(c.key)
	if errors.Is(err, errBadState) {
		return w.quarantine(msg, c.key, err)
	}
	if err != nil {
		return err
	}
	if held {
		// A live marker whose record is not on the state queue: that
		// record is held by the unit of work of a step whose manager
		// died (that connection not recovered yet although the one
		// that held the request is), or being replaced. Taken for a
		// request that never started, it would get a second record and
		// marker and run again from the top; taken for the duplicate of
		// the records it can see, or theirs for its, the request message
		// whose record it is would be moved aside, and the other once it
		// is back. So it is taken again once the record is back, and
		// then the most advanced record says which message is the
		// request (readState).
		return errStateInFlight
	}
	if rec != nil && otherLock(rec, lock) {
		return w.duplicate(msg)
	}
	c.last = raw
	w.m.waits.settle(id)
	switch {
	case rec == nil:
		// Never started (or started and failed before its first commit,
		// before its program ran: the same thing).
		req.Mode = mode
		now := time.Now()
		c.rec = &Record{Mode: mode, Status: StatusRunning, Attempts: 1, NextSeq: 1, RequestID: id, Lock: lock, Created: now, Updated: now,
			Manager: cfg.Name, ReplyToQ: msg.ReplyToQ, ReplyQMgr: msg.ReplyToQMgr}
		c.attempt = 1
		testHookBeforeCreate(id)
		if err := c.create(); err != nil {
			return err
		}
		if err := c.claim(); err != nil {
			return err
		}
		cpStarted.Hit()
	case rec.Status >= StatusDone:
		// Ended, but its manager died before removing it.
		req.Mode = rec.Mode
		c.rec = rec
		return c.finish()
	default:
		// It failed (its manager or member died, or it was abandoned).
		req.Mode = rec.Mode
		c.rec = rec
		if rec.Lock == 0 {
			// Created by a manager of version 1: the request message
			// that resumes it holds it from now on (its next commit
			// says so), and another with its id is a duplicate.
			rec.Lock = lock
		}
		c.journal = rec.Journal
		c.attempt = rec.Attempts
		cfg.Log.Info("request resumed", "manager", cfg.Name, "request", id, "mode", rec.Mode, "attempts", rec.Attempts, "backouts", msg.BackoutCount)
		switch rec.Mode {
		case ModeNonRecoverable:
			if c.cancelSeen() {
				return c.end(StatusCancelled, nil)
			}
			return c.end(StatusPurged, nil)
		case ModeRestartable:
			if c.cancelSeen() {
				return c.cancelEnd()
			}
			if ended, err := c.restart(); ended || err != nil {
				return err
			}
		case ModeRecoverable:
			if int(rec.Attempts) > cfg.MaxResumes {
				// Resumed MaxResumes times (Attempts counts the takes):
				// this take would be one more.
				if c.cancelSeen() {
					return c.cancelEnd()
				}
				return c.resumedOut()
			}
			c.rec.Attempts++
			c.attempt = c.rec.Attempts
			if err := c.commitRecord(); err != nil {
				return err
			}
		}
	}
	return c.run()
}

// reject moves a request whose request header is malformed to the
// Unexpected Message Queue, in l's unit of work that removes it.
func (w *worker) reject(msg *mq.Message, why error) error {
	if err := w.moveAside(msg, ReasonBadRequest); err != nil {
		return err
	}
	w.m.cfg.Log.Warn("malformed request moved to the Unexpected Message Queue", "request", ID(msg.MsgID), "err", why)
	return nil
}

// duplicate moves request message msg, whose request id is another's in
// flight, to the Unexpected Message Queue: the request runs once, from the
// other.
func (w *worker) duplicate(msg *mq.Message) error {
	if err := w.moveAside(msg, ReasonDuplicate); err != nil {
		return err
	}
	w.m.cfg.Log.Warn("request message with the id of another in flight moved to the Unexpected Message Queue", "manager", w.m.cfg.Name, "request", ID(msg.MsgID), "err", ErrDuplicate)
	return nil
}

// moveAside moves request message msg to the Unexpected Message Queue
// behind a header saying why, in l's unit of work that removes it, and
// commits.
func (w *worker) moveAside(msg *mq.Message, why Reason) error {
	umq, err := w.l.open(w.m.cfg.UnexpectedQueue, optOut)
	if err != nil {
		return err
	}
	h := UnexpectedHeader{Reason: why, RequestID: ID(msg.MsgID), CorrelID: msg.CorrelID, OrigQ: w.m.cfg.Input, Time: time.Now(), OrigFormat: msg.Format}
	if err := putUnexpected(umq, msg, h); err != nil {
		return err
	}
	return w.l.c.Commit()
}

// putUnexpected puts m behind header h on umq, the Unexpected Message
// Queue, under syncpoint: its CorrelID, reply-to and persistence kept.
func putUnexpected(umq *mq.Queue, m *mq.Message, h UnexpectedHeader) error {
	p := mq.NotPersistent
	if m.Persistent {
		p = mq.Persistent
	}
	return umq.Put(&mq.Message{CorrelID: m.CorrelID, Format: FormatUnexpected, Body: h.Encode(m.Body), ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr, Persistence: p}, mq.PutOptions{Syncpoint: true})
}

// otherLock reports whether record r (or marker) is another request
// message's than the one whose token is lock (Record.Lock; zero in a
// version 1 record: not known, taken for the same).
func otherLock(r *Record, lock uint64) bool { return r.Lock != 0 && r.Lock != lock }

// testHookBeforeCreate runs between a new request's read of its state
// (none) and the commit that creates it (tests hold a run there).
var testHookBeforeCreate = func(ID) {}

// testHookBeforeFinishCommit runs in the unit of work that removes an
// ended request (its message, records and markers got), before its commit.
var testHookBeforeFinishCommit = func(ID) {}

// errClaimLost: a request whose state this run created finds that a
// duplicate request message created it too (Ctx.claim); its state is
// withdrawn, it is backed out and taken again.
var errClaimLost = errors.New("request: another request message with this id created the state too")

// quarantine moves a request whose state cannot be read (why: a record
// that is corrupt, or of a newer version than this code knows) to the
// Unexpected Message Queue, saying BAD_STATE, in l's unit of work that
// holds it: the request message, every record and live marker of the
// request, each behind its header (OrigQ the queue it was on, its bytes
// unchanged: a newer manager's record is kept, not overwritten), and its
// cancels removed. Running it would be guessing its state, and taking it
// again would fail the same way for ever. All or nothing: a manager that
// dies before the commit leaves everything as it was, and the next one to
// take the request does the same. The request sends no reply (whether it
// sent its final reply is in the record that cannot be read) and is not
// reported through Config.Ended.
func (w *worker) quarantine(msg *mq.Message, k Key, why error) error {
	cfg := &w.m.cfg
	id := ID(msg.MsgID)
	umq, err := w.l.open(cfg.UnexpectedQueue, optOut)
	if err != nil {
		return err
	}
	st, err := w.l.open(cfg.StateQueue, optAll)
	if err != nil {
		return err
	}
	now := time.Now()
	move := func(m *mq.Message, from string) error {
		h := UnexpectedHeader{Reason: ReasonBadState, RequestID: id, CorrelID: m.CorrelID, OrigQ: from, Time: now, OrigFormat: m.Format}
		if err := putUnexpected(umq, m, h); err != nil {
			return fmt.Errorf("request: move %s of %s to %s: %w", m.Format, id, cfg.UnexpectedQueue, err)
		}
		return nil
	}
	if err := move(msg, cfg.Input); err != nil {
		return err
	}
	moved := 0
	for _, tag := range []uint32{ciTagRecord, ciTagLive} {
		correl := tagID(k, tag)
		for {
			m, err := st.Get(mq.GetOptions{Syncpoint: true, CorrelID: &correl})
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return err
			}
			if err := move(m, cfg.StateQueue); err != nil {
				return err
			}
			moved++
		}
	}
	cq, err := w.l.open(cfg.CancelQueue, optIn)
	if err != nil {
		return err
	}
	for {
		correl := [24]byte(id)
		if _, err := cq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &correl}); err != nil {
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			return err
		}
	}
	cpQuarantinePut.Hit()
	if err := w.l.c.Commit(); err != nil {
		return fmt.Errorf("request: quarantine %s: %w", id, err)
	}
	cfg.Log.Error("request quarantined: its state cannot be read; the request, its records and markers moved to the Unexpected Message Queue (BAD_STATE)",
		"manager", cfg.Name, "request", id, "moved", moved+1, "queue", cfg.UnexpectedQueue, "err", why)
	return nil
}

// stateInFlight follows a take of request id, backed out because its
// record is held by a unit of work not yet recovered (errStateInFlight):
// it logs it (at Warn once that has lasted Config.StateWaitWarn), then
// waits before the worker takes again, less and less often the longer it
// lasts (stateWaits), but no longer than until the record is back. The
// worker takes nothing meanwhile; the request is not run twice: it has one
// lock, the request message, and the record comes back once the member
// recovers the dead unit of work that holds it.
func (w *worker) stateInFlight(id ID) {
	cfg := &w.m.cfg
	wait, since, takes := w.m.waits.take(id, time.Now(), cfg.ReconnectWait, cfg.MaxBackoff)
	level := slog.LevelInfo
	if since > cfg.StateWaitWarn {
		level = slog.LevelWarn
	}
	cfg.Log.Log(context.Background(), level, "request's state held by a dead manager's step not yet recovered; taking it again later",
		"manager", cfg.Name, "request", id, "takes", takes, "waited", since.Round(time.Millisecond), "next", wait)
	k := KeyOf(id)
	t := time.NewTimer(0)
	defer t.Stop()
	for deadline := time.Now().Add(wait); ; {
		left := time.Until(deadline)
		if left <= 0 {
			return
		}
		t.Reset(min(cfg.ReconnectWait, left))
		select {
		case <-w.m.stopc:
			return
		case <-w.s.quit:
			return
		case <-t.C:
		}
		if _, _, held, err := w.readState(k); !held || err != nil {
			return // take it now (an error: the take says what it is)
		}
	}
}

// stateWaits is, by request, the takes that found its record held by a
// unit of work being recovered (errStateInFlight), for the back-off.
type stateWaits struct {
	mu sync.Mutex
	m  map[ID]*stateWait
}

type stateWait struct {
	first, last time.Time // the first and latest such take
	takes       int
}

// take records such a take of request id at now, and gives how long to
// wait before taking it again (base, doubling with each take, at most
// max), how long its record has been found so, and how many takes. A
// request not taken so for longer than 2*max (another manager took it,
// or the record came back and went again) starts again from base; such
// entries are forgotten.
func (s *stateWaits) take(id ID, now time.Time, base, max time.Duration) (wait, since time.Duration, takes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[ID]*stateWait{}
	}
	for k, e := range s.m {
		if now.Sub(e.last) > 2*max {
			delete(s.m, k)
		}
	}
	e := s.m[id]
	if e == nil {
		e = &stateWait{first: now}
		s.m[id] = e
	}
	e.last = now
	e.takes++
	return backoff(base, max, e.takes), now.Sub(e.first), e.takes
}

// settle forgets request id: its record is back (or it has none).
func (s *stateWaits) settle(id ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// backoff is the n-th wait (n from 1) of a back-off from base, doubling,
// at most max.
func backoff(base, max time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// errStateInFlight: a request taken over whose record is held by a dead
// unit of work not yet recovered; it is backed out and taken again.
var errStateInFlight = errors.New("request: the state record is held by a unit of work being recovered")

// errBadState: a record (or live marker) of the request cannot be read:
// it is corrupt, or of a newer version than this code knows. The request
// is quarantined (worker.quarantine).
var errBadState = errors.New("request: the request's state cannot be read")

// readState browses the state queue for the records of request k and
// gives the most advanced (nil: none; mostAdvanced says why there may be
// more than one) with its bytes (the run's fence: Ctx.last), and whether
// a record of the request is held by a unit of work (held: a live marker
// of a request message, Record.Lock, none of whose records is there).
// Every step of a run gets its record and puts the new one in one unit
// of work, and a record is removed with its marker (Ctx.finish, Ctx.claim,
// the stale records of another request message in Ctx.takeRecords), so a
// marker whose record is not seen has one coming back. A record that
// cannot be read fails it with errBadState; markers that cannot be read
// are left to the records: held when there is none.
func (w *worker) readState(k Key) (rec *Record, raw []byte, held bool, err error) {
	recs, err := browseRecords(w.w, w.m.cfg.StateQueue, tagID(k, ciTagRecord))
	if err != nil {
		return nil, nil, false, err
	}
	best := mostAdvanced(recs)
	live, err := browseRecords(w.w, w.m.cfg.StateQueue, tagID(k, ciTagLive))
	if errors.Is(err, errBadState) {
		return nil, nil, best == nil, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	held = heldIn(recs, live)
	if best == nil {
		return nil, nil, held, nil
	}
	return best.rec, best.raw, held, nil
}

// heldIn reports whether one of live markers has no record among recs
// (Record.Lock; a marker of version 1, lock zero, is any record's: the
// request message that resumed its record took the record's lock).
func heldIn(recs, live []browsed) bool {
	for _, m := range live {
		if !slices.ContainsFunc(recs, func(r browsed) bool { return m.rec.Lock == 0 || r.rec.Lock == m.rec.Lock }) {
			return true
		}
	}
	return false
}

// mostAdvanced is the most advanced (moreAdvanced) of records all; nil if
// none. A request has one record, but for a while after a manager killed
// inside the commit that created its state, once its member carries that
// commit out after another manager took the request and created its own:
// then the other manager's, which has run since, is the one to resume
// from (and its next step removes the stale one: writeRecord); or when
// two request messages with its id created it (Ctx.claim).
func mostAdvanced(all []browsed) *browsed {
	var best *browsed
	for i := range all {
		if best == nil || moreAdvanced(all[i].rec, best.rec) {
			best = &all[i]
		}
	}
	return best
}

// browsed is a record (or marker) on the state queue: decoded, its bytes,
// and its message's MsgID (to get that one).
type browsed struct {
	rec   *Record
	raw   []byte
	msgID [24]byte
}

// browseRecords browses queue for every record (or marker) with CorrelID
// correl.
func browseRecords(h *handles, queue string, correl [24]byte) ([]browsed, error) {
	q, err := h.open(queue, optBrows)
	if err != nil {
		return nil, err
	}
	cur, err := q.Browse()
	if err != nil {
		return nil, err
	}
	var all []browsed
	for {
		m, err := cur.Next(mq.GetOptions{CorrelID: &correl})
		if errors.Is(err, mq.ErrNoMessage) {
			return all, nil
		}
		if err != nil {
			return nil, err
		}
		rec, err := ParseRecord(m.Body)
		if err != nil {
			return nil, fmt.Errorf("%w: the %s message on %s: %w", errBadState, m.Format, queue, err)
		}
		all = append(all, browsed{rec: rec, raw: m.Body, msgID: m.MsgID})
	}
}

// moreAdvanced reports whether record a is further on than record b of
// the same request: more attempts (or takes), else further in its status
// (running, final reply sent, ended), else a longer journal, else more
// calls sent, else updated later. Every field but the last only grows as
// a request goes on, in every mode: a restartable record keeps no journal
// before its final reply and a non-recoverable one none, so their progress
// shows in the status and the next call's number. Updated, the clock of
// whichever manager wrote the record (another host's, maybe ahead), only
// breaks a tie.
func moreAdvanced(a, b *Record) bool {
	if a.Attempts != b.Attempts {
		return a.Attempts > b.Attempts
	}
	if sa, sb := min(a.Status, StatusDone), min(b.Status, StatusDone); sa != sb {
		return sa > sb
	}
	if len(a.Journal) != len(b.Journal) {
		return len(a.Journal) > len(b.Journal)
	}
	if a.NextSeq != b.NextSeq {
		return a.NextSeq > b.NextSeq
	}
	return a.Updated.After(b.Updated)
}
