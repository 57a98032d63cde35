package xmit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrFormat is returned for a malformed transmission header.
var ErrFormat = errors.New("xmit: malformed transmission header")

// Sizes.
const (
	NameLen    = 48
	HeaderSize = 280
)

// Transmission header (HeaderSize bytes, little-endian; names NUL padded;
// the properties and the body follow it):
//
//	offset  size  constant     field
//	     0     4  offMagic     magic "XQH1"
//	     4    48  offQMgr      destination queue manager
//	    52    48  offQueue     destination queue
//	   100    24  offMsgID     message id (the original)
//	   124    24  offCorrelID  correlation id
//	   148     8  offFormat    format
//	   156     1  offPriority  priority 0..9
//	   157     1  offFlags     flags: bit 0 persistent
//	   158     2  -            zero
//	   160     4  offPropLen   properties length P
//	   164     4  -            zero
//	   168     8  offExpiry    expiry, Unix ns (0: never)
//	   176     8  offPutTime   put time, Unix ns
//	   184    48  offReplyQ    reply-to queue
//	   232    48  offReplyQM   reply-to queue manager
//	   280     *  offProps     P bytes of properties, then the body (the rest)
const (
	offMagic    = 0
	offQMgr     = 4
	offQueue    = 52
	offMsgID    = 100
	offCorrelID = 124
	offFormat   = 148
	offPriority = 156
	offFlags    = 157
	offPropLen  = 160
	offExpiry   = 168
	offPutTime  = 176
	offReplyQ   = 184
	offReplyQM  = 232
	offProps    = HeaderSize
)

var magic = [4]byte{'X', 'Q', 'H', '1'}

// Header is the transmission header of one message.
type Header struct {
	DestQMgr    string // queue manager (or group) the message is for
	DestQueue   string // queue there
	MsgID       [24]byte
	CorrelID    [24]byte
	Format      [8]byte
	Priority    int
	Persistent  bool
	Expiry      int64 // Unix ns; 0 never
	PutTime     int64 // Unix ns
	ReplyToQ    string
	ReplyToQMgr string
}

// Size is the encoded size of a header with props bytes of properties and
// a body of n bytes.
func Size(props, n int) int { return HeaderSize + props + n }

// Encode writes h, props and body to dst, which must hold Size(len(props),
// len(body)) bytes, and returns the bytes written. Names longer than
// NameLen are an error.
func Encode(dst []byte, h *Header, props, body []byte) (int, error) {
	n := Size(len(props), len(body))
	if len(dst) < n {
		return 0, fmt.Errorf("xmit: buffer of %d bytes, need %d", len(dst), n)
	}
	for _, s := range []string{h.DestQMgr, h.DestQueue, h.ReplyToQ, h.ReplyToQMgr} {
		if len(s) > NameLen {
			return 0, fmt.Errorf("%w: name %q longer than %d", ErrFormat, s, NameLen)
		}
	}
	if h.Priority < 0 || h.Priority > 9 {
		return 0, fmt.Errorf("%w: priority %d", ErrFormat, h.Priority)
	}
	b := dst[:HeaderSize]
	clear(b)
	copy(b[offMagic:], magic[:])
	copy(b[offQMgr:offQMgr+NameLen], h.DestQMgr)
	copy(b[offQueue:offQueue+NameLen], h.DestQueue)
	copy(b[offMsgID:], h.MsgID[:])
	copy(b[offCorrelID:], h.CorrelID[:])
	copy(b[offFormat:], h.Format[:])
	b[offPriority] = byte(h.Priority)
	if h.Persistent {
		b[offFlags] = 1
	}
	binary.LittleEndian.PutUint32(b[offPropLen:], uint32(len(props)))
	binary.LittleEndian.PutUint64(b[offExpiry:], uint64(h.Expiry))
	binary.LittleEndian.PutUint64(b[offPutTime:], uint64(h.PutTime))
	copy(b[offReplyQ:offReplyQ+NameLen], h.ReplyToQ)
	copy(b[offReplyQM:offReplyQM+NameLen], h.ReplyToQMgr)
	copy(dst[offProps:], props)
	copy(dst[offProps+len(props):], body)
	return n, nil
}

// Append appends the encoding of h, props and body to dst.
func Append(dst []byte, h *Header, props, body []byte) ([]byte, error) {
	n := Size(len(props), len(body))
	l := len(dst)
	dst = append(dst, make([]byte, n)...)
	if _, err := Encode(dst[l:], h, props, body); err != nil {
		return dst[:l], err
	}
	return dst, nil
}

// Check validates a transmission header without allocating: head holds
// at least the header's HeaderSize bytes of a message of total bytes.
func Check(head []byte, total int) error {
	_, err := (*Checker)(nil).check(head, total)
	return err
}

// Checker is Check for a stream of headers, such as a transmission
// queue's, where message after message has the same destination and
// reply-to names: it keeps the name fields of the last header it passed,
// and a header whose name fields are the same bytes is not checked name by
// name again (two 96-byte comparisons instead of four name scans). The
// zero value is ready; a nil *Checker checks every header in full.
type Checker struct {
	valid bool
	dest  [2 * NameLen]byte // the last valid header's destination queue manager and queue
	reply [2 * NameLen]byte // and its reply-to queue and queue manager
}

// Check is the package's Check.
func (c *Checker) Check(head []byte, total int) error {
	_, err := c.check(head, total)
	return err
}

// check is Check, and whether the names were the last header's.
func (c *Checker) check(head []byte, total int) (same bool, err error) {
	if len(head) < HeaderSize || total < HeaderSize {
		return false, fmt.Errorf("%w: %d bytes, a header is %d", ErrFormat, min(len(head), total), HeaderSize)
	}
	if got := head[offMagic : offMagic+len(magic)]; !bytes.Equal(got, magic[:]) {
		return false, fmt.Errorf("%w: bad magic %q", ErrFormat, got)
	}
	if p := head[offPriority]; p > 9 {
		return false, fmt.Errorf("%w: priority %d", ErrFormat, p)
	}
	if head[offFlags]&^1 != 0 {
		return false, fmt.Errorf("%w: flags %#x", ErrFormat, head[offFlags])
	}
	if pl := uint64(binary.LittleEndian.Uint32(head[offPropLen:])); pl > uint64(total-HeaderSize) {
		return false, fmt.Errorf("%w: properties of %d bytes past the end", ErrFormat, pl)
	}
	dest, reply := head[offQMgr:offQMgr+2*NameLen], head[offReplyQ:offReplyQ+2*NameLen]
	if c != nil && c.valid && bytes.Equal(dest, c.dest[:]) && bytes.Equal(reply, c.reply[:]) {
		return true, nil
	}
	for _, off := range []int{offQMgr, offQueue, offReplyQ, offReplyQM} {
		if !validName(head[off : off+NameLen]) {
			return false, fmt.Errorf("%w: name at offset %d", ErrFormat, off)
		}
	}
	if head[offQMgr] == 0 || head[offQueue] == 0 {
		return false, fmt.Errorf("%w: no destination", ErrFormat)
	}
	if c != nil {
		c.valid = true
		copy(c.dest[:], dest)
		copy(c.reply[:], reply)
	}
	return false, nil
}

// Decode parses b. props and body alias b.
func Decode(b []byte) (h Header, props, body []byte, err error) {
	return (*Names)(nil).Decode(b)
}

// Names turns names into strings, allocating each distinct one once: a
// receiver decodes the same few queue and queue manager names in message
// after message. A nil *Names allocates every time.
type Names struct {
	recent [8]string // the last names returned, checked before the map
	next   int
	m      map[string]string
	// The last header's names: its name fields are c's, and when the next
	// header's are the same bytes, so are its names.
	c                                      Checker
	destQMgr, destQueue, replyQ, replyQMgr string
}

// maxNames bounds a Names: past it, it starts again.
const maxNames = 4096

// String is b as a string.
func (n *Names) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if n == nil {
		return string(b)
	}
	for _, s := range n.recent {
		if s == string(b) { // no allocation for the comparison
			return s
		}
	}
	s, ok := n.m[string(b)] // nor for the lookup
	if !ok {
		if n.m == nil || len(n.m) >= maxNames {
			n.m = make(map[string]string)
		}
		s = string(b)
		n.m[s] = s
	}
	n.recent[n.next] = s
	n.next = (n.next + 1) % len(n.recent)
	return s
}

// Decode is the package's Decode, with names from n.
func (n *Names) Decode(b []byte) (h Header, props, body []byte, err error) {
	var c *Checker
	if n != nil {
		c = &n.c
	}
	same, err := c.check(b, len(b))
	if err != nil {
		return h, nil, nil, err
	}
	if same {
		h.DestQMgr, h.DestQueue, h.ReplyToQ, h.ReplyToQMgr = n.destQMgr, n.destQueue, n.replyQ, n.replyQMgr
	} else {
		h.DestQMgr = n.String(trimNUL(b[offQMgr : offQMgr+NameLen]))
		h.DestQueue = n.String(trimNUL(b[offQueue : offQueue+NameLen]))
		h.ReplyToQ = n.String(trimNUL(b[offReplyQ : offReplyQ+NameLen]))
		h.ReplyToQMgr = n.String(trimNUL(b[offReplyQM : offReplyQM+NameLen]))
		if n != nil {
			n.destQMgr, n.destQueue, n.replyQ, n.replyQMgr = h.DestQMgr, h.DestQueue, h.ReplyToQ, h.ReplyToQMgr
		}
	}
	copy(h.MsgID[:], b[offMsgID:])
	copy(h.CorrelID[:], b[offCorrelID:])
	copy(h.Format[:], b[offFormat:])
	h.Priority = int(b[offPriority])
	h.Persistent = b[offFlags]&1 != 0
	h.Expiry = int64(binary.LittleEndian.Uint64(b[offExpiry:]))
	h.PutTime = int64(binary.LittleEndian.Uint64(b[offPutTime:]))
	pl := int(binary.LittleEndian.Uint32(b[offPropLen:]))
	return h, b[offProps : offProps+pl], b[offProps+pl:], nil
}

// trimNUL is a NUL-padded name without its padding.
func trimNUL(b []byte) []byte {
	if n := bytes.IndexByte(b, 0); n >= 0 {
		return b[:n]
	}
	return b
}

// validName reports whether b (NameLen bytes) is a NUL-padded name:
// printable ASCII, no NUL inside. Every message a channel sends is checked
// on both sides, so it goes 8 bytes at a time: a word of printable bytes,
// or zeros once the name has ended, is checked without looking at its
// bytes one by one.
func validName(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	end, ok := false, true
	for ; len(b) >= 8 && ok; b = b[8:] {
		w := binary.LittleEndian.Uint64(b)
		switch {
		case end:
			ok = w == 0
		case w&highs == 0 && (w+ones)&highs == 0 && (w-0x20*ones)&^w&highs == 0:
			// Every byte is 0x20..0x7e: no byte has its high bit, none
			// is 0x7f (adding one would set it), none is below 0x20
			// (subtracting 0x20 would borrow into it).
		default:
			end, ok = validBytes(b[:8], end)
		}
	}
	if ok {
		_, ok = validBytes(b, end)
	}
	return ok
}

// validBytes checks b byte by byte, the name having ended before it when
// end is set: whether it has ended after b, and whether b is valid.
func validBytes(b []byte, end bool) (bool, bool) {
	for _, c := range b {
		switch {
		case c == 0:
			end = true
		case end || c < 0x20 || c > 0x7e:
			return end, false
		}
	}
	return end, true
}
