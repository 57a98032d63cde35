package amqp

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
)

// Frame on the wire (big-endian; FrameEnd, 0xCE, follows the payload):
//
//	offset  size  constant         field
//	     0     1  frameOffType     type (FrameMethod, FrameHeader, FrameBody, FrameHeartbeat)
//	     1     2  frameOffChannel  channel
//	     3     4  frameOffSize     payload size n
//	     7     *  frameOffPayload  payload (n bytes), then FrameEnd
const (
	frameOffType    = 0
	frameOffChannel = 1
	frameOffSize    = 3
	frameOffPayload = 7
	frameHeaderSize = frameOffPayload
	frameEndSize    = 1
	// FrameEnd ends every frame; anything else there is a frame error.
	FrameEnd = 0xCE
)

// Frame types.
const (
	FrameMethod    = 1
	FrameHeader    = 2
	FrameBody      = 3
	FrameHeartbeat = 8
)

// ProtocolHeader is what a 0-9-1 client sends first.
var ProtocolHeader = [8]byte{'A', 'M', 'Q', 'P', 0, 0, 9, 1}

// FrameMinSize is the smallest frame_max a peer may ask for, and the
// largest frame either side may send before tuning.
const FrameMinSize = 4096

// Frame is one frame read from a peer. Payload is valid until the next
// ReadFrame on the reader it came from.
type Frame struct {
	Type    uint8
	Channel uint16
	Payload []byte
}

// FrameReader reads frames from a connection, refusing any larger than
// its limit.
type FrameReader struct {
	r   *bufio.Reader
	max uint32 // the largest frame accepted, header and end included
	buf []byte
}

// Buffered is how many bytes were read from the stream and not yet taken
// as frames: 0 means the next ReadFrame may wait for the peer.
func (r *FrameReader) Buffered() int { return r.r.Buffered() }

// NewFrameReader reads frames of at most FrameMinSize bytes until SetMax.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10), max: FrameMinSize}
}

// SetMax sets the largest frame accepted (the negotiated frame_max, which
// counts the frame's header and end).
func (fr *FrameReader) SetMax(frameMax uint32) { fr.max = max(frameMax, FrameMinSize) }

// ReadProtocolHeader reads the 8 bytes a client opens with. It returns
// ErrProtocolHeader when they are not AMQP 0-9-1's (the caller answers
// with ProtocolHeader and closes, as the specification says).
func (fr *FrameReader) ReadProtocolHeader() error {
	var h [8]byte
	if _, err := io.ReadFull(fr.r, h[:]); err != nil {
		return err
	}
	if h != ProtocolHeader {
		return fmt.Errorf("%w: % x", ErrProtocolHeader, h)
	}
	return nil
}

// ReadFrame reads the next frame. A frame over the limit, of an unknown
// type or without FrameEnd is an ErrFrame: the connection is unusable.
func (fr *FrameReader) ReadFrame() (Frame, error) {
	h, err := fr.r.Peek(frameHeaderSize)
	if err != nil {
		if len(h) == 0 && err == io.EOF {
			return Frame{}, io.EOF
		}
		return Frame{}, noEOF(err)
	}
	f := Frame{Type: h[frameOffType], Channel: binary.BigEndian.Uint16(h[frameOffChannel:])}
	size := binary.BigEndian.Uint32(h[frameOffSize:])
	if err := fr.checkHeader(f.Type, size); err != nil {
		return Frame{}, err
	}
	if _, err := fr.r.Discard(frameHeaderSize); err != nil {
		return Frame{}, noEOF(err)
	}
	f.Payload, err = fr.payload(int(size))
	return f, err
}

func (fr *FrameReader) checkHeader(typ uint8, size uint32) error {
	switch typ {
	case FrameMethod, FrameHeader, FrameBody, FrameHeartbeat:
	default:
		return fmt.Errorf("%w: unknown frame type %d", ErrFrame, typ)
	}
	if uint64(size)+frameHeaderSize+frameEndSize > uint64(fr.max) {
		return fmt.Errorf("%w: a frame of %d bytes is over frame_max %d", ErrFrame, size, fr.max)
	}
	return nil
}

// payload reads size bytes and the frame end into the reader's buffer.
func (fr *FrameReader) payload(size int) ([]byte, error) {
	if cap(fr.buf) < size+frameEndSize {
		fr.buf = make([]byte, size+frameEndSize)
	}
	b := fr.buf[:size+frameEndSize]
	if _, err := io.ReadFull(fr.r, b); err != nil {
		return nil, noEOF(err)
	}
	if b[size] != FrameEnd {
		return nil, fmt.Errorf("%w: frame ends with %#x, not %#x", ErrFrame, b[size], FrameEnd)
	}
	return b[:size:size], nil
}

// noEOF turns an end of input inside a frame into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// appendFrameHeader appends a frame's header for a payload of size bytes.
func appendFrameHeader(b []byte, typ uint8, channel uint16, size int) []byte {
	b = append(b, typ)
	b = binary.BigEndian.AppendUint16(b, channel)
	return binary.BigEndian.AppendUint32(b, uint32(size))
}

// AppendMethodFrame appends m as a method frame on channel.
func AppendMethodFrame(b []byte, channel uint16, m Method) ([]byte, error) {
	at := len(b)
	b = appendFrameHeader(b, FrameMethod, channel, 0)
	e := encoder{b: b}
	c, id := m.ClassMethod()
	e.short(c)
	e.short(id)
	m.write(&e)
	if e.err != nil {
		return b[:at], fmt.Errorf("%s: %w", m.Name(), e.err)
	}
	patchFrameSize(e.b, at)
	return append(e.b, FrameEnd), nil
}

// AppendHeartbeat appends a heartbeat frame.
func AppendHeartbeat(b []byte) []byte {
	b = appendFrameHeader(b, FrameHeartbeat, 0, 0)
	return append(b, FrameEnd)
}

// AppendBodyFrames appends a body given in pieces as body frames on
// channel, in order, each frame filled up to frameMax bytes whatever the
// pieces' boundaries.
func AppendBodyFrames(b []byte, channel uint16, frameMax uint32, pieces ...[]byte) []byte {
	room := int(max(frameMax, FrameMinSize)) - frameHeaderSize - frameEndSize
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	var i, off int // the next byte: pieces[i][off]
	for total > 0 {
		n := min(total, room)
		b = appendFrameHeader(b, FrameBody, channel, n)
		total -= n
		for n > 0 {
			k := min(n, len(pieces[i])-off)
			b = append(b, pieces[i][off:off+k]...)
			n, off = n-k, off+k
			if off == len(pieces[i]) {
				i, off = i+1, 0
			}
		}
		b = append(b, FrameEnd)
	}
	return b
}

// bodyVectors cuts a body given in pieces into body frames like
// AppendBodyFrames, as buffers for a vectored write: each frame's header
// and end are in one scratch allocation, its payload the caller's pieces
// (not copied; they must stay unchanged until written).
func bodyVectors(channel uint16, frameMax uint32, pieces ...[]byte) net.Buffers {
	room := int(max(frameMax, FrameMinSize)) - frameHeaderSize - frameEndSize
	total := 0
	for _, p := range pieces {
		total += len(p)
	}
	frames := (total + room - 1) / room
	scratch := make([]byte, 0, frames*(frameHeaderSize+frameEndSize))
	vecs := make(net.Buffers, 0, 2*frames+len(pieces))
	var i, off int // the next byte: pieces[i][off]
	for total > 0 {
		n := min(total, room)
		at := len(scratch)
		scratch = appendFrameHeader(scratch, FrameBody, channel, n)
		vecs = append(vecs, scratch[at:len(scratch):len(scratch)])
		total -= n
		for n > 0 {
			k := min(n, len(pieces[i])-off)
			vecs = append(vecs, pieces[i][off:off+k])
			n, off = n-k, off+k
			if off == len(pieces[i]) {
				i, off = i+1, 0
			}
		}
		scratch = append(scratch, FrameEnd)
		vecs = append(vecs, scratch[len(scratch)-1:len(scratch):len(scratch)])
	}
	return vecs
}

// patchFrameSize writes the size of the frame begun at at (its payload
// runs to the end of b, which has no frame end yet) into its header.
func patchFrameSize(b []byte, at int) {
	binary.BigEndian.PutUint32(b[at+frameOffSize:], uint32(len(b)-at-frameHeaderSize))
}
