package logrec

import (
	"fmt"
	"sort"
)

const (
	snapMagic  = "RUSN"
	chunkMagic = "RUSC"
	fsMagicStr = "RUFS"
)

// RestingJoiner is the joiner position of the resting snapshot (STOP
// SERVICE).
const RestingJoiner = 0xff

// Transfer names one snapshot transfer (the CorrelID of its chunks).
type Transfer struct {
	Gen       uint32
	Epoch     uint64
	Joiner    uint8  // position, or RestingJoiner
	JoinerTag uint32 // the joiner's W connection tag
}

// CorrelID returns the transfer's CorrelID.
func (t Transfer) CorrelID() [24]byte {
	var c [24]byte
	copy(c[scMagic:], snapMagic)
	be.PutUint32(c[scGen:], t.Gen)
	be.PutUint64(c[scEpoch:], t.Epoch)
	c[scJoiner] = t.Joiner
	be.PutUint32(c[scJoinerTag:], t.JoinerTag)
	return c
}

// ParseTransfer parses a snapshot CorrelID. It never panics.
func ParseTransfer(c [24]byte) (Transfer, error) {
	if string(c[scMagic:scMagic+4]) != snapMagic {
		return Transfer{}, fmt.Errorf("%w: CorrelID %x is not a snapshot transfer's", ErrBadMagic, c)
	}
	if !zero(c[scJoinerTag+4:]) {
		return Transfer{}, fmt.Errorf("%w: snapshot CorrelID %x: reserved bytes not zero", ErrCorrupt, c)
	}
	return Transfer{Gen: be.Uint32(c[scGen:]), Epoch: be.Uint64(c[scEpoch:]), Joiner: c[scJoiner], JoinerTag: be.Uint32(c[scJoinerTag:])}, nil
}

// Chunk is one message of a snapshot transfer.
type Chunk struct {
	Last   bool
	Index  uint32
	LSN    uint64
	Offset uint64
	Total  uint64 // last chunk only: the stream's length
	Hash   uint64 // last chunk only: xxhash64 of the stream
	Data   []byte
}

// Encode returns the chunk's bytes.
func (c *Chunk) Encode() ([]byte, error) {
	if len(c.Data) > MaxChunkData {
		return nil, fmt.Errorf("%w: chunk of %d bytes, at most %d", ErrInvalid, len(c.Data), MaxChunkData)
	}
	if !c.Last && (c.Total != 0 || c.Hash != 0) {
		return nil, fmt.Errorf("%w: total and hash only on the last chunk", ErrInvalid)
	}
	b := make([]byte, chunkHdrSize, chunkHdrSize+len(c.Data))
	copy(b[skMagic:], chunkMagic)
	b[skVersion] = Version
	if c.Last {
		b[skFlags] = 1
	}
	le.PutUint32(b[skIndex:], c.Index)
	le.PutUint64(b[skLSN:], c.LSN)
	le.PutUint64(b[skOffset:], c.Offset)
	le.PutUint64(b[skTotal:], c.Total)
	le.PutUint64(b[skHash:], c.Hash)
	return append(b, c.Data...), nil
}

// DecodeChunk parses a snapshot chunk. It never panics, whatever the
// bytes. Data aliases b.
func DecodeChunk(b []byte) (*Chunk, error) {
	if len(b) < chunkHdrSize {
		return nil, fmt.Errorf("%w: chunk of %d bytes, the header needs %d", ErrTruncated, len(b), chunkHdrSize)
	}
	if string(b[skMagic:skMagic+4]) != chunkMagic {
		return nil, fmt.Errorf("%w: chunk magic %q", ErrBadMagic, b[skMagic:skMagic+4])
	}
	if b[skVersion] != Version {
		return nil, fmt.Errorf("%w: chunk version %d", ErrVersion, b[skVersion])
	}
	if b[skFlags] > 1 || !zero(b[skFlags+1:skIndex]) || !zero(b[skIndex+4:skLSN]) {
		return nil, fmt.Errorf("%w: chunk: flags %#x or reserved bytes", ErrCorrupt, b[skFlags])
	}
	c := &Chunk{
		Last:   b[skFlags] == 1,
		Index:  le.Uint32(b[skIndex:]),
		LSN:    le.Uint64(b[skLSN:]),
		Offset: le.Uint64(b[skOffset:]),
		Total:  le.Uint64(b[skTotal:]),
		Hash:   le.Uint64(b[skHash:]),
		Data:   b[skData:],
	}
	if len(c.Data) > MaxChunkData {
		return nil, fmt.Errorf("%w: chunk of %d bytes, at most %d", ErrTooLarge, len(c.Data), MaxChunkData)
	}
	if !c.Last && (c.Total != 0 || c.Hash != 0) {
		return nil, fmt.Errorf("%w: chunk %d: total or hash on a chunk not the last", ErrCorrupt, c.Index)
	}
	if c.Last && c.Offset+uint64(len(c.Data)) != c.Total {
		return nil, fmt.Errorf("%w: last chunk %d ends at %d, the stream's length is %d", ErrCorrupt, c.Index, c.Offset+uint64(len(c.Data)), c.Total)
	}
	if len(c.Data) == 0 {
		c.Data = nil
	}
	return c, nil
}

// Dest is a destination of the framework state.
type Dest struct {
	Name string // the queue as given to Send
	Next uint64 // next sequence number to assign
}

// SourceState is an input source of the framework state.
type SourceState struct {
	ID   uint64
	Gen  uint32
	Next uint64 // next sequence number expected
}

// Framework is the framework state at the head of every snapshot.
type Framework struct {
	LSN     uint64
	Gen     uint64
	OutHash uint64
	Dests   []Dest        // sorted by Name, unique
	Sources []SourceState // sorted by (ID, Gen), unique
}

func (f *Framework) validate() error {
	if len(f.Dests) > MaxTableEntries || len(f.Sources) > MaxTableEntries {
		return fmt.Errorf("%d destinations, %d sources, at most %d each", len(f.Dests), len(f.Sources), MaxTableEntries)
	}
	for i, d := range f.Dests {
		if d.Name == "" || !validName(d.Name, nameLen) || d.Next == 0 {
			return fmt.Errorf("destination %d: %q next %d", i, d.Name, d.Next)
		}
		if i > 0 && f.Dests[i-1].Name >= d.Name {
			return fmt.Errorf("destinations not sorted or not unique at %d (%q)", i, d.Name)
		}
	}
	for i, s := range f.Sources {
		if s.ID == 0 || s.Next == 0 {
			return fmt.Errorf("source %d: id %d next %d", i, s.ID, s.Next)
		}
		if i > 0 {
			p := f.Sources[i-1]
			if p.ID > s.ID || (p.ID == s.ID && p.Gen >= s.Gen) {
				return fmt.Errorf("sources not sorted or not unique at %d", i)
			}
		}
	}
	return nil
}

// Sort orders the tables as Encode requires.
func (f *Framework) Sort() {
	sort.Slice(f.Dests, func(i, j int) bool { return f.Dests[i].Name < f.Dests[j].Name })
	sort.Slice(f.Sources, func(i, j int) bool {
		a, b := f.Sources[i], f.Sources[j]
		return a.ID < b.ID || (a.ID == b.ID && a.Gen < b.Gen)
	})
}

// Encode returns the framework state's bytes; the handler's snapshot
// follows them in the stream.
func (f *Framework) Encode() ([]byte, error) {
	if err := f.validate(); err != nil {
		return nil, fmt.Errorf("%w: framework state: %v", ErrInvalid, err)
	}
	b := make([]byte, fsHeaderSize, fsHeaderSize+destSize*len(f.Dests)+sourceSize*len(f.Sources))
	copy(b[fsMagic:], fsMagicStr)
	b[fsVersion] = Version
	le.PutUint64(b[fsLSN:], f.LSN)
	le.PutUint64(b[fsGen:], f.Gen)
	le.PutUint64(b[fsOutHash:], f.OutHash)
	le.PutUint32(b[fsDests:], uint32(len(f.Dests)))
	le.PutUint32(b[fsSources:], uint32(len(f.Sources)))
	for _, d := range f.Dests {
		var e [destSize]byte
		putName(e[deName:deName+nameLen], d.Name)
		le.PutUint64(e[deNext:], d.Next)
		b = append(b, e[:]...)
	}
	for _, s := range f.Sources {
		var e [sourceSize]byte
		le.PutUint64(e[srID:], s.ID)
		le.PutUint32(e[srGen:], s.Gen)
		le.PutUint64(e[srNext:], s.Next)
		b = append(b, e[:]...)
	}
	return b, nil
}

// DecodeFramework parses the framework state at the head of a snapshot
// stream and returns it with the number of bytes it took (the handler's
// bytes follow). It never panics, whatever the bytes.
func DecodeFramework(b []byte) (*Framework, int, error) {
	if len(b) < fsHeaderSize {
		return nil, 0, fmt.Errorf("%w: framework state of %d bytes, the header needs %d", ErrTruncated, len(b), fsHeaderSize)
	}
	if string(b[fsMagic:fsMagic+4]) != fsMagicStr {
		return nil, 0, fmt.Errorf("%w: framework state magic %q", ErrBadMagic, b[fsMagic:fsMagic+4])
	}
	if b[fsVersion] != Version {
		return nil, 0, fmt.Errorf("%w: framework state version %d", ErrVersion, b[fsVersion])
	}
	if !zero(b[fsVersion+1 : fsLSN]) {
		return nil, 0, fmt.Errorf("%w: framework state: reserved bytes not zero", ErrCorrupt)
	}
	f := &Framework{LSN: le.Uint64(b[fsLSN:]), Gen: le.Uint64(b[fsGen:]), OutHash: le.Uint64(b[fsOutHash:])}
	nd, ns := uint64(le.Uint32(b[fsDests:])), uint64(le.Uint32(b[fsSources:]))
	if nd > MaxTableEntries || ns > MaxTableEntries {
		return nil, 0, fmt.Errorf("%w: framework state: %d destinations, %d sources", ErrTooLarge, nd, ns)
	}
	need := fsHeaderSize + nd*destSize + ns*sourceSize
	if need > uint64(len(b)) {
		return nil, 0, fmt.Errorf("%w: framework state needs %d bytes, %d remain", ErrTruncated, need, len(b))
	}
	if nd > 0 {
		f.Dests = make([]Dest, nd)
	}
	off := fsHeaderSize
	for i := range f.Dests {
		e := b[off : off+destSize]
		name, ok := getName(e[deName : deName+nameLen])
		if !ok {
			return nil, 0, fmt.Errorf("%w: framework state: destination %d name not NUL padded", ErrCorrupt, i)
		}
		f.Dests[i] = Dest{Name: name, Next: le.Uint64(e[deNext:])}
		off += destSize
	}
	if ns > 0 {
		f.Sources = make([]SourceState, ns)
	}
	for i := range f.Sources {
		e := b[off : off+sourceSize]
		if !zero(e[srGen+4 : srNext]) {
			return nil, 0, fmt.Errorf("%w: framework state: source %d reserved bytes", ErrCorrupt, i)
		}
		f.Sources[i] = SourceState{ID: le.Uint64(e[srID:]), Gen: le.Uint32(e[srGen:]), Next: le.Uint64(e[srNext:])}
		off += sourceSize
	}
	if err := f.validate(); err != nil {
		return nil, 0, fmt.Errorf("%w: framework state: %v", ErrCorrupt, err)
	}
	return f, off, nil
}
