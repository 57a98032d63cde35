// Package specgen generates the AMQP 0-9-1 method codec (amqp's
// methods_gen.go) from the one table of the protocol's methods, Spec.
// `go generate ./amqp` runs it; amqp's TestMethodsGenerated fails when the
// generated file and the table differ.
package specgen

import (
	"bytes"
	"fmt"
	"go/format"
	"strconv"
	"strings"
)

// Spec is AMQP 0-9-1's methods, one per line: "class.method class-id
// method-id [content]: argument type, ...". Types: octet, short, long,
// longlong, shortstr, longstr, bit, table, timestamp. Consecutive bits
// share an octet.
const Spec = `
connection.start 10 10: version-major octet, version-minor octet, server-properties table, mechanisms longstr, locales longstr
connection.start-ok 10 11: client-properties table, mechanism shortstr, response longstr, locale shortstr
connection.secure 10 20: challenge longstr
connection.secure-ok 10 21: response longstr
connection.tune 10 30: channel-max short, frame-max long, heartbeat short
connection.tune-ok 10 31: channel-max short, frame-max long, heartbeat short
connection.open 10 40: virtual-host shortstr, reserved-1 shortstr, reserved-2 bit
connection.open-ok 10 41: reserved-1 shortstr
connection.close 10 50: reply-code short, reply-text shortstr, class-id short, method-id short
connection.close-ok 10 51:
connection.blocked 10 60: reason shortstr
connection.unblocked 10 61:
connection.update-secret 10 70: new-secret longstr, reason shortstr
connection.update-secret-ok 10 71:
channel.open 20 10: reserved-1 shortstr
channel.open-ok 20 11: reserved-1 longstr
channel.flow 20 20: active bit
channel.flow-ok 20 21: active bit
channel.close 20 40: reply-code short, reply-text shortstr, class-id short, method-id short
channel.close-ok 20 41:
exchange.declare 40 10: reserved-1 short, exchange shortstr, type shortstr, passive bit, durable bit, auto-delete bit, internal bit, no-wait bit, arguments table
exchange.declare-ok 40 11:
exchange.delete 40 20: reserved-1 short, exchange shortstr, if-unused bit, no-wait bit
exchange.delete-ok 40 21:
exchange.bind 40 30: reserved-1 short, destination shortstr, source shortstr, routing-key shortstr, no-wait bit, arguments table
exchange.bind-ok 40 31:
exchange.unbind 40 40: reserved-1 short, destination shortstr, source shortstr, routing-key shortstr, no-wait bit, arguments table
exchange.unbind-ok 40 51:
queue.declare 50 10: reserved-1 short, queue shortstr, passive bit, durable bit, exclusive bit, auto-delete bit, no-wait bit, arguments table
queue.declare-ok 50 11: queue shortstr, message-count long, consumer-count long
queue.bind 50 20: reserved-1 short, queue shortstr, exchange shortstr, routing-key shortstr, no-wait bit, arguments table
queue.bind-ok 50 21:
queue.purge 50 30: reserved-1 short, queue shortstr, no-wait bit
queue.purge-ok 50 31: message-count long
queue.delete 50 40: reserved-1 short, queue shortstr, if-unused bit, if-empty bit, no-wait bit
queue.delete-ok 50 41: message-count long
queue.unbind 50 50: reserved-1 short, queue shortstr, exchange shortstr, routing-key shortstr, arguments table
queue.unbind-ok 50 51:
basic.qos 60 10: prefetch-size long, prefetch-count short, global bit
basic.qos-ok 60 11:
basic.consume 60 20: reserved-1 short, queue shortstr, consumer-tag shortstr, no-local bit, no-ack bit, exclusive bit, no-wait bit, arguments table
basic.consume-ok 60 21: consumer-tag shortstr
basic.cancel 60 30: consumer-tag shortstr, no-wait bit
basic.cancel-ok 60 31: consumer-tag shortstr
basic.publish 60 40 content: reserved-1 short, exchange shortstr, routing-key shortstr, mandatory bit, immediate bit
basic.return 60 50 content: reply-code short, reply-text shortstr, exchange shortstr, routing-key shortstr
basic.deliver 60 60 content: consumer-tag shortstr, delivery-tag longlong, redelivered bit, exchange shortstr, routing-key shortstr
basic.get 60 70: reserved-1 short, queue shortstr, no-ack bit
basic.get-ok 60 71 content: delivery-tag longlong, redelivered bit, exchange shortstr, routing-key shortstr, message-count long
basic.get-empty 60 72: reserved-1 shortstr
basic.ack 60 80: delivery-tag longlong, multiple bit
basic.reject 60 90: delivery-tag longlong, requeue bit
basic.recover-async 60 100: requeue bit
basic.recover 60 110: requeue bit
basic.recover-ok 60 111:
basic.nack 60 120: delivery-tag longlong, multiple bit, requeue bit
tx.select 90 10:
tx.select-ok 90 11:
tx.commit 90 20:
tx.commit-ok 90 21:
tx.rollback 90 30:
tx.rollback-ok 90 31:
confirm.select 85 10: nowait bit
confirm.select-ok 85 11:
`

// Method is one line of Spec.
type Method struct {
	Name    string // "queue.declare"
	Class   uint16
	ID      uint16
	Content bool
	Args    []Arg
}

// Arg is one argument of a method.
type Arg struct {
	Name string // "auto-delete"
	Type string
}

var goTypes = map[string]string{
	"octet": "uint8", "short": "uint16", "long": "uint32", "longlong": "uint64",
	"shortstr": "string", "longstr": "string", "bit": "bool", "table": "Table",
	"timestamp": "uint64",
}

// Parse reads Spec.
func Parse(spec string) ([]Method, error) {
	var ms []Method
	for i, line := range strings.Split(strings.TrimSpace(spec), "\n") {
		m, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func parseLine(line string) (Method, error) {
	head, args, ok := strings.Cut(line, ":")
	if !ok {
		return Method{}, fmt.Errorf("no ':' in %q", line)
	}
	f := strings.Fields(head)
	if len(f) < 3 || len(f) > 4 || (len(f) == 4 && f[3] != "content") {
		return Method{}, fmt.Errorf("bad head %q", head)
	}
	c, err1 := strconv.ParseUint(f[1], 10, 16)
	id, err2 := strconv.ParseUint(f[2], 10, 16)
	if err1 != nil || err2 != nil {
		return Method{}, fmt.Errorf("bad ids in %q", head)
	}
	m := Method{Name: f[0], Class: uint16(c), ID: uint16(id), Content: len(f) == 4}
	for _, a := range strings.Split(args, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		nt := strings.Fields(a)
		if len(nt) != 2 || goTypes[nt[1]] == "" {
			return Method{}, fmt.Errorf("bad argument %q", a)
		}
		m.Args = append(m.Args, Arg{nt[0], nt[1]})
	}
	return m, nil
}

// goName turns "queue.declare-ok" into "QueueDeclareOk", "reserved-1"
// into "Reserved1".
func goName(s string) string {
	var b strings.Builder
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	n := b.String()
	n = strings.ReplaceAll(n, "Id", "ID")
	return n
}

// Generate returns methods_gen.go for spec.
func Generate(spec string) ([]byte, error) {
	ms, err := Parse(spec)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("// Code generated by amqp/internal/specgen from its Spec table; DO NOT EDIT.\n\npackage amqp\n\n")
	for _, m := range ms {
		genMethod(&b, m)
	}
	genNew(&b, ms)
	return format.Source(b.Bytes())
}

func genMethod(b *bytes.Buffer, m Method) {
	n := goName(m.Name)
	fmt.Fprintf(b, "// %s is %s (class %d, method %d).\ntype %s struct {\n", n, m.Name, m.Class, m.ID, n)
	for _, a := range m.Args {
		fmt.Fprintf(b, "\t%s %s\n", goName(a.Name), goTypes[a.Type])
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(b, "// ClassMethod returns %s's class and method ids.\nfunc (*%s) ClassMethod() (uint16, uint16) { return %d, %d }\n\n", m.Name, n, m.Class, m.ID)
	fmt.Fprintf(b, "// Name returns %q.\nfunc (*%s) Name() string { return %q }\n\n", m.Name, n, m.Name)
	fmt.Fprintf(b, "// HasContent reports whether a content header and body follow %s.\nfunc (*%s) HasContent() bool { return %v }\n\n", m.Name, n, m.Content)
	recv := "m"
	if len(m.Args) == 0 {
		recv = ""
	}
	fmt.Fprintf(b, "func (%s *%s) write(e *encoder) {\n", recv, n)
	forArgs(m.Args, func(a Arg) { fmt.Fprintf(b, "\te.%s(m.%s)\n", a.Type, goName(a.Name)) },
		func(bits []Arg) {
			var fs []string
			for _, a := range bits {
				fs = append(fs, "m."+goName(a.Name))
			}
			fmt.Fprintf(b, "\te.bits(%s)\n", strings.Join(fs, ", "))
		})
	b.WriteString("}\n\n")
	if len(m.Args) == 0 {
		fmt.Fprintf(b, "func (*%s) read(*decoder) {}\n\n", n)
		return
	}
	fmt.Fprintf(b, "func (m *%s) read(d *decoder) {\n", n)
	forArgs(m.Args, func(a Arg) { fmt.Fprintf(b, "\tm.%s = d.%s()\n", goName(a.Name), a.Type) },
		func(bits []Arg) {
			var fs []string
			for _, a := range bits {
				fs = append(fs, "&m."+goName(a.Name))
			}
			fmt.Fprintf(b, "\td.bits(%s)\n", strings.Join(fs, ", "))
		})
	b.WriteString("}\n\n")
}

// forArgs calls one for each argument that is not a bit and bits for each
// run of up to eight consecutive bits (one octet on the wire).
func forArgs(args []Arg, one func(Arg), bits func([]Arg)) {
	for i := 0; i < len(args); {
		if args[i].Type != "bit" {
			one(args[i])
			i++
			continue
		}
		j := i
		for j < len(args) && args[j].Type == "bit" && j-i < 8 {
			j++
		}
		bits(args[i:j])
		i = j
	}
}

func genNew(b *bytes.Buffer, ms []Method) {
	b.WriteString("// newMethod returns a zero method of class c and method id, or nil.\nfunc newMethod(c, id uint16) Method {\n\tswitch uint32(c)<<16 | uint32(id) {\n")
	for _, m := range ms {
		fmt.Fprintf(b, "\tcase %d<<16 | %d:\n\t\treturn new(%s)\n", m.Class, m.ID, goName(m.Name))
	}
	b.WriteString("\t}\n\treturn nil\n}\n\n")
	b.WriteString("// allMethods returns a zero value of every method, for tests.\nfunc allMethods() []Method {\n\treturn []Method{\n")
	for _, m := range ms {
		fmt.Fprintf(b, "\t\tnew(%s),\n", goName(m.Name))
	}
	b.WriteString("\t}\n}\n")
}
