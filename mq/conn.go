package mq

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/recovery/plog"
	"github.com/qmgr/qmgr/shm"
	"github.com/qmgr/qmgr/xmit"
)

// Crash points of a commit of persistent work, in the order they are hit.
var (
	cpCommitBegin    = crashpoint.New("mq.commit.begin")    // a commit of persistent work, before it marks itself in flight
	cpCommitAppended = crashpoint.New("mq.commit.appended") // the commit record handed to the member, not known durable
	cpCommitDurable  = crashpoint.New("mq.commit.durable")  // the commit record durable (or its wait failed)
	cpCommitDecided  = crashpoint.New("mq.commit.decided")  // the commit decision recorded in the admin structure
	cpAbortRecord    = crashpoint.New("mq.commit.abort")    // checked with Fail: recording an abort fails
)

// ConnectOptions say which group and member to connect through.
type ConnectOptions struct {
	Group   string // group name; default QSG1
	QMgr    string // member to connect through; empty for any active member
	DataDir string // the group's data directory; default as group.Config
	CFDir   string // the group's CF directory; default as group.Config
}

// Conn is a connection to the group through one member (MQ's hconn). Like
// an MQ connection handle it is not safe for concurrent use: use one per
// goroutine. If the application's process dies, its member backs out its
// unit of work; if the member dies, its peers do, and every later call on
// the connection fails with RCConnectionBroken.
type Conn struct {
	g     *group.Group
	repo  *defs.Repo
	peer  group.Peer
	admin *lockfree.Owner

	owners  map[string]*lockfree.Owner // per application structure, same slot as admin
	defsVer uint64
	queues  map[string]defs.Queue
	remotes map[string]defs.QRemote
	structs map[string]defs.CFStruct // the structures' definitions (their offload rules)
	qmgr    defs.QMgr
	closed  bool
	// broken: a commit could neither be decided nor its abort recorded
	// (abortLogged); every call but Disconnect fails with 2009.
	broken bool
	// abandoned: that operation, not resolved yet (resolveAbandoned,
	// decide.go). abandonMu guards it and serialises the resolving
	// goroutine with Disconnect.
	abandonMu sync.Mutex
	abandoned *undecided
	shared    bool       // a Sibling: g and repo belong to another connection
	plog      *connLog   // the connection's ring in its member's log buffer (persist.go); nil until first used
	puow      persistUOW // the unit of work's persistent work
	// doomed: why the unit of work can only be backed out, nil while it
	// may commit. owner sets it when it drops an owner holding part of the
	// unit of work (its structure failed and was recovered: that part is
	// gone), Commit when a structure of the unit of work is out of service
	// (lostIn); Commit then backs the rest out; endUOW clears it.
	doomed error
	// lost: owners in structures that failed whose share of a unit of
	// work was backed out, lost with the structure (their lists still
	// hold it: the failed structure refused the backout). A later unit of
	// work leaves them out, and owner drops them without dooming it.
	lost map[*lockfree.Owner]bool
}

// Connect connects to the group through a member.
func Connect(o ConnectOptions) (*Conn, error) {
	cfg := group.Config{Name: o.Group, DataDir: o.DataDir, CFDir: o.CFDir}
	g, err := group.Open(cfg, false)
	if err != nil {
		return nil, wrap("connect", err)
	}
	c, err := connect(g, nil, o.QMgr)
	if err != nil {
		g.Close()
	}
	return c, err
}

// Sibling connects again through the same member, sharing c's group
// handle and definitions repository: structures are mapped once per
// process (attaching one populates its page tables, which takes a while
// for a large one). The sibling is a connection of its own, with its own
// unit of work and recovery; c must stay connected while it is.
func (c *Conn) Sibling() (*Conn, error) {
	if err := c.check("connect"); err != nil {
		return nil, err
	}
	return connect(c.g, c.repo, c.peer.Name)
}

// connect registers a connection through member name (any, when empty)
// of group g; with a nil repo it opens its own definitions repository
// (and closes g with it at Disconnect).
func connect(g *group.Group, repo *defs.Repo, name string) (*Conn, error) {
	c := &Conn{g: g, repo: repo, shared: repo != nil, owners: map[string]*lockfree.Owner{}}
	fail := func(r Reason, err error) (*Conn, error) {
		if c.admin != nil {
			c.admin.Close()
		}
		if c.repo != nil && !c.shared {
			c.repo.Close()
		}
		return nil, &Error{Op: "connect", Reason: r, Err: err}
	}
	peer, err := pickMember(g, name)
	if err != nil {
		return fail(RCQMgrNotAvailable, err)
	}
	c.peer = peer
	admin, err := g.Admin().RegisterLabel(group.ConnLabel(peer.Slot, peer.Incarnation))
	if err != nil {
		return fail(connectReason(err), fmt.Errorf("no free connection slot: %w", err))
	}
	admin.SetRevocable(true)
	c.admin = admin
	// The member may have died between our look and our registration; if
	// it did, its recovery may have missed us: check again.
	if now, err := g.Peer(peer.Slot); err != nil || now.State != group.PeerActive || now.Incarnation != peer.Incarnation {
		return fail(RCQMgrNotAvailable, fmt.Errorf("member %s stopped while connecting", peer.Name))
	}
	if !c.shared {
		if c.repo, err = defs.Open(g.Config().DataDir, false); err != nil {
			return fail(reasonFor(err), err)
		}
	}
	return c, nil
}

func pickMember(g *group.Group, name string) (group.Peer, error) {
	peers, err := g.Peers()
	if err != nil {
		return group.Peer{}, err
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	for _, p := range peers {
		if (name == "" || p.Name == name) && p.State == group.PeerActive {
			if err := group.CheckPidNS(p); err != nil {
				return group.Peer{}, err // it could not watch us, nor we it
			}
			if p.ProcessAlive() {
				return p, nil
			}
		}
	}
	if name == "" {
		return group.Peer{}, fmt.Errorf("no active member in group %s", g.Config().Name)
	}
	return group.Peer{}, fmt.Errorf("member %s of group %s is not running", name, g.Config().Name)
}

// QMgr is the name of the member the connection goes through.
func (c *Conn) QMgr() string { return c.peer.Name }

// Group is the group's configuration.
func (c *Conn) Group() group.Config { return c.g.Config() }

// Tag is the connection's owner tag in the admin structure.
func (c *Conn) Tag() lockfree.OwnerTag { return c.admin.Tag() }

// Member is the peer record of the member the connection goes through, as
// it was at Connect.
func (c *Conn) Member() group.Peer { return c.peer }

// Ping reports whether the connection still works: RCConnectionBroken once
// it was revoked (its member died or stopped).
func (c *Conn) Ping() error {
	if err := c.check("ping"); err != nil {
		return err
	}
	if err := c.admin.Check(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// The queue manager's own components (the channel initiator, the chaos
// harness) reach the connection's group handle, admin owner and
// definitions repository through package internal/mqconn, out of reach of
// applications.
func init() {
	mqconn.Register(func(c *Conn) mqconn.Parts {
		return mqconn.Parts{Group: c.g, Admin: c.admin, Defs: c.repo, OwnerIn: c.owner}
	})
}

// refresh reloads cached definitions when the group's definitions changed.
func (c *Conn) refresh() error {
	v, err := c.g.Counter(group.CounterDefs)
	if err != nil {
		return err
	}
	if c.queues != nil && v == c.defsVer {
		return nil
	}
	queues := map[string]defs.Queue{}
	remotes := map[string]defs.QRemote{}
	var qm defs.QMgr
	structs := map[string]defs.CFStruct{}
	err = c.repo.View(func(tx *defs.Tx) error {
		cs, err := tx.Structs("*")
		for _, d := range cs {
			structs[d.Name] = d
		}
		if err != nil {
			return err
		}
		qs, err := tx.Queues("*")
		for _, q := range qs {
			queues[q.Name] = q
		}
		if err != nil {
			return err
		}
		rs, err := tx.QRemotes("*")
		for _, r := range rs {
			remotes[r.Name] = r
		}
		if err != nil {
			return err
		}
		qm, err = tx.QMgr()
		return err
	})
	if err != nil {
		return err
	}
	c.queues, c.remotes, c.qmgr, c.structs, c.defsVer = queues, remotes, qm, structs, v
	return nil
}

// owner returns the connection's owner in structure name, registering the
// connection's slot there the first time, and again when the structure
// failed and was recovered since. The owner in the failed structure is
// dropped; if it held part of the unit of work (puts or gets under
// syncpoint), that part is gone with the structure, and the unit of work
// is doomed: Commit backs the rest out and answers RCBackedOut.
func (c *Conn) owner(name string) (*lockfree.Owner, *lockfree.Structure, error) {
	s, err := c.g.Structure(name, false)
	if err != nil {
		return nil, nil, err
	}
	if o, ok := c.owners[name]; ok {
		if o.Structure() == s {
			return o, s, nil
		}
		if o.InUOW() && !c.lost[o] && c.doomed == nil {
			c.doomed = fmt.Errorf("structure %s failed and was recovered: the unit of work's puts and gets there were lost", name)
		}
		delete(c.owners, name)
		delete(c.lost, o)
	}
	o, err := s.RegisterSlotLabel(c.admin.Tag().Slot(), c.admin.Label())
	if err != nil {
		return nil, nil, fmt.Errorf("connection slot %d in structure %s: %w", c.admin.Tag().Slot(), name, err)
	}
	o.SetRevocable(true)
	// The connection may have been revoked (its member died or stopped)
	// before this registration: its recoverer fenced the admin slot first
	// and then looked at every structure, so either it saw this owner (and
	// revokes it too) or this check sees the fence.
	if err := c.admin.Check(); err != nil {
		o.Close()
		return nil, nil, err
	}
	c.owners[name] = o
	return o, s, nil
}

func (c *Conn) check(op string) error {
	if c.closed {
		return &Error{Op: op, Reason: RCConnectionBroken, Err: errors.New("disconnected")}
	}
	if c.broken {
		return &Error{Op: op, Reason: RCConnectionBroken, Err: errors.New("a commit could neither be decided nor backed out")}
	}
	return nil
}

// Commit commits the connection's unit of work: everything put under
// syncpoint becomes visible and everything got under syncpoint is removed,
// in every structure at once. A unit of work spanning structures records
// its decision in the admin structure first, so that if the process dies
// half way the recovery finishes the commit everywhere. One holding
// persistent work commits when its commit record is durable
// (commitPersistent).
//
// A unit of work part of which was lost (it held puts or gets in a
// structure that failed, whether or not the connection has used the
// recovered structure since) does not commit: Commit backs the rest out
// and answers RCBackedOut, saying why; persistent work of it gets a
// backout record, never a commit record.
func (c *Conn) Commit() error {
	if err := c.check("commit"); err != nil {
		return err
	}
	var in []*lockfree.Owner
	for _, o := range c.owners {
		if o.InUOW() && !c.lost[o] {
			in = append(in, o)
		}
	}
	if c.doomed == nil {
		c.doomed = lostIn(in)
	}
	if c.doomed != nil {
		why := c.doomed
		if err := c.backout(); err != nil {
			why = fmt.Errorf("%w (backing out the rest: %v)", why, err)
		}
		return &Error{Op: "commit", Reason: RCBackedOut, Err: fmt.Errorf("the unit of work was backed out: %w", why)}
	}
	if len(in) == 0 {
		c.endUOW(false)
		return nil
	}
	if c.persistentUOW() {
		return c.commitPersistent(in)
	}
	if len(in) > 1 {
		if err := c.admin.DecideCommit(); err != nil {
			return wrap("commit", err)
		}
		defer c.admin.EndDecision()
	}
	err := c.commitIn(in, len(in) > 1, false)
	c.endUOW(false)
	return err
}

// lostIn says which structure holding part of the unit of work (owners in)
// is out of service, its share lost with it; nil when none is known to
// be. A structure that fails after this look, while the commit runs, is
// caught by commitPersistent's check for persistent work; a unit of work
// of non-persistent work only then commits its other structures' shares
// and answers the failure.
func lostIn(in []*lockfree.Owner) error {
	for _, o := range in {
		if !o.Structure().InService() {
			return fmt.Errorf("structure %s failed: the unit of work's puts and gets there were lost", o.Structure().Name())
		}
	}
	return nil
}

// commitPersistent commits a unit of work holding persistent work: marked
// in flight in the connection's ring (a backup or a structure recovery
// waits for it), every structure checked in service, and then its commit
// record is the decision (decide, decide.go): durable, the unit of work is
// committed in every structure (a recoverer rolls it forward); not known
// durable, it is recorded aborted and backed out.
func (c *Conn) commitPersistent(in []*lockfree.Owner) error {
	if c.puow.err != nil {
		err := c.puow.err
		c.Backout()
		return &Error{Op: "commit", Reason: RCBackedOut, Err: fmt.Errorf("a log record of the unit of work could not be handed to the member: %w", err)}
	}
	cpCommitBegin.Hit()
	c.plog.p.BeginVisible()
	defer c.plog.endInFlight(c)
	// Marked first, then checked: a recovery of a failed structure takes
	// it out of service first, then waits for what is marked, so either
	// it waits for this commit (and replays its record) or this commit
	// sees the failure.
	// In service in the shared mapping is not enough: a structure whose
	// file was removed and recovered by a member that never mapped it is
	// failed for nobody here yet (Current).
	for _, o := range in {
		if err := o.Structure().Current(); err != nil {
			c.Backout()
			return &Error{Op: "commit", Reason: RCBackedOut, Err: fmt.Errorf("structure %s: %w", o.Structure().Name(), err)}
		}
	}
	r := plog.Record{Type: plog.TypeCommit, UOW: c.puow.key}
	undo := undecided{key: c.puow.key, undo: func() { c.backout() }}
	end, err := c.decide("commit", &r, nil, undo, true, c.logRecord, commitPoints)
	if err != nil {
		return err
	}
	defer end()
	err = c.commitIn(in, true, true)
	c.endUOW(false)
	return err
}

// commitIn commits the unit of work in each structure it touched. With
// decided set the commit decision is in the admin slot: a structure that
// revoked the connection meanwhile is committed by its recoverer, which
// reads it. With durable set the commit record is durable too: a structure
// that failed meanwhile gets its share back from the log when it is
// recovered.
func (c *Conn) commitIn(in []*lockfree.Owner, decided, durable bool) error {
	var first error
	for _, o := range in {
		err := o.Commit()
		switch {
		case decided && errors.Is(err, lockfree.ErrOwnerRevoked):
			err = nil
		case durable && (errors.Is(err, lockfree.ErrStructureFailed) || errors.Is(err, shm.ErrFault)):
			err = nil
		}
		if err != nil && first == nil {
			first = wrap("commit", err)
		}
	}
	return first
}

// Backout backs out the connection's unit of work.
func (c *Conn) Backout() error {
	if err := c.check("backout"); err != nil {
		return err
	}
	return c.backout()
}

// backout is Backout on a connection that may be broken. An owner whose
// structure failed cannot back out its share, lost with the structure: it
// is marked lost (Conn.lost), out of every later unit of work.
func (c *Conn) backout() error {
	var first error
	for _, o := range c.owners {
		if c.lost[o] {
			continue
		}
		err := o.Backout()
		if errors.Is(err, lockfree.ErrStructureFailed) || errors.Is(err, shm.ErrFault) {
			if c.lost == nil {
				c.lost = map[*lockfree.Owner]bool{}
			}
			c.lost[o] = true
		}
		if err != nil && first == nil {
			first = wrap("backout", err)
		}
	}
	c.endUOW(true)
	return first
}

// Disconnect ends the connection. An open unit of work is backed out
// (commit first to keep it).
func (c *Conn) Disconnect() error {
	if c.closed {
		return nil
	}
	c.abandonMu.Lock()
	defer c.abandonMu.Unlock()
	if c.abandoned != nil && !c.undoAbandoned() {
		// Everything stays registered: when the process ends, the member
		// recovers the connection and records the abort.
		c.closed = true
		return &Error{Op: "disconnect", Reason: RCConnectionBroken, Err: errors.New("an operation whose abort could not be recorded is left to the member's recovery")}
	}
	c.closed = true
	var errs []error
	for _, o := range c.owners {
		errs = append(errs, o.Close())
	}
	c.endUOW(true)
	errs = append(errs, closeIdleOwners()) // after the owners' close: it frees the runs of what it backs out
	errs = append(errs, c.closeLog())
	errs = append(errs, c.admin.Close())
	if !c.shared {
		errs = append(errs, c.repo.Close(), c.g.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return wrap("disconnect", err)
	}
	return nil
}

// OpenOptions say what a handle is for.
type OpenOptions struct {
	Input  bool // get (MQOO_INPUT)
	Output bool // put (MQOO_OUTPUT)
	Browse bool // browse (MQOO_BROWSE)
}

// Queue is an open queue handle (MQ's hobj).
type Queue struct {
	c      *Conn
	def    defs.Queue
	o      *lockfree.Owner
	s      *lockfree.Structure
	q      lockfree.QueueID
	opts   OpenOptions
	closed bool
	remote *defs.QRemote // opened as a remote queue: puts go to def, the transmission queue
	origID [24]byte      // remote: the message id of the last put
	view   lockfree.View // a get outside syncpoint's claim, reused (a Queue is used by one goroutine at a time)
}

// Open opens a queue by name. A remote queue (QREMOTE) opens for output
// only: its messages go, in a transmission header (package xmit), to its
// transmission queue, from which a sender channel moves them.
func (c *Conn) Open(name string, opts OpenOptions) (*Queue, error) {
	if err := c.check("open"); err != nil {
		return nil, err
	}
	if !opts.Input && !opts.Output && !opts.Browse {
		return nil, &Error{Op: "open " + name, Reason: RCOptionError, Err: errors.New("open for input, output or browse")}
	}
	if err := c.refresh(); err != nil {
		return nil, wrap("open "+name, err)
	}
	def, ok := c.queues[name]
	var remote *defs.QRemote
	if r, isRemote := c.remotes[name]; !ok && isRemote {
		if opts.Input || opts.Browse {
			return nil, &Error{Op: "open " + name, Reason: RCNotValidForType, Err: fmt.Errorf("%s is a remote queue: open it for output", name)}
		}
		xq := r.TransmissionQueue()
		if def, ok = c.queues[xq]; !ok {
			return nil, &Error{Op: "open " + name, Reason: RCUnknownXmitQ, Err: fmt.Errorf("transmission queue %s of remote queue %s is not defined", xq, name)}
		}
		if def.Usage != "XMITQ" {
			return nil, &Error{Op: "open " + name, Reason: RCXmitQUsageError, Err: fmt.Errorf("%s, the transmission queue of remote queue %s, is not USAGE(XMITQ)", xq, name)}
		}
		remote = &r
	}
	if !ok {
		return nil, &Error{Op: "open " + name, Reason: RCUnknownObjectName, Err: fmt.Errorf("queue %s is not defined in group %s", name, c.g.Config().Name)}
	}
	o, s, err := c.owner(def.CFStruct)
	if err != nil {
		return nil, wrap("open "+name, err)
	}
	q, err := s.LookupQueue(def.Name)
	if err != nil {
		return nil, wrap("open "+name, err)
	}
	in, out := 0, 0
	if opts.Input {
		in = 1
	}
	if opts.Output {
		out = 1
	}
	if err := o.CountOpen(q, in, out); err != nil {
		return nil, wrap("open "+name, err)
	}
	if opts.Input && def.DefPsist && c.plog == nil {
		// Its messages are persistent by default: take the log ring now,
		// so that even the first get outside syncpoint is marked (getMarked).
		c.logger()
	}
	return &Queue{c: c, def: def, o: o, s: s, q: q, opts: opts, remote: remote}, nil
}

// Name is the queue's name (the transmission queue's for a remote queue).
func (h *Queue) Name() string { return h.def.Name }

// Def is the queue's definition as of Open.
func (h *Queue) Def() defs.Queue { return h.def }

// Close closes the handle.
func (h *Queue) Close() error {
	if h.closed {
		return nil
	}
	h.closed = true
	if h.c.broken {
		// The goroutine resolving the abandoned operation uses the owners.
		h.c.abandonMu.Lock()
		defer h.c.abandonMu.Unlock()
	}
	in, out := 0, 0
	if h.opts.Input {
		in = -1
	}
	if h.opts.Output {
		out = -1
	}
	return wrap("close "+h.def.Name, h.o.CountOpen(h.q, in, out))
}

func (h *Queue) check(op string, need bool) error {
	if err := h.c.check(op); err != nil {
		return err
	}
	if h.closed {
		return &Error{Op: op + " " + h.def.Name, Reason: RCHandleNotAvailable, Err: errors.New("handle closed")}
	}
	if !need {
		return &Error{Op: op + " " + h.def.Name, Reason: RCOptionError, Err: fmt.Errorf("handle not opened for %s", op)}
	}
	return nil
}

// Persistence of a put.
type Persistence int

// Persistence values: as the queue's DEFPSIST, or set.
const (
	PersistenceAsQDef Persistence = iota
	Persistent
	NotPersistent
)

// PriorityAsQDef asks for the queue's DEFPRTY.
const PriorityAsQDef = -1

// Message is what applications put and get.
type Message struct {
	MsgID        [24]byte // generated on put when zero
	CorrelID     [24]byte
	Format       string // up to 8 characters
	Priority     int    // 0..9, or PriorityAsQDef on put
	Persistence  Persistence
	Persistent   bool      // on get: whether the message is persistent
	Expiry       time.Time // zero: never expires
	PutTime      time.Time // set on put
	BackoutCount int       // on get
	ReplyToQ     string
	ReplyToQMgr  string
	Properties   []byte
	Body         []byte
	// Token, on a get or browse, names this message (MQ's message
	// token): it is the same when the message comes back after a backout,
	// or, persistent, after its structure's recovery; another message,
	// even one put with the same MsgID and bytes, has another while both
	// exist, on the same queue or on any other: a persistent one's is
	// unique in the group, and a non-persistent one's in its structure
	// (and, mixed with the structure's name, as unlikely as a 63-bit hash
	// collision to be another structure's). Ignored on put.
	Token uint64
}

// PutOptions control a put.
type PutOptions struct {
	Syncpoint bool
}

// Put puts m on the queue.
func (h *Queue) Put(m *Message, opt PutOptions) error {
	if err := h.check("put", h.opts.Output); err != nil {
		return err
	}
	lm := lockfree.Message{MsgID: m.MsgID, CorrelID: m.CorrelID, Priority: m.Priority, Body: m.Body,
		Properties: m.Properties, ReplyToQ: m.ReplyToQ, ReplyToQMgr: m.ReplyToQMgr}
	if lm.Priority == PriorityAsQDef {
		lm.Priority = h.def.DefPrty
	}
	switch m.Persistence {
	case PersistenceAsQDef:
		lm.Persistent = h.def.DefPsist
	case Persistent:
		lm.Persistent = true
	}
	copy(lm.Format[:], m.Format)
	for i := len(m.Format); i < len(lm.Format); i++ {
		lm.Format[i] = ' '
	}
	if !m.Expiry.IsZero() {
		lm.Expiry = m.Expiry.UnixNano()
	}
	if h.remote != nil {
		if err := h.wrapXmit(&lm); err != nil {
			return err
		}
	}
	var published func(bool)
	if pol := h.policy(); pol != nil && pol.offloads(len(lm.Body), len(lm.Properties)+len(lm.ReplyToQ)+len(lm.ReplyToQMgr)) {
		if len(lm.Body)+len(lm.Properties) > h.def.MaxMsgL {
			return &Error{Op: "put " + h.def.Name, Reason: RCMsgTooBigForQ, Err: fmt.Errorf("message of %d bytes, MAXMSGL of %s is %d", len(lm.Body)+len(lm.Properties), h.def.Name, h.def.MaxMsgL)}
		}
		var err error
		if published, err = h.offloadPut(&lm, lm.Persistent); err != nil {
			return wrap("put "+h.def.Name, fmt.Errorf("writing the body to its data set: %w", err))
		}
	}
	var err error
	if lm.Persistent {
		err = h.putPersistent(&lm, opt)
	} else if err = h.o.Put(h.q, &lm, lockfree.PutOptions{Syncpoint: opt.Syncpoint}); err != nil {
		err = wrap("put "+h.def.Name, err)
	}
	if published != nil {
		published(err == nil)
	}
	if err != nil {
		return err
	}
	if h.remote != nil {
		m.MsgID = h.origID
		m.PutTime = time.Unix(0, lm.PutTime)
		m.Persistent = lm.Persistent
		return nil
	}
	m.MsgID = lm.MsgID
	m.PutTime = time.Unix(0, lm.PutTime)
	m.Persistent = lm.Persistent
	return nil
}

// WaitForever, as GetOptions.Wait, waits until a message arrives (MQ's
// MQWI_UNLIMITED).
const WaitForever time.Duration = -1

// GetOptions control a get.
type GetOptions struct {
	Syncpoint bool
	Wait      time.Duration // 0: no wait; WaitForever (any negative duration): wait for ever
	MsgID     *[24]byte
	CorrelID  *[24]byte
	// Interrupt, when set, lets another goroutine end the wait: the get
	// fails with RCCallInterrupted (errors.Is ErrInterrupted) if the
	// Interrupter is interrupted when the get would wait or while it
	// waits. Gets and browses that do not wait ignore it.
	Interrupt *Interrupter
}

// Interrupter ends waiting gets from another goroutine, at once and
// without polling: AMQP's basic.cancel, a channel or a connection closing
// stop the consumer's get. Give it to gets in GetOptions.Interrupt; then
// Interrupt makes the one waiting fail with ErrInterrupted (RCCallInterrupted,
// no message got), and so every later get with it that would wait, until
// Reset (an interrupt between two gets is not lost). A get that finds a
// message without waiting returns it, interrupted or not. The connection
// and its queue handles stay usable. Only the interrupted get is woken
// (and, at most, the gets of other connections waiting on the same queue
// whose connection slot shares its bit, slot mod 32, which wait on).
//
// The zero value is ready to use. One Interrupter serves one waiting get
// at a time (a connection's gets are serial: one per consumer, or per
// connection); Interrupt, Reset and Interrupted may be called from any
// goroutine.
type Interrupter struct{ in lockfree.Interrupter }

// Interrupt interrupts the get waiting with i, if any, and every later get
// with i that would wait, until Reset.
func (i *Interrupter) Interrupt() { i.in.Interrupt() }

// Reset ends the interrupt: gets with i wait again.
func (i *Interrupter) Reset() { i.in.Reset() }

// Interrupted reports whether i is interrupted.
func (i *Interrupter) Interrupted() bool { return i.in.Interrupted() }

// lf is i's part in lockfree (nil for a nil i).
func (i *Interrupter) lf() *lockfree.Interrupter {
	if i == nil {
		return nil
	}
	return &i.in
}

// Get gets the next message. A message whose backout count reached the
// queue's BOTHRESH is not returned: it is requeued to BOQNAME (or, failing
// that, to the dead-letter queue with a DLH) in the same unit of work, and
// the next message is got instead. Nor is a message whose offloaded body
// is damaged or lost in its data set (bodyLost): its report (its header, a
// DLH with RCMsgBodyLost and a line naming the data set, the offset and
// the error; never the damaged bytes) goes to BOQNAME or else the
// dead-letter queue, in the unit of work under syncpoint, the message is
// removed with its run, an error is logged (slog's default logger), and
// the next message is got. With neither queue the get fails with the
// data set's error and the message stays.
//
// Outside syncpoint the report is put first and the message removed
// next: a process killed in between leaves the message, whose next get
// reports it again (a report twice, never a message lost).
func (h *Queue) Get(opt GetOptions) (*Message, error) {
	if err := h.check("get", h.opts.Input); err != nil {
		return nil, err
	}
	for {
		var lm lockfree.Message
		var err error
		if opt.Syncpoint {
			err = h.o.Get(h.q, lockfree.GetOptions{Syncpoint: true, Wait: opt.Wait, MsgID: opt.MsgID, CorrelID: opt.CorrelID, Interrupt: opt.Interrupt.lf()}, &lm)
		} else {
			err = h.getMarked(opt, &lm)
			if errors.Is(err, errBodyMoved) {
				continue
			}
		}
		if err != nil {
			return nil, wrap("get "+h.def.Name, err)
		}
		if opt.Syncpoint {
			if err := h.loggedGet(&lm); err != nil {
				return nil, wrap("get "+h.def.Name, fmt.Errorf("the get is in the unit of work, which can only be backed out: %w", err))
			}
			cpOffloadClaimed.Hit()
			if err := h.readOffloaded(&lm, false); err != nil {
				if bodyLost(err) {
					// Its report joins the unit of work with the get.
					if err = h.c.deadLetterLost(h, &lm, err, true); err == nil {
						continue
					}
				}
				return nil, wrap("get "+h.def.Name, fmt.Errorf("the message is in the unit of work (a backout gives it back): %w", err))
			}
		}
		m := fromLockfree(&lm, h.def.CFStruct)
		if h.def.BOThresh > 0 && m.BackoutCount >= h.def.BOThresh && h.c.requeue(h, m, opt.Syncpoint) {
			continue
		}
		return m, nil
	}
}

// View is a message got without copying its body: Pieces alias the shared
// mapping. A view got under syncpoint is valid until the unit of work ends;
// one got outside it, until Release (which removes the message), Requeue
// (which gives it back) or Conn.ReleaseViews, or, once adopted into the
// unit of work (Adopt), until the unit of work ends. The header fields are the view's own: they stay
// valid after the view ends, until the View is filled again by the next
// GetViewInto or GetViewsInto into it, which reuses Properties' storage.
type View struct {
	MsgID, CorrelID [24]byte
	Format          string
	Priority        int
	Persistence     Persistence
	BackoutCount    int       // how many times the message was given back (Requeue, a backout); above 0: redelivered
	Expiry          time.Time // zero: never expires
	PutTime         time.Time
	ReplyToQ        string
	ReplyToQMgr     string
	Properties      []byte   // empty (not always nil) when the message has none
	Pieces          [][]byte // the body, in order
	lv              lockfree.View
	h               *Queue
	logAtRelease    bool // a persistent message got outside syncpoint: logged when removed
}

// Len is the body's length.
func (v *View) Len() int {
	n := 0
	for _, p := range v.Pieces {
		n += len(p)
	}
	return n
}

// Head copies the body's first len(dst) bytes (or fewer, when shorter)
// into dst and returns them; it does not copy when the first piece holds
// them.
func (v *View) Head(dst []byte) []byte {
	if len(v.Pieces) > 0 && len(v.Pieces[0]) >= len(dst) {
		return v.Pieces[0][:len(dst)]
	}
	n := 0
	for _, p := range v.Pieces {
		n += copy(dst[n:], p)
	}
	return dst[:n]
}

// Bytes is a copy of the body.
func (v *View) Bytes() []byte {
	b := make([]byte, 0, v.Len())
	for _, p := range v.Pieces {
		b = append(b, p...)
	}
	return b
}

// Release ends the view (see View).
func (v *View) Release() error {
	v.Pieces = nil
	if v.logAtRelease {
		if err := v.h.c.check("get " + v.h.def.Name); err != nil {
			return err // broken: the view goes back when the connection ends
		}
		// Removed only once its get is durable (getDecided); otherwise
		// it goes back and Release fails.
		v.logAtRelease = false
		return wrap("get "+v.h.def.Name, v.h.getDecided(&v.lv))
	}
	return v.lv.Release()
}

// Requeue ends a view got outside syncpoint by giving its message back to
// its queue at its place (it is got again before anything put after it),
// with its backout count raised by one: the next get of it sees
// BackoutCount above 0 (AMQP's redelivered). For AMQP's nack and reject
// with requeue, basic.recover, and a channel closed with deliveries
// unacknowledged. Nothing is logged: a persistent message got outside
// syncpoint is logged only when Release removes it, so it is still on the
// queue as far as the log knows (and, like a backout's, its raised count
// is not logged: a structure rebuilt from the log has the count it was
// put with). A view got under syncpoint belongs to the unit of work:
// Requeue refuses it with RCOptionError and leaves it there (Backout
// gives back every message of the unit of work the same way). If the
// connection was broken, Requeue fails and the message goes back when the
// connection's recovery ends it, its count raised all the same.
func (v *View) Requeue() error {
	err := v.lv.Requeue()
	if errors.Is(err, lockfree.ErrViewInUOW) {
		return wrap("requeue "+v.h.def.Name, err) // still the unit of work's, and valid
	}
	v.Pieces = nil
	v.logAtRelease = false
	return wrap("requeue "+v.h.def.Name, err)
}

// GetView gets the next message like Get, without copying its body (the
// channel sender writes it from the mapping to its socket). The backout
// threshold is not applied.
func (h *Queue) GetView(opt GetOptions) (*View, error) {
	v := new(View)
	if err := h.GetViewInto(opt, v); err != nil {
		return nil, err
	}
	return v, nil
}

// GetViewInto is GetView into v, reusing its storage: a channel sender
// keeps a batch's views from batch to batch. v must not be a view still in
// use (its unit of work ended, or released).
func (h *Queue) GetViewInto(opt GetOptions, v *View) error {
	_, err := h.GetViewsInto(opt, unsafe.Slice(v, 1))
	return err
}

// GetViewsInto gets up to len(vs) messages as views, like GetViewInto for
// each, in one scan of the queue (only the first may wait). It returns how
// many it got; ErrNoMessage only when it got none. On an error the views
// it got stay in the unit of work (under syncpoint), to be backed out.
//
// A message whose offloaded body is lost (bodyLost) is moved as Get moves
// it (deadLetterLost: under syncpoint its report and its removal join the
// unit of work; outside it the report is put and the message removed at
// once) and is no view: vs[:n] are the others, in order, and when every
// message of the scan was lost the next ones are got. Without BOQNAME or
// DEADQ to take its report, the get fails as before and the message stays.
func (h *Queue) GetViewsInto(opt GetOptions, vs []View) (int, error) {
	if err := h.check("get", h.opts.Input); err != nil {
		return 0, err
	}
	for {
		n, moved, err := h.getViews(opt, vs)
		if n == 0 && moved > 0 && err == nil {
			continue // every message of the scan lost and moved: the next ones
		}
		if err != nil {
			return n, wrap("get "+h.def.Name, err)
		}
		return n, nil
	}
}

// getViews is one scan of GetViewsInto: the views it got (vs[:n], lost
// bodies' messages moved and left out) and how many it moved.
func (h *Queue) getViews(opt GetOptions, vs []View) (n, moved int, err error) {
	got, err := h.o.GetViewsAt(h.q, lockfree.GetOptions{Syncpoint: opt.Syncpoint, Wait: opt.Wait, MsgID: opt.MsgID, CorrelID: opt.CorrelID, Interrupt: opt.Interrupt.lf()},
		len(vs), func(i int) *lockfree.View { return &vs[i].lv })
	for i := range vs[:got] {
		v := &vs[i]
		lv := &v.lv
		v.MsgID, v.CorrelID, v.Format, v.Priority = lv.Msg.MsgID, lv.Msg.CorrelID, trimFormat(lv.Msg.Format), lv.Msg.Priority
		v.Persistence, v.BackoutCount, v.Pieces, v.h, v.logAtRelease = NotPersistent, int(lv.Msg.BackoutCount), lv.Body, h, false
		v.PutTime, v.Expiry = time.Unix(0, lv.Msg.PutTime), time.Time{}
		if lv.Msg.Expiry != 0 {
			v.Expiry = time.Unix(0, lv.Msg.Expiry)
		}
		v.ReplyToQ, v.ReplyToQMgr, v.Properties = lv.Msg.ReplyToQ, lv.Msg.ReplyToQMgr, lv.Msg.Properties
		if lv.Msg.Persistent {
			// Under syncpoint the get is logged first, as Get does: a
			// lost body's message is then moved in the unit of work.
			v.Persistence = Persistent
			if !opt.Syncpoint {
				v.logAtRelease = true
			} else if lerr := h.loggedGet(&lv.Msg); lerr != nil && err == nil {
				err = fmt.Errorf("the get is in the unit of work, which can only be backed out: %w", lerr)
			}
		}
		keep := true
		if lv.Msg.Offload != nil {
			// The body from its data set's mapping, checked: no copy,
			// valid as long as the view's pieces (viewOffloaded).
			if body, rerr := h.viewOffloaded(&lv.Msg); rerr != nil {
				v.Pieces = nil
				if bodyLost(rerr) {
					var ok bool
					if ok, rerr = h.moveLostView(v, opt.Syncpoint, rerr); ok {
						moved++
						continue // ended, not a view: the next one takes its place
					}
					keep = !lv.Ended()
				}
				if err == nil {
					err = rerr
				}
			} else {
				v.Pieces = append(v.Pieces[:0:0], body)
			}
		}
		if keep {
			if i != n {
				vs[n], vs[i] = vs[i], vs[n] // storage swapped, not shared
			}
			n++
		}
	}
	return n, moved, err
}

// moveLostView moves the message of view v, whose offloaded body is lost
// (cause), as Get does: under syncpoint (its get already logged, when
// persistent) its report is put in the unit of work, which removes it at
// the commit; outside it the report is put, then the message removed. ok:
// it was moved and v ended. Otherwise err says why; v has ended only when
// its report was put but its removal failed (its next get reports it
// again).
func (h *Queue) moveLostView(v *View, syncpoint bool, cause error) (ok bool, err error) {
	lv := &v.lv
	if syncpoint {
		if err := h.c.deadLetterLost(h, &lv.Msg, cause, true); err != nil {
			return false, err
		}
		lv.Release() // a syncpoint view: ended, its message the unit of work's
		return true, nil
	}
	if err := h.c.deadLetterLost(h, &lv.Msg, cause, false); err != nil {
		return false, err
	}
	if lv.Msg.Key == 0 {
		err = lv.Release()
	} else {
		err = h.getDecided(lv)
	}
	if err != nil {
		return false, fmt.Errorf("the report of a message whose body was lost was put, but removing the message failed (its next get reports it again): %w", err)
	}
	return true, nil
}

// tokenOf is lm's Message.Token, lm got or browsed from a queue of
// structure cfStruct: a persistent message's recovery key (which its
// structure's recovery keeps, unique in the group), else its entry's token
// in that structure, mixed with the structure's name (tokenMix), with the
// top bit set (keys stay below it). An entry's token alone is unique in
// its structure only: the first message put in each of two fresh
// structures has the same one.
func tokenOf(lm *lockfree.Message, cfStruct string) uint64 {
	if lm.Key != 0 {
		return lm.Key
	}
	return 1<<63 | tokenMix(lm.Token, cfStruct)
}

// tokenMix maps entry token t of structure cfStruct to 63 bits: for one
// structure a bijection (two entries never share a result), and for two
// structures results as unrelated as two hashes (two entries of two
// structures share one with a chance of about 2^-63).
func tokenMix(t uint64, cfStruct string) uint64 {
	const mask = 1<<63 - 1
	x := (t ^ xxhash.Sum64String(cfStruct)) & mask
	// xorshifts and a multiplication by an odd constant, each invertible
	// modulo 2^63.
	x ^= x >> 31
	x = x * 0x9e3779b97f4a7c15 & mask
	x ^= x >> 29
	x = x * 0xbf58476d1ce4e5b9 & mask
	x ^= x >> 32
	return x
}

func fromLockfree(lm *lockfree.Message, cfStruct string) *Message {
	m := &Message{MsgID: lm.MsgID, CorrelID: lm.CorrelID, Priority: lm.Priority, Persistent: lm.Persistent,
		PutTime: time.Unix(0, lm.PutTime), BackoutCount: int(lm.BackoutCount), ReplyToQ: lm.ReplyToQ,
		ReplyToQMgr: lm.ReplyToQMgr, Properties: lm.Properties, Body: lm.Body, Token: tokenOf(lm, cfStruct)}
	if lm.Expiry != 0 {
		m.Expiry = time.Unix(0, lm.Expiry)
	}
	m.Format = trimFormat(lm.Format)
	if m.Persistent {
		m.Persistence = Persistent
	} else {
		m.Persistence = NotPersistent
	}
	return m
}

func trimFormat(f [8]byte) string {
	n := len(f)
	for n > 0 && (f[n-1] == ' ' || f[n-1] == 0) {
		n--
	}
	switch b := f[:n]; string(b) { // no allocation for the usual ones
	case "":
		return ""
	case "MQSTR":
		return "MQSTR"
	case FormatDeadLetter:
		return FormatDeadLetter
	default:
		return string(b)
	}
}

// requeue moves a message that reached the backout threshold to the
// backout queue, or to the dead-letter queue; false when neither took it
// (the application then gets it).
func (c *Conn) requeue(from *Queue, m *Message, syncpoint bool) bool {
	put := func(name string, msg *Message) bool {
		h, err := c.Open(name, OpenOptions{Output: true})
		if err != nil {
			return false
		}
		defer h.Close()
		return h.Put(msg, PutOptions{Syncpoint: syncpoint}) == nil
	}
	if bq := from.def.BOQName; bq != "" && put(bq, m) {
		return true
	}
	if c.qmgr.DeadQ == "" {
		return false
	}
	d := *m
	d.Body = DLH{Reason: RCBackoutThresholdReached, DestQ: from.def.Name, DestQMgr: c.peer.Name, OrigFormat: m.Format, Time: time.Now()}.Encode(m.Body)
	d.Format = FormatDeadLetter
	return put(c.qmgr.DeadQ, &d)
}

// BrowseCursor walks a queue without removing messages.
type BrowseCursor struct {
	h   *Queue
	cur *lockfree.BrowseCursor
}

// Browse starts a browse of the queue.
func (h *Queue) Browse() (*BrowseCursor, error) {
	if err := h.check("browse", h.opts.Browse); err != nil {
		return nil, err
	}
	return &BrowseCursor{h: h, cur: h.o.NewBrowseCursor(h.q)}, nil
}

// Next copies the next message without removing it.
func (b *BrowseCursor) Next(opt GetOptions) (*Message, error) {
	if err := b.h.check("browse", true); err != nil {
		return nil, err
	}
	for {
		var lm lockfree.Message
		if err := b.h.o.BrowseNext(b.cur, lockfree.GetOptions{MsgID: opt.MsgID, CorrelID: opt.CorrelID}, &lm); err != nil {
			return nil, wrap("browse "+b.h.def.Name, err)
		}
		if skip, err := b.readBody(&lm); skip {
			continue
		} else if err != nil {
			return nil, wrap("browse "+b.h.def.Name, err)
		}
		return fromLockfree(&lm, b.h.def.CFStruct), nil
	}
}

// wrapXmit turns lm, bound for the remote queue h was opened as, into the
// transmission queue's message: its body is the transmission header, the
// properties and the body (package xmit); the original message id travels
// in the header (generated here when zero) and the transmission queue's
// message gets an id of its own.
func (h *Queue) wrapXmit(lm *lockfree.Message) error {
	if lm.MsgID == ([24]byte{}) {
		if _, err := rand.Read(lm.MsgID[:]); err != nil {
			return &Error{Op: "put " + h.remote.Name, Reason: RCUnexpectedError, Err: err}
		}
	}
	if lm.PutTime == 0 {
		lm.PutTime = time.Now().UnixNano()
	}
	if len(lm.Body) > h.def.MaxMsgL && h.def.MaxMsgL > 0 {
		return &Error{Op: "put " + h.remote.Name, Reason: RCMsgTooBigForQ, Err: fmt.Errorf("message of %d bytes, MAXMSGL of %s is %d", len(lm.Body), h.def.Name, h.def.MaxMsgL)}
	}
	xh := xmit.Header{DestQMgr: h.remote.RQMName, DestQueue: h.remote.RName, MsgID: lm.MsgID, CorrelID: lm.CorrelID,
		Format: lm.Format, Priority: lm.Priority, Persistent: lm.Persistent, Expiry: lm.Expiry, PutTime: lm.PutTime,
		ReplyToQ: lm.ReplyToQ, ReplyToQMgr: lm.ReplyToQMgr}
	body, err := xmit.Append(make([]byte, 0, xmit.Size(len(lm.Properties), len(lm.Body))), &xh, lm.Properties, lm.Body)
	if err != nil {
		return &Error{Op: "put " + h.remote.Name, Reason: RCOptionError, Err: err}
	}
	h.origID = lm.MsgID
	lm.Body, lm.Properties, lm.MsgID = body, nil, [24]byte{}
	lm.CorrelID, lm.ReplyToQ, lm.ReplyToQMgr = [24]byte{}, "", ""
	lm.Format = [8]byte{'M', 'Q', 'X', 'M', 'I', 'T', ' ', ' '}
	return nil
}
