package amqp

import (
	"encoding/binary"
	"fmt"
	"math"
)

// encoder appends AMQP's wire types to a byte slice. The first error (a
// short string over 255 bytes, a table value of no field type) sticks in
// err; what was appended after it is not to be sent.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) setErr(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *encoder) octet(v uint8)     { e.b = append(e.b, v) }
func (e *encoder) short(v uint16)    { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *encoder) long(v uint32)     { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *encoder) longlong(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *encoder) timestamp(v uint64) {
	e.longlong(v)
}

// shortstr writes a short string; one over 255 bytes is an error.
func (e *encoder) shortstr(s string) {
	if len(s) > math.MaxUint8 {
		e.setErr(fmt.Errorf("%w: a short string of %d bytes", ErrSyntax, len(s)))
		return
	}
	e.b = append(e.b, byte(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) longstr(s string) {
	e.long(uint32(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(p []byte) {
	e.long(uint32(len(p)))
	e.b = append(e.b, p...)
}

// bits writes up to eight consecutive bit arguments as one octet, the
// first in the lowest bit.
func (e *encoder) bits(v ...bool) {
	var o uint8
	for i, b := range v {
		if b {
			o |= 1 << i
		}
	}
	e.octet(o)
}

// decoder reads AMQP's wire types from a byte slice. The first error
// sticks: every later read returns zero values, and err says what was
// short or malformed and where.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(what string, n int) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s needs %d bytes at offset %d, %d left", ErrSyntax, what, n, d.off, len(d.b)-d.off)
	}
}

// take returns the next n bytes, or nil (and the error) when fewer are left.
func (d *decoder) take(what string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.off {
		d.fail(what, n)
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

func (d *decoder) octet() uint8 {
	p := d.take("octet", 1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) short() uint16 {
	p := d.take("short", 2)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint16(p)
}

func (d *decoder) long() uint32 {
	p := d.take("long", 4)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint32(p)
}

func (d *decoder) longlong() uint64 {
	p := d.take("longlong", 8)
	if p == nil {
		return 0
	}
	return binary.BigEndian.Uint64(p)
}

func (d *decoder) timestamp() uint64 { return d.longlong() }

func (d *decoder) shortstr() string {
	n := int(d.octet())
	return string(d.take("short string", n))
}

// longbytes returns a long string's bytes without copying them.
func (d *decoder) longbytes() []byte {
	n := d.long()
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(len(d.b)-d.off) {
		d.fail("long string", int(min(uint64(n), math.MaxInt32)))
		return nil
	}
	return d.take("long string", int(n))
}

func (d *decoder) longstr() string { return string(d.longbytes()) }

// bits reads one octet of packed bit arguments into v, the first from the
// lowest bit.
func (d *decoder) bits(v ...*bool) {
	o := d.octet()
	for i, p := range v {
		*p = o&(1<<i) != 0
	}
}

// end fails the decoder when bytes are left over: a method or header
// longer than its arguments is malformed.
func (d *decoder) end(what string) error {
	if d.err == nil && d.off != len(d.b) {
		d.err = fmt.Errorf("%w: %d bytes after the arguments of %s", ErrSyntax, len(d.b)-d.off, what)
	}
	return d.err
}
