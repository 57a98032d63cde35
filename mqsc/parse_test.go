package mqsc

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	cs, err := Parse("define qlocal(in) maxdepth(5) descr('It''s mine') replace\n* comment\nDIS QL(*) +\n ALL\n")
	if err != nil || len(cs) != 2 {
		t.Fatalf("%v %v", cs, err)
	}
	c := cs[0]
	if c.Verb != "DEFINE" || c.Type != "QLOCAL" || c.Name != "IN" || !c.Has("REPLACE") || len(c.Attrs) != 2 ||
		c.Attrs[1].Value != "It's mine" || !c.Attrs[1].Quoted || c.Attrs[0].Value != "5" {
		t.Fatalf("%+v", c)
	}
	if cs[1].Verb != "DISPLAY" || cs[1].Type != "QLOCAL" || cs[1].Name != "*" || !cs[1].Has("ALL") {
		t.Fatalf("%+v", cs[1])
	}
	for in, verb := range map[string]string{"reset chl(to.r) seqnum(9)": "RESET", "RESOLVE CHANNEL(TO.R) ACTION(COMMIT)": "RESOLVE"} {
		if c, err := ParseOne(in); err != nil || c.Verb != verb || c.Type != "CHANNEL" || c.Name != "TO.R" || len(c.Attrs) != 1 {
			t.Fatalf("%q: %+v %v", in, c, err)
		}
	}
	if c, _ := ParseOne("DEFINE QLOCAL('lower.case')"); c.Name != "lower.case" {
		t.Fatalf("quoted name folded: %q", c.Name)
	}
	// AMQP names keep their case, quoted or not; values keep it in Raw.
	c, err = ParseOne("set amqpuser(alice) password(Secret) tags(administrator)")
	if err != nil || c.Verb != "SET" || c.Type != "AMQPUSER" || c.Name != "alice" || c.Attrs[0].Value != "SECRET" || c.Attrs[0].Raw != "Secret" {
		t.Fatalf("%+v %v", c, err)
	}
	if c, err := ParseOne("DIS EXCHANGE(amq.*)"); err != nil || c.Name != "amq.*" {
		t.Fatalf("%+v %v", c, err)
	}
	if c, err := ParseOne("DIS EXCHANGE('')"); err != nil || c.Name != "" {
		t.Fatalf("the default exchange: %+v %v", c, err)
	}
	if c, err := ParseOne("SET AMQPPERM(bob) CONFIGURE('^a''b$') READ(  .* )"); err != nil || c.Attrs[0].Raw != "^a'b$" || c.Attrs[1].Raw != ".*" {
		t.Fatalf("%+v %v", c, err)
	}
	for in, want := range map[string]string{
		"FROB X":                 "FROB",
		"DEFINE":                 "needs an object",
		"DEFINE THING(X)":        "THING",
		"DEFINE QLOCAL(X":        "missing ')'",
		"DEFINE QLOCAL(X) D('a":  "unterminated",
		"DEFINE QLOCAL(X) A(b(c": "unexpected",
		"DEFINE QLOCAL()":        "empty name",
		"DISPLAY GROUP(X)":       "takes no name",
		")":                      "unexpected",
	} {
		_, err := Parse(in)
		if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", in, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"DEFINE QLOCAL(IN) MAXDEPTH(5) DESCR('x''y') REPLACE", "DIS QS(*)", "ALTER QMGR DEADQ(DLQ)",
		"DISPLAY CONN", "x(", "'", "A B(C) +\nD(E)", "* c\n\nDELETE QLOCAL(Q) PURGE", "RESET CHL(TO.R) SEQNUM(7)", "RESOLVE CHANNEL(TO.R) ACTION(BACKOUT)",
		"SET AMQPUSER(bob) PASSWORD('pw') TAGS(a,b) LOOPBACK(NO)", "DIS EXCHANGE('')", "SET AMQPPERM(bob) VHOST(/) WRITE('^a.*')", "DIS BINDING(amq.*)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := Parse(s)
		if err != nil {
			return
		}
		for _, c := range cs {
			if c.Verb == "" || c.Type == "" {
				t.Fatalf("accepted %q as %+v", s, c)
			}
			for _, a := range c.Attrs {
				if strings.ToUpper(a.Raw) != a.Value && !a.Quoted || a.Quoted && a.Raw != a.Value {
					t.Fatalf("%q: value %q, as written %q", s, a.Value, a.Raw)
				}
			}
		}
	})
}
