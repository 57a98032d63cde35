package request

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Message formats this package writes and reads (mq.Message.Format).
const (
	FormatRequest    = "MQREQ"    // a request with a request header (RequestHeader) in front of its body
	FormatState      = "MQRSTATE" // a request's state record on the state queue
	FormatLive       = "MQRLIVE"  // a request's live marker on the state queue: there from its first commit to its end
	FormatTombstone  = "MQRTOMB"  // how a request ended, on the tombstone queue for Config.TombstoneTTL
	FormatUnexpected = "MQRUMQH"  // a message on the Unexpected Message Queue: UnexpectedHeader, then the original body
	FormatReply      = "MQRREPLY" // an intermediate reply (Ctx.Reply)
	FormatFinal      = "MQRFINAL" // the program's final reply (Ctx.FinalReply)
	FormatRetried    = "MQRRETRY" // final reply of a restartable request retried Config.MaxAttempts times, or a recoverable one resumed Config.MaxResumes times: it will not be again
	FormatPurged     = "MQRPURGE" // final reply of a cancelled request: "request purged"
	FormatFailed     = "MQRFAIL"  // final reply of a recoverable request whose program failed
	FormatCancel     = "MQRCANCL" // a cancel on the cancel queue (Cancel; MQSC CANCEL REQUEST)
	FormatCallFailed = "MQRCFAIL" // a subordinate server's reply to a poison call it gave up on, not performed (Serve); the body says why
)

// IsFinalFormat reports whether a reply of format f is a final reply (the
// program's or one the manager sent for it): a request sends at most one.
func IsFinalFormat(f string) bool {
	switch f {
	case FormatFinal, FormatRetried, FormatPurged, FormatFailed:
		return true
	}
	return false
}

// Mode is a request's recovery mode (seed 004).
type Mode uint8

// The recovery modes. ModeDefault, in a request header, asks for the
// manager's Config.DefaultMode.
const (
	ModeDefault        Mode = 0
	ModeNonRecoverable Mode = 1
	ModeRestartable    Mode = 2
	ModeRecoverable    Mode = 3
)

func (m Mode) String() string {
	switch m {
	case ModeDefault:
		return "DEFAULT"
	case ModeNonRecoverable:
		return "NONRECOVERABLE"
	case ModeRestartable:
		return "RESTARTABLE"
	case ModeRecoverable:
		return "RECOVERABLE"
	}
	return fmt.Sprintf("MODE(%d)", uint8(m))
}

// ParseMode is the mode named s (as String writes it, any case).
func ParseMode(s string) (Mode, error) {
	for m := ModeDefault; m <= ModeRecoverable; m++ {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("request: unknown mode %q (NONRECOVERABLE, RESTARTABLE or RECOVERABLE)", s)
}

// Status is where a request is.
type Status uint8

// Request statuses. Running and FinalReplied are in flight; the others
// are how it ended (a tombstone's).
const (
	StatusRunning      Status = 1
	StatusFinalReplied Status = 2
	StatusDone         Status = 3
	StatusPurged       Status = 4
	StatusCancelled    Status = 5
)

func (s Status) String() string {
	switch s {
	case StatusRunning:
		return "RUNNING"
	case StatusFinalReplied:
		return "REPLIED"
	case StatusDone:
		return "DONE"
	case StatusPurged:
		return "PURGED"
	case StatusCancelled:
		return "CANCELLED"
	}
	return fmt.Sprintf("STATUS(%d)", uint8(s))
}

// ID is a request id: the request message's MsgID.
type ID [24]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// ParseID reads a request id written as 48 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("request: request id %q is not 48 hex digits", s)
	}
	copy(id[:], b)
	return id, nil
}

// Key is the first 16 bytes of SHA-256 of the request id: what call ids
// carry of their request.
type Key [ciKeyLen]byte

// KeyOf is id's key.
func KeyOf(id ID) Key {
	s := sha256.Sum256(id[:])
	var k Key
	copy(k[:], s[:ciKeyLen])
	return k
}

// CallID names one call of one attempt of one request: the CorrelID of
// the call and of its reply (layout: the table above ciSize).
type CallID struct {
	Key     Key
	Attempt uint32
	Seq     uint32
}

// Bytes is the call id as a CorrelID.
func (c CallID) Bytes() [24]byte {
	var b [24]byte
	copy(b[ciKey:], c.Key[:])
	binary.BigEndian.PutUint32(b[ciAttempt:], c.Attempt)
	binary.BigEndian.PutUint32(b[ciSeq:], c.Seq)
	return b
}

// tagID is the CorrelID of one of the request's own messages on the state
// queue (its record, live marker or tombstone).
func tagID(k Key, tag uint32) [24]byte {
	return CallID{Key: k, Attempt: ciTagAttempt, Seq: tag}.Bytes()
}

// ErrNotCallID is returned by ParseCallID for a CorrelID that is not a
// call id.
var ErrNotCallID = errors.New("request: not a call id")

// ParseCallID reads a call id from a CorrelID: ErrNotCallID when its
// attempt or sequence number is out of range (a tag, or zero).
func ParseCallID(b [24]byte) (CallID, error) {
	var c CallID
	copy(c.Key[:], b[ciKey:ciKey+ciKeyLen])
	c.Attempt = binary.BigEndian.Uint32(b[ciAttempt:])
	c.Seq = binary.BigEndian.Uint32(b[ciSeq:])
	if c.Attempt == 0 || c.Attempt == ciTagAttempt || c.Seq == 0 {
		return CallID{}, ErrNotCallID
	}
	return c, nil
}

// RequestHeader is the header in front of a request's body (Format
// FormatRequest): the request's mode and the body's own format. A request
// without one runs in the manager's default mode.
type RequestHeader struct {
	Mode   Mode
	Format string
}

// ErrBadHeader is returned for bytes that are not a well-formed header of
// this package (request header, state record, unexpected message header).
var ErrBadHeader = errors.New("request: malformed header")

// Encode renders the header followed by body.
func (h RequestHeader) Encode(body []byte) []byte {
	b := make([]byte, rhSize, rhSize+len(body))
	copy(b[rhMagic:], "RQH ")
	binary.LittleEndian.PutUint32(b[rhVersion:], rhVersionNow)
	binary.LittleEndian.PutUint32(b[rhMode:], uint32(h.Mode))
	putPadded(b[rhFormat:rhFormat+8], h.Format, ' ')
	return append(b, body...)
}

// ParseRequestHeader splits a request's body into its header and the
// request's own body. It never panics, whatever the bytes.
func ParseRequestHeader(b []byte) (RequestHeader, []byte, error) {
	var h RequestHeader
	if len(b) < rhSize || string(b[rhMagic:rhMagic+4]) != "RQH " {
		return h, nil, fmt.Errorf("%w: not a request header", ErrBadHeader)
	}
	if v := binary.LittleEndian.Uint32(b[rhVersion:]); v != rhVersionNow {
		return h, nil, fmt.Errorf("%w: request header version %d", ErrBadHeader, v)
	}
	m := binary.LittleEndian.Uint32(b[rhMode:])
	if m > uint32(ModeRecoverable) {
		return h, nil, fmt.Errorf("%w: request mode %d", ErrBadHeader, m)
	}
	h.Mode = Mode(m)
	h.Format = strings.TrimRight(string(b[rhFormat:rhFormat+8]), " \x00")
	return h, b[rhSize:], nil
}

// Reason says why a message is on the Unexpected Message Queue.
type Reason uint32

// The reasons of the Unexpected Message Queue's header.
const (
	ReasonPurged         Reason = 1  // a reply for a request that was purged (non-recoverable, after a failure)
	ReasonEnded          Reason = 2  // a reply for a request that ended
	ReasonStaleAttempt   Reason = 3  // a reply to a call of an earlier attempt (restartable, restarted)
	ReasonTimedOut       Reason = 4  // a reply to a call that timed out
	ReasonNotReply       Reason = 5  // a message on the reply queue whose CorrelID is no call id
	ReasonCancelled      Reason = 6  // a reply for a request that was cancelled
	ReasonUnknownRequest Reason = 7  // a reply or cancel for a request not in flight and not known to have ended
	ReasonBadRequest     Reason = 8  // a request whose request header is malformed
	ReasonUndeliverable  Reason = 9  // a final reply of the manager's that its request's reply-to queue cannot take (it does not exist): OrigQ names that queue
	ReasonDuplicate      Reason = 10 // a request message whose request id (MsgID) is another's in flight: the request runs once, from the other
	// ReasonBadState: a request whose state record cannot be read
	// (corrupt, or of a newer version than this code knows), moved with
	// its records and live markers (OrigQ says which queue each was on)
	// instead of being taken again for ever.
	ReasonBadState Reason = 11
)

func (r Reason) String() string {
	switch r {
	case ReasonPurged:
		return "PURGED"
	case ReasonEnded:
		return "ENDED"
	case ReasonStaleAttempt:
		return "STALE_ATTEMPT"
	case ReasonTimedOut:
		return "TIMED_OUT"
	case ReasonNotReply:
		return "NOT_A_REPLY"
	case ReasonCancelled:
		return "CANCELLED"
	case ReasonUnknownRequest:
		return "UNKNOWN_REQUEST"
	case ReasonBadRequest:
		return "BAD_REQUEST"
	case ReasonUndeliverable:
		return "UNDELIVERABLE"
	case ReasonDuplicate:
		return "DUPLICATE"
	case ReasonBadState:
		return "BAD_STATE"
	}
	return fmt.Sprintf("REASON(%d)", uint32(r))
}

// UnexpectedHeader is the header in front of a message moved to the
// Unexpected Message Queue (Format FormatUnexpected; layout: the table
// above uhSize). Browse the queue (qmgr get --browse --headers) to see them.
type UnexpectedHeader struct {
	Reason     Reason
	RequestID  ID       // zero when not known
	CorrelID   [24]byte // the original message's
	OrigQ      string   // where it was found
	Time       time.Time
	OrigFormat string
}

// Encode renders the header followed by body.
func (h UnexpectedHeader) Encode(body []byte) []byte {
	b := make([]byte, uhSize, uhSize+len(body))
	copy(b[uhMagic:], "RQUH")
	binary.LittleEndian.PutUint32(b[uhVersion:], uhVersionNow)
	binary.LittleEndian.PutUint32(b[uhReason:], uint32(h.Reason))
	copy(b[uhRequestID:uhRequestID+24], h.RequestID[:])
	copy(b[uhCorrelID:uhCorrelID+24], h.CorrelID[:])
	putPadded(b[uhOrigQ:uhOrigQ+uhQueueLen], h.OrigQ, 0)
	binary.LittleEndian.PutUint64(b[uhTime:], uint64(h.Time.UnixNano()))
	putPadded(b[uhFormat:uhFormat+8], h.OrigFormat, ' ')
	return append(b, body...)
}

// ParseUnexpectedHeader splits a message of the Unexpected Message Queue
// into its header and the original body. It never panics, whatever the
// bytes.
func ParseUnexpectedHeader(b []byte) (UnexpectedHeader, []byte, error) {
	var h UnexpectedHeader
	if len(b) < uhSize || string(b[uhMagic:uhMagic+4]) != "RQUH" {
		return h, nil, fmt.Errorf("%w: not an unexpected message header", ErrBadHeader)
	}
	if v := binary.LittleEndian.Uint32(b[uhVersion:]); v != uhVersionNow {
		return h, nil, fmt.Errorf("%w: unexpected message header version %d", ErrBadHeader, v)
	}
	h.Reason = Reason(binary.LittleEndian.Uint32(b[uhReason:]))
	copy(h.RequestID[:], b[uhRequestID:])
	copy(h.CorrelID[:], b[uhCorrelID:])
	h.OrigQ = string(bytes.TrimRight(b[uhOrigQ:uhOrigQ+uhQueueLen], "\x00"))
	h.Time = time.Unix(0, int64(binary.LittleEndian.Uint64(b[uhTime:])))
	h.OrigFormat = strings.TrimRight(string(b[uhFormat:uhFormat+8]), " \x00")
	return h, b[uhSize:], nil
}

// Outcome is what became of a call.
type Outcome uint8

// Call outcomes.
const (
	OutcomePending   Outcome = 1 // sent, no reply taken yet
	OutcomeReplied   Outcome = 2 // its reply was taken
	OutcomeTimedOut  Outcome = 3 // timed out; it may have been performed
	OutcomeWithdrawn Outcome = 4 // timed out and taken back from the server's queue: never performed
	OutcomeFailed    Outcome = 5 // its server gave up on it (a FormatCallFailed reply, the value): never performed
)

// EntryKind is the kind of a journal entry.
type EntryKind uint8

// Journal entry kinds.
const (
	EntryCall  EntryKind = 1
	EntrySave  EntryKind = 2
	EntryReply EntryKind = 3
	EntryFinal EntryKind = 4
)

// Entry is one step of a request's journal: what replay gives back to the
// program instead of doing it again.
type Entry struct {
	Kind    EntryKind
	Outcome Outcome // EntryCall
	Attempt uint32  // EntryCall: the attempt that sent it
	Seq     uint32  // EntryCall
	Name    string  // EntryCall: the called queue; EntrySave: the key
	// Hash is what the program sent (EntryCall: the call's format and
	// body; EntryReply, EntryFinal: the reply's body) as SentHash gives
	// it, so that a replay that sends something else is caught. Zero in
	// a record of version 1, which did not keep it: not compared.
	Hash  uint64
	Value []byte // EntryCall: the reply (OutcomeFailed: its server's reason); EntrySave: the value
}

// SentHash is the Entry.Hash of a message of format and body sent by a
// program: a call, or a reply (format "").
func SentHash(format string, body []byte) uint64 {
	d := xxhash.New()
	d.WriteString(format)
	d.Write([]byte{0})
	d.Write(body)
	return d.Sum64()
}

// PendingCall is a call sent whose reply was not taken yet.
type PendingCall struct {
	Attempt, Seq uint32
	Sent         time.Time
	Timeout      time.Duration
	Queue        string
}

// Record is a request's state record (layout: the table above srSize).
type Record struct {
	Mode      Mode
	Status    Status
	Attempts  uint32
	NextSeq   uint32
	FinalIdx  uint32 // journal entries up to and including the final reply; 0: none sent
	RequestID ID
	// Lock is the token (mq.Message.Token) of the request message that
	// holds the request: which of two messages with one request id is
	// the request, and which a duplicate (zero in a record of version 1).
	Lock      uint64
	Created   time.Time
	Updated   time.Time
	Manager   string
	Step      string
	ReplyToQ  string
	ReplyQMgr string
	Pending   []PendingCall
	Journal   []Entry
}

// Encode renders the record.
func (r *Record) Encode() []byte {
	n := srSize + 8 + len(r.Manager) + len(r.Step) + len(r.ReplyToQ) + len(r.ReplyQMgr)
	for _, p := range r.Pending {
		n += 26 + len(p.Queue)
	}
	for _, e := range r.Journal {
		n += minEntry + len(e.Name) + len(e.Value)
	}
	b := make([]byte, srSize, n)
	copy(b[srMagic:], "RQST")
	binary.LittleEndian.PutUint16(b[srVersion:], srVersionNow)
	b[srMode] = byte(r.Mode)
	b[srStatus] = byte(r.Status)
	binary.LittleEndian.PutUint32(b[srAttempts:], r.Attempts)
	binary.LittleEndian.PutUint32(b[srNextSeq:], r.NextSeq)
	binary.LittleEndian.PutUint32(b[srFinalIdx:], r.FinalIdx)
	binary.LittleEndian.PutUint32(b[srPending:], uint32(len(r.Pending)))
	copy(b[srRequestID:srRequestID+24], r.RequestID[:])
	binary.LittleEndian.PutUint64(b[srCreated:], uint64(r.Created.UnixNano()))
	binary.LittleEndian.PutUint64(b[srUpdated:], uint64(r.Updated.UnixNano()))
	binary.LittleEndian.PutUint32(b[srJournal:], uint32(len(r.Journal)))
	binary.LittleEndian.PutUint64(b[srLock:], r.Lock)
	for _, s := range []string{r.Manager, r.Step, r.ReplyToQ, r.ReplyQMgr} {
		b = putString(b, s)
	}
	for _, p := range r.Pending {
		b = binary.LittleEndian.AppendUint32(b, p.Attempt)
		b = binary.LittleEndian.AppendUint32(b, p.Seq)
		b = binary.LittleEndian.AppendUint64(b, uint64(p.Sent.UnixNano()))
		b = binary.LittleEndian.AppendUint64(b, uint64(p.Timeout))
		b = putString(b, p.Queue)
	}
	for _, e := range r.Journal {
		b = append(b, byte(e.Kind), byte(e.Outcome), 0)
		b = binary.LittleEndian.AppendUint32(b, e.Attempt)
		b = binary.LittleEndian.AppendUint32(b, e.Seq)
		b = putString(b, e.Name)
		b = binary.LittleEndian.AppendUint64(b, e.Hash)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Value)))
		b = append(b, e.Value...)
	}
	return b
}

// Minimum encoded sizes of the tail's items, to bound counts before
// allocating.
const (
	minPending = 4 + 4 + 8 + 8 + 2
	minEntry   = 3 + 4 + 4 + 2 + 8 + 4
	minEntryV1 = minEntry - 8 // no hash
)

// ParseRecord decodes a state record (or a live marker or tombstone), of
// this version or of version 1 (written before records kept their lock
// and entries their hash: both read as zero). It never panics and never
// allocates more than the bytes could hold, whatever they are. A version
// it does not know is ErrRecordVersion (and ErrBadHeader).
func ParseRecord(b []byte) (*Record, error) {
	if len(b) < srSizeV1 || string(b[srMagic:srMagic+4]) != "RQST" {
		return nil, fmt.Errorf("%w: not a state record", ErrBadHeader)
	}
	v := binary.LittleEndian.Uint16(b[srVersion:])
	tail, entryMin := srTail, minEntry
	switch {
	case v == 1:
		tail, entryMin = srSizeV1, minEntryV1
	case v != srVersionNow:
		return nil, fmt.Errorf("%w: %w %d (this manager knows 1 to %d)", ErrBadHeader, ErrRecordVersion, v, srVersionNow)
	case len(b) < srSize:
		return nil, fmt.Errorf("%w: not a state record", ErrBadHeader)
	}
	r := &Record{
		Mode:     Mode(b[srMode]),
		Status:   Status(b[srStatus]),
		Attempts: binary.LittleEndian.Uint32(b[srAttempts:]),
		NextSeq:  binary.LittleEndian.Uint32(b[srNextSeq:]),
		FinalIdx: binary.LittleEndian.Uint32(b[srFinalIdx:]),
		Created:  time.Unix(0, int64(binary.LittleEndian.Uint64(b[srCreated:]))),
		Updated:  time.Unix(0, int64(binary.LittleEndian.Uint64(b[srUpdated:]))),
	}
	if r.Mode < ModeNonRecoverable || r.Mode > ModeRecoverable {
		return nil, fmt.Errorf("%w: state record mode %d", ErrBadHeader, r.Mode)
	}
	if r.Status < StatusRunning || r.Status > StatusCancelled {
		return nil, fmt.Errorf("%w: state record status %d", ErrBadHeader, r.Status)
	}
	if binary.LittleEndian.Uint32(b[srJournal+4:]) != 0 {
		return nil, fmt.Errorf("%w: state record reserved bytes not zero", ErrBadHeader)
	}
	copy(r.RequestID[:], b[srRequestID:])
	if v != 1 {
		r.Lock = binary.LittleEndian.Uint64(b[srLock:])
	}
	np := binary.LittleEndian.Uint32(b[srPending:])
	nj := binary.LittleEndian.Uint32(b[srJournal:])
	d := decoder{b: b[tail:]}
	r.Manager = d.str()
	r.Step = d.str()
	r.ReplyToQ = d.str()
	r.ReplyQMgr = d.str()
	if d.err == nil && uint64(np)*minPending > uint64(len(d.b)) {
		d.fail("%d pending calls in %d bytes", np, len(d.b))
	}
	if d.err == nil && np > 0 {
		r.Pending = make([]PendingCall, np)
		for i := range r.Pending {
			p := &r.Pending[i]
			p.Attempt = d.u32()
			p.Seq = d.u32()
			p.Sent = time.Unix(0, int64(d.u64()))
			t := d.u64()
			if t > math.MaxInt64 {
				d.fail("timeout %d", t)
			}
			p.Timeout = time.Duration(t)
			p.Queue = d.str()
		}
	}
	if d.err == nil && uint64(nj)*uint64(entryMin) > uint64(len(d.b)) {
		d.fail("%d journal entries in %d bytes", nj, len(d.b))
	}
	if d.err == nil && nj > 0 {
		r.Journal = make([]Entry, nj)
		for i := range r.Journal {
			e := &r.Journal[i]
			k := d.bytes(3)
			if k == nil {
				break
			}
			e.Kind, e.Outcome = EntryKind(k[0]), Outcome(k[1])
			if e.Kind < EntryCall || e.Kind > EntryFinal || k[2] != 0 {
				d.fail("journal entry %d of kind %d", i, k[0])
			}
			if e.Kind == EntryCall && (e.Outcome < OutcomePending || e.Outcome > OutcomeFailed) || e.Kind != EntryCall && e.Outcome != 0 {
				d.fail("journal entry %d of kind %d with outcome %d", i, k[0], k[1])
			}
			e.Attempt = d.u32()
			e.Seq = d.u32()
			e.Name = d.str()
			if v != 1 {
				e.Hash = d.u64()
			}
			if v := d.bytes(int(d.u32())); len(v) > 0 {
				e.Value = bytes.Clone(v)
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("%d bytes after the journal", len(d.b))
	}
	if d.err == nil && r.FinalIdx > nj {
		d.fail("final reply at entry %d of %d", r.FinalIdx, nj)
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

// decoder reads the tail of a record; the first error sticks and every
// later read gives zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: state record: %s", ErrBadHeader, fmt.Sprintf(format, a...))
	}
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	if v := d.bytes(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if v := d.bytes(8); v != nil {
		return binary.LittleEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) str() string {
	v := d.bytes(2)
	if v == nil {
		return ""
	}
	return string(d.bytes(int(binary.LittleEndian.Uint16(v))))
}

func putString(b []byte, s string) []byte {
	if len(s) > math.MaxUint16 {
		s = s[:math.MaxUint16]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func putPadded(dst []byte, s string, pad byte) {
	n := copy(dst, s)
	for i := n; i < len(dst); i++ {
		dst[i] = pad
	}
}
