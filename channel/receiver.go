package channel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/xmit"
)

var cpReceiverCommitted = crashpoint.New("channel.receiver.committed") // batch committed, CONFIRM not sent

// bigFrame is the payload size from which every MSG frame counts as a
// sign of life for the watchdog (smaller ones: every 64th).
const bigFrame = 64 << 10

// accept serves inbound connections on l until the channel initiator
// stops, at most Inbound.MaxConns at once: one over the cap is closed at
// once, and counted.
func (ci *Chinit) accept(l net.Listener) {
	defer ci.wg.Done()
	slots := make(chan struct{}, ci.cfg.Inbound.MaxConns)
	for {
		nc, err := l.Accept()
		if err != nil {
			if ci.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			ci.log.Warn("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		select {
		case slots <- struct{}{}:
		default:
			ci.refused.note(ci, group.CounterInboundRefused, "inbound connection refused: the listener holds its most connections",
				"event", "connection_refused", "listener", "channel", "reason", "max_inbound", "remote", nc.RemoteAddr().String(), "address", l.Addr().String(), "max_inbound", ci.cfg.Inbound.MaxConns)
			nc.Close()
			continue
		}
		ci.wg.Add(1)
		go func() {
			defer ci.wg.Done()
			defer func() { <-slots }()
			r := &receiver{ci: ci, nc: nc}
			r.run()
		}()
	}
}

// peekConn is a connection whose first bytes were read through a bufio
// reader (to tell TLS from plain frames).
type peekConn struct {
	net.Conn
	br *bufio.Reader
}

func (p *peekConn) Read(b []byte) (int, error) { return p.br.Read(b) }

// receiver runs one inbound channel instance.
type receiver struct {
	ci   *Chinit
	nc   net.Conn
	r    *Reader
	w    *Writer
	def  defs.Channel
	conn *mq.Conn
	last uint64
	// open: the queues the batch being received put to, by name; closed
	// at the end of each batch (closeQueues).
	open  map[string]*mq.Queue
	syncq *mq.Queue
	dlq   string
	// persistent: the batch being received carries a persistent message,
	// so its sync record is persistent too (a batch of non-persistent
	// messages is not recoverable after the loss of the CF, as with MQ's
	// NPMSPEED(FAST), and its commit does not wait for the log).
	persistent bool
	// recPersistent: the sync record is persistent. Its replacement is
	// persistent too, whatever the batch: a non-persistent record would
	// go with the CF, and the record recovered from the log would then be
	// none (the replaced one's removal is logged), behind batches the
	// sender saw committed.
	recPersistent bool
	names         xmit.Names // the names in the headers, each allocated once
	msg           mq.Message // the message being delivered (a put copies it)

	mu      sync.Mutex
	reason  string // why the watchdog closed the connection
	stopped bool   // STOP CHANNEL (not adoption)
	msgs    uint32

	// counts are the channel's figures in the initiator (set once the
	// channel is claimed): the session adds each committed batch.
	counts *chanCounts
}

func (r *receiver) run() {
	log := r.ci.log.With("remote", r.nc.RemoteAddr().String())
	defer r.nc.Close()
	if tc, ok := r.nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	r.nc = newSpinConn(r.nc, r.ci.cfg.SpinWait)
	err := r.session()
	if r.conn == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		r.ci.refused.note(r.ci, group.CounterInboundTimedOut, "inbound connection dropped: no TLS handshake and HELLO within the deadline",
			"event", "connection_refused", "listener", "channel", "reason", "hello_timeout", "remote", r.nc.RemoteAddr().String(), "hello_timeout", r.ci.cfg.Inbound.HelloTimeout)
		return
	}
	if r.conn != nil {
		r.conn.Backout()
		r.closeQueues()
		if r.syncq != nil {
			r.syncq.Close()
		}
		state := Inactive
		r.mu.Lock()
		if r.stopped {
			state = Stopped
		}
		msgs := r.msgs
		r.mu.Unlock()
		r.ci.update(r.def.Name, func(st *Status, _ bool) bool {
			if st.Conn != r.conn.Tag() {
				return false
			}
			st.State, st.StopReq, st.Force = state, false, false
			st.Unlock()
			st.Msgs += msgs
			st.LastBatch = max(st.LastBatch, r.last)
			return true
		})
		r.conn.Disconnect()
	}
	r.mu.Lock()
	why := r.reason
	r.mu.Unlock()
	switch {
	case err == nil:
		log.Info("inbound channel ended", "channel", r.def.Name)
	case why != "":
		log.Info("inbound channel ended", "channel", r.def.Name, "why", why)
	default:
		log.Warn("inbound channel failed", "channel", r.def.Name, "err", err)
	}
}

// refuse answers the HELLO with a CLOSE.
func (r *receiver) refuse(reason uint32, format string, args ...any) error {
	text := fmt.Sprintf(format, args...)
	r.w.Close(reason, text)
	r.w.Flush()
	return fmt.Errorf("refused: %s", text)
}

func (r *receiver) session() error {
	// The handshake (TLS and HELLO) must end by Inbound.HelloTimeout;
	// the deadline is lifted once HELLO_ACK is sent.
	r.nc.SetReadDeadline(time.Now().Add(r.ci.cfg.Inbound.HelloTimeout))
	br := bufio.NewReader(r.nc)
	first, err := br.Peek(1)
	if err != nil {
		return err
	}
	var nc net.Conn = &peekConn{Conn: r.nc, br: br}
	var tlsState *tls.ConnectionState
	if first[0] == 0x16 { // a TLS handshake record
		tc := tls.Server(nc, r.ci.serverTLS())
		if err := tc.Handshake(); err != nil {
			r.ci.refuseAuth(r.nc, "", "", fmt.Sprintf("TLS handshake: %v", err))
			return fmt.Errorf("TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		tlsState, nc = &st, tc
	}
	r.r = NewReader(nc, maxHelloFrame)
	r.w = NewWriter(nc)
	h, err := r.hello()
	if err != nil {
		return err
	}
	def, ackProof, err := r.authenticate(h, tlsState)
	if err != nil {
		return err
	}
	r.def = def
	if r.conn, err = r.ci.connect(); err != nil {
		return r.refuse(ReasonInternal, "connect: %v", err)
	}
	// Only now, the partner authenticated, may it take the channel (and
	// adopt a live instance).
	if err := r.claim(); err != nil {
		return err
	}
	r.counts = r.ci.counts.of(def.Name)
	r.open = map[string]*mq.Queue{}
	syncq, err := r.conn.Open(SyncQueue, mq.OpenOptions{Input: true, Output: true, Browse: true})
	if err != nil {
		return r.refuse(ReasonInternal, "open %s: %v", SyncQueue, err)
	}
	r.syncq = syncq
	key := syncKey(syncRecv, def.Name)
	cur, err := syncq.Browse()
	if err != nil {
		return r.refuse(ReasonInternal, "%v", err)
	}
	if m, err := cur.Next(mq.GetOptions{CorrelID: &key}); err == nil {
		if r.last, err = decodeRecvSync(m.Body); err != nil {
			return r.refuse(ReasonInternal, "%v", err)
		}
		r.recPersistent = m.Persistent
	} else if !errors.Is(err, mq.ErrNoMessage) {
		return r.refuse(ReasonInternal, "%v", err)
	}
	if h.Reset != 0 {
		if err := r.reset(syncq, key, h.Reset); err != nil {
			return r.refuse(ReasonInternal, "RESET CHANNEL: %v", err)
		}
	}
	if r.dlq, err = r.ci.deadQ(); err != nil {
		return r.refuse(ReasonInternal, "%v", err)
	}
	batchSz := min(h.BatchSz, uint32(def.BatchSz))
	maxMsg := min(h.MaxMsgL, uint32(def.MaxMsgL))
	// The larger heartbeat interval, as MQ agrees it, but never more than
	// the configured maximum: a partner proposing a huge one could
	// otherwise hold a batch's unit of work open for ever.
	hb := min(max(h.HBInt, uint32(def.HBInt)), r.ci.maxHBInt())
	r.w.HelloAck(HelloAck{QMgr: r.ci.cfg.QMgr, BatchSz: batchSz, MaxMsgL: maxMsg, HBInt: hb, Version: ProtoVersion, LastBatch: r.last,
		HasProof: ackProof != nil, Proof: derefProof(ackProof)})
	if err := r.w.Flush(); err != nil {
		return err
	}
	r.r.SetMax(maxMsg + frameSlack)
	r.ci.update(def.Name, func(st *Status, _ bool) bool {
		if st.Conn != r.conn.Tag() {
			return false
		}
		st.State, st.RQMName, st.Address, st.LastBatch = Running, h.QMgr, r.nc.RemoteAddr().String(), r.last
		return true
	})
	r.ci.log.Info("inbound channel running", "channel", def.Name, "partner", h.QMgr, "remote", r.nc.RemoteAddr().String(), "last_batch", r.last)
	// The watchdog ends the instance on STOP CHANNEL, adoption, the
	// channel initiator stopping, or a silent partner.
	ctx, cancel := context.WithCancel(r.ci.ctx)
	defer cancel()
	var lastFrame timeCell
	lastFrame.set(time.Now())
	go r.watchdog(ctx, 2*time.Duration(hb)*time.Second+r.ci.cfg.SilenceGrace, &lastFrame)
	r.nc.SetReadDeadline(time.Time{})
	n := uint32(0)
	nbytes := uint64(0) // the batch's MSG payloads (chanstats.Channel.ReceivedBytes)
	pending := 0        // CONFIRMs written and not yet flushed
	for {
		// CONFIRMs go out before a read that may block, or two at a time:
		// while the next batch is already here, its commit comes first and
		// one write carries both (the sender has more lanes to go on with).
		if pending > 0 && (pending >= 2 || r.r.Buffered() == 0) {
			if err := r.w.Flush(); err != nil {
				return err
			}
			pending = 0
		}
		f, err := r.r.Read()
		if err != nil {
			return err
		}
		if f.Type != FrameMsg || n%64 == 0 || len(f.Payload) >= bigFrame {
			// Not every small message: a clock read and a lock each. A
			// large one may take long to come, and each shows the
			// partner is there (64 of them may outlast the silence limit).
			lastFrame.set(time.Now())
		}
		switch f.Type {
		case FrameMsg:
			if n >= batchSz {
				// Its puts are backed out as the instance ends.
				return r.refuse(ReasonProtocol, "a batch of more than %d messages, the BATCHSZ agreed", batchSz)
			}
			if err := r.deliver(f.Payload); err != nil {
				return err
			}
			n++
			nbytes += uint64(len(f.Payload))
		case FrameEndBatch:
			id, count, err := DecodeEndBatch(f.Payload)
			if err != nil {
				return r.refuse(ReasonProtocol, "%v", err)
			}
			if n == 0 {
				// A batch is at least one message: an empty one would
				// only move the sync record (the sender commits a batch
				// that was all dead-lettered on its side alone).
				return r.refuse(ReasonProtocol, "an empty batch (batch %d)", id)
			}
			if id != r.last+1 || count != n {
				return r.refuse(ReasonSequence, "batch %d of %d messages; expected batch %d, got %d messages", id, count, r.last+1, n)
			}
			pers := r.persistent || r.recPersistent
			r.persistent = false
			if err := r.replaceRecord(syncq, key, id, pers); err != nil {
				return r.refuse(ReasonInternal, "%v", err)
			}
			// The batch's queues are closed before its puts become
			// visible: between batches the channel holds no queue open,
			// so DELETE QLOCAL of one is not refused for it (the next
			// batch opens them again; an uncommitted put still holds a
			// queue, as its count of uncommitted messages).
			if err := r.closeQueues(); err != nil {
				return r.refuse(ReasonInternal, "%v", err)
			}
			if err := r.conn.Commit(); err != nil {
				return r.refuse(ReasonInternal, "commit: %v", err)
			}
			cpReceiverCommitted.Hit()
			r.last, r.recPersistent = id, pers
			r.mu.Lock()
			r.msgs += n
			r.mu.Unlock()
			r.counts.batches.Add(1)
			r.counts.messages.Add(uint64(n))
			r.counts.receivedBytes.Add(nbytes)
			n, nbytes = 0, 0
			r.w.Confirm(id)
			pending++
		case FrameHeartbeat:
			r.w.Heartbeat()
			if err := r.w.Flush(); err != nil {
				return err
			}
		case FrameClose:
			reason, text, err := DecodeClose(f.Payload)
			if err != nil {
				return err
			}
			if reason != ReasonNormal {
				return &remoteError{reason, text}
			}
			return nil
		default:
			return r.refuse(ReasonProtocol, "unexpected frame %d", f.Type)
		}
	}
}

// replaceRecord replaces the channel's sync record (key) with one saying
// batch id is the last committed, in the unit of work.
func (r *receiver) replaceRecord(syncq *mq.Queue, key [24]byte, id uint64, persistent bool) error {
	if _, err := syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
		return err
	}
	pers := mq.NotPersistent
	if persistent {
		pers = mq.Persistent
	}
	return syncq.Put(&mq.Message{CorrelID: key, Body: encodeRecvSync(id), Persistence: pers}, mq.PutOptions{Syncpoint: true})
}

// reset takes the sender's RESET CHANNEL: next is the next batch's id.
// The record is persistent: the reset must not be undone by the loss of
// the CF.
func (r *receiver) reset(syncq *mq.Queue, key [24]byte, next uint64) error {
	if err := r.replaceRecord(syncq, key, next-1, true); err != nil {
		return err
	}
	if err := r.conn.Commit(); err != nil {
		return err
	}
	r.ci.log.Info("channel reset by its partner", "channel", r.def.Name, "last_batch", r.last, "next_batch", next)
	r.last, r.recPersistent = next-1, true
	return nil
}

// claim takes the channel's status entry for this instance. An entry
// locked by an instance whose process is dead is waited for (its recovery
// frees it in milliseconds); one locked by a live instance is adopted: that
// instance is asked to end (its partner is evidently gone) and waited for.
func (r *receiver) claim() error {
	deadline := time.Now().Add(10 * time.Second)
	asked := false
	for {
		var held Status
		_, won, err := r.ci.update(r.def.Name, func(st *Status, _ bool) bool {
			held = *st
			if st.State == Stopped && !r.ci.table.Locked(*st) {
				return false
			}
			if r.ci.table.Locked(*st) {
				if !asked && !st.StopReq {
					st.StopReq, st.Force = true, true // adopt: the old instance ends at once
					asked = true
					return true
				}
				return false
			}
			st.Type, st.State, st.StopReq, st.Force = defs.ChlReceiver, Starting, false, false
			st.lockFor(r.conn)
			st.XmitQ, st.Retries, st.RetryAt = "", 0, time.Time{}
			return true
		})
		if err != nil {
			return r.refuse(ReasonInternal, "status table: %v", err)
		}
		if won && held.Conn != r.conn.Tag() && !r.ci.table.Locked(held) {
			return nil
		}
		// The refusals name neither the group nor its members: the log
		// here does.
		if held.State == Stopped && !r.ci.table.Locked(held) {
			r.ci.log.Info("inbound channel refused: stopped here", "channel", r.def.Name, "remote", r.nc.RemoteAddr().String())
			return r.refuse(ReasonRunning, "channel %s is stopped", r.def.Name)
		}
		if time.Now().After(deadline) {
			r.ci.log.Info("inbound channel refused: running", "channel", r.def.Name, "on", r.ci.peerName(held.Owner), "remote", r.nc.RemoteAddr().String())
			return r.refuse(ReasonRunning, "channel %s is already running", r.def.Name)
		}
		select {
		case <-r.ci.ctx.Done():
			return r.refuse(ReasonStopping, "member stopping")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (ci *Chinit) peerName(slot int) string {
	if slot < 0 {
		return "?"
	}
	if p, err := ci.g.Peer(slot); err == nil {
		return p.Name
	}
	return "?"
}

// watchdog closes the connection when the instance must end: STOP CHANNEL
// or adoption (the entry's stop flags), the channel initiator stopping, or
// no frame for limit (twice the heartbeat interval plus the silence grace),
// in a batch or between batches: the batch's unit of work is backed out.
func (r *receiver) watchdog(ctx context.Context, limit time.Duration, last *timeCell) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if r.ci.ctx.Err() != nil {
				r.close("channel initiator stopping", false)
			}
			return
		case <-t.C:
		}
		st, ok, err := r.ci.table.Find(r.def.Name)
		switch {
		case err != nil:
		case !ok || st.Conn != r.conn.Tag():
			r.close("status entry taken", false)
			return
		case st.StopReq && st.Force:
			r.close("adopted by a new instance, or STOP CHANNEL MODE(FORCE)", false)
			return
		case st.StopReq:
			r.close("STOP CHANNEL", true)
			return
		}
		if time.Since(last.get()) > limit {
			r.close("partner silent", false)
			return
		}
	}
}

func (r *receiver) close(why string, stopped bool) {
	r.mu.Lock()
	r.reason, r.stopped = why, stopped
	r.mu.Unlock()
	r.nc.Close()
}

// deliver puts one message, in the batch's unit of work, on its
// destination queue, or on the dead-letter queue when it cannot go there.
func (r *receiver) deliver(p []byte) error {
	h, props, body, err := r.names.Decode(p)
	if err != nil {
		return r.refuse(ReasonProtocol, "%v", err)
	}
	m := &r.msg
	*m = mq.Message{MsgID: h.MsgID, CorrelID: h.CorrelID, Format: r.names.String(bytes.TrimRight(h.Format[:], " \x00")),
		Priority: h.Priority, Persistence: mq.NotPersistent, ReplyToQ: h.ReplyToQ, ReplyToQMgr: h.ReplyToQMgr,
		Properties: props, Body: body} // alias the frame: a put copies them into the structure
	if h.Persistent {
		m.Persistence = mq.Persistent
		r.persistent = true
	}
	if h.Expiry != 0 {
		m.Expiry = time.Unix(0, h.Expiry)
	}
	reason := mq.RCNone
	if h.DestQMgr != r.ci.cfg.QMgr && h.DestQMgr != r.ci.cfg.Group.Name {
		reason = mq.RCUnknownRemoteQMgr
	} else if !r.mayTarget(h.DestQueue) {
		reason = mq.RCNotAuthorized
	} else if err := r.put(h.DestQueue, m, true); err != nil {
		reason = mq.ReasonOf(err)
		switch reason {
		case mq.RCNotAuthorized, mq.RCUnknownObjectName, mq.RCQFull, mq.RCMsgTooBigForQ, mq.RCStorageMediumFull, mq.RCNotValidForType,
			mq.RCXmitQUsageError, mq.RCUnknownXmitQ:
		default:
			return r.refuse(ReasonInternal, "put %s: %v", h.DestQueue, err)
		}
	}
	if reason == mq.RCNone {
		return nil
	}
	if r.dlq == "" {
		return r.refuse(ReasonUndeliverable, "message for %s on %s: %v, and there is no dead-letter queue", h.DestQueue, h.DestQMgr, reason)
	}
	d := *m
	d.Body = mq.DLH{Reason: reason, DestQ: h.DestQueue, DestQMgr: h.DestQMgr, OrigFormat: m.Format, Time: time.Now()}.Encode(m.Body)
	d.Format = mq.FormatDeadLetter
	if err := r.put(r.dlq, &d, false); err != nil {
		return r.refuse(ReasonUndeliverable, "message for %s: %v; dead-letter queue %s: %v", h.DestQueue, reason, r.dlq, err)
	}
	return nil
}

// mayTarget reports whether the partner may put to queue q: never to the
// group's channel state (SYSTEM.QSG.*: the sync queue, which the receiver
// itself updates); to other SYSTEM.* queues and transmission queues only
// with INQUEUES(ALL). A refused message is dead-lettered (reason
// RCNotAuthorized), as one for an unknown queue.
func (r *receiver) mayTarget(q string) bool {
	if strings.HasPrefix(q, "SYSTEM.QSG.") {
		return false
	}
	if r.def.InQueuesAll() {
		return true
	}
	if strings.HasPrefix(q, "SYSTEM.") {
		return false
	}
	return true // and not a transmission queue: see put
}

// closeQueues closes the queues the batch put to.
func (r *receiver) closeQueues() error {
	var err error
	for name, h := range r.open {
		err = errors.Join(err, h.Close())
		delete(r.open, name)
	}
	return err
}

// put puts m on queue q in the batch's unit of work. For the partner
// (peer), q may not resolve to a transmission queue (a QLOCAL of
// USAGE(XMITQ), or a QREMOTE) unless INQUEUES(ALL).
func (r *receiver) put(q string, m *mq.Message, peer bool) error {
	h, ok := r.open[q]
	if !ok {
		var err error
		if h, err = r.conn.Open(q, mq.OpenOptions{Output: true}); err != nil {
			return err
		}
		if peer && !r.def.InQueuesAll() && h.Def().Usage == "XMITQ" {
			h.Close()
			return fmt.Errorf("channel %s: %s is a transmission queue, and INQUEUES(APPL): %w", r.def.Name, q, mq.ErrNotAuthorized)
		}
		r.open[q] = h
	}
	return h.Put(m, mq.PutOptions{Syncpoint: true})
}

// timeCell is a time shared between goroutines.
type timeCell struct {
	mu sync.Mutex
	t  time.Time
}

func (c *timeCell) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *timeCell) get() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
