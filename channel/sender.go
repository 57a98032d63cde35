package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"time"

	"github.com/qmgr/qmgr/crashpoint"
	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/internal/mqconn"
	"github.com/qmgr/qmgr/lockfree"
	"github.com/qmgr/qmgr/mq"
	"github.com/qmgr/qmgr/xmit"
)

// Crash points of the sender (see package crashpoint).
var (
	cpSenderInDoubt = crashpoint.New("channel.sender.indoubt") // sync record put, END_BATCH not sent
	cpSenderSent    = crashpoint.New("channel.sender.sent")    // END_BATCH sent, no CONFIRM yet
	cpSenderConfirm = crashpoint.New("channel.sender.confirmed")
)

// errStopped ends an instance on STOP CHANNEL (errForced: MODE(FORCE), the
// batches in flight are abandoned to resynchronisation); errDisc on the disconnect
// interval; errRevoked when its connection is broken (its member died).
var (
	errStopped = errors.New("channel stopped")
	errForced  = fmt.Errorf("%w: MODE(FORCE)", errStopped)
	errDisc    = errors.New("disconnect interval reached")
	errRevoked = errors.New("connection to the member broken")
)

// syncError ends an instance whose resynchronisation cannot succeed
// without an operator's decision: the channel stops (rather than retry for
// ever) with reason in its status entry.
type syncError struct {
	reason StopReason
	detail string
}

func (e *syncError) Error() string { return e.detail }

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
	conn *mq.Conn // the lock's connection, and lane 0's
	ctx  context.Context
	st   Status
	// counts are the channel's figures in the initiator: confirm adds
	// each committed batch.
	counts *chanCounts

	lanes   [numLanes]lane              // batches in flight (see batches)
	stuck   [MaxLanes]lockfree.OwnerTag // lanes that could not be backed out at the end
	nc      net.Conn
	r       *Reader
	w       *Writer
	last    uint64 // last batch committed on both sides
	sent    uint64 // last batch sent
	hb      time.Duration
	batchSz int
	msgs    uint32
	moved   bool // this instance committed a batch
	// What is in doubt, for the status entry when the instance ends:
	// before resolve, the latest batch of the sync records (doubtKnown
	// once they were read); after it, the lanes' batches in flight.
	doubt      uint64
	doubtKnown bool
	resolved   bool
	reason     StopReason // why the instance stops the channel (release)
	head       [xmit.HeaderSize]byte
	check      xmit.Checker // remembers the names of the last header it passed
	lastStat   time.Time
}

// lane is one of a sender's batches in flight: a connection of its
// own (so a unit of work of its own), the queues opened through it and
// its own sync record.
type lane struct {
	conn      *mq.Conn
	xq, syncq *mq.Queue
	key       [24]byte  // its sync record's correlation id
	id        uint64    // the batch in flight (0: none)
	n         uint32    // its messages
	bytes     uint64    // their MSG payloads' bytes (chanstats.Channel.SentBytes)
	views     []mq.View // the batch, valid until the lane commits (storage reused)
	ids       [][24]byte
	// persistent: the batch carries a persistent message.
	persistent bool
}

func (s *sender) run() {
	log := s.ci.log.With("channel", s.def.Name)
	err := s.session()
	if s.nc != nil {
		s.nc.Close()
	}
	// Every lane is backed out before the lock frees (release, retry):
	// one that cannot be stays in the entry and holds the lock until its
	// connection is recovered. The lanes are disconnected after.
	k := 0
	for i := range s.lanes {
		c := s.lanes[i].conn
		if c == nil {
			continue
		}
		if err := c.Backout(); err != nil {
			log.Warn("channel instance ends: a batch could not be backed out; its connection's recovery will", "err", err)
			s.stuck[k] = c.Tag()
			k++
		}
		if i > 0 {
			defer c.Disconnect()
		}
	}
	var se *syncError
	switch {
	case errors.Is(err, errRevoked) || mq.ReasonOf(err) == mq.RCConnectionBroken:
		// The member is gone or stopping: the lock frees itself once the
		// connection is recovered and a survivor takes the channel over.
		log.Warn("channel instance ends: connection broken", "err", err)
		return
	case errors.As(err, &se):
		log.Warn("channel stopped: "+se.reason.Describe(s.def.Name), "detail", se.detail)
		s.reason = se.reason
		s.release(Stopped)
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
		st.State, st.Conn, st.Lanes, st.StopReq, st.Force = state, 0, s.stuck, false, false
		st.Msgs += s.msgs
		st.LastBatch = max(st.LastBatch, s.last)
		st.Reason = s.reason
		if id, ok := s.inDoubtNow(); ok {
			st.InDoubt = id
		}
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
		st.Conn, st.Lanes, st.StopReq, st.Force = 0, s.stuck, false, false
		st.Msgs += s.msgs
		st.LastBatch = max(st.LastBatch, s.last)
		if id, ok := s.inDoubtNow(); ok {
			st.InDoubt = id
		}
		return true
	})
}

// inDoubtNow is the latest batch in doubt as the instance ends (0: none),
// and whether the instance knows: one that failed before it read the sync
// records leaves the entry's as it was.
func (s *sender) inDoubtNow() (uint64, bool) {
	if !s.resolved {
		return s.doubt, s.doubtKnown
	}
	var id uint64
	for i := range s.lanes {
		id = max(id, s.lanes[i].id)
	}
	return id, true
}

func (s *sender) session() error {
	var tags [MaxLanes]lockfree.OwnerTag
	for i := 1; i < numLanes; i++ {
		c, err := s.ci.connect()
		if err != nil {
			return err
		}
		s.lanes[i].conn = c
		tags[i-1] = c.Tag()
	}
	// The lanes join the lock before they hold anything.
	if _, won, err := s.ci.update(s.def.Name, func(st *Status, _ bool) bool {
		if st.Conn != s.conn.Tag() {
			return false
		}
		st.Lanes = tags
		return true
	}); err != nil {
		return err
	} else if !won {
		return errRevoked // the lock was taken from us
	}
	s.lanes[0].conn = s.conn
	for i := range s.lanes {
		if err := s.open(&s.lanes[i], syncSendKind(i)); err != nil {
			return err
		}
	}
	if s.def.AuthRequired() && s.def.AuthKey == "" && !s.def.TLSAuthenticates() {
		// A definition from before AUTH: DEFINE and ALTER refuse it now.
		return fmt.Errorf("%w: channel %s cannot authenticate its partner: set AUTHKEY (the same on both sides), or TLS with SSLPEER, or AUTH(OPTIONAL)", errNotAuthorized, s.def.Name)
	}
	if err := s.dial(); err != nil {
		return err
	}
	// Resynchronise: our in-doubt batches, if any, and the partner's last
	// committed batch decide what happens to them.
	inDoubt, err := readInDoubt(s.lanes[0].syncq, s.def.Name)
	if err != nil {
		return err
	}
	var question uint64
	for _, rec := range inDoubt {
		question = max(question, rec.id)
	}
	s.doubt, s.doubtKnown = question, true
	// RESET CHANNEL: the partner takes the reset number (nothing is in
	// doubt: RESET refuses otherwise, and holds the channel's lock).
	var reset uint64
	if s.st.ResetReq {
		if len(inDoubt) > 0 {
			return fmt.Errorf("channel %s: RESET CHANNEL is pending and batch %d is in doubt", s.def.Name, question)
		}
		reset = s.st.LastBatch + 1
	}
	ack, err := s.handshake(question, reset)
	if err != nil {
		return err
	}
	s.batchSz = int(min(ack.BatchSz, uint32(s.def.BatchSz)))
	s.hb = time.Duration(min(ack.HBInt, s.ci.maxHBInt())) * time.Second // the partner's answer is clamped too
	s.r.SetMax(ack.MaxMsgL + frameSlack)
	if reset != 0 && ack.LastBatch != reset-1 {
		return fmt.Errorf("%w: partner %s did not take RESET CHANNEL's batch %d (its last batch is %d)", ErrProtocol, ack.QMgr, reset, ack.LastBatch)
	}
	if err := s.resolve(inDoubt, ack.QMgr, ack.LastBatch); err != nil {
		if se := (*syncError)(nil); errors.As(err, &se) {
			s.w.Close(ReasonSequence, se.detail) // the partner's log says why too
			s.w.Flush()
		}
		return err
	}
	s.resolved = true
	s.last, s.sent = ack.LastBatch, ack.LastBatch
	if _, _, err := s.ci.update(s.def.Name, func(st *Status, _ bool) bool {
		if st.Conn != s.conn.Tag() {
			return false
		}
		st.State, st.RQMName, st.Address, st.LastBatch, st.InDoubt = Running, ack.QMgr, s.nc.RemoteAddr().String(), s.last, 0
		st.Retries, st.RetryAt = 0, time.Time{}
		st.ResetReq, st.Reason = false, NoStopReason // a reset is done once the partner took it
		return true
	}); err != nil {
		return err
	}
	s.st.State = Running
	if reset != 0 {
		s.ci.log.Info("channel reset: both sides number the next batch", "channel", s.def.Name, "partner", ack.QMgr, "batch", reset)
	}
	s.ci.log.Info("channel running", "channel", s.def.Name, "partner", ack.QMgr, "address", s.nc.RemoteAddr().String(), "last_batch", s.last)
	return s.batches()
}

// handshake sends HELLO (with the resynchronisation question, or RESET
// CHANNEL's number), answers the partner's CHALLENGE with this side's
// proof of AUTHKEY, and checks the partner's proof in its HELLO_ACK (see
// auth.go): with AUTHKEY, the partner must prove it; without, TLS with
// SSLPEER authenticated it in dial, or the channel has AUTH(OPTIONAL).
func (s *sender) handshake(question, reset uint64) (HelloAck, error) {
	cn, err := NewNonce()
	if err != nil {
		return HelloAck{}, err
	}
	s.w.Hello(Hello{Channel: s.def.Name, QMgr: s.ci.cfg.QMgr, Group: s.ci.cfg.Group.Name, BatchSz: uint32(s.def.BatchSz),
		MaxMsgL: uint32(s.def.MaxMsgL), HBInt: uint32(s.def.HBInt), NPMFast: s.def.NPMSpeed == "FAST",
		MinVer: ProtoVersion, MaxVer: ProtoVersion, InDoubt: question, Reset: reset, Nonce: cn})
	if err := s.w.Flush(); err != nil {
		return HelloAck{}, err
	}
	f, err := s.expect(30*time.Second, FrameChallenge, "instead of CHALLENGE")
	if err != nil {
		return HelloAck{}, err
	}
	ch, err := DecodeChallenge(f.Payload)
	if err != nil {
		return HelloAck{}, err
	}
	ctx := AuthContext{Channel: s.def.Name, SenderQMgr: s.ci.cfg.QMgr, SenderGroup: s.ci.cfg.Group.Name, RecvQMgr: ch.QMgr, SenderNonce: cn, RecvNonce: ch.Nonce}
	a := Auth{}
	if s.def.AuthKey != "" {
		a = Auth{HasProof: true, Proof: MakeProof(s.def.AuthKey, RoleSender, ctx)}
	}
	s.w.Auth(a)
	if err := s.w.Flush(); err != nil {
		return HelloAck{}, err
	}
	f, err = s.expect(30*time.Second, FrameHelloAck, "instead of HELLO_ACK")
	if err != nil {
		return HelloAck{}, err
	}
	ack, err := DecodeHelloAck(f.Payload)
	if err != nil {
		return ack, err
	}
	if err := s.checkReceiver(ack, ctx); err != nil {
		s.w.Close(ReasonNotAuthorized, "not authorised")
		s.w.Flush()
		return ack, err
	}
	return ack, nil
}

// checkReceiver checks the partner's HELLO_ACK: the queue manager it
// named in its CHALLENGE, its proof of AUTHKEY (when this side has one;
// without, it must send none).
func (s *sender) checkReceiver(ack HelloAck, ctx AuthContext) error {
	switch {
	case ack.QMgr != ctx.RecvQMgr:
		return fmt.Errorf("%w: channel %s: partner %s answered as %s", errNotAuthorized, s.def.Name, ctx.RecvQMgr, ack.QMgr)
	case s.def.AuthKey != "" && !ack.HasProof:
		return fmt.Errorf("%w: channel %s: partner %s proved no secret, and the channel has AUTHKEY", errNotAuthorized, s.def.Name, ack.QMgr)
	case s.def.AuthKey != "" && !checkProof(s.def.AuthKey, RoleReceiver, ctx, ack.Proof):
		return fmt.Errorf("%w: channel %s: partner %s: wrong proof of the channel's AUTHKEY", errNotAuthorized, s.def.Name, ack.QMgr)
	case s.def.AuthKey == "" && ack.HasProof:
		return fmt.Errorf("%w: channel %s: partner %s has a secret, and the channel has no AUTHKEY", errNotAuthorized, s.def.Name, ack.QMgr)
	}
	return nil
}

// open opens the transmission and sync queues through l's connection.
func (s *sender) open(l *lane, kind byte) error {
	var err error
	if l.xq, err = l.conn.Open(s.def.XmitQ, mq.OpenOptions{Input: true}); err != nil {
		return err
	}
	if l.xq.Def().Usage != "XMITQ" {
		return fmt.Errorf("channel %s: %s is not a transmission queue (USAGE(XMITQ))", s.def.Name, s.def.XmitQ)
	}
	if l.syncq, err = l.conn.Open(SyncQueue, mq.OpenOptions{Input: true, Output: true, Browse: true}); err != nil {
		return err
	}
	l.key = syncKey(kind, s.def.Name)
	return nil
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
		// Reads spin before they park (spinConn); writes go to the TCP
		// connection itself, which writes a batch's pieces in one writev.
		var w io.Writer = nc
		nc = newSpinConn(nc, s.ci.cfg.SpinWait)
		if s.def.SSLCert != "" {
			h, _, _ := net.SplitHostPort(a)
			cfg, err := clientTLS(s.def, h)
			if err != nil {
				nc.Close()
				return err
			}
			tc, err := clientHandshake(s.ctx, nc, cfg, tlsHandshakeTimeout)
			if err != nil {
				nc.Close()
				errs = append(errs, err)
				continue
			}
			nc, w = tc, tc
		}
		s.nc = nc
		s.r = NewReader(nc, maxHelloFrame)
		s.w = NewWriter(w)
		return nil
	}
	return fmt.Errorf("channel %s: cannot connect to %s: %w", s.def.Name, s.def.ConnName, errors.Join(errs...))
}

// tlsHandshakeTimeout bounds a sender's TLS handshake, as the receiver's
// HELLO deadline bounds its side: a partner (or anything at its address)
// that accepts the connection and never answers must not hold the
// channel until STOP CHANNEL.
var tlsHandshakeTimeout = 30 * time.Second

// clientHandshake runs the client side of a TLS handshake on nc for at
// most timeout (or until ctx ends).
func clientHandshake(ctx context.Context, nc net.Conn, cfg *tls.Config, timeout time.Duration) (*tls.Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc := tls.Client(nc, cfg)
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// sendRecord is an in-doubt batch: a lane's sync record.
type sendRecord struct {
	key [24]byte
	id  uint64
	ids [][24]byte
}

// readInDoubt reads the in-doubt records of sender channel name from the
// sync queue (open for browse), oldest first. Lanes up to MaxLanes are
// read, not only this version's numLanes: an instance of a version with
// more lanes may have left records.
func readInDoubt(syncq *mq.Queue, name string) ([]sendRecord, error) {
	var out []sendRecord
	for i := 0; i <= MaxLanes; i++ {
		key := syncKey(syncSendKind(i), name)
		cur, err := syncq.Browse()
		if err != nil {
			return nil, err
		}
		m, err := cur.Next(mq.GetOptions{CorrelID: &key})
		if errors.Is(err, mq.ErrNoMessage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		id, ids, err := decodeSendSync(m.Body)
		if err != nil {
			return nil, err
		}
		out = append(out, sendRecord{key: key, id: id, ids: ids})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out, nil
}

// resolve settles the in-doubt batches (at most numLanes, consecutive) against
// the partner's last committed batch: committed there, a batch's messages
// are removed here; not committed, they are already back on the
// transmission queue, in their places (the unit of work of the instance
// that sent them was backed out), and go again. The partner commits
// batches in order, so it never has a later one without an earlier one.
//
// Batches are confirmed in order, and a lane sends again only once its
// previous batch is confirmed, so every batch before the oldest in doubt
// was committed by the partner, and the partner committed none after the
// latest in doubt: its last batch is within [oldest-1, latest]. Outside,
// the partner lost its state (its sync record went with its CF, or it was
// deleted or reset alone) or this side did: no retry can settle that, and
// the instance ends with a syncError (the channel stops, saying which
// commands settle it).
func (s *sender) resolve(inDoubt []sendRecord, partner string, last uint64) error {
	if len(inDoubt) == 0 {
		return nil
	}
	oldest, latest := inDoubt[0].id, inDoubt[0].id
	for _, rec := range inDoubt {
		oldest, latest = min(oldest, rec.id), max(latest, rec.id)
	}
	switch {
	case last+1 < oldest:
		return &syncError{PartnerLostState, fmt.Sprintf("channel %s: partner %s lost its state: its last committed batch is %d, but it had committed batch %d (batches %d to %d are in doubt here)",
			s.def.Name, partner, last, oldest-1, oldest, latest)}
	case last > latest:
		return &syncError{PartnerAhead, fmt.Sprintf("channel %s: sequence mismatch: partner %s's last committed batch is %d, beyond batch %d, the latest this side sent (batches %d to %d are in doubt here)",
			s.def.Name, partner, last, latest, oldest, latest)}
	}
	removed := 0
	for _, rec := range inDoubt {
		if rec.id > last {
			if _, err := s.lanes[0].syncq.Get(mq.GetOptions{CorrelID: &rec.key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
				return err
			}
			s.ci.log.Info("in-doubt batch was not committed by the partner: sending it again", "channel", s.def.Name, "batch", rec.id, "messages", len(rec.ids))
			continue
		}
		for i := range rec.ids {
			if _, err := s.lanes[0].xq.Get(mq.GetOptions{Syncpoint: true, MsgID: &rec.ids[i]}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
				return err
			}
		}
		if _, err := s.lanes[0].syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &rec.key}); err != nil && !errors.Is(err, mq.ErrNoMessage) {
			return err
		}
		removed++
		s.ci.log.Info("in-doubt batch was committed by the partner: removed here", "channel", s.def.Name, "batch", rec.id, "messages", len(rec.ids))
	}
	if removed == 0 {
		return nil
	}
	return s.conn.Commit()
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
	if st.StopReq && st.Force {
		return errForced
	}
	if st.StopReq {
		return errStopped
	}
	return s.ci.ctx.Err()
}

// batches moves batches until the instance ends, numLanes in flight:
// while the partner receives and commits one, the next are got and sent
// on the other lanes. A lane's batch is its gets from the transmission queue, in
// its unit of work, its in-doubt record, the frames and END_BATCH; on its
// CONFIRM, the commit of the gets with the removal of the record. CONFIRMs
// come in order (the partner commits batches in order), so the oldest
// batch in flight is always the one confirmed next, and lanes take turns.
func (s *sender) batches() error {
	oldest, n := 0, 0 // the lanes in flight: oldest, oldest+1, ... (mod numLanes)
	for {
		if n < numLanes {
			sent, err := s.send(&s.lanes[(oldest+n)%numLanes], n == 0)
			if err != nil {
				return s.drain(err, oldest, n)
			}
			if sent {
				n++
				continue
			}
		}
		// Nothing more to send at once, or every lane is in flight.
		if err := s.confirm(&s.lanes[oldest]); err != nil {
			return err
		}
		oldest = (oldest + 1) % numLanes
		n--
	}
}

// drain ends the instance for why with n lanes in flight from oldest: a
// STOP CHANNEL that is not MODE(FORCE), or the channel initiator stopping,
// waits for their CONFIRMs and commits them, so that the channel stops
// with nothing in doubt (it may then be deleted or altered); any other end
// leaves them to resynchronisation.
func (s *sender) drain(why error, oldest, n int) error {
	quiesce := errors.Is(why, errStopped) && !errors.Is(why, errForced) || errors.Is(why, context.Canceled)
	for ; quiesce && n > 0; n-- {
		if err := s.confirm(&s.lanes[oldest]); err != nil {
			return errors.Join(why, err)
		}
		oldest = (oldest + 1) % numLanes
	}
	return why
}

// send gets and sends a batch on lane l: waiting for its first message
// when wait is set (no batch in flight), else only if one is there at
// once. It reports whether it sent one.
func (s *sender) send(l *lane, wait bool) (bool, error) {
	if err := s.checkStop(); err != nil {
		return false, err
	}
	if len(l.views) < s.batchSz {
		l.views = make([]mq.View, s.batchSz)
	}
	n := 0
	if wait {
		if err := s.waitFirst(l, &l.views[0]); err != nil {
			return false, err
		}
		n = 1
	}
	if s.def.BatchInt == 0 {
		// What is there now (the whole batch, when nothing was waited
		// for) in one scan of the queue.
		if n < s.batchSz {
			k, err := l.xq.GetViewsInto(mq.GetOptions{Syncpoint: true}, l.views[n:s.batchSz])
			if err != nil && !errors.Is(err, mq.ErrNoMessage) {
				return false, err
			}
			n += k
		}
	} else {
		// BATCHINT: the first message only if it is there at once (unless
		// waited for), then more until the batch is full or the interval
		// ends.
		deadline := time.Now().Add(time.Duration(s.def.BatchInt) * time.Millisecond)
		for n < s.batchSz {
			var wait time.Duration
			if n > 0 {
				if wait = time.Until(deadline); wait <= 0 {
					break
				}
			}
			err := l.xq.GetViewInto(mq.GetOptions{Syncpoint: true, Wait: wait}, &l.views[n])
			if errors.Is(err, mq.ErrNoMessage) {
				break
			}
			if err != nil {
				return false, err
			}
			n++
		}
	}
	if n == 0 {
		return false, nil
	}
	if err := s.build(l, l.views[:n]); err != nil {
		return false, err
	}
	if l.n == 0 {
		// Every message was dead-lettered: the lane commits that alone
		// (a batch is never empty: the partner refuses one), and looks
		// again.
		if err := l.conn.Commit(); err != nil {
			return false, err
		}
		if wait {
			return s.send(l, wait)
		}
		return false, nil
	}
	pers := mq.NotPersistent
	if l.persistent {
		pers = mq.Persistent
	}
	id := s.sent + 1
	// Persistent only when the batch carries persistent messages: a batch
	// of non-persistent ones does not wait for the log (see receiver).
	if err := l.syncq.Put(&mq.Message{CorrelID: l.key, Body: encodeSendSync(id, l.ids), Persistence: pers}, mq.PutOptions{}); err != nil {
		return false, err
	}
	cpSenderInDoubt.Hit()
	s.w.EndBatch(id, l.n)
	if err := s.w.Flush(); err != nil {
		return false, err
	}
	cpSenderSent.Hit()
	l.id, s.sent = id, id
	return true, nil
}

// build queues the MSG frames of the messages of views (got on lane l),
// dead-lettering those that are not transmission messages; l.n is how
// many it queued. The views are valid until the lane commits: their
// bodies go from the mapping to the socket.
func (s *sender) build(l *lane, views []mq.View) error {
	l.ids = l.ids[:0]
	l.n = 0
	l.bytes = 0
	l.persistent = false
	for i := range views {
		v := &views[i]
		if err := s.check.Check(v.Head(s.head[:]), v.Len()); err != nil {
			if err := s.deadLetter(l, v, err); err != nil {
				return err
			}
			continue
		}
		l.ids = append(l.ids, v.MsgID)
		s.w.MsgV(v.Pieces, v.Len())
		l.n++
		l.bytes += uint64(v.Len())
		if v.Persistence == mq.Persistent {
			l.persistent = true
		}
	}
	return nil
}

// confirm waits for the CONFIRM of lane l's batch, then commits the lane.
func (s *sender) confirm(l *lane) error {
	f, err := s.expect(s.replyWait(), FrameConfirm, "instead of CONFIRM")
	if err != nil {
		return err
	}
	got, err := DecodeConfirm(f.Payload)
	if err != nil {
		return err
	}
	if got != l.id {
		return fmt.Errorf("%w: CONFIRM of batch %d, expected %d", ErrProtocol, got, l.id)
	}
	cpSenderConfirm.Hit()
	if _, err := l.syncq.Get(mq.GetOptions{Syncpoint: true, CorrelID: &l.key}); err != nil {
		return err
	}
	if err := l.conn.Commit(); err != nil {
		return err
	}
	s.last, l.id = l.id, 0
	s.moved = true
	s.msgs += l.n
	s.counts.batches.Add(1)
	s.counts.messages.Add(uint64(l.n))
	s.counts.sentBytes.Add(l.bytes)
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
func (s *sender) waitFirst(l *lane, v *mq.View) error {
	t0 := time.Now()
	lastHB := t0
	for {
		err := l.xq.GetViewInto(mq.GetOptions{Syncpoint: true, Wait: time.Second}, v)
		if err == nil {
			return nil
		}
		if !errors.Is(err, mq.ErrNoMessage) {
			return err
		}
		if err := s.checkStop(); err != nil {
			return err
		}
		if err := s.partnerGone(); err != nil {
			return err
		}
		if s.def.DiscInt > 0 && time.Since(t0) >= time.Duration(s.def.DiscInt)*time.Second {
			s.w.Close(ReasonNormal, "disconnect interval")
			s.w.Flush()
			return errDisc
		}
		if s.hb > 0 && time.Since(lastHB) >= s.hb {
			lastHB = time.Now()
			s.w.Heartbeat()
			if err := s.w.Flush(); err != nil {
				return err
			}
			if _, err := s.expect(s.replyWait(), FrameHeartbeat, "instead of HEARTBEAT"); err != nil {
				return err
			}
		}
	}
}

// partnerGone looks at the connection of an idle sender (nothing in
// flight, so nothing is expected) for a millisecond: a partner that died
// (FIN or RST) or closed the channel is noticed within a second of idling,
// not at the next batch or heartbeat, so the channel goes to retrying, as
// MQ's would at its next heartbeat.
func (s *sender) partnerGone() error {
	if s.r.Buffered() == 0 {
		s.nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		err := s.r.Peek()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil
		}
		if err != nil {
			return fmt.Errorf("channel %s: partner gone while idle: %w", s.def.Name, err)
		}
	}
	_, err := s.expect(s.replyWait(), 0, "while no batch is in flight") // no frame is of type 0: only CLOSE is right
	return err
}

// expect reads the next frame within wait: a frame of type want, or the
// partner's CLOSE (a remoteError); any other is a protocol error, the
// frame's type followed by what.
func (s *sender) expect(wait time.Duration, want byte, what string) (Frame, error) {
	s.nc.SetReadDeadline(time.Now().Add(wait))
	f, err := s.r.Read()
	if err != nil {
		return f, err
	}
	if f.Type == FrameClose {
		reason, text, _ := DecodeClose(f.Payload)
		return f, &remoteError{reason, text}
	}
	if f.Type != want {
		return f, fmt.Errorf("%w: frame %d %s", ErrProtocol, f.Type, what)
	}
	return f, nil
}

// deadLetter moves a message that is not a transmission message to the
// group's dead-letter queue, in the unit of work of its batch's lane l.
func (s *sender) deadLetter(l *lane, v *mq.View, why error) error {
	dlq, err := s.ci.deadQ()
	if err != nil {
		return err
	}
	if dlq == "" {
		return fmt.Errorf("channel %s: a message on %s is not a transmission message (%v) and there is no dead-letter queue", s.def.Name, s.def.XmitQ, why)
	}
	h, err := l.conn.Open(dlq, mq.OpenOptions{Output: true})
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
	err := mqconn.Of(ci.main).Defs.View(func(tx *defs.Tx) error { var err error; qm, err = tx.QMgr(); return err })
	return qm.DeadQ, err
}
