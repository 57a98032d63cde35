package logrec

import "fmt"

const outMagic = "RUOT"

// NoPosition is the position byte meaning "none".
const NoPosition = 0xff

// Out is the OUT record: what the sender has committed.
type Out struct {
	Sender  uint8  // position of the sender that wrote it
	Epoch   uint64 // epoch of that sender's take-over
	Gen     uint64
	LSNOut  uint64 // every output of an LSN up to it is committed
	Outputs uint64 // outputs committed in all
	OutHash uint64 // output hash at LSNOut
	Updated int64  // Unix ns
	// Part is how many outputs of LSN LSNOut+1, in the order the handler
	// sent them, are committed too: a send that met a full destination
	// stopped there (its next output goes first in the next send).
	Part uint64
}

// OutCorrelID is the CorrelID of the OUT message on SYSTEM.UNIT.<n>.STATE.
var OutCorrelID = [24]byte{'O', 'U', 'T'}

// Encode returns the record's outSize bytes.
func (o *Out) Encode() []byte {
	b := make([]byte, outSize)
	copy(b[otMagic:], outMagic)
	b[otVersion] = Version
	b[otSender] = o.Sender
	le.PutUint64(b[otEpoch:], o.Epoch)
	le.PutUint64(b[otGen:], o.Gen)
	le.PutUint64(b[otLSNOut:], o.LSNOut)
	le.PutUint64(b[otOutputs:], o.Outputs)
	le.PutUint64(b[otOutHash:], o.OutHash)
	le.PutUint64(b[otUpdated:], uint64(o.Updated))
	le.PutUint64(b[otPart:], o.Part)
	return b
}

// DecodeOut parses an OUT record. It never panics, whatever the bytes.
func DecodeOut(b []byte) (Out, error) {
	var o Out
	if len(b) != outSize {
		return o, fmt.Errorf("%w: OUT record of %d bytes, want %d", ErrTruncated, len(b), outSize)
	}
	if string(b[otMagic:otMagic+4]) != outMagic {
		return o, fmt.Errorf("%w: OUT record magic %q", ErrBadMagic, b[otMagic:otMagic+4])
	}
	if b[otVersion] != Version {
		return o, fmt.Errorf("%w: OUT record version %d, this binary reads %d", ErrVersion, b[otVersion], Version)
	}
	if !zero(b[otSender+1 : otEpoch]) {
		return o, fmt.Errorf("%w: OUT record: reserved bytes not zero", ErrCorrupt)
	}
	o = Out{
		Sender:  b[otSender],
		Epoch:   le.Uint64(b[otEpoch:]),
		Gen:     le.Uint64(b[otGen:]),
		LSNOut:  le.Uint64(b[otLSNOut:]),
		Outputs: le.Uint64(b[otOutputs:]),
		OutHash: le.Uint64(b[otOutHash:]),
		Updated: int64(le.Uint64(b[otUpdated:])),
		Part:    le.Uint64(b[otPart:]),
	}
	return o, nil
}

const outputIDMagic = "RU"

// OutputID identifies one output of a unit to one destination.
type OutputID struct {
	Source uint64 // xxhash64 of the unit's name
	Gen    uint32 // the unit's generation
	Seq    uint64 // per-destination sequence number, from 1
}

// MsgID returns the output's MsgID.
func (id OutputID) MsgID() [24]byte {
	var m [24]byte
	copy(m[oiMagic:], outputIDMagic)
	m[oiVersion] = Version
	be.PutUint64(m[oiSource:], id.Source)
	be.PutUint32(m[oiGen:], id.Gen)
	be.PutUint64(m[oiSeq:], id.Seq)
	return m
}

// IsOutputID reports whether a MsgID looks like a unit's output (its
// magic): a destination unit then parses it with ParseOutputID.
func IsOutputID(m [24]byte) bool { return string(m[oiMagic:oiMagic+2]) == outputIDMagic }

// ParseOutputID parses a MsgID set by a unit's sender. It never panics.
func ParseOutputID(m [24]byte) (OutputID, error) {
	if !IsOutputID(m) {
		return OutputID{}, fmt.Errorf("%w: MsgID %x is not a unit's output", ErrBadMagic, m)
	}
	if m[oiVersion] != Version {
		return OutputID{}, fmt.Errorf("%w: output MsgID version %d", ErrVersion, m[oiVersion])
	}
	id := OutputID{Source: be.Uint64(m[oiSource:]), Gen: be.Uint32(m[oiGen:]), Seq: be.Uint64(m[oiSeq:])}
	if m[oiVersion+1] != 0 || id.Source == 0 || id.Seq == 0 {
		return OutputID{}, fmt.Errorf("%w: output MsgID %x: reserved byte, source or sequence", ErrCorrupt, m)
	}
	return id, nil
}
