package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/xmit"
)

// Crash points of the sender (see package crashpoint).
var (
	cpSenderInDoubt = crashpoint.New("channel.sender.indoubt") // sync record put, END_BATCH not sent
	cpSenderSent    = crashpoint.New("channel.sender.sent")    // END_BATCH sent, no CONFIRM yet
	cpSenderConfirm = crashpoint.New("channel.sender.confirmed")
)

// errStopped ends an instance on STOP CHANNEL; errDisc on the disconnect
// interval; errRevoked when its connection is broken (its member died).
var (
	errStopped = errors.New("channel stopped")
	errDisc    = errors.New("disconnect interval reached")
	errRevoked = errors.New("connection to the member broken")
)

// remoteError is a CLOSE from the partner.
type remoteError struct {
	reason uint32
	text   string
}

func (e *remoteError) Error() string {
	return fmt.Sprintf("partner closed the channel (reason %d): %s", e.reason, e.text)
}

// sender runs one instance of a sender channel.
type sender struct {
	ci   *Chinit
	def  defs.Channel
	conn *mq.Conn
	ctx  context.Context
	st   Status

	xq, syncq *mq.Queue
	nc        net.Conn
	r         *Reader
	w         *Writer
	last      uint64 // last batch committed on both sides
	hb        time.Duration
	batchSz   int
	msgs      uint32
	views     []*mq.View // the batch in flight
	moved     bool       // this instance committed a batch
	head      [xmit.HeaderSize]byte
	lastStat  time.Time
}

func (s *sender) run() {
	log := s.ci.log.With("channel", s.def.Name)
	err := s.session()
	if s.nc != nil {
		s.nc.Close()
	}
	s.conn.Backout()
	switch {
	case errors.Is(err, errRevoked) || mq.ReasonOf(err) == mq.RCConnectionBroken:
		// The member is gone or stopping: the lock frees itself once the
		// connection is recovered and a survivor takes the channel over.
		log.Warn("channel instance ends: connection broken", "err", err)
		return
	case errors.Is(err, errStopped):
		log.Info("channel stopped")
		s.release(Stopped)
	case errors.Is(err, errDisc):
		log.Info("channel ends: disconnect interval")
		s.release(Inactive)
	case s.ci.ctx.Err() != nil:
		if s.ci.onStop == Stop {
			s.release(Stopped)
		} else {
			s.release(Starting) // another member starts it at once
		}
		log.Info("channel ends: channel initiator stopping")
	default:
		log.Warn("channel failed; retrying", "err", err)
		s.retry()
	}
}

// release leaves the entry in state and unlocks it.
func (s *sender) release(state State) {
	s.ci.update(s.def.Name, func(st *Status, _ bool) bool {
		if st.Conn != s.conn.Tag() {
			return false
		}
		st.State, st.Conn, st.StopReq, st.Force = state, 0, false, false
		st.Msgs += s.msgs
		st.LastBatch = max(st.LastBatch, s.last)
		if state != Retrying {
			st.Retries, st.RetryAt = 0, time.Time{}
		}
		return true
	})
}

// retry leaves the entry retrying: the first retry after an instance that
// ran is at once, then SHORTRTY every SHORTTMR, then LONGRTY every LONGTMR,
// then the channel stops. Any member's channel initiator may take it.
func (s *sender) retry() {
	ran := s.moved // a batch went through: retry at once, once
	s.ci.update(s.def.Name, func(st *Status, _ bool) bool {
		if st.Conn != s.conn.Tag() {
			return false
		}
		if st.StopReq {
			st.State = Stopped
		} else {
			st.State = Retrying
			if ran {
				st.Retries = 0
			}
			st.Retries++
			switch {
			case ran && st.Retries == 1:
				st.RetryAt = time.Now()
			case int(st.Retries) <= s.def.ShortRty:
				st.RetryAt = time.Now().Add(time.Duration(s.def.ShortTmr) * time.Second)
			case int(st.Retries) <= s.def.ShortRty+s.def.LongRty:
				st.RetryAt = time.Now().Add(time.Duration(s.def.LongTmr) * time.Second)
			default:
				st.State = Stopped
			}
		}
		st.Conn, st.StopReq, st.Force = 0, false, false
		st.Msgs += s.msgs
		st.LastBatch = max(st.LastBatch, s.last)
		return true
	})
}

func (s *sender) session() error {
	var err error
	if s.xq, err = s.conn.Open(s.def.XmitQ, mq.OpenOptions{Input: true}); err != nil {
		return err
	}
	if s.xq.Def().Usage != "XMITQ" {
		return fmt.Errorf("channel %s: %s is not a transmission queue (USAGE(XMITQ))", s.def.Name, s.def.XmitQ)
	}
	if s.syncq, err = s.conn.Open(SyncQueue, mq.OpenOptions{Input: true, Output: true, Browse: true}); err != nil {
		return err
	}
	if err := s.dial(); err != nil {
		return err
	}
	// Resynchronise: our in-doubt batch, if any, and the partner's last
	// committed batch decide what happens to it.
	inDoubt, ids, err := s.readInDoubt()
	if err != nil {
		return err
	}
	s.w.Hello(Hello{Channel: s.def.Name, QMgr: s.ci.cfg.QMgr, Group: s.ci.cfg.Group.Name, BatchSz: uint32(s.def.BatchSz),
		MaxMsgL: uint32(s.def.MaxMsgL), HBInt: uint32(s.def.HBInt), NPMFast: s.def.NPMSpeed == "FAST",
		MinVer: ProtoVersion, MaxVer: ProtoVersion, InDoubt: inDoubt})
	if err := s.w.Flush(); err != nil {
		return err
	}
	s.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
	f, err := s.r.Read()
	if err != nil {
		return err
	}
	if f.Type == FrameClose {
		reason, text, _ := DecodeClose(f.Payload)
		return &remoteError{reason, text}
	}
	if f.Type != FrameHelloAck {
		return fmt.Errorf("%w: frame %d instead of HELLO_ACK", ErrProtocol, f.Type)
	}
	ack, err := DecodeHelloAck(f.Payload)
	if err != nil {
		return err
	}
	s.batchSz = int(min(ack.BatchSz, uint32(s.def.BatchSz)))
	s.hb = time.Duration(ack.HBInt) * time.Second
	s.r.SetMax(ack.MaxMsgL + frameSlack)
	if err := s.resolve(inDoubt, ids, ack.LastBatch); err != nil {
		return err
	}
	s.last = ack.LastBatch
	if _, _, err := s.ci.update(s.def.Name, func(st *Status, _ bool) bool {
		if st.Conn != s.conn.Tag() {
			return false
		}
		st.State, st.RQMName, st.Address, st.LastBatch, st.InDoubt = Running, ack.QMgr, s.nc.RemoteAddr().String(), s.last, 0
		st.Retries, st.RetryAt = 0, time.Time{}
		return true
	}); err != nil {
		return err
	}
	s.st.State = Running
	s.ci.log.Info("channel running", "channel", s.def.Name, "partner", ack.QMgr, "address", s.nc.RemoteAddr().String(), "last_batch", s.last)
	for {
		if err := s.batch(); err != nil {
			return err
		}
	}
}

// dial connects to the first address of CONNAME that answers.
func (s *sender) dial() error {
	addrs, err := s.def.Addresses()
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range addrs {
		d := net.Dialer{Timeout: 5 * time.Second}
		nc, err := d.DialContext(s.ctx, "tcp", a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			tc.SetNoDelay(true)
		}
		if s.def.SSLCert != "" {
			cfg, err := tlsConfig(s.def, false)
			if err != nil {
				nc.Close()
				return err
			}
			h, _, _ := net.SplitHostPort(a)
			cfg.ServerName = h
			tc := tls.Client(nc, cfg)
			if err := tc.HandshakeContext(s.ctx); err != nil {
				nc.Close()
				errs = append(errs, err)
				continue
			}
			nc = tc
		}
		s.nc = nc
		s.r = NewReader(nc, maxHelloFrame)
		s.w = NewWriter(nc)
		return nil
	}
	return fmt.Errorf("channel %s: cannot connect to %s: %w", s.def.Name, s.def.ConnName, errors.Join(errs...))
}

// readInDoubt reads the channel's in-doubt record.
func (s *sender) readInDoubt() (uint64, [][24]byte, error) {
	key := syncKey(syncSend, s.def.Name)
	cur, err := s.syncq.Browse()
	if err != nil {
		return 0, nil, err
	}
	m, err := cur.Next(mq.GetOptions{CorrelID: &key})
	if errors.Is(err, mq.ErrNoMessage) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	return decodeSendSync(m.Body)
}

// resolve settles the in-doubt batch against the partner's last committed
// batch: committed there, its messages are removed here; not committed,
// they are already back on the transmission queue (the unit of work of the
// instance that sent them was backed out) and go again.
func (s *sender) resolve(inDoubt uint64, ids [][24]byte, last uint64) error {
	key := syncKey(syncSend, s.def.Name)
	switch {
	case inDoubt == 0:
		return nil
	case last == inDoubt:
		for i := range ids {
			if _, err := s.xq.Get(mq.GetOptions{Syncpoint: true, MsgID: &ids[i]}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
				return err
			}
		}
		if _, err := s.syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return err
		}
		s.ci.log.Info("in-doubt batch was committed by the partner: removed here", "channel", s.def.Name, "batch", inDoubt, "messages", len(ids))
		return s.conn.Commit()
	case last+1 == inDoubt:
		if _, err := s.syncq.Get(mq.GetOptions{CorrelID: &key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return err
		}
		s.ci.log.Info("in-doubt batch was not committed by the partner: sending it again", "channel", s.def.Name, "batch", inDoubt, "messages", len(ids))
		return nil
	}
	return fmt.Errorf("channel %s: sequence mismatch: in-doubt batch %d, partner's last batch %d", s.def.Name, inDoubt, last)
}

// checkStop reads the channel's entry: STOP CHANNEL asks its owner to end.
func (s *sender) checkStop() error {
	if err := s.conn.Ping(); err != nil {
		return errRevoked
	}
	st, ok, err := s.ci.table.Find(s.def.Name)
	if err != nil {
		return err
	}
	if !ok || st.Conn != s.conn.Tag() {
		return errRevoked // the lock was taken from us
	}
	if st.StopReq {
		return errStopped
	}
	return s.ci.ctx.Err()
}

// batch moves one batch: gets from the transmission queue, the in-doubt
// record, the frames, END_BATCH, CONFIRM, then the commit of the gets and
// the removal of the record in one unit of work.
func (s *sender) batch() error {
	if err := s.checkStop(); err != nil {
		return err
	}
	first, err := s.waitFirst()
	if err != nil {
		return err
	}
	views := append(s.views[:0], first)
	deadline := time.Now().Add(time.Duration(s.def.BatchInt) * time.Millisecond)
	for len(views) < s.batchSz {
		wait := time.Duration(0)
		if s.def.BatchInt > 0 {
			if wait = time.Until(deadline); wait <= 0 {
				break
			}
		}
		v, err := s.xq.GetView(mq.GetOptions{Syncpoint: true, Wait: wait})
		if errors.Is(err, mq.ErrNoMessage) {
			break
		}
		if err != nil {
			return err
		}
		views = append(views, v)
	}
	s.views = views
	// The views are valid until the commit: their bodies go from the
	// mapping to the socket.
	ids := make([][24]byte, 0, len(views))
	n := uint32(0)
	pers := mq.NotPersistent
	for _, v := range views {
		if err := xmit.Check(v.Head(s.head[:]), v.Len()); err != nil {
			if err := s.deadLetter(v, err); err != nil {
				return err
			}
			continue
		}
		ids = append(ids, v.MsgID)
		s.w.MsgV(v.Pieces, v.Len())
		n++
		if v.Persistence == mq.Persistent {
			pers = mq.Persistent
		}
	}
	id := s.last + 1
	key := syncKey(syncSend, s.def.Name)
	// Persistent only when the batch carries persistent messages: a batch
	// of non-persistent ones does not wait for the log (see receiver).
	if err := s.syncq.Put(&mq.Message{CorrelID: key, Body: encodeSendSync(id, ids), Persistence: pers}, mq.PutOptions{}); err != nil {
		return err
	}
	cpSenderInDoubt.Hit()
	s.w.EndBatch(id, n)
	if err := s.w.Flush(); err != nil {
		return err
	}
	cpSenderSent.Hit()
	s.nc.SetReadDeadline(time.Now().Add(s.replyWait()))
	f, err := s.r.Read()
	if err != nil {
		return err
	}
	switch f.Type {
	case FrameConfirm:
		got, err := DecodeConfirm(f.Payload)
		if err != nil {
			return err
		}
		if got != id {
			return fmt.Errorf("%w: CONFIRM of batch %d, sent %d", ErrProtocol, got, id)
		}
	case FrameClose:
		reason, text, _ := DecodeClose(f.Payload)
		return &remoteError{reason, text}
	default:
		return fmt.Errorf("%w: frame %d instead of CONFIRM", ErrProtocol, f.Type)
	}
	cpSenderConfirm.Hit()
	if _, err := s.syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &key}); err != nil {
		return err
	}
	if err := s.conn.Commit(); err != nil {
		return err
	}
	s.last = id
	s.moved = true
	s.msgs += n
	if time.Since(s.lastStat) > 500*time.Millisecond {
		s.lastStat = time.Now()
		msgs := s.msgs
		s.msgs = 0
		s.ci.update(s.def.Name, func(st *Status, _ bool) bool {
			if st.Conn != s.conn.Tag() {
				return false
			}
			st.Msgs += msgs
			st.LastBatch = s.last
			return true
		})
	}
	return nil
}

func (s *sender) replyWait() time.Duration {
	return max(60*time.Second, 2*s.hb)
}

// waitFirst waits for the first message of a batch, checking for STOP
// CHANNEL every second, sending heartbeats every HBINT and ending the
// channel after DISCINT without messages.
func (s *sender) waitFirst() (*mq.View, error) {
	t0 := time.Now()
	lastHB := t0
	for {
		m, err := s.xq.GetView(mq.GetOptions{Syncpoint: true, Wait: time.Second})
		if err == nil {
			return m, nil
		}
		if !errors.Is(err, mq.ErrNoMessage) {
			return nil, err
		}
		if err := s.checkStop(); err != nil {
			return nil, err
		}
		if s.def.DiscInt > 0 && time.Since(t0) >= time.Duration(s.def.DiscInt)*time.Second {
			s.w.Close(ReasonNormal, "disconnect interval")
			s.w.Flush()
			return nil, errDisc
		}
		if s.hb > 0 && time.Since(lastHB) >= s.hb {
			lastHB = time.Now()
			s.w.Heartbeat()
			if err := s.w.Flush(); err != nil {
				return nil, err
			}
			s.nc.SetReadDeadline(time.Now().Add(s.replyWait()))
			f, err := s.r.Read()
			if err != nil {
				return nil, err
			}
			if f.Type == FrameClose {
				reason, text, _ := DecodeClose(f.Payload)
				return nil, &remoteError{reason, text}
			}
			if f.Type != FrameHeartbeat {
				return nil, fmt.Errorf("%w: frame %d instead of HEARTBEAT", ErrProtocol, f.Type)
			}
		}
	}
}

// deadLetter moves a message that is not a transmission message to the
// group's dead-letter queue, in the batch's unit of work.
func (s *sender) deadLetter(v *mq.View, why error) error {
	dlq, err := s.ci.deadQ()
	if err != nil {
		return err
	}
	if dlq == "" {
		return fmt.Errorf("channel %s: a message on %s is not a transmission message (%v) and there is no dead-letter queue", s.def.Name, s.def.XmitQ, why)
	}
	h, err := s.conn.Open(dlq, mq.OpenOptions{Output: true})
	if err != nil {
		return err
	}
	defer h.Close()
	d := mq.Message{CorrelID: v.CorrelID, Priority: v.Priority, Persistence: v.Persistence, BackoutCount: v.BackoutCount, Format: mq.FormatDeadLetter,
		Body: mq.DLH{Reason: mq.RCXmitQUsageError, DestQ: s.def.XmitQ, DestQMgr: s.ci.cfg.QMgr, OrigFormat: v.Format, Time: time.Now()}.Encode(v.Bytes())}
	s.ci.log.Warn("not a transmission message: dead-lettered", "channel", s.def.Name, "err", why)
	return h.Put(&d, mq.PutOptions{Syncpoint: true})
}

// deadQ is the group's dead-letter queue (empty for none).
func (ci *Chinit) deadQ() (string, error) {
	var qm defs.QMgr
	err := ci.main.Defs().View(func(tx *defs.Tx) error { var err error; qm, err = tx.QMgr(); return err })
	return qm.DeadQ, err
}
