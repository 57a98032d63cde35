package channel

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/qmgr/qmgr/shm"
)

// Frame types.
const (
	FrameHello     byte = 1 // sender -> receiver: who, what, and its in-doubt batch
	FrameHelloAck  byte = 2 // receiver -> sender: agreed limits and the last committed batch
	FrameMsg       byte = 3 // sender -> receiver: one message (xmit header, properties, body)
	FrameEndBatch  byte = 4 // sender -> receiver: commit the batch
	FrameConfirm   byte = 5 // receiver -> sender: the batch is committed
	FrameHeartbeat byte = 6 // either way while idle; answered with a heartbeat
	FrameClose     byte = 7 // either way: the channel ends, with a reason
	FrameChallenge byte = 8 // receiver -> sender, answering HELLO: its name and nonce
	FrameAuth      byte = 9 // sender -> receiver: the sender's proof of the channel's secret
)

// Protocol constants.
const (
	frameMagic0 = 'Q'
	frameMagic1 = 'C'
	// ProtoVersion is the wire protocol version: 2 added partner
	// authentication (CHALLENGE and AUTH, the nonces and proofs); a
	// receiver answers a version 1 HELLO with a version 1 CLOSE saying so.
	ProtoVersion  = 2
	frameHdrSize  = 8
	helloSize     = 200
	helloAckSize  = 104
	challengeSize = 80
	authSize      = 40
	endBatchSize  = 16
	confirmSize   = 8
	maxCloseText  = 512
	maxHelloFrame = 4096
	// frameSlack is what a MSG frame holds besides the body: the
	// transmission header and properties (bounded by the message length
	// limit with the body).
	frameSlack = 64 << 10
)

// Frame header (frameHdrSize bytes; the payload follows):
//
//	offset  size  constant   field
//	     0     2  fhMagic    magic "QC"
//	     2     1  fhVersion  protocol version (ProtoVersion; a version 1 HELLO is answered with a version 1 CLOSE saying why)
//	     3     1  fhType     frame type
//	     4     4  fhLen      payload length (at most the negotiated MAXMSGL + frameSlack; maxHelloFrame before the handshake)
const (
	fhMagic   = 0
	fhVersion = 2
	fhType    = 3
	fhLen     = 4
)

// HELLO payload (helloSize bytes; names NUL padded, printable ASCII):
//
//	offset  size  constant    field
//	     0    48  heChannel   channel name
//	    48    48  heQMgr      sending queue manager
//	    96    48  heGroup     sending group
//	   144     4  heBatchSz   batch size
//	   148     4  heMaxMsgL   max message length
//	   152     4  heHBInt     heartbeat interval, s
//	   156     1  heNPMSpeed  NPMSPEED FAST (1) or NORMAL (0)
//	   157     1  heMinVer    lowest version
//	   158     1  heMaxVer    highest version
//	   159     1  heFlags     flags: helloFlagReset (other bits zero)
//	   160     8  heLast      latest in-doubt batch id (0: none); with the reset flag, the next batch's id (1 to MaxSeqNum)
//	   168    32  heNonce     sender nonce (crypto/rand, fresh for each HELLO)
const (
	heChannel  = 0
	heQMgr     = 48
	heGroup    = 96
	heBatchSz  = 144
	heMaxMsgL  = 148
	heHBInt    = 152
	heNPMSpeed = 156
	heMinVer   = 157
	heMaxVer   = 158
	heFlags    = 159
	heLast     = 160
	heNonce    = 168
)

// CHALLENGE payload (challengeSize bytes):
//
//	offset  size  constant  field
//	     0    48  chQMgr    receiving queue manager
//	    48    32  chNonce   receiver nonce
const (
	chQMgr  = 0
	chNonce = 48
)

// AUTH payload (authSize bytes):
//
//	offset  size  constant  field
//	     0     1  auFlags   flags: proofFlag, a proof follows (other bits zero)
//	     1     7  -         zero
//	     8    32  auProof   sender's proof (zero without the flag)
const (
	auFlags = 0
	auProof = 8
)

// HELLO_ACK payload (helloAckSize bytes):
//
//	offset  size  constant     field
//	     0    48  haQMgr       receiving queue manager (as in CHALLENGE)
//	    48     4  haBatchSz    batch size
//	    52     4  haMaxMsgL    max message length
//	    56     4  haHBInt      heartbeat interval, s
//	    60     1  haVersion    version
//	    61     1  haFlags      flags: proofFlag, a proof follows
//	    62     2  -            zero
//	    64     8  haLastBatch  last committed batch id: the resynchronisation answer
//	    72    32  haProof      receiver's proof (zero without the flag)
const (
	haQMgr      = 0
	haBatchSz   = 48
	haMaxMsgL   = 52
	haHBInt     = 56
	haVersion   = 60
	haFlags     = 61
	haLastBatch = 64
	haProof     = 72
)

// END_BATCH payload (endBatchSize bytes):
//
//	offset  size  constant  field
//	     0     8  ebID      batch id
//	     8     4  ebCount   message count
//	    12     4  -         zero
const (
	ebID    = 0
	ebCount = 8
)

// CONFIRM payload (confirmSize bytes):
//
//	offset  size  constant  field
//	     0     8  cfID      batch id
const cfID = 0

// CLOSE payload (closeFixed bytes, then the text):
//
//	offset  size  constant   field
//	     0     4  clReason   reason (ReasonNormal...)
//	     4     2  clTextLen  text length n (at most maxCloseText)
//	     6     *  clText     n bytes of text
const (
	clReason   = 0
	clTextLen  = 4
	clText     = 6
	closeFixed = clText
)

// MaxSeqNum is the highest sequence number RESET CHANNEL sets (SEQNUM, as
// MQ's 1..999999999).
const MaxSeqNum = 999_999_999

// Close reasons.
const (
	ReasonNormal         uint32 = 0 // STOP CHANNEL, disconnect interval, member stopping
	ReasonUnknownChannel uint32 = 1 // no receiver definition of that name
	ReasonRunning        uint32 = 2 // the channel already runs elsewhere
	ReasonProtocol       uint32 = 3 // a malformed or unexpected frame
	ReasonSequence       uint32 = 4 // batch ids do not follow
	ReasonUndeliverable  uint32 = 5 // a message cannot be put and there is no dead-letter queue
	ReasonStopping       uint32 = 6 // the receiving member is stopping
	ReasonInternal       uint32 = 7 // the receiving side failed (CF error)
	// ReasonNotAuthorized: the partner did not authenticate (or is not
	// the one the channel is for). The CLOSE says only "not authorised":
	// the receiving side logs why.
	ReasonNotAuthorized uint32 = 8
)

// ErrProtocol is returned for a malformed frame or one that breaks the
// protocol.
var ErrProtocol = errors.New("channel: protocol error")

// Hello opens a channel (sender to receiver). Its InDoubt is the
// resynchronisation question: the batch the sender sent and does not know
// the fate of (0: none). Reset (RESET CHANNEL on the sender) asks the
// receiver to take Reset-1 as its last committed batch, so that both sides
// number the next batch Reset; a sender resets only with nothing in doubt,
// and the two share the payload's last field, so a Hello has one or the
// other (Reset wins).
type Hello struct {
	Channel string
	QMgr    string // the sending queue manager
	Group   string // the sending group
	BatchSz uint32
	MaxMsgL uint32
	HBInt   uint32 // seconds
	NPMFast bool
	MinVer  uint8
	MaxVer  uint8
	InDoubt uint64
	Reset   uint64 // 0: none
	Nonce   Nonce  // the sender's, fresh for each HELLO (crypto/rand)
}

// Nonce is a random challenge of the authentication exchange.
type Nonce [32]byte

// Proof is an HMAC-SHA256 proof of the channel's secret (see Proof).
type Proof [32]byte

// Challenge answers a HELLO: the receiving queue manager's name and its
// nonce. The sender answers with an AUTH.
type Challenge struct {
	QMgr  string
	Nonce Nonce
}

// Auth is the sender's proof of the channel's secret (HasProof false: the
// sender has none, AUTHKEY is not set on its side).
type Auth struct {
	HasProof bool
	Proof    Proof
}

// HELLO flags (the byte at heFlags).
const helloFlagReset = 1 << 0 // the last field is Reset, not InDoubt

// HelloAck answers a Hello: the limits both sides use (the smaller of the
// two), and the resynchronisation answer, the last batch the receiver
// committed.
type HelloAck struct {
	QMgr      string
	BatchSz   uint32
	MaxMsgL   uint32
	HBInt     uint32
	Version   uint8
	LastBatch uint64
	HasProof  bool  // the receiver proves the channel's secret
	Proof     Proof // (see Proof)
}

// Frame is one frame read; Payload is valid until the next Read or Peek.
type Frame struct {
	Type    byte
	Payload []byte
}

// Reader reads frames.
type Reader struct {
	r   *bufio.Reader
	max uint32
	buf []byte
	// done is how many bytes of r's buffer the frame returned last still
	// holds (a frame that fits in the buffer is returned in place, not
	// copied); the next read takes them.
	done int
}

// NewReader reads frames from r, refusing payloads longer than max.
func NewReader(r io.Reader, max uint32) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 256<<10), max: max}
}

// Buffered is the number of bytes read from the connection and not yet
// returned in frames: a Read with none buffered may block.
func (r *Reader) Buffered() int { return r.r.Buffered() - r.done }

// take drops the frame returned last from r's buffer.
func (r *Reader) take() {
	if r.done > 0 {
		r.r.Discard(r.done) // buffered: never reads
		r.done = 0
	}
}

// Peek waits for the next frame's first byte, within the connection's
// read deadline, without taking it: an error says the connection ended
// (or the deadline passed).
func (r *Reader) Peek() error {
	r.take()
	_, err := r.r.Peek(1)
	return err
}

// SetMax changes the payload limit (after the handshake).
func (r *Reader) SetMax(max uint32) { r.max = max }

// Read reads the next frame.
func (r *Reader) Read() (Frame, error) {
	r.take()
	h, err := r.r.Peek(frameHdrSize)
	if err != nil {
		if errors.Is(err, io.EOF) && len(h) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	f, n, err := parseHeader(h, r.max)
	if err != nil {
		return Frame{}, err
	}
	if size := frameHdrSize + int(n); size <= r.r.Size() {
		// In place: valid until the next read, which takes it.
		b, err := r.r.Peek(size)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return Frame{}, err
		}
		f.Payload, r.done = b[frameHdrSize:size:size], size
		return f, nil
	}
	r.r.Discard(frameHdrSize)
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	f.Payload = r.buf[:n]
	if _, err := io.ReadFull(r.r, f.Payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	return f, nil
}

func parseHeader(h []byte, max uint32) (Frame, uint32, error) {
	if h[fhMagic] != frameMagic0 || h[fhMagic+1] != frameMagic1 {
		return Frame{}, 0, fmt.Errorf("%w: bad magic %q", ErrProtocol, h[fhMagic:fhMagic+2])
	}
	if h[fhVersion] != ProtoVersion {
		return Frame{}, 0, fmt.Errorf("%w: protocol version %d (this side speaks %d)", ErrProtocol, h[fhVersion], ProtoVersion)
	}
	if h[fhType] < FrameHello || h[fhType] > FrameAuth {
		return Frame{}, 0, fmt.Errorf("%w: unknown frame type %d", ErrProtocol, h[fhType])
	}
	n := binary.LittleEndian.Uint32(h[fhLen:])
	if n > max {
		return Frame{}, 0, fmt.Errorf("%w: frame of %d bytes (limit %d)", ErrProtocol, n, max)
	}
	return Frame{Type: h[fhType]}, n, nil
}

func header(dst []byte, typ byte, n int) []byte { return headerV(dst, ProtoVersion, typ, n) }

// HeaderVersion is the protocol version in a frame header (h holds at
// least 3 bytes), 0 when h is not a frame header.
func HeaderVersion(h []byte) byte {
	if len(h) < fhVersion+1 || h[fhMagic] != frameMagic0 || h[fhMagic+1] != frameMagic1 {
		return 0
	}
	return h[fhVersion]
}

func headerV(dst []byte, ver, typ byte, n int) []byte {
	var h [frameHdrSize]byte
	h[fhMagic], h[fhMagic+1], h[fhVersion], h[fhType] = frameMagic0, frameMagic1, ver, typ
	binary.LittleEndian.PutUint32(h[fhLen:], uint32(n))
	return append(dst, h[:]...)
}

// Writer writes frames. Small frames are gathered in a buffer; message
// bodies are not copied: they go to the socket with the buffered bytes in
// one vectored write (writev) at Flush.
type Writer struct {
	w    io.Writer
	hdr  []byte      // gathered small frames and headers
	bufs net.Buffers // slices of hdr and bodies, in order
	mark int         // start in hdr of what bufs does not hold yet
	size int
}

// NewWriter writes frames to w (a net.Conn for vectored writes).
func NewWriter(w io.Writer) *Writer { return &Writer{w: w, hdr: make([]byte, 0, 64<<10)} }

// Buffered is the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.size + len(w.hdr) - w.mark }

func (w *Writer) small(typ byte, payload []byte) {
	w.hdr = header(w.hdr, typ, len(payload))
	w.hdr = append(w.hdr, payload...)
}

// MsgV queues a MSG frame whose payload is pieces (n bytes in all: an
// encoded transmission header, properties and body; see package xmit)
// without copying them when they are large: they are written from where they are
// (the shared mapping) by a vectored write at Flush, and must stay valid
// until then.
func (w *Writer) MsgV(pieces [][]byte, n int) {
	w.hdr = header(w.hdr, FrameMsg, n)
	if n < 1024 {
		for _, p := range pieces {
			w.hdr = append(w.hdr, p...)
		}
		return
	}
	w.bufs = append(w.bufs, w.hdr[w.mark:len(w.hdr):len(w.hdr)])
	w.bufs = append(w.bufs, pieces...)
	w.size += len(w.hdr) - w.mark + n
	w.mark = len(w.hdr)
}

// Hello queues a HELLO frame.
func (w *Writer) Hello(h Hello) {
	var b [helloSize]byte
	putName(b[heChannel:heChannel+nameLen], h.Channel)
	putName(b[heQMgr:heQMgr+nameLen], h.QMgr)
	putName(b[heGroup:heGroup+nameLen], h.Group)
	binary.LittleEndian.PutUint32(b[heBatchSz:], h.BatchSz)
	binary.LittleEndian.PutUint32(b[heMaxMsgL:], h.MaxMsgL)
	binary.LittleEndian.PutUint32(b[heHBInt:], h.HBInt)
	if h.NPMFast {
		b[heNPMSpeed] = 1
	}
	b[heMinVer], b[heMaxVer] = h.MinVer, h.MaxVer
	if h.Reset != 0 {
		b[heFlags] |= helloFlagReset
		binary.LittleEndian.PutUint64(b[heLast:], h.Reset)
	} else {
		binary.LittleEndian.PutUint64(b[heLast:], h.InDoubt)
	}
	copy(b[heNonce:], h.Nonce[:])
	w.small(FrameHello, b[:])
}

// Challenge queues a CHALLENGE frame.
func (w *Writer) Challenge(c Challenge) {
	var b [challengeSize]byte
	putName(b[chQMgr:chQMgr+nameLen], c.QMgr)
	copy(b[chNonce:], c.Nonce[:])
	w.small(FrameChallenge, b[:])
}

// Auth queues an AUTH frame.
func (w *Writer) Auth(a Auth) {
	var b [authSize]byte
	if a.HasProof {
		b[auFlags] = proofFlag
		copy(b[auProof:], a.Proof[:])
	}
	w.small(FrameAuth, b[:])
}

// proofFlag is the flag bit saying a proof follows (AUTH auFlags,
// HELLO_ACK haFlags).
const proofFlag = 1 << 0

// HelloAck queues a HELLO_ACK frame.
func (w *Writer) HelloAck(a HelloAck) {
	var b [helloAckSize]byte
	putName(b[haQMgr:haQMgr+nameLen], a.QMgr)
	binary.LittleEndian.PutUint32(b[haBatchSz:], a.BatchSz)
	binary.LittleEndian.PutUint32(b[haMaxMsgL:], a.MaxMsgL)
	binary.LittleEndian.PutUint32(b[haHBInt:], a.HBInt)
	b[haVersion] = a.Version
	binary.LittleEndian.PutUint64(b[haLastBatch:], a.LastBatch)
	if a.HasProof {
		b[haFlags] = proofFlag
		copy(b[haProof:], a.Proof[:])
	}
	w.small(FrameHelloAck, b[:])
}

// EndBatch queues an END_BATCH frame.
func (w *Writer) EndBatch(id uint64, count uint32) {
	var b [endBatchSize]byte
	binary.LittleEndian.PutUint64(b[ebID:], id)
	binary.LittleEndian.PutUint32(b[ebCount:], count)
	w.small(FrameEndBatch, b[:])
}

// Confirm queues a CONFIRM frame.
func (w *Writer) Confirm(id uint64) {
	var b [confirmSize]byte
	binary.LittleEndian.PutUint64(b[cfID:], id)
	w.small(FrameConfirm, b[:])
}

// Heartbeat queues a HEARTBEAT frame.
func (w *Writer) Heartbeat() { w.small(FrameHeartbeat, nil) }

// Close queues a CLOSE frame.
func (w *Writer) Close(reason uint32, text string) { w.closeV(ProtoVersion, reason, text) }

// closeV queues a CLOSE frame in a header of protocol version ver (that
// of a partner of another version, which can read it).
func (w *Writer) closeV(ver byte, reason uint32, text string) {
	if len(text) > maxCloseText {
		text = text[:maxCloseText]
	}
	b := make([]byte, closeFixed+len(text))
	binary.LittleEndian.PutUint32(b[clReason:], reason)
	binary.LittleEndian.PutUint16(b[clTextLen:], uint16(len(text)))
	copy(b[clText:], text)
	w.hdr = headerV(w.hdr, ver, FrameClose, len(b))
	w.hdr = append(w.hdr, b...)
}

// Flush writes everything queued, in one vectored write when bodies are
// queued.
func (w *Writer) Flush() error {
	if len(w.hdr) > w.mark {
		w.bufs = append(w.bufs, w.hdr[w.mark:])
		w.size += len(w.hdr) - w.mark
	}
	// Bodies are slices of shared mappings: a writer that copies them in
	// user space (crypto/tls) faults on a file truncated under them, which
	// the guard turns into shm.ErrFault (plain TCP's writev returns
	// EFAULT). The connection is closed after any error.
	err := shm.Guard(func() error {
		var err error
		switch len(w.bufs) {
		case 0:
		case 1:
			_, err = w.w.Write(w.bufs[0])
		default:
			_, err = w.bufs.WriteTo(w.w)
		}
		return err
	})
	clear(w.bufs)
	w.bufs, w.hdr, w.mark, w.size = w.bufs[:0], w.hdr[:0], 0, 0
	return err
}

func putName(dst []byte, s string) { copy(dst, s) }

func getName(b []byte) (string, error) {
	s := cstr(b)
	for i := len(s); i < len(b); i++ {
		if b[i] != 0 {
			return "", fmt.Errorf("%w: garbage after a name", ErrProtocol)
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", fmt.Errorf("%w: name with byte %#x", ErrProtocol, s[i])
		}
	}
	return s, nil
}

// DecodeHello parses a HELLO payload.
func DecodeHello(p []byte) (Hello, error) {
	var h Hello
	if len(p) != helloSize {
		return h, fmt.Errorf("%w: HELLO of %d bytes", ErrProtocol, len(p))
	}
	copy(h.Nonce[:], p[heNonce:])
	var err error
	if h.Channel, err = getName(p[heChannel : heChannel+nameLen]); err != nil {
		return h, err
	}
	if h.QMgr, err = getName(p[heQMgr : heQMgr+nameLen]); err != nil {
		return h, err
	}
	if h.Group, err = getName(p[heGroup : heGroup+nameLen]); err != nil {
		return h, err
	}
	if h.Channel == "" || h.QMgr == "" {
		return h, fmt.Errorf("%w: HELLO without a channel or queue manager name", ErrProtocol)
	}
	h.BatchSz = binary.LittleEndian.Uint32(p[heBatchSz:])
	h.MaxMsgL = binary.LittleEndian.Uint32(p[heMaxMsgL:])
	h.HBInt = binary.LittleEndian.Uint32(p[heHBInt:])
	if p[heNPMSpeed] > 1 || p[heFlags]&^helloFlagReset != 0 {
		return h, fmt.Errorf("%w: HELLO flags", ErrProtocol)
	}
	h.NPMFast = p[heNPMSpeed] == 1
	h.MinVer, h.MaxVer = p[heMinVer], p[heMaxVer]
	if h.MinVer > h.MaxVer || h.BatchSz == 0 {
		return h, fmt.Errorf("%w: HELLO versions %d..%d, batch size %d", ErrProtocol, h.MinVer, h.MaxVer, h.BatchSz)
	}
	last := binary.LittleEndian.Uint64(p[heLast:])
	if p[heFlags]&helloFlagReset == 0 {
		h.InDoubt = last
		return h, nil
	}
	if last == 0 || last > MaxSeqNum {
		return h, fmt.Errorf("%w: HELLO resets to batch %d (1..%d)", ErrProtocol, last, uint64(MaxSeqNum))
	}
	h.Reset = last
	return h, nil
}

// DecodeHelloAck parses a HELLO_ACK payload.
func DecodeHelloAck(p []byte) (HelloAck, error) {
	var a HelloAck
	if len(p) != helloAckSize {
		return a, fmt.Errorf("%w: HELLO_ACK of %d bytes", ErrProtocol, len(p))
	}
	var err error
	if a.QMgr, err = getName(p[haQMgr : haQMgr+nameLen]); err != nil {
		return a, err
	}
	a.BatchSz = binary.LittleEndian.Uint32(p[haBatchSz:])
	a.MaxMsgL = binary.LittleEndian.Uint32(p[haMaxMsgL:])
	a.HBInt = binary.LittleEndian.Uint32(p[haHBInt:])
	a.Version = p[haVersion]
	a.LastBatch = binary.LittleEndian.Uint64(p[haLastBatch:])
	if a.BatchSz == 0 {
		return a, fmt.Errorf("%w: HELLO_ACK batch size 0", ErrProtocol)
	}
	if p[haFlags]&^proofFlag != 0 || !allZero(p[haFlags+1:haLastBatch]) {
		return a, fmt.Errorf("%w: HELLO_ACK flags", ErrProtocol)
	}
	if a.HasProof = p[haFlags] == proofFlag; a.HasProof {
		copy(a.Proof[:], p[haProof:])
	} else if !allZero(p[haProof:]) {
		return a, fmt.Errorf("%w: HELLO_ACK with proof bytes and no proof flag", ErrProtocol)
	}
	return a, nil
}

// DecodeChallenge parses a CHALLENGE payload.
func DecodeChallenge(p []byte) (Challenge, error) {
	var c Challenge
	if len(p) != challengeSize {
		return c, fmt.Errorf("%w: CHALLENGE of %d bytes", ErrProtocol, len(p))
	}
	var err error
	if c.QMgr, err = getName(p[chQMgr : chQMgr+nameLen]); err != nil {
		return c, err
	}
	if c.QMgr == "" {
		return c, fmt.Errorf("%w: CHALLENGE without a queue manager name", ErrProtocol)
	}
	copy(c.Nonce[:], p[chNonce:])
	return c, nil
}

// DecodeAuth parses an AUTH payload.
func DecodeAuth(p []byte) (Auth, error) {
	var a Auth
	if len(p) != authSize {
		return a, fmt.Errorf("%w: AUTH of %d bytes", ErrProtocol, len(p))
	}
	if p[auFlags]&^proofFlag != 0 || !allZero(p[auFlags+1:auProof]) {
		return a, fmt.Errorf("%w: AUTH flags", ErrProtocol)
	}
	if a.HasProof = p[auFlags] == proofFlag; a.HasProof {
		copy(a.Proof[:], p[auProof:])
	} else if !allZero(p[auProof:]) {
		return a, fmt.Errorf("%w: AUTH with proof bytes and no proof flag", ErrProtocol)
	}
	return a, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// DecodeEndBatch parses an END_BATCH payload.
func DecodeEndBatch(p []byte) (id uint64, count uint32, err error) {
	if len(p) != endBatchSize {
		return 0, 0, fmt.Errorf("%w: END_BATCH of %d bytes", ErrProtocol, len(p))
	}
	return binary.LittleEndian.Uint64(p[ebID:]), binary.LittleEndian.Uint32(p[ebCount:]), nil
}

// DecodeConfirm parses a CONFIRM payload.
func DecodeConfirm(p []byte) (uint64, error) {
	if len(p) != confirmSize {
		return 0, fmt.Errorf("%w: CONFIRM of %d bytes", ErrProtocol, len(p))
	}
	return binary.LittleEndian.Uint64(p[cfID:]), nil
}

// DecodeClose parses a CLOSE payload.
func DecodeClose(p []byte) (reason uint32, text string, err error) {
	if len(p) < closeFixed {
		return 0, "", fmt.Errorf("%w: CLOSE of %d bytes", ErrProtocol, len(p))
	}
	n := int(binary.LittleEndian.Uint16(p[clTextLen:]))
	if n != len(p)-closeFixed || n > maxCloseText {
		return 0, "", fmt.Errorf("%w: CLOSE text of %d bytes in %d", ErrProtocol, n, len(p)-closeFixed)
	}
	return binary.LittleEndian.Uint32(p[clReason:]), string(p[clText:]), nil
}
