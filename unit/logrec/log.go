package logrec

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// Kind is the kind of a log record.
type Kind uint8

// Record kinds.
const (
	KindInput      Kind = 1 // LOGGING(LATE): the input with its choices
	KindInputEarly Kind = 2 // LOGGING(EARLY): the input; its choices come in a CHOICES record
	KindInputRef   Kind = 3 // LOGGING(INDEPENDENT): a reference to the input on its queue
	KindChoices    Kind = 4 // the choices of an input logged earlier
	KindCheck      Kind = 5 // the primary's state hash at an LSN
)

func (k Kind) String() string {
	switch k {
	case KindInput:
		return "INPUT"
	case KindInputEarly:
		return "INPUT_EARLY"
	case KindInputRef:
		return "INPUT_REF"
	case KindChoices:
		return "CHOICES"
	case KindCheck:
		return "CHECK"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// isInput: the kinds that carry an input and take an LSN of the message's
// range.
func (k Kind) isInput() bool { return k == KindInput || k == KindInputEarly || k == KindInputRef }

// ChoiceKind is the kind of a non-deterministic choice.
type ChoiceKind uint8

// Choice kinds.
const (
	ChoiceTime  ChoiceKind = 1 // Ctx.Now: 8 bytes, Unix ns
	ChoiceSeed  ChoiceKind = 2 // Ctx.Rand: the 16-byte seed of the input's generator
	ChoiceBytes ChoiceKind = 3 // Ctx.Choose: any bytes
	// ChoiceFailed is the framework's, not the handler's: the handler
	// failed on the input and the input went aside (Failed, its bytes).
	// It is the input's last choice; a replica whose handler does not
	// fail where the primary's did, or fails where it did not, diverged.
	ChoiceFailed ChoiceKind = 4
)

// Failed is the decision logged with a FAILED choice: where the input a
// handler failed on goes, the same in every replica. Bytes: time (8,
// Unix ns, little-endian: the dead-letter header's), flags (1: bit 0
// behind a dead-letter header), the queue's name (the rest, at most
// MaxFailedQueue bytes).
type Failed struct {
	Time  int64
	DLH   bool   // behind a dead-letter header (to the DEADQ); else as it came (to BOQNAME)
	Queue string // the queue it is put to
}

// MaxFailedQueue bounds a FAILED choice's queue name (a queue name's
// length).
const MaxFailedQueue = 48

// Encode renders f as a FAILED choice's bytes.
func (f Failed) Encode() []byte {
	b := le.AppendUint64(nil, uint64(f.Time))
	fl := byte(0)
	if f.DLH {
		fl = 1
	}
	return append(append(b, fl), f.Queue...)
}

// DecodeFailed reads a FAILED choice's bytes.
func DecodeFailed(b []byte) (Failed, error) {
	if len(b) < 10 || len(b) > 9+MaxFailedQueue {
		return Failed{}, fmt.Errorf("%w: FAILED choice of %d bytes", ErrCorrupt, len(b))
	}
	if b[8]&^1 != 0 {
		return Failed{}, fmt.Errorf("%w: FAILED choice flags %#x", ErrCorrupt, b[8])
	}
	return Failed{Time: int64(le.Uint64(b)), DLH: b[8] == 1, Queue: string(b[9:])}, nil
}

func (k ChoiceKind) String() string {
	switch k {
	case ChoiceTime:
		return "TIME"
	case ChoiceSeed:
		return "SEED"
	case ChoiceBytes:
		return "BYTES"
	case ChoiceFailed:
		return "FAILED"
	}
	return fmt.Sprintf("ChoiceKind(%d)", uint8(k))
}

// Choice is one logged non-deterministic choice.
type Choice struct {
	Kind ChoiceKind
	Data []byte
}

// validChoice: TIME is 8 bytes, SEED 16, BYTES anything.
func validChoice(c Choice) error {
	switch c.Kind {
	case ChoiceTime:
		if len(c.Data) != 8 {
			return fmt.Errorf("TIME choice of %d bytes, want 8", len(c.Data))
		}
	case ChoiceSeed:
		if len(c.Data) != 16 {
			return fmt.Errorf("SEED choice of %d bytes, want 16", len(c.Data))
		}
	case ChoiceBytes:
	case ChoiceFailed:
		if _, err := DecodeFailed(c.Data); err != nil {
			return err
		}
	default:
		return fmt.Errorf("choice kind %d", c.Kind)
	}
	return nil
}

// Source identifies where an input from another unit came from (zero
// for an input from anything else).
type Source struct {
	ID  uint64 // xxhash64 of the source unit's name
	Gen uint32 // its generation
	Seq uint64 // the per-destination sequence number
}

// Input is an input message as logged (INPUT, INPUT_EARLY).
type Input struct {
	LSN         uint64
	Source      Source
	MsgID       [24]byte
	CorrelID    [24]byte
	Format      string // up to 8 bytes
	Priority    uint8  // 0..9
	Persistent  bool
	Expiry      int64 // Unix ns, 0 never
	PutTime     int64 // Unix ns
	ReplyToQ    string
	ReplyToQMgr string
	Properties  []byte
	Body        []byte
	Choices     []Choice // INPUT only
}

// Hash is xxhash64 of what a handler is given of input in: its MsgID,
// CorrelID, Format, Priority, Persistent, Expiry, PutTime, ReplyToQ,
// ReplyToQMgr, Properties and Body, each variable field after its length
// (not LSN, Source or Choices: the log's, not the message's). An
// INPUT_REF names its input by its MsgID and this hash: two messages of
// one MsgID with equal hashes give the handler the same input, so either
// may stand for the other; two that differ in any of these fields (a
// producer's retry with another CorrelID, say) are told apart.
func (in *Input) Hash() uint64 {
	d := xxhash.New()
	var f [8 + 8 + 2]byte
	d.Write(in.MsgID[:])
	d.Write(in.CorrelID[:])
	binary.LittleEndian.PutUint64(f[0:], uint64(in.Expiry))
	binary.LittleEndian.PutUint64(f[8:], uint64(in.PutTime))
	f[16] = in.Priority
	if in.Persistent {
		f[17] = 1
	}
	d.Write(f[:])
	for _, v := range [][]byte{[]byte(in.Format), []byte(in.ReplyToQ), []byte(in.ReplyToQMgr), in.Properties, in.Body} {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(v)))
		d.Write(n[:])
		d.Write(v)
	}
	return d.Sum64()
}

// InputRef is an input logged by reference (INPUT_REF).
type InputRef struct {
	LSN     uint64
	Source  Source
	MsgID   [24]byte
	PutTime int64
	BodyLen uint32
	Hash    uint64 // Input.Hash of the input as the primary took it
}

// Record is one record of a log message. Kind says which fields are
// used: Input (INPUT, INPUT_EARLY), Ref (INPUT_REF), LSN and Choices
// (CHOICES), LSN, CheckHash and CheckLen (CHECK).
type Record struct {
	Kind      Kind
	Input     *Input
	Ref       *InputRef
	LSN       uint64
	Choices   []Choice
	CheckHash uint64
	CheckLen  uint64
}

// lsn is the LSN a record is about.
func (r *Record) lsn() uint64 {
	switch r.Kind {
	case KindInput, KindInputEarly:
		if r.Input != nil {
			return r.Input.LSN
		}
	case KindInputRef:
		if r.Ref != nil {
			return r.Ref.LSN
		}
	}
	return r.LSN
}

// Log message flags.
const (
	FlagPersistent = 1 << 0 // the message holds a persistent input
)

// LogMessage is one message of the unit's log: the records of one unit of
// work of the primary.
type LogMessage struct {
	Flags     uint8
	Epoch     uint64
	Gen       uint64
	FirstLSN  uint64 // 0 with LastLSN 0: no input records
	LastLSN   uint64
	Completed uint64 // completed-through LSN
	OutHash   uint64 // the primary's output hash at Completed
	Records   []Record
}

// validate checks what both Encode and Decode require of a message, so
// that the decoder accepts exactly what the encoder produces.
func (m *LogMessage) validate() error {
	if m.Flags&^FlagPersistent != 0 {
		return fmt.Errorf("flags %#x", m.Flags)
	}
	if len(m.Records) == 0 || len(m.Records) > MaxRecords {
		return fmt.Errorf("%d records, want 1..%d", len(m.Records), MaxRecords)
	}
	next, inputs := m.FirstLSN, 0
	for i := range m.Records {
		r := &m.Records[i]
		switch r.Kind {
		case KindInput, KindInputEarly:
			if r.Input == nil {
				return fmt.Errorf("record %d: %v without input", i, r.Kind)
			}
			if r.Kind == KindInputEarly && len(r.Input.Choices) != 0 {
				return fmt.Errorf("record %d: INPUT_EARLY with choices", i)
			}
		case KindInputRef:
			if r.Ref == nil {
				return fmt.Errorf("record %d: INPUT_REF without reference", i)
			}
		case KindChoices, KindCheck:
			if r.LSN == 0 {
				return fmt.Errorf("record %d: %v of LSN 0", i, r.Kind)
			}
		default:
			return fmt.Errorf("record %d: kind %d", i, r.Kind)
		}
		if r.Kind.isInput() {
			if inputs == 0 && m.FirstLSN == 0 {
				return fmt.Errorf("record %d: input record in a message whose first LSN is 0", i)
			}
			if r.lsn() != next {
				return fmt.Errorf("record %d: input LSN %d, want %d (inputs are contiguous from the first LSN)", i, r.lsn(), next)
			}
			next++
			inputs++
		}
	}
	if inputs > MaxInputsPerMessage {
		return fmt.Errorf("%d inputs, at most %d", inputs, MaxInputsPerMessage)
	}
	if inputs == 0 {
		if m.FirstLSN != 0 || m.LastLSN != 0 {
			return fmt.Errorf("no input records but LSNs %d..%d", m.FirstLSN, m.LastLSN)
		}
	} else if m.LastLSN != next-1 {
		return fmt.Errorf("last LSN %d, the inputs end at %d", m.LastLSN, next-1)
	}
	if m.LastLSN != 0 && m.Completed > m.LastLSN {
		return fmt.Errorf("completed-through %d past the last LSN %d", m.Completed, m.LastLSN)
	}
	return nil
}

// Encode returns the message's bytes.
func (m *LogMessage) Encode() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: log message: %v", ErrInvalid, err)
	}
	b := make([]byte, logHeaderSize, logHeaderSize+256*len(m.Records))
	copy(b[lgMagic:], logMagic)
	b[lgVersion] = Version
	b[lgFlags] = m.Flags
	le.PutUint16(b[lgCount:], uint16(len(m.Records)))
	le.PutUint64(b[lgEpoch:], m.Epoch)
	le.PutUint64(b[lgGen:], m.Gen)
	le.PutUint64(b[lgFirst:], m.FirstLSN)
	le.PutUint64(b[lgLast:], m.LastLSN)
	le.PutUint64(b[lgCompleted:], m.Completed)
	le.PutUint64(b[lgOutHash:], m.OutHash)
	var err error
	for i := range m.Records {
		if b, err = appendRecord(b, &m.Records[i]); err != nil {
			return nil, fmt.Errorf("%w: log message record %d: %v", ErrInvalid, i, err)
		}
	}
	return b, nil
}

const logMagic = "RULG"

// DecodeLog parses a log message. It never panics, whatever the bytes.
func DecodeLog(b []byte) (*LogMessage, error) {
	if len(b) < logHeaderSize {
		return nil, fmt.Errorf("%w: log message of %d bytes, the header needs %d", ErrTruncated, len(b), logHeaderSize)
	}
	if string(b[lgMagic:lgMagic+4]) != logMagic {
		return nil, fmt.Errorf("%w: log message magic %q", ErrBadMagic, b[lgMagic:lgMagic+4])
	}
	if b[lgVersion] != Version {
		return nil, fmt.Errorf("%w: log message version %d, this binary reads %d", ErrVersion, b[lgVersion], Version)
	}
	if !zero(b[lgOutHash+8 : logHeaderSize]) {
		return nil, fmt.Errorf("%w: log message: reserved header bytes not zero", ErrCorrupt)
	}
	m := &LogMessage{
		Flags:     b[lgFlags],
		Epoch:     le.Uint64(b[lgEpoch:]),
		Gen:       le.Uint64(b[lgGen:]),
		FirstLSN:  le.Uint64(b[lgFirst:]),
		LastLSN:   le.Uint64(b[lgLast:]),
		Completed: le.Uint64(b[lgCompleted:]),
		OutHash:   le.Uint64(b[lgOutHash:]),
	}
	n := int(le.Uint16(b[lgCount:]))
	if n == 0 || n > MaxRecords {
		return nil, fmt.Errorf("%w: log message of %d records, want 1..%d", ErrCorrupt, n, MaxRecords)
	}
	// Each record takes at least recHeaderSize bytes: bound the
	// allocation by what the bytes can hold.
	if n > (len(b)-logHeaderSize)/recHeaderSize {
		return nil, fmt.Errorf("%w: log message says %d records, %d bytes hold at most %d", ErrTruncated, n, len(b)-logHeaderSize, (len(b)-logHeaderSize)/recHeaderSize)
	}
	m.Records = make([]Record, n)
	r := &reader{b: b, off: logHeaderSize, what: "log message"}
	for i := 0; i < n; i++ {
		if err := decodeRecord(r, &m.Records[i]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	if r.left() != 0 {
		return nil, fmt.Errorf("%w: log message: %d bytes after the last record", ErrCorrupt, r.left())
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("%w: log message: %v", ErrCorrupt, err)
	}
	return m, nil
}

func appendRecord(b []byte, rec *Record) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, recHeaderSize)...)
	b[start+rcKind] = byte(rec.Kind)
	var err error
	switch rec.Kind {
	case KindInput, KindInputEarly:
		b, err = appendInput(b, rec.Input, rec.Kind == KindInput)
	case KindInputRef:
		b = appendRef(b, rec.Ref)
	case KindChoices:
		b = le.AppendUint64(b, rec.LSN)
		b, err = appendChoices(b, rec.Choices)
	case KindCheck:
		b = le.AppendUint64(b, rec.LSN)
		b = le.AppendUint64(b, rec.CheckHash)
		b = le.AppendUint64(b, rec.CheckLen)
	default:
		return nil, fmt.Errorf("kind %d", rec.Kind)
	}
	if err != nil {
		return nil, err
	}
	body := len(b) - start - recHeaderSize
	if uint64(body) > 1<<32-1 {
		return nil, fmt.Errorf("body of %d bytes", body)
	}
	le.PutUint32(b[start+rcLen:], uint32(body))
	return b, nil
}

func decodeRecord(r *reader, rec *Record) error {
	h := r.take(recHeaderSize, "record header")
	if h == nil {
		return r.err
	}
	rec.Kind = Kind(h[rcKind])
	if h[rcFlags] != 0 || !zero(h[rcFlags+1:rcLen]) {
		return fmt.Errorf("%w: %v record: reserved header bytes not zero", ErrCorrupt, rec.Kind)
	}
	body := r.take(uint64(le.Uint32(h[rcLen:])), "record body")
	if body == nil {
		return r.err
	}
	br := &reader{b: body, what: rec.Kind.String() + " record"}
	switch rec.Kind {
	case KindInput, KindInputEarly:
		in, err := decodeInput(br, rec.Kind == KindInput)
		if err != nil {
			return err
		}
		rec.Input = in
	case KindInputRef:
		ref, err := decodeRef(br)
		if err != nil {
			return err
		}
		rec.Ref = ref
	case KindChoices:
		f := br.take(choicesFixed, "LSN")
		if f == nil {
			return br.err
		}
		rec.LSN = le.Uint64(f[chLSN:])
		cs, err := decodeChoices(br)
		if err != nil {
			return err
		}
		rec.Choices = cs
	case KindCheck:
		f := br.take(checkSize, "CHECK body")
		if f == nil {
			return br.err
		}
		rec.LSN = le.Uint64(f[ckLSN:])
		rec.CheckHash = le.Uint64(f[ckHash:])
		rec.CheckLen = le.Uint64(f[ckLen:])
	default:
		return fmt.Errorf("%w: record kind %d", ErrCorrupt, rec.Kind)
	}
	if br.left() != 0 {
		return fmt.Errorf("%w: %v record: %d bytes after its body", ErrCorrupt, rec.Kind, br.left())
	}
	return nil
}

func validSource(s Source) bool {
	// A source is all zero or a unit's (id non-zero, seq from 1).
	return s == Source{} || (s.ID != 0 && s.Seq != 0)
}

func appendInput(b []byte, in *Input, withChoices bool) ([]byte, error) {
	switch {
	case len(in.Format) > formatLen || !validName(in.Format, formatLen):
		return nil, fmt.Errorf("format %q", in.Format)
	case !validName(in.ReplyToQ, nameLen) || !validName(in.ReplyToQMgr, nameLen):
		return nil, fmt.Errorf("reply-to %q %q", in.ReplyToQ, in.ReplyToQMgr)
	case in.Priority > 9:
		return nil, fmt.Errorf("priority %d", in.Priority)
	case uint64(len(in.Properties)) > 1<<32-1 || uint64(len(in.Body)) > 1<<32-1:
		return nil, fmt.Errorf("properties or body over 4 GiB")
	case !validSource(in.Source):
		return nil, fmt.Errorf("source %+v", in.Source)
	case in.LSN == 0:
		return nil, fmt.Errorf("LSN 0")
	}
	f := make([]byte, inputFixedSize)
	le.PutUint64(f[inLSN:], in.LSN)
	le.PutUint64(f[inSrcID:], in.Source.ID)
	le.PutUint32(f[inSrcGen:], in.Source.Gen)
	le.PutUint64(f[inSrcSeq:], in.Source.Seq)
	copy(f[inMsgID:], in.MsgID[:])
	copy(f[inCorrelID:], in.CorrelID[:])
	putName(f[inFormat:inFormat+formatLen], in.Format)
	f[inPriority] = in.Priority
	if in.Persistent {
		f[inPersistent] = 1
	}
	le.PutUint64(f[inExpiry:], uint64(in.Expiry))
	le.PutUint64(f[inPutTime:], uint64(in.PutTime))
	putName(f[inReplyToQ:inReplyToQ+nameLen], in.ReplyToQ)
	putName(f[inReplyToQMgr:inReplyToQMgr+nameLen], in.ReplyToQMgr)
	le.PutUint32(f[inPropsLen:], uint32(len(in.Properties)))
	le.PutUint32(f[inBodyLen:], uint32(len(in.Body)))
	b = append(b, f...)
	b = append(b, in.Properties...)
	b = append(b, in.Body...)
	if withChoices {
		return appendChoices(b, in.Choices)
	}
	return b, nil
}

func decodeInput(r *reader, withChoices bool) (*Input, error) {
	f := r.take(inputFixedSize, "input header")
	if f == nil {
		return nil, r.err
	}
	in := &Input{
		LSN:        le.Uint64(f[inLSN:]),
		Source:     Source{ID: le.Uint64(f[inSrcID:]), Gen: le.Uint32(f[inSrcGen:]), Seq: le.Uint64(f[inSrcSeq:])},
		Priority:   f[inPriority],
		Persistent: f[inPersistent] == 1,
		Expiry:     int64(le.Uint64(f[inExpiry:])),
		PutTime:    int64(le.Uint64(f[inPutTime:])),
	}
	copy(in.MsgID[:], f[inMsgID:])
	copy(in.CorrelID[:], f[inCorrelID:])
	var ok1, ok2, ok3 bool
	in.Format, ok1 = getName(f[inFormat : inFormat+formatLen])
	in.ReplyToQ, ok2 = getName(f[inReplyToQ : inReplyToQ+nameLen])
	in.ReplyToQMgr, ok3 = getName(f[inReplyToQMgr : inReplyToQMgr+nameLen])
	switch {
	case !ok1 || !ok2 || !ok3:
		return nil, fmt.Errorf("%w: input LSN %d: a name is not NUL padded", ErrCorrupt, in.LSN)
	case f[inPersistent] > 1 || in.Priority > 9:
		return nil, fmt.Errorf("%w: input LSN %d: persistence %d, priority %d", ErrCorrupt, in.LSN, f[inPersistent], in.Priority)
	case !zero(f[inSrcGen+4:inSrcSeq]) || !zero(f[inPersistent+1:inExpiry]):
		return nil, fmt.Errorf("%w: input LSN %d: reserved bytes not zero", ErrCorrupt, in.LSN)
	case !validSource(in.Source) || in.LSN == 0:
		return nil, fmt.Errorf("%w: input LSN %d: source %+v", ErrCorrupt, in.LSN, in.Source)
	}
	in.Properties = clone(r.take(uint64(le.Uint32(f[inPropsLen:])), "properties"))
	in.Body = clone(r.take(uint64(le.Uint32(f[inBodyLen:])), "body"))
	if r.err != nil {
		return nil, r.err
	}
	if withChoices {
		cs, err := decodeChoices(r)
		if err != nil {
			return nil, err
		}
		in.Choices = cs
	}
	return in, nil
}

func appendRef(b []byte, ref *InputRef) []byte {
	f := make([]byte, inputRefSize)
	le.PutUint64(f[rfLSN:], ref.LSN)
	le.PutUint64(f[rfSrcID:], ref.Source.ID)
	le.PutUint32(f[rfSrcGen:], ref.Source.Gen)
	le.PutUint64(f[rfSrcSeq:], ref.Source.Seq)
	copy(f[rfMsgID:], ref.MsgID[:])
	le.PutUint64(f[rfPutTime:], uint64(ref.PutTime))
	le.PutUint32(f[rfBodyLen:], ref.BodyLen)
	le.PutUint64(f[rfHash:], ref.Hash)
	return append(b, f...)
}

func decodeRef(r *reader) (*InputRef, error) {
	f := r.take(inputRefSize, "INPUT_REF body")
	if f == nil {
		return nil, r.err
	}
	ref := &InputRef{
		LSN:     le.Uint64(f[rfLSN:]),
		Source:  Source{ID: le.Uint64(f[rfSrcID:]), Gen: le.Uint32(f[rfSrcGen:]), Seq: le.Uint64(f[rfSrcSeq:])},
		PutTime: int64(le.Uint64(f[rfPutTime:])),
		BodyLen: le.Uint32(f[rfBodyLen:]),
		Hash:    le.Uint64(f[rfHash:]),
	}
	copy(ref.MsgID[:], f[rfMsgID:])
	if !zero(f[rfSrcGen+4:rfSrcSeq]) || !zero(f[rfBodyLen+4:rfHash]) {
		return nil, fmt.Errorf("%w: INPUT_REF LSN %d: reserved bytes not zero", ErrCorrupt, ref.LSN)
	}
	if !validSource(ref.Source) || ref.LSN == 0 {
		return nil, fmt.Errorf("%w: INPUT_REF LSN %d: source %+v", ErrCorrupt, ref.LSN, ref.Source)
	}
	return ref, nil
}

// validateChoices checks a choices list against the limits.
func validateChoices(cs []Choice) error {
	if len(cs) > MaxChoices {
		return fmt.Errorf("%d choices, at most %d", len(cs), MaxChoices)
	}
	total := 2
	for i, c := range cs {
		if err := validChoice(c); err != nil {
			return fmt.Errorf("choice %d: %v", i, err)
		}
		total += choiceHdrSize + len(c.Data)
		if total > MaxChoiceBytes {
			return fmt.Errorf("choices of more than %d bytes", MaxChoiceBytes)
		}
	}
	return nil
}

func appendChoices(b []byte, cs []Choice) ([]byte, error) {
	if err := validateChoices(cs); err != nil {
		return nil, err
	}
	b = le.AppendUint16(b, uint16(len(cs)))
	for _, c := range cs {
		var h [choiceHdrSize]byte
		h[ccKind] = byte(c.Kind)
		le.PutUint32(h[ccLen:], uint32(len(c.Data)))
		b = append(b, h[:]...)
		b = append(b, c.Data...)
	}
	return b, nil
}

func decodeChoices(r *reader) ([]Choice, error) {
	cb := r.take(2, "choice count")
	if cb == nil {
		return nil, r.err
	}
	n := int(le.Uint16(cb))
	if n == 0 {
		return nil, nil
	}
	if n > r.left()/choiceHdrSize {
		return nil, fmt.Errorf("%w: %d choices, %d bytes hold at most %d", ErrTruncated, n, r.left(), r.left()/choiceHdrSize)
	}
	cs := make([]Choice, n)
	start := r.off - 2
	for i := range cs {
		h := r.take(choiceHdrSize, "choice header")
		if h == nil {
			return nil, r.err
		}
		cs[i].Kind = ChoiceKind(h[ccKind])
		d := r.take(uint64(le.Uint32(h[ccLen:])), "choice bytes")
		if r.err != nil {
			return nil, r.err
		}
		cs[i].Data = clone(d)
		if r.off-start > MaxChoiceBytes {
			return nil, fmt.Errorf("%w: choices of more than %d bytes", ErrTooLarge, MaxChoiceBytes)
		}
	}
	if err := validateChoices(cs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return cs, nil
}

// LogCorrelID is the CorrelID of the log message of epoch whose first
// input LSN is first.
func LogCorrelID(epoch, first uint64) [24]byte {
	var c [24]byte
	be.PutUint64(c[lcEpoch:], epoch)
	be.PutUint64(c[lcFirst:], first)
	return c
}

// ParseLogCorrelID is the inverse of LogCorrelID.
func ParseLogCorrelID(c [24]byte) (epoch, first uint64, err error) {
	if !zero(c[lcFirst+8:]) {
		return 0, 0, fmt.Errorf("%w: log CorrelID %x: reserved bytes not zero", ErrCorrupt, c)
	}
	return be.Uint64(c[lcEpoch:]), be.Uint64(c[lcFirst:]), nil
}
