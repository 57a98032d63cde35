package role

import "fmt"

// Role seen by a replica (pgRole).
const (
	SeenNone          = 0
	SeenPrimary       = 1
	SeenSecondary     = 2
	SeenSender        = 3 // a secondary that is the sender
	SeenJoiner        = 4
	SeenPrimarySender = 5 // the primary acting as sender
)

// Progress flag bits (pgFlags).
const (
	FlagDiverged  = 1 << 0
	FlagHalted    = 1 << 1 // the primary halted by flow control
	FlagDonorBusy = 1 << 2
	FlagExiting   = 1 << 3
	flagsKnown    = FlagDiverged | FlagHalted | FlagDonorBusy | FlagExiting
)

// Progress is the progress record of one position.
type Progress struct {
	Flags        uint8
	Position     uint8
	Role         uint8
	Tag          uint32
	Chunks       uint32
	Epoch        uint64
	Received     uint64
	Applied      uint64
	Hold         uint64
	LSNOut       uint64
	ResendInputs uint64
	ResendBytes  uint64
	OutHash      uint64
	CheckLSN     uint64
	CheckHash    uint64
	Heartbeat    int64
	Inputs       uint64
	Outputs      uint64
	DivergedLSN  uint64
	LastMsgID    [24]byte
	XferJoiner   uint8 // None: no transfer
	XferTag      uint32
}

const progressMagic = "RUPG"

func (p *Progress) check() error {
	switch {
	case p.Flags&^flagsKnown != 0:
		return fmt.Errorf("flags %#x", p.Flags)
	case p.Position >= MaxReplicas:
		return fmt.Errorf("position %d", p.Position)
	case p.Role > SeenPrimarySender:
		return fmt.Errorf("role %d", p.Role)
	case p.Applied > p.Received && p.Role != SeenJoiner:
		return fmt.Errorf("applied %d past received %d", p.Applied, p.Received)
	case p.XferJoiner != None && p.XferJoiner >= MaxReplicas:
		return fmt.Errorf("transfer joiner %d", p.XferJoiner)
	case p.XferJoiner == None && p.XferTag != 0:
		return fmt.Errorf("transfer tag without joiner")
	}
	return nil
}

// Encode returns the record's RecordSize bytes.
func (p *Progress) Encode() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("%w: progress record: %v", ErrInvalid, err)
	}
	b := make([]byte, RecordSize)
	copy(b[pgMagic:], progressMagic)
	b[pgVersion] = Version
	b[pgFlags] = p.Flags
	b[pgPosition] = p.Position
	b[pgRole] = p.Role
	le.PutUint32(b[pgTag:], p.Tag)
	le.PutUint32(b[pgChunks:], p.Chunks)
	for off, v := range map[int]uint64{
		pgEpoch: p.Epoch, pgReceived: p.Received, pgApplied: p.Applied, pgHold: p.Hold,
		pgLSNOut: p.LSNOut, pgResendInputs: p.ResendInputs, pgResendBytes: p.ResendBytes,
		pgOutHash: p.OutHash, pgCheckLSN: p.CheckLSN, pgCheckHash: p.CheckHash,
		pgHeartbeat: uint64(p.Heartbeat), pgInputs: p.Inputs, pgOutputs: p.Outputs, pgDivergedLSN: p.DivergedLSN,
	} {
		le.PutUint64(b[off:], v)
	}
	copy(b[pgLastMsgID:], p.LastMsgID[:])
	b[pgXferJoiner] = p.XferJoiner
	le.PutUint32(b[pgXferTag:], p.XferTag)
	return b, nil
}

// DecodeProgress parses a progress record. It never panics, whatever the
// bytes. An all-zero record (never written) is ErrBadMagic.
func DecodeProgress(b []byte) (*Progress, error) {
	if len(b) != RecordSize {
		return nil, fmt.Errorf("%w: progress record of %d bytes, want %d", ErrTruncated, len(b), RecordSize)
	}
	if string(b[pgMagic:pgMagic+4]) != progressMagic {
		return nil, fmt.Errorf("%w: progress record magic %q", ErrBadMagic, b[pgMagic:pgMagic+4])
	}
	if b[pgVersion] != Version {
		return nil, fmt.Errorf("%w: progress record version %d", ErrVersion, b[pgVersion])
	}
	if !zero(b[pgXferJoiner+1:pgXferTag]) || !zero(b[pgXferTag+4:]) {
		return nil, fmt.Errorf("%w: progress record: reserved bytes not zero", ErrCorrupt)
	}
	p := &Progress{
		Flags:        b[pgFlags],
		Position:     b[pgPosition],
		Role:         b[pgRole],
		Tag:          le.Uint32(b[pgTag:]),
		Chunks:       le.Uint32(b[pgChunks:]),
		Epoch:        le.Uint64(b[pgEpoch:]),
		Received:     le.Uint64(b[pgReceived:]),
		Applied:      le.Uint64(b[pgApplied:]),
		Hold:         le.Uint64(b[pgHold:]),
		LSNOut:       le.Uint64(b[pgLSNOut:]),
		ResendInputs: le.Uint64(b[pgResendInputs:]),
		ResendBytes:  le.Uint64(b[pgResendBytes:]),
		OutHash:      le.Uint64(b[pgOutHash:]),
		CheckLSN:     le.Uint64(b[pgCheckLSN:]),
		CheckHash:    le.Uint64(b[pgCheckHash:]),
		Heartbeat:    int64(le.Uint64(b[pgHeartbeat:])),
		Inputs:       le.Uint64(b[pgInputs:]),
		Outputs:      le.Uint64(b[pgOutputs:]),
		DivergedLSN:  le.Uint64(b[pgDivergedLSN:]),
		XferJoiner:   b[pgXferJoiner],
		XferTag:      le.Uint32(b[pgXferTag:]),
	}
	copy(p.LastMsgID[:], b[pgLastMsgID:])
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("%w: progress record: %v", ErrCorrupt, err)
	}
	return p, nil
}
