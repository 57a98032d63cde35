package amqp

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Table is an AMQP field table. Its values have the Go types of the field
// types RabbitMQ and its clients use (the 0-9-1 errata, not the original
// specification's letters):
//
//	type  Go value     AMQP
//	't'   bool         boolean
//	'b'   int8         short-short-int
//	'B'   uint8        short-short-uint
//	's'   int16        short-int
//	'u'   uint16       short-uint
//	'I'   int32        long-int
//	'i'   uint32       long-uint
//	'l'   int64        long-long-int
//	'f'   float32      float
//	'd'   float64      double
//	'D'   Decimal      decimal-value
//	'S'   string       long-string
//	'x'   []byte       byte array
//	'A'   []any        field array
//	'T'   time.Time    timestamp (seconds, UTC)
//	'F'   Table        nested field table
//	'V'   nil          void
//
// Encoding also takes an int (as 'l').
type Table map[string]any

// Decimal is a decimal-value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// maxTableDepth bounds the nesting of tables and arrays a decoder follows:
// a hostile peer's deeply nested table must not exhaust the stack.
const maxTableDepth = 32

// table writes t with its keys in sorted order (Go maps have none), so
// that an encoding is reproducible.
func (e *encoder) table(t Table) {
	if err := e.tableAt(t, 1); err != nil {
		e.setErr(err)
	}
}

func (e *encoder) tableAt(t Table, depth int) error {
	if depth > maxTableDepth {
		return fmt.Errorf("%w: tables nested deeper than %d", ErrSyntax, maxTableDepth)
	}
	at := len(e.b)
	e.long(0)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if len(k) > math.MaxUint8 {
			return fmt.Errorf("%w: table key of %d bytes", ErrSyntax, len(k))
		}
		e.shortstr(k)
		if err := e.field(t[k], depth); err != nil {
			return fmt.Errorf("table key %q: %w", k, err)
		}
	}
	return e.patchLong(at)
}

// patchLong writes the length of what follows the long at at into it.
func (e *encoder) patchLong(at int) error {
	n := len(e.b) - at - 4
	if n > math.MaxUint32 {
		return fmt.Errorf("%w: %d bytes do not fit a long length", ErrSyntax, n)
	}
	e.b[at], e.b[at+1], e.b[at+2], e.b[at+3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return nil
}

func (e *encoder) field(v any, depth int) error {
	switch v := v.(type) {
	case bool:
		e.octet('t')
		e.bits(v)
	case int8:
		e.octet('b')
		e.octet(uint8(v))
	case uint8:
		e.octet('B')
		e.octet(v)
	case int16:
		e.octet('s')
		e.short(uint16(v))
	case uint16:
		e.octet('u')
		e.short(v)
	case int32:
		e.octet('I')
		e.long(uint32(v))
	case uint32:
		e.octet('i')
		e.long(v)
	case int64:
		e.octet('l')
		e.longlong(uint64(v))
	case int:
		e.octet('l')
		e.longlong(uint64(v))
	case float32:
		e.octet('f')
		e.long(math.Float32bits(v))
	case float64:
		e.octet('d')
		e.longlong(math.Float64bits(v))
	case Decimal:
		e.octet('D')
		e.octet(v.Scale)
		e.long(uint32(v.Value))
	case string:
		e.octet('S')
		e.longstr(v)
	case []byte:
		e.octet('x')
		e.bytes(v)
	case []any:
		e.octet('A')
		if depth+1 > maxTableDepth {
			return fmt.Errorf("%w: arrays nested deeper than %d", ErrSyntax, maxTableDepth)
		}
		at := len(e.b)
		e.long(0)
		for i, x := range v {
			if err := e.field(x, depth+1); err != nil {
				return fmt.Errorf("array item %d: %w", i, err)
			}
		}
		return e.patchLong(at)
	case time.Time:
		e.octet('T')
		e.timestamp(uint64(v.Unix()))
	case Table:
		e.octet('F')
		return e.tableAt(v, depth+1)
	case nil:
		e.octet('V')
	default:
		return fmt.Errorf("%w: no field type for a %T", ErrSyntax, v)
	}
	return nil
}

// table reads a field table. A key given twice keeps its last value, as
// RabbitMQ's clients do.
func (d *decoder) table() Table {
	return d.tableAt(1)
}

func (d *decoder) tableAt(depth int) Table {
	raw := d.longbytes()
	if d.err != nil {
		return nil
	}
	if depth > maxTableDepth {
		d.err = fmt.Errorf("%w: tables nested deeper than %d", ErrSyntax, maxTableDepth)
		return nil
	}
	sub := decoder{b: raw}
	t := Table{}
	for sub.err == nil && sub.off < len(raw) {
		k := sub.shortstr()
		v := sub.field(depth)
		if sub.err == nil {
			t[k] = v
		}
	}
	if sub.err != nil {
		d.err = fmt.Errorf("field table: %w", sub.err)
		return nil
	}
	return t
}

func (d *decoder) field(depth int) any {
	typ := d.octet()
	if d.err != nil {
		return nil
	}
	switch typ {
	case 't':
		return d.octet() != 0
	case 'b':
		return int8(d.octet())
	case 'B':
		return d.octet()
	case 's':
		return int16(d.short())
	case 'u':
		return d.short()
	case 'I':
		return int32(d.long())
	case 'i':
		return d.long()
	case 'l':
		return int64(d.longlong())
	case 'f':
		return math.Float32frombits(d.long())
	case 'd':
		return math.Float64frombits(d.longlong())
	case 'D':
		s := d.octet()
		return Decimal{Scale: s, Value: int32(d.long())}
	case 'S':
		return d.longstr()
	case 'x':
		return append([]byte{}, d.longbytes()...)
	case 'A':
		return d.array(depth + 1)
	case 'T':
		return time.Unix(int64(d.timestamp()), 0).UTC()
	case 'F':
		return d.tableAt(depth + 1)
	case 'V':
		return nil
	}
	d.err = fmt.Errorf("%w: unknown field type %q at offset %d", ErrSyntax, typ, d.off-1)
	return nil
}

func (d *decoder) array(depth int) []any {
	raw := d.longbytes()
	if d.err != nil {
		return nil
	}
	if depth > maxTableDepth {
		d.err = fmt.Errorf("%w: arrays nested deeper than %d", ErrSyntax, maxTableDepth)
		return nil
	}
	sub := decoder{b: raw}
	a := []any{}
	for sub.err == nil && sub.off < len(raw) {
		v := sub.field(depth)
		if sub.err == nil {
			a = append(a, v)
		}
	}
	if sub.err != nil {
		d.err = fmt.Errorf("field array: %w", sub.err)
		return nil
	}
	return a
}

// AppendTable appends t as a field table (its keys sorted): a broker
// stores arguments so, and compares two declarations' arguments by their
// encodings.
func AppendTable(b []byte, t Table) ([]byte, error) {
	e := encoder{b: b}
	e.table(t)
	if e.err != nil {
		return b, e.err
	}
	return e.b, nil
}

// DecodeTable decodes a field table that is the whole of b.
func DecodeTable(b []byte) (Table, error) {
	d := decoder{b: b}
	t := d.table()
	return t, d.end("a field table")
}
