package mqsc

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSyntax is wrapped by every parse error; the message names the token.
var ErrSyntax = errors.New("mqsc: syntax error")

// Command is one parsed MQSC command.
type Command struct {
	Verb string // DEFINE, ALTER, DELETE, CLEAR, DISPLAY, START, STOP
	Type string // QLOCAL, QREMOTE, QSTATUS, CFSTRUCT, CFSTATUS, GROUP, CONN, QMGR, CHANNEL, CHSTATUS, CHINIT, SERVICE, ...
	// Name is the object name or pattern ("" for GROUP, QMGR): folded to
	// upper case unless quoted, but for the AMQP object types (see
	// keepsCase), whose names keep their case as written.
	Name  string
	Attrs []Attr // keyword(value) pairs after the object, in order
	Flags []string
	Text  string // the command as given
}

// Attr is one KEYWORD(value).
type Attr struct {
	Key    string
	Value  string // folded to upper case unless quoted
	Quoted bool
	Raw    string // the value as written (unquoted, or not folded): for case-sensitive AMQP values
}

// Has reports whether flag f (a bare keyword such as REPLACE or ALL) was
// given.
func (c *Command) Has(f string) bool {
	for _, x := range c.Flags {
		if x == f {
			return true
		}
	}
	return false
}

type token struct {
	word     string // keyword, upper-cased
	value    string // the parenthesised value, if any
	hasValue bool
	quoted   bool
	raw      string // the value as written: quoted, unquoted; unfolded, trimmed
	text     string // as written, for messages
}

// Parse parses commands: one per line; a line ending in '+' or '-'
// continues on the next; '*' at the start of a line is a comment.
func Parse(input string) ([]Command, error) {
	var out []Command
	var cur strings.Builder
	for _, line := range strings.Split(input, "\n") {
		line = strings.TrimRight(line, " \t\r")
		if strings.HasPrefix(strings.TrimSpace(line), "*") && cur.Len() == 0 {
			continue
		}
		if strings.HasSuffix(line, "+") || strings.HasSuffix(line, "-") {
			cur.WriteString(line[:len(line)-1])
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			continue
		}
		c, err := ParseOne(text)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	if text := strings.TrimSpace(cur.String()); text != "" {
		c, err := ParseOne(text)
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseOne parses a single command.
func ParseOne(text string) (Command, error) {
	c := Command{Text: text}
	toks, err := tokenize(text)
	if err != nil {
		return c, err
	}
	if len(toks) == 0 {
		return c, fmt.Errorf("%w: empty command", ErrSyntax)
	}
	verb := toks[0]
	if verb.hasValue {
		return c, fmt.Errorf("%w: %q is not a command", ErrSyntax, verb.text)
	}
	c.Verb = canonVerb(verb.word)
	switch c.Verb {
	case "DEFINE", "ALTER", "DELETE", "CLEAR", "DISPLAY", "START", "STOP", "BACKUP", "RECOVER", "RESET", "RESOLVE", "SET", "CANCEL":
	default:
		return c, fmt.Errorf("%w: unknown command %q (DEFINE, ALTER, DELETE, CLEAR, DISPLAY, START, STOP, BACKUP, RECOVER, RESET, RESOLVE, SET, CANCEL)", ErrSyntax, verb.text)
	}
	if len(toks) < 2 {
		return c, fmt.Errorf("%w: %s needs an object, such as QLOCAL(name)", ErrSyntax, c.Verb)
	}
	obj := toks[1]
	c.Type = canonType(obj.word)
	switch c.Type {
	case "QLOCAL", "QREMOTE", "QSTATUS", "CFSTRUCT", "CFSTATUS", "CONN", "CHANNEL", "CHSTATUS",
		"AMQPUSER", "AMQPPERM", "EXCHANGE", "BINDING", "REQUESTS", "REQUEST", "SERVICE", "SVSTATUS":
		if !obj.hasValue {
			if c.Type == "CONN" || c.Type == "REQUESTS" {
				c.Name = "*"
				break
			}
			return c, fmt.Errorf("%w: %q needs a name in parentheses", ErrSyntax, obj.text)
		}
		c.Name = obj.value
		if keepsCase(c.Type) {
			c.Name = obj.raw
		}
		if c.Name == "" && c.Type != "EXCHANGE" && c.Type != "BINDING" { // the default exchange's name is empty
			return c, fmt.Errorf("%w: empty name in %q", ErrSyntax, obj.text)
		}
	case "GROUP", "QMGR", "CHINIT":
		if obj.hasValue {
			return c, fmt.Errorf("%w: %q takes no name", ErrSyntax, obj.text)
		}
	default:
		return c, fmt.Errorf("%w: unknown object type %q", ErrSyntax, obj.text)
	}
	for _, t := range toks[2:] {
		if t.hasValue {
			c.Attrs = append(c.Attrs, Attr{Key: t.word, Value: t.value, Quoted: t.quoted, Raw: t.raw})
		} else {
			c.Flags = append(c.Flags, t.word)
		}
	}
	return c, nil
}

// keepsCase reports whether the names of object type typ keep their case
// as written, quoted or not: AMQP's names (users, exchanges) are
// case-sensitive, and AMQP clients use lower case.
func keepsCase(typ string) bool {
	switch typ {
	case "AMQPUSER", "AMQPPERM", "EXCHANGE", "BINDING":
		return true
	}
	return false
}

func canonVerb(w string) string {
	switch w {
	case "DEF":
		return "DEFINE"
	case "DIS":
		return "DISPLAY"
	case "DEL":
		return "DELETE"
	}
	return w
}

func canonType(w string) string {
	switch w {
	case "QL", "QUEUE", "Q":
		return "QLOCAL"
	case "QS":
		return "QSTATUS"
	case "QR":
		return "QREMOTE"
	case "CHL":
		return "CHANNEL"
	case "CHS":
		return "CHSTATUS"
	}
	return w
}

// tokenize splits KEYWORD and KEYWORD(value) tokens. Unquoted values are
// upper-cased (MQSC folds names); 'quoted' values keep their case and may
// contain ” for a quote.
func tokenize(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			break
		}
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '(' && s[i] != ',' {
			if s[i] == ')' || s[i] == '\'' {
				return nil, fmt.Errorf("%w: unexpected %q at %q", ErrSyntax, s[i], s[start:])
			}
			i++
		}
		t := token{word: strings.ToUpper(s[start:i])}
		if t.word == "" {
			return nil, fmt.Errorf("%w: missing keyword before %q", ErrSyntax, s[i:])
		}
		if i < len(s) && s[i] == '(' {
			i++
			t.hasValue = true
			for i < len(s) && s[i] == ' ' {
				i++
			}
			if i < len(s) && s[i] == '\'' {
				var v strings.Builder
				i++
				closed := false
				for i < len(s) {
					if s[i] == '\'' {
						if i+1 < len(s) && s[i+1] == '\'' {
							v.WriteByte('\'')
							i += 2
							continue
						}
						i++
						closed = true
						break
					}
					v.WriteByte(s[i])
					i++
				}
				if !closed {
					return nil, fmt.Errorf("%w: unterminated quote in %q", ErrSyntax, s[start:])
				}
				t.value, t.quoted = v.String(), true
				t.raw = t.value
				for i < len(s) && s[i] == ' ' {
					i++
				}
			} else {
				vs := i
				for i < len(s) && s[i] != ')' {
					if s[i] == '(' || s[i] == '\'' {
						return nil, fmt.Errorf("%w: unexpected %q in %q", ErrSyntax, s[i], s[start:])
					}
					i++
				}
				t.raw = strings.TrimSpace(s[vs:i])
				t.value = strings.ToUpper(t.raw)
			}
			if i >= len(s) || s[i] != ')' {
				return nil, fmt.Errorf("%w: missing ')' in %q", ErrSyntax, s[start:])
			}
			i++
		}
		t.text = s[start:i]
		out = append(out, t)
	}
	return out, nil
}
