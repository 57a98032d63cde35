package mqsc

import (
	"fmt"
	"strings"
)

// attr is one attribute of an object type whose values live in a T: its
// MQSC name (also its JSON key), how DEFINE and ALTER set it, and how
// DISPLAY shows it.
type attr[T any] struct {
	name string
	// ident attributes name the object: DISPLAY always shows them, first,
	// and they cannot be selected by name.
	ident bool
	// secret attributes hold a secret: show must never reveal the value
	// (DISPLAY CHANNEL shows AUTHKEY(SET) or AUTHKEY(NOTSET)), and Redact
	// and NamesSecret know their names.
	secret bool
	// set parses a DEFINE or ALTER value into o; nil when the attribute
	// cannot be set.
	set func(o *T, a Attr) error
	// show is the displayed value, an int64 or a string, or nil when this
	// object has none (the attribute is left out); show itself is nil for
	// an attribute DISPLAY does not show.
	show func(o *T) any
}

// table describes one object type: its attributes drive DEFINE and
// ALTER parsing, DISPLAY's selection and order, and the JSON keys.
type table[T any] struct {
	typ    string    // the object type, as messages name it
	header string    // DISPLAY's header line
	attrs  []attr[T] // in DISPLAY order, the identity first
	// defaultAll: DISPLAY with neither ALL nor attribute names shows every
	// attribute; otherwise (QLOCAL, as MQ) only the identity.
	defaultAll bool
	// notFound is the error of a DISPLAY whose name (without *) matches
	// nothing; nil when that is no error (CONN).
	notFound func(name string) error
}

// notFoundAs is the usual not-found error, naming the object as typ(name).
func notFoundAs(typ string) func(string) error {
	return func(name string) error { return fmt.Errorf("%w: %s(%s)", ErrNotFound, typ, name) }
}

// apply sets o's attributes from a DEFINE or ALTER command's values, in
// the order given; the first bad one is the error.
func (t *table[T]) apply(o *T, attrs []Attr) error {
	for _, a := range attrs {
		d := t.lookup(a.Key)
		if d == nil || d.set == nil {
			return fmt.Errorf("%w: %q is not an attribute of %s", ErrSyntax, a.Key+"("+a.Value+")", t.typ)
		}
		if err := d.set(o, a); err != nil {
			return err
		}
	}
	return nil
}

func (t *table[T]) lookup(name string) *attr[T] {
	for i := range t.attrs {
		if t.attrs[i].name == name {
			return &t.attrs[i]
		}
	}
	return nil
}

// selection is what a DISPLAY asked for: all attributes, or the named
// ones (the identity is always shown).
type selection struct {
	all   bool
	names map[string]bool
}

// selection reads a DISPLAY command's attribute selection: ALL, or
// attribute names (bare keywords, never values).
func (t *table[T]) selection(c Command) (selection, error) {
	s := selection{all: c.Has("ALL"), names: map[string]bool{}}
	for _, f := range c.Flags {
		if f == "ALL" {
			continue
		}
		if d := t.lookup(f); d == nil || d.ident || d.show == nil {
			return s, fmt.Errorf("%w: %q is not an attribute of %s", ErrSyntax, f, t.typ)
		}
		s.names[f] = true
	}
	if len(c.Attrs) > 0 {
		return s, fmt.Errorf("%w: %q: DISPLAY takes attribute names, not values", ErrSyntax, c.Attrs[0].Key)
	}
	if len(s.names) == 0 && t.defaultAll {
		s.all = true
	}
	return s, nil
}

// result is object o as DISPLAY shows it: the identity, then the selected
// attributes in the table's order.
func (t *table[T]) result(o *T, s selection) Result {
	r := Result{Header: t.header}
	for _, d := range t.attrs {
		if d.show == nil || !d.ident && !s.all && !s.names[d.name] {
			continue
		}
		if v := d.show(o); v != nil {
			r.Attrs = append(r.Attrs, KV{d.name, v})
		}
	}
	return r
}

// display is DISPLAY's skeleton: read the selection, list the objects
// matching c.Name (list returns those it got before an error), and show
// each; a name without * that matches nothing is the table's notFound.
func display[T any](c Command, t *table[T], list func() ([]T, error)) ([]Result, error) {
	sel, err := t.selection(c)
	if err != nil {
		return nil, err
	}
	objs, err := list()
	var out []Result
	for i := range objs {
		out = append(out, t.result(&objs[i], sel))
	}
	if err != nil {
		return out, err
	}
	if len(objs) == 0 && !strings.HasSuffix(c.Name, "*") && t.notFound != nil {
		return nil, t.notFound(c.Name)
	}
	return out, nil
}

// anyTable is what is known of every table whatever its object type: for
// the secret attributes' names (Redact) and the tables' tests.
type anyTable interface {
	objectType() string
	secretNames() []string
	// showSecret sets secret attribute name of a new object to value and
	// displays the object, with ALL and with name selected.
	showSecret(name, value string) ([]Result, error)
	// describe lists the attributes: names, and which are the identity,
	// can be set, are shown.
	describe() (names []string, ident, settable, shown []bool)
}

func (t *table[T]) describe() (names []string, ident, settable, shown []bool) {
	for _, d := range t.attrs {
		names = append(names, d.name)
		ident = append(ident, d.ident)
		settable = append(settable, d.set != nil)
		shown = append(shown, d.show != nil)
	}
	return
}

func (t *table[T]) objectType() string { return t.typ }

func (t *table[T]) secretNames() []string {
	var out []string
	for _, d := range t.attrs {
		if d.secret {
			out = append(out, d.name)
		}
	}
	return out
}

func (t *table[T]) showSecret(name, value string) ([]Result, error) {
	var o T
	if err := t.apply(&o, []Attr{{Key: name, Value: value, Quoted: true}}); err != nil {
		return nil, err
	}
	return []Result{
		t.result(&o, selection{all: true}),
		t.result(&o, selection{names: map[string]bool{name: true}}),
	}, nil
}

// tables are the object types' attribute tables.
func tables() []anyTable {
	return []anyTable{&qlocalTable, &qstatusTable, &qremoteTable, &cfstructTable, &cfstatusTable, &cfbackupTable,
		&channelTable, &chstatusTable, &qmgrTable, &groupTable, &connTable,
		&amqpuserTable, &amqppermTable, &exchangeTable, &bindingTable, &requestsTable, &serviceTable}
}
