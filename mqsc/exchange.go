package mqsc

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/qmgr/qmgr/defs"
)

// exchangeObj is an exchange for its attribute table: stored, or one of
// the built-in ones (defs.BuiltinExchanges), which are never stored.
type exchangeObj struct {
	defs.Exchange
	builtin bool
}

var exchangeTable = table[exchangeObj]{
	typ: "EXCHANGE", header: "Display AMQP exchange details.", defaultAll: true, notFound: notFoundAs("EXCHANGE"),
	attrs: []attr[exchangeObj]{
		{name: "EXCHANGE", ident: true, show: func(e *exchangeObj) any { return e.Name }},
		{name: "EXTYPE", show: func(e *exchangeObj) any { return e.Kind }, set: func(e *exchangeObj, a Attr) error {
			v, err := parseEnum(a, "DIRECT", "FANOUT", "TOPIC", "HEADERS")
			e.Kind = strings.ToLower(v)
			return err
		}},
		{name: "DURABLE", show: func(e *exchangeObj) any { return yesNo(e.Durable) }, set: func(e *exchangeObj, a Attr) (err error) {
			e.Durable, err = parseYesNo(a)
			return err
		}},
		{name: "AUTODEL", show: func(e *exchangeObj) any { return yesNo(e.AutoDelete) }, set: func(e *exchangeObj, a Attr) (err error) {
			e.AutoDelete, err = parseYesNo(a)
			return err
		}},
		{name: "INTERNAL", show: func(e *exchangeObj) any { return yesNo(e.Internal) }, set: func(e *exchangeObj, a Attr) (err error) {
			e.Internal, err = parseYesNo(a)
			return err
		}},
		{name: "BUILTIN", show: func(e *exchangeObj) any { return yesNo(e.builtin) }},
		{name: "CRDATE", show: func(e *exchangeObj) any { return dayOrNil(e) }},
		{name: "CRTIME", show: func(e *exchangeObj) any {
			if e.builtin {
				return nil
			}
			return mqTime(e.Created)
		}},
	},
}

func dayOrNil(e *exchangeObj) any {
	if e.builtin {
		return nil
	}
	return mqDay(e.Created)
}

// builtinName reports whether name is reserved: a built-in exchange, or
// any name starting "amq." (as RabbitMQ, which refuses to declare them).
func builtinName(name string) bool {
	_, ok := defs.BuiltinExchanges[name]
	return ok || strings.HasPrefix(name, "amq.")
}

// defineExchange is DEFINE EXCHANGE: EXTYPE (default DIRECT), DURABLE
// (default YES), AUTODEL and INTERNAL (default NO). An exchange is not
// altered (AMQP's are not): delete it and define it again.
func defineExchange(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if builtinName(c.Name) {
		return nil, fmt.Errorf("%w: EXCHANGE(%s): names starting amq. are reserved", ErrValue, c.Name)
	}
	e := exchangeObj{Exchange: defs.Exchange{Name: c.Name, Kind: defs.ExchangeDirect, Durable: true}}
	if err := exchangeTable.apply(&e, c.Attrs); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrValue, err)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		if _, err := tx.Save(defs.TypeExchange, e.Name, e.Exchange, defs.Create); err != nil {
			if errors.Is(err, defs.ErrExists) {
				return fmt.Errorf("%w: EXCHANGE(%s)", ErrExists, c.Name)
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQP exchange created."}}, env.DefsChanged()
}

// deleteExchange is DELETE EXCHANGE: the exchange and every binding from
// or to it go in one transaction.
func deleteExchange(env Env, c Command) ([]Result, error) {
	if err := checkFlags(c); err != nil {
		return nil, err
	}
	if len(c.Attrs) > 0 {
		return nil, fmt.Errorf("%w: %q is not an attribute of DELETE EXCHANGE", ErrSyntax, c.Attrs[0].Key+"("+c.Attrs[0].Value+")")
	}
	if builtinName(c.Name) {
		return nil, fmt.Errorf("%w: EXCHANGE(%s) is built in", ErrValue, c.Name)
	}
	err := env.Repo().Update(func(tx *defs.Tx) error {
		if err := tx.Delete(defs.TypeExchange, c.Name); err != nil {
			if errors.Is(err, defs.ErrNotFound) {
				return fmt.Errorf("%w: EXCHANGE(%s)", ErrNotFound, c.Name)
			}
			return err
		}
		return tx.DeleteBindingsOf(defs.DestExchange, c.Name)
	})
	if err != nil {
		return nil, err
	}
	return []Result{{Message: "AMQP exchange deleted."}}, env.DefsChanged()
}

func displayExchanges(env Env, c Command) ([]Result, error) {
	return display(c, &exchangeTable, func() ([]exchangeObj, error) {
		var es []defs.Exchange
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; es, err = tx.Exchanges(c.Name); return err })
		var out []exchangeObj
		for name, kind := range defs.BuiltinExchanges {
			if defs.Match(c.Name, name) {
				out = append(out, exchangeObj{Exchange: defs.Exchange{Name: name, Kind: kind, Durable: true}, builtin: true})
			}
		}
		for _, e := range es {
			out = append(out, exchangeObj{Exchange: e})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out, err
	})
}

var bindingTable = table[defs.Binding]{
	typ: "BINDING", header: "Display AMQP binding details.", defaultAll: true, notFound: nil,
	attrs: []attr[defs.Binding]{
		{name: "SOURCE", ident: true, show: func(b *defs.Binding) any { return b.Source }},
		{name: "DESTTYPE", ident: true, show: func(b *defs.Binding) any { return b.DestKind }},
		{name: "DEST", ident: true, show: func(b *defs.Binding) any { return b.Dest }},
		{name: "KEY", ident: true, show: func(b *defs.Binding) any { return b.Key }},
	},
}

// displayBindings is DISPLAY BINDING(exchange-pattern): the bindings
// whose source matches, sorted by source, destination and key. An
// exchange without bindings is no error. The default exchange's implicit
// binding of every queue is not listed.
func displayBindings(env Env, c Command) ([]Result, error) {
	return display(c, &bindingTable, func() ([]defs.Binding, error) {
		var all []defs.Binding
		err := env.Repo().View(func(tx *defs.Tx) error { var err error; all, err = tx.AllBindings(); return err })
		var out []defs.Binding
		for _, b := range all {
			if defs.Match(c.Name, b.Source) {
				out = append(out, b)
			}
		}
		sort.SliceStable(out, func(i, j int) bool {
			x, y := out[i], out[j]
			if x.Source != y.Source {
				return x.Source < y.Source
			}
			if x.DestKind+x.Dest != y.DestKind+y.Dest {
				return x.DestKind+":"+x.Dest < y.DestKind+":"+y.Dest
			}
			return x.Key < y.Key
		})
		return out, err
	})
}
