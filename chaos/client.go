package chaos

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/xmit"
)

// Client roles.
const (
	RoleProducer = "producer"
	RoleConsumer = "consumer"
	RoleDrainer  = "drainer"
)

// ClientConfig is what a client process is told (one JSON argument).
type ClientConfig struct {
	Proc    string       // the process's name in the histories ("p1.3")
	Role    string       // RoleProducer, RoleConsumer or RoleDrainer
	Group   group.Config // the group it connects to (producers, consumers)
	Via     []string     // members to connect through, in turn
	Queue   string       // the queue it puts to or gets from
	History string       // its history file
	Fsync   bool         // fsync every record
	Seed    int64

	SyncpointPct  int           // units of work under syncpoint, per cent (the rest: single operations outside)
	PersistentPct int           // producers: persistent messages, per cent
	BackoutPct    int           // units of work ended by a backout instead of a commit, per cent
	MaxUOW        int           // operations per unit of work, 1..MaxUOW
	MaxPad        int           // producers: padding of a body, 0..MaxPad bytes
	Pause         time.Duration // after each unit of work or single operation
	Wait          time.Duration // consumers: wait of each get

	Drain []DrainTarget // RoleDrainer: what to empty
}

// DrainTarget is a queue the final drainer empties (or only browses).
type DrainTarget struct {
	Group  group.Config
	Queue  string
	Browse bool // a transmission queue left undrained: record what is on it, take nothing
}

// RunClient is a client process's main: cfg is the JSON of a
// ClientConfig. It returns the exit code.
func RunClient(cfg string) int {
	var c ClientConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		fmt.Fprintln(os.Stderr, "chaos client:", err)
		return 2
	}
	rec, err := NewRecorder(c.History, c.Proc, c.Fsync)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos client:", err)
		return 2
	}
	cl := &client{cfg: c, rec: rec, rng: rand.New(rand.NewSource(c.Seed))}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() { <-term; cl.stop.Store(true) }()
	switch c.Role {
	case RoleProducer:
		cl.produce()
	case RoleConsumer:
		cl.consume()
	case RoleDrainer:
		err = cl.drain()
	default:
		err = fmt.Errorf("unknown role %q", c.Role)
	}
	cl.disconnect()
	if err == nil {
		err = rec.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos client:", c.Proc, err)
		return 1
	}
	return 0
}

type client struct {
	cfg  ClientConfig
	rec  *Recorder
	rng  *rand.Rand
	stop atomic.Bool

	conn *mq.Conn
	q    *mq.Queue
	via  int
	uow  int64    // the current unit of work's number (they count from 1)
	msgs []string // its messages
	seq  int64    // producers: the last message number
	full bool     // producers: the last put found the queue full
}

// outcome classifies an API result: OK, Fail when the error guarantees
// that the call had no effect, Info when its effect is unknown. A commit
// is known to have failed only when it says it backed out (2003), as with
// MQCMIT: any other error leaves the unit of work in doubt (a commit whose
// record is durable is applied by the recovery of a structure that failed
// under it).
func outcome(f string, err error) string {
	if err == nil {
		return OK
	}
	r := mq.ReasonOf(err)
	switch f {
	case FCommit:
		if r == mq.RCBackedOut {
			return Fail
		}
		return Info
	case FConnect:
		if r == mq.RCQMgrNotAvailable {
			return Fail
		}
	}
	switch r {
	case mq.RCNoMsgAvailable, mq.RCQFull, mq.RCStorageMediumFull, mq.RCMsgTooBigForQ, mq.RCUnknownObjectName,
		mq.RCNotAuthorized, mq.RCOptionError, mq.RCHandleNotAvailable, mq.RCCFStructFailed:
		return Fail
	}
	return Info
}

func errOp(op Op, f string, err error) Op {
	op.F, op.Type = f, outcome(f, err)
	if err != nil {
		op.RC, op.Err = int(mq.ReasonOf(err)), err.Error()
	}
	return op
}

// connect connects and opens the queue, trying the members in turn until
// it works, the client is told to stop or the deadline (if not zero)
// passes.
func (c *client) connect(g group.Config, via []string, queue string, opts mq.OpenOptions, deadline time.Time) bool {
	for !c.stop.Load() && (deadline.IsZero() || time.Now().Before(deadline)) {
		qm := ""
		if len(via) > 0 {
			qm = via[c.via%len(via)]
			c.via++
		}
		op := Op{F: FConnect, QMgr: qm, Queue: queue}
		i := c.rec.Invoke(op)
		conn, err := mq.Connect(mq.ConnectOptions{Group: g.Name, QMgr: qm, DataDir: g.DataDir, CFDir: g.CFDir})
		if err == nil {
			if c.q, err = conn.Open(queue, opts); err != nil {
				conn.Disconnect()
			}
		}
		c.rec.Complete(i, errOp(op, FConnect, err))
		if err == nil {
			c.conn = conn
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// disconnect ends the connection, which backs out its unit of work.
func (c *client) disconnect() {
	if c.conn == nil {
		return
	}
	op := Op{F: FDisconnect, QMgr: c.conn.QMgr(), UOW: c.uow, Msgs: c.msgs}
	i := c.rec.Invoke(op)
	err := c.conn.Disconnect()
	c.rec.Complete(i, errOp(op, FDisconnect, err))
	c.conn, c.q, c.msgs = nil, nil, nil
}

// end ends the unit of work: a commit, or a backout BackoutPct of the
// times. False when the connection must be made again.
func (c *client) end() bool {
	f := FCommit
	if c.rng.Intn(100) < c.cfg.BackoutPct {
		f = FBackout
	}
	op := Op{F: f, QMgr: c.conn.QMgr(), UOW: c.uow, Msgs: c.msgs}
	i := c.rec.Invoke(op)
	var err error
	if f == FCommit {
		err = c.conn.Commit()
	} else {
		err = c.conn.Backout()
	}
	c.rec.Complete(i, errOp(op, f, err))
	c.msgs = nil
	return err == nil
}

func (c *client) produce() {
	for !c.stop.Load() {
		if c.conn == nil && !c.connect(c.cfg.Group, c.cfg.Via, c.cfg.Queue, mq.OpenOptions{Output: true}, time.Time{}) {
			return
		}
		ok := true
		if c.rng.Intn(100) < c.cfg.SyncpointPct {
			c.uow++
			n := 1 + c.rng.Intn(max(1, c.cfg.MaxUOW))
			for range n {
				err := c.put(true)
				if err == nil {
					continue
				}
				ok = outcome(FPut, err) == Fail && mq.ReasonOf(err) != mq.RCCFStructFailed
				break
			}
			ok = ok && (len(c.msgs) == 0 || c.end())
		} else if err := c.put(false); err != nil {
			ok = outcome(FPut, err) == Fail && mq.ReasonOf(err) != mq.RCCFStructFailed
		}
		if !ok {
			c.disconnect()
		}
		c.msgs = nil
		time.Sleep(c.cfg.Pause)
		if c.full {
			time.Sleep(5 * time.Millisecond) // the queue is full: give the consumer a moment
		}
	}
}

// put puts the producer's next message.
func (c *client) put(syncpoint bool) error {
	c.seq++
	pers := c.rng.Intn(100) < c.cfg.PersistentPct
	key := Key(c.cfg.Proc, c.seq)
	op := Op{F: FPut, QMgr: c.conn.QMgr(), Queue: c.cfg.Queue, Sync: syncpoint, Pers: pers, Msg: key}
	if syncpoint {
		op.UOW = c.uow
	}
	m := &mq.Message{Body: EncodeBody(c.cfg.Proc, c.seq, c.rng.Intn(c.cfg.MaxPad+1)), Priority: mq.PriorityAsQDef, Persistence: mq.NotPersistent}
	if pers {
		m.Persistence = mq.Persistent
	}
	i := c.rec.Invoke(op)
	err := c.q.Put(m, mq.PutOptions{Syncpoint: syncpoint})
	c.full = errors.Is(err, mq.ErrQueueFull)
	done := errOp(op, FPut, err)
	if err == nil {
		done.MsgID = hex.EncodeToString(m.MsgID[:])
		if syncpoint {
			c.msgs = append(c.msgs, key)
		}
	}
	c.rec.Complete(i, done)
	return err
}

func (c *client) consume() {
	for !c.stop.Load() {
		if c.conn == nil && !c.connect(c.cfg.Group, c.cfg.Via, c.cfg.Queue, mq.OpenOptions{Input: true}, time.Time{}) {
			return
		}
		ok := true
		if c.rng.Intn(100) < c.cfg.SyncpointPct {
			c.uow++
			n := 1 + c.rng.Intn(max(1, c.cfg.MaxUOW))
			for range n {
				if err := c.get(true); err != nil {
					ok = errors.Is(err, mq.ErrNoMessage)
					break
				}
			}
			ok = ok && (len(c.msgs) == 0 || c.end())
		} else if err := c.get(false); err != nil {
			ok = errors.Is(err, mq.ErrNoMessage)
		}
		if !ok {
			c.disconnect()
		}
		c.msgs = nil
		time.Sleep(c.cfg.Pause)
	}
}

// get gets a message and records what it was.
func (c *client) get(syncpoint bool) error {
	op := Op{F: FGet, QMgr: c.conn.QMgr(), Queue: c.q.Name(), Sync: syncpoint}
	if syncpoint {
		op.UOW = c.uow
	}
	i := c.rec.Invoke(op)
	m, err := c.q.Get(mq.GetOptions{Syncpoint: syncpoint, Wait: c.cfg.Wait})
	done := errOp(op, FGet, err)
	if err == nil {
		describe(&done, m.MsgID, m.Body, m.Persistent, m.Priority, m.BackoutCount)
		if syncpoint && done.Msg != "" {
			c.msgs = append(c.msgs, done.Msg)
		}
	}
	c.rec.Complete(i, done)
	return err
}

// describe fills what a get or browse saw.
func describe(op *Op, id [24]byte, body []byte, pers bool, prio, backouts int) {
	op.MsgID, op.Pers, op.Prio, op.Backouts = hex.EncodeToString(id[:]), pers, prio, backouts
	key, err := DecodeBody(body)
	if err != nil {
		op.Err = err.Error()
		return
	}
	op.Msg = key
}

// drainQuiet is how long the drainer waits for a queue that gives it
// nothing and is not empty (held by units of work being recovered), or
// for a connection.
const drainQuiet = 30 * time.Second

// drain empties the targets: gets outside syncpoint until a get finds
// nothing and the queue's depth is zero, or for a browse target records
// what is on the queue. It gives up on a queue after drainQuiet without
// progress.
func (c *client) drain() error {
	var errs []error
	for _, t := range c.cfg.Drain {
		op := Op{F: FDrain, Queue: t.Queue}
		i := c.rec.Invoke(op)
		err := c.drainTarget(t)
		op.Type = OK
		if err != nil {
			op.Type, op.Err = Fail, err.Error()
			errs = append(errs, fmt.Errorf("%s/%s: %w", t.Group.Name, t.Queue, err))
		}
		c.rec.Complete(i, op)
	}
	return errors.Join(errs...)
}

func (c *client) drainTarget(t DrainTarget) error {
	opts := mq.OpenOptions{Input: !t.Browse, Browse: t.Browse}
	c.via = 0
	if !c.connectUntil(t, opts, time.Now().Add(drainQuiet)) {
		return fmt.Errorf("could not connect and open within %v", drainQuiet)
	}
	defer c.disconnect()
	if t.Browse {
		return c.browseAll()
	}
	return c.drainQueue(t, opts)
}

func (c *client) connectUntil(t DrainTarget, opts mq.OpenOptions, deadline time.Time) bool {
	return c.connect(t.Group, nil, t.Queue, opts, deadline)
}

func (c *client) drainQueue(t DrainTarget, opts mq.OpenOptions) error {
	c.cfg.Wait = 200 * time.Millisecond
	deadline := time.Now().Add(drainQuiet)
	for time.Now().Before(deadline) {
		err := c.get(false)
		switch {
		case err == nil:
			deadline = time.Now().Add(drainQuiet)
			continue
		case errors.Is(err, mq.ErrNoMessage):
			if d, derr := c.depth(); derr == nil && d == 0 {
				return nil
			}
			time.Sleep(50 * time.Millisecond) // held by a unit of work being recovered
		default:
			c.disconnect()
			if !c.connectUntil(t, opts, deadline) {
				return fmt.Errorf("connection lost: %w", err)
			}
		}
	}
	if c.conn == nil {
		return fmt.Errorf("no connection for %v", drainQuiet)
	}
	d, _ := c.depth()
	return fmt.Errorf("nothing got for %v, depth %d", drainQuiet, d)
}

// browseAll records every message on a transmission queue.
func (c *client) browseAll() error {
	cur, err := c.q.Browse()
	if err != nil {
		return err
	}
	for {
		op := Op{F: FBrowse, QMgr: c.conn.QMgr(), Queue: c.q.Name()}
		i := c.rec.Invoke(op)
		m, err := cur.Next(mq.GetOptions{})
		done := errOp(op, FBrowse, err)
		if err == nil {
			h, _, body, derr := xmit.Decode(m.Body)
			if derr != nil {
				done.Err = derr.Error()
			} else {
				describe(&done, h.MsgID, body, h.Persistent, h.Priority, m.BackoutCount)
			}
		}
		c.rec.Complete(i, done)
		if errors.Is(err, mq.ErrNoMessage) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// depth is the depth of the open queue.
func (c *client) depth() (int64, error) {
	return mqconn.Of(c.conn).Group.Depth(c.q.Def().CFStruct, c.q.Name())
}
