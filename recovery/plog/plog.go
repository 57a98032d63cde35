package plog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadRecord is wrapped by every decoding error.
var ErrBadRecord = errors.New("plog: bad record")

// Type is a record type (the rlog record type).
type Type uint8

// Record types.
const (
	TypePut     Type = 1
	TypeGet     Type = 2
	TypeCommit  Type = 3
	TypeBackout Type = 4
	TypeClear   Type = 5
)

func (t Type) String() string {
	switch t {
	case TypePut:
		return "put"
	case TypeGet:
		return "get"
	case TypeCommit:
		return "commit"
	case TypeBackout:
		return "backout"
	case TypeClear:
		return "clear"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// FlagCommitted marks a put or get outside syncpoint.
const FlagCommitted = 1

// FlagOffloaded marks a put whose body is in a shared message data set
// (package smds): the record's body is the body's encoded reference
// (smds.RefSize bytes), whose run was written and synced before the
// record was handed to the log (docs/design/smds.md, section 9).
const FlagOffloaded = 2

// OffloadRefSize is the size of an offloaded put's body (smds.RefSize).
const OffloadRefSize = 32

// Record is one decoded record. Put fills every field, Get the unit of
// work, flags, structure, queue and key, Commit and Backout the unit of
// work only.
type Record struct {
	Type      Type
	UOW       uint64
	Flags     uint8
	Structure string
	Queue     string
	Key       uint64
	// Message descriptor and content (Put).
	MsgID, CorrelID [24]byte
	Format          [8]byte
	Priority        uint8
	PutTime         int64
	Expiry          int64
	BackoutCount    uint32
	ReplyToQ        string
	ReplyToQMgr     string
	Properties      []byte
	Body            []byte
}

// Committed reports whether the record commits itself.
func (r *Record) Committed() bool { return r.Flags&FlagCommitted != 0 }

func appendStr(b []byte, s string) []byte {
	if len(s) > 255 {
		panic("plog: string longer than 255 bytes") // names are checked long before
	}
	return append(append(b, byte(len(s))), s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
	return append(b, p...)
}

// AppendHead appends the encoding of r, without the body of a put, to b.
// For a put, the body follows as a u32 length (len(body)) and the bytes:
// AppendHead writes the length and the caller hands the body as a
// separate piece, so it is never copied into a buffer of its own.
func AppendHead(b []byte, r *Record, bodyLen int) []byte {
	b = binary.LittleEndian.AppendUint64(b, r.UOW)
	b = append(b, r.Flags)
	switch r.Type {
	case TypePut:
		b = appendStr(b, r.Structure)
		b = appendStr(b, r.Queue)
		b = binary.LittleEndian.AppendUint64(b, r.Key)
		b = append(b, r.MsgID[:]...)
		b = append(b, r.CorrelID[:]...)
		b = append(b, r.Format[:]...)
		b = append(b, r.Priority)
		b = binary.LittleEndian.AppendUint64(b, uint64(r.PutTime))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Expiry))
		b = binary.LittleEndian.AppendUint32(b, r.BackoutCount)
		b = appendStr(b, r.ReplyToQ)
		b = appendStr(b, r.ReplyToQMgr)
		b = appendBytes(b, r.Properties)
		b = binary.LittleEndian.AppendUint32(b, uint32(bodyLen))
	case TypeGet:
		b = appendStr(b, r.Structure)
		b = appendStr(b, r.Queue)
		b = binary.LittleEndian.AppendUint64(b, r.Key)
	case TypeClear:
		b = appendStr(b, r.Structure)
		b = appendStr(b, r.Queue)
	}
	return b
}

// Append appends the whole encoding of r (a put's body included).
func Append(b []byte, r *Record) []byte {
	b = AppendHead(b, r, len(r.Body))
	if r.Type == TypePut {
		b = append(b, r.Body...)
	}
	return b
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) need(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: %s: %d bytes left, %d needed", ErrBadRecord, what, len(d.b), n)
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) u8(what string) uint8 {
	if p := d.need(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if p := d.need(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if p := d.need(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) str(what string) string {
	n := int(d.u8(what))
	return string(d.need(n, what))
}

func (d *decoder) bytes(what string) []byte {
	n := d.u32(what)
	if uint64(n) > uint64(len(d.b)) {
		d.need(int(min(uint64(n), 1<<31)), what)
		return nil
	}
	return d.need(int(n), what)
}

// Decode decodes a record of type t. Properties and Body alias payload.
func Decode(t Type, payload []byte) (Record, error) {
	r := Record{Type: t}
	d := decoder{b: payload}
	r.UOW = d.u64("unit of work")
	r.Flags = d.u8("flags")
	if (r.Flags&^(FlagCommitted|FlagOffloaded) != 0 || r.Flags&FlagOffloaded != 0 && t != TypePut) && d.err == nil {
		return r, fmt.Errorf("%w: %v: flags %#x", ErrBadRecord, t, r.Flags)
	}
	switch t {
	case TypePut:
		r.Structure = d.str("structure")
		r.Queue = d.str("queue")
		r.Key = d.u64("key")
		copy(r.MsgID[:], d.need(24, "message id"))
		copy(r.CorrelID[:], d.need(24, "correlation id"))
		copy(r.Format[:], d.need(8, "format"))
		r.Priority = d.u8("priority")
		r.PutTime = int64(d.u64("put time"))
		r.Expiry = int64(d.u64("expiry"))
		r.BackoutCount = d.u32("backout count")
		r.ReplyToQ = d.str("reply-to queue")
		r.ReplyToQMgr = d.str("reply-to queue manager")
		r.Properties = d.bytes("properties")
		r.Body = d.bytes("body")
		if d.err == nil && r.Priority > 9 {
			d.err = fmt.Errorf("%w: put: priority %d", ErrBadRecord, r.Priority)
		}
		if d.err == nil && r.Flags&FlagOffloaded != 0 && len(r.Body) != OffloadRefSize {
			d.err = fmt.Errorf("%w: put: offloaded, with a reference of %d bytes, want %d", ErrBadRecord, len(r.Body), OffloadRefSize)
		}
	case TypeGet:
		r.Structure = d.str("structure")
		r.Queue = d.str("queue")
		r.Key = d.u64("key")
	case TypeClear:
		r.Structure = d.str("structure")
		r.Queue = d.str("queue")
		if d.err == nil && (r.Structure == "" || r.Queue == "" || r.Flags != FlagCommitted) {
			d.err = fmt.Errorf("%w: clear without structure or queue, or not committed", ErrBadRecord)
		}
	case TypeCommit, TypeBackout:
	default:
		return r, fmt.Errorf("%w: unknown type %d", ErrBadRecord, uint8(t))
	}
	if d.err != nil {
		return r, fmt.Errorf("%v record: %w", t, d.err)
	}
	if len(d.b) != 0 {
		return r, fmt.Errorf("%w: %v: %d bytes after the record", ErrBadRecord, t, len(d.b))
	}
	if (t == TypePut || t == TypeGet) && (r.Key == 0 || r.Structure == "" || r.Queue == "") {
		return r, fmt.Errorf("%w: %v without key, structure or queue", ErrBadRecord, t)
	}
	if (t == TypeCommit || t == TypeBackout) && r.UOW == 0 {
		return r, fmt.Errorf("%w: %v without a unit of work", ErrBadRecord, t)
	}
	return r, nil
}
