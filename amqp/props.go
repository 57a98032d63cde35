package amqp

import (
	"fmt"
)

// Content header payload (big-endian):
//
//	offset  size  constant           field
//	     0     2  headerOffClass     class id (60, basic)
//	     2     2  headerOffWeight    weight (0)
//	     4     8  headerOffBodySize  body size
//	    12     2  headerOffFlags     property flags (bit 0: another flags word follows)
//	    14     *  headerOffProps     the properties whose flag is set, in flag order
const (
	headerOffClass    = 0
	headerOffWeight   = 2
	headerOffBodySize = 4
	headerOffFlags    = 12
	headerOffProps    = 14
	headerFixedSize   = headerOffProps
)

// ClassBasic is the class id of basic, the class of every content.
const ClassBasic = 60

// Property flags, the first property in the highest bit.
const (
	FlagContentType     = 1 << 15
	FlagContentEncoding = 1 << 14
	FlagHeaders         = 1 << 13
	FlagDeliveryMode    = 1 << 12
	FlagPriority        = 1 << 11
	FlagCorrelationID   = 1 << 10
	FlagReplyTo         = 1 << 9
	FlagExpiration      = 1 << 8
	FlagMessageID       = 1 << 7
	FlagTimestamp       = 1 << 6
	FlagType            = 1 << 5
	FlagUserID          = 1 << 4
	FlagAppID           = 1 << 3
	FlagClusterID       = 1 << 2
	flagMore            = 1 << 0
	flagsKnown          = 0xfffc
)

// Properties are basic's content properties. Flags says which are present
// (a property can be present with its zero value: priority 0); encoding
// writes a property when its flag is set or its value is not zero.
type Properties struct {
	Flags           uint16
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8 // 1 transient, 2 persistent
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string // milliseconds, as a decimal string
	MessageID       string
	Timestamp       uint64 // seconds since the epoch
	Type            string
	UserID          string
	AppID           string
	ClusterID       string // reserved; RabbitMQ refuses it
}

// ContentHeader is a content header frame.
type ContentHeader struct {
	ClassID  uint16
	BodySize uint64
	Props    Properties
}

// present reports the flags of the properties encoding writes.
func (p *Properties) present() uint16 {
	f := p.Flags & flagsKnown
	set := func(flag uint16, nonzero bool) {
		if nonzero {
			f |= flag
		}
	}
	set(FlagContentType, p.ContentType != "")
	set(FlagContentEncoding, p.ContentEncoding != "")
	set(FlagHeaders, p.Headers != nil)
	set(FlagDeliveryMode, p.DeliveryMode != 0)
	set(FlagPriority, p.Priority != 0)
	set(FlagCorrelationID, p.CorrelationID != "")
	set(FlagReplyTo, p.ReplyTo != "")
	set(FlagExpiration, p.Expiration != "")
	set(FlagMessageID, p.MessageID != "")
	set(FlagTimestamp, p.Timestamp != 0)
	set(FlagType, p.Type != "")
	set(FlagUserID, p.UserID != "")
	set(FlagAppID, p.AppID != "")
	set(FlagClusterID, p.ClusterID != "")
	return f
}

// AppendHeaderFrame appends h as a content header frame on channel.
func AppendHeaderFrame(b []byte, channel uint16, h *ContentHeader) ([]byte, error) {
	at := len(b)
	b = appendFrameHeader(b, FrameHeader, channel, 0)
	e := encoder{b: b}
	e.short(h.ClassID)
	e.short(0)
	e.longlong(h.BodySize)
	h.Props.write(&e)
	if e.err != nil {
		return b[:at], fmt.Errorf("content header: %w", e.err)
	}
	patchFrameSize(e.b, at)
	return append(e.b, FrameEnd), nil
}

// appendRawHeaderFrame appends a basic content header frame whose
// properties are already encoded.
func appendRawHeaderFrame(b []byte, channel uint16, bodySize uint64, props []byte) []byte {
	at := len(b)
	b = appendFrameHeader(b, FrameHeader, channel, 0)
	e := encoder{b: b}
	e.short(ClassBasic)
	e.short(0)
	e.longlong(bodySize)
	e.b = append(e.b, props...)
	patchFrameSize(e.b, at)
	return append(e.b, FrameEnd)
}

func (p *Properties) write(e *encoder) {
	f := p.present()
	e.short(f)
	str := func(flag uint16, s string) {
		if f&flag != 0 {
			e.shortstr(s)
		}
	}
	str(FlagContentType, p.ContentType)
	str(FlagContentEncoding, p.ContentEncoding)
	if f&FlagHeaders != 0 {
		e.table(p.Headers)
	}
	if f&FlagDeliveryMode != 0 {
		e.octet(p.DeliveryMode)
	}
	if f&FlagPriority != 0 {
		e.octet(p.Priority)
	}
	str(FlagCorrelationID, p.CorrelationID)
	str(FlagReplyTo, p.ReplyTo)
	str(FlagExpiration, p.Expiration)
	str(FlagMessageID, p.MessageID)
	if f&FlagTimestamp != 0 {
		e.timestamp(p.Timestamp)
	}
	str(FlagType, p.Type)
	str(FlagUserID, p.UserID)
	str(FlagAppID, p.AppID)
	str(FlagClusterID, p.ClusterID)
}

// DecodeContentHeader decodes a content header frame's payload.
func DecodeContentHeader(payload []byte) (ContentHeader, error) {
	d := decoder{b: payload}
	var h ContentHeader
	h.ClassID = d.short()
	if w := d.short(); d.err == nil && w != 0 {
		return h, fmt.Errorf("%w: content header weight %d, not 0", ErrSyntax, w)
	}
	h.BodySize = d.longlong()
	h.Props = d.properties()
	return h, d.end("the content header")
}

func (d *decoder) properties() Properties {
	var p Properties
	p.Flags = d.short()
	for more := p.Flags&flagMore != 0; more && d.err == nil; {
		w := d.short()
		if w&^flagMore != 0 && d.err == nil {
			d.err = fmt.Errorf("%w: unknown content properties %#x", ErrSyntax, w)
		}
		more = w&flagMore != 0
	}
	p.Flags &= flagsKnown
	f := p.Flags
	str := func(flag uint16, s *string) {
		if f&flag != 0 {
			*s = d.shortstr()
		}
	}
	str(FlagContentType, &p.ContentType)
	str(FlagContentEncoding, &p.ContentEncoding)
	if f&FlagHeaders != 0 {
		p.Headers = d.table()
	}
	if f&FlagDeliveryMode != 0 {
		p.DeliveryMode = d.octet()
	}
	if f&FlagPriority != 0 {
		p.Priority = d.octet()
	}
	str(FlagCorrelationID, &p.CorrelationID)
	str(FlagReplyTo, &p.ReplyTo)
	str(FlagExpiration, &p.Expiration)
	str(FlagMessageID, &p.MessageID)
	if f&FlagTimestamp != 0 {
		p.Timestamp = d.timestamp()
	}
	str(FlagType, &p.Type)
	str(FlagUserID, &p.UserID)
	str(FlagAppID, &p.AppID)
	str(FlagClusterID, &p.ClusterID)
	return p
}

// AppendProperties appends p as a content header encodes it (the property
// flags, then the properties present): a broker stores a message's
// properties so.
func AppendProperties(b []byte, p *Properties) ([]byte, error) {
	e := encoder{b: b}
	p.write(&e)
	if e.err != nil {
		return b, fmt.Errorf("content properties: %w", e.err)
	}
	return e.b, nil
}

// DecodeProperties decodes what AppendProperties wrote; it decodes the
// start of b and returns what follows.
func DecodeProperties(b []byte) (Properties, []byte, error) {
	d := decoder{b: b}
	p := d.properties()
	if d.err != nil {
		return p, nil, d.err
	}
	return p, b[d.off:], nil
}
