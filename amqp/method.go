package amqp

//go:generate go run ./internal/specgen/gen methods_gen.go

import "fmt"

// Method is one of AMQP 0-9-1's methods (methods_gen.go, generated from
// the table in internal/specgen): a struct with a field per argument.
type Method interface {
	// ClassMethod returns the method's class and method ids.
	ClassMethod() (class, method uint16)
	// Name returns the method's name as the specification writes it
	// ("queue.declare").
	Name() string
	// HasContent reports whether a content header and body frames follow
	// the method (basic.publish, return, deliver and get-ok).
	HasContent() bool
	write(e *encoder)
	read(d *decoder)
}

// DecodeMethod decodes a method frame's payload. An unknown class or
// method is ErrUnknownMethod; arguments that are short, malformed or
// followed by more bytes are ErrSyntax.
func DecodeMethod(payload []byte) (Method, error) {
	d := decoder{b: payload}
	c, id := d.short(), d.short()
	if d.err != nil {
		return nil, fmt.Errorf("method frame: %w", d.err)
	}
	m := newMethod(c, id)
	if m == nil {
		return nil, fmt.Errorf("%w: class %d, method %d", ErrUnknownMethod, c, id)
	}
	m.read(&d)
	if err := d.end(m.Name()); err != nil {
		return nil, fmt.Errorf("%s: %w", m.Name(), err)
	}
	return m, nil
}
