package mqsc

import (
	"strings"
	"testing"
)

// TestSecretsNeverDisplayed: every attribute a table marks secret, set to
// a value, is displayed (with ALL and by name) without the value, in the
// text and in JSON; Redact withholds the value from a command that sets
// it, and NamesSecret knows its name.
func TestSecretsNeverDisplayed(t *testing.T) {
	const secret = "s3cret-V4lue-0f-32-characters!!" // valid for AUTHKEY (16 to 256 characters)
	checked := map[string]bool{}
	for _, tb := range tables() {
		for _, name := range tb.secretNames() {
			checked[name] = true
			rs, err := tb.showSecret(name, secret)
			if err != nil {
				t.Fatalf("%s %s: set: %v", tb.objectType(), name, err)
			}
			for i, out := range []string{Text(rs[:1]), Text(rs[1:]), strings.Join(JSON(rs), "\n")} {
				if strings.Contains(out, secret) || strings.Contains(out, secret[:8]) {
					t.Errorf("%s %s: display %d shows the secret:\n%s", tb.objectType(), name, i, out)
				}
				if !strings.Contains(out, name) {
					t.Errorf("%s %s: display %d does not show the attribute at all:\n%s", tb.objectType(), name, i, out)
				}
			}
			cmd := "ALTER " + tb.objectType() + "(X) " + name + "('" + secret + "') DESCR('x')"
			if got := Redact(cmd); strings.Contains(got, secret[:8]) || !strings.Contains(got, redacted) {
				t.Errorf("Redact(%q) = %q", cmd, got)
			}
			if !NamesSecret(strings.ToLower(cmd)) {
				t.Errorf("NamesSecret(%q) is false", cmd)
			}
		}
	}
	// The check above must have something to check: AUTHKEY at least.
	if !checked["AUTHKEY"] {
		t.Fatalf("no table marks AUTHKEY secret (secrets checked: %v)", checked)
	}
	if len(secretAttrs) != len(checked) {
		t.Fatalf("Redact knows %v, the tables mark %v", secretAttrs, checked)
	}
}

// TestTablesWellFormed: in every table the names are unique, the
// identity comes first, and each attribute can be set or shown.
func TestTablesWellFormed(t *testing.T) {
	check := func(typ string, names []string, ident, settable, shown []bool) {
		seen := map[string]bool{}
		for i, n := range names {
			if seen[n] {
				t.Errorf("%s: %s twice", typ, n)
			}
			seen[n] = true
			if ident[i] && i > 0 && !ident[i-1] {
				t.Errorf("%s: identity attribute %s after others", typ, n)
			}
			if !settable[i] && !shown[i] {
				t.Errorf("%s: %s can be neither set nor shown", typ, n)
			}
		}
		if len(names) == 0 || !ident[0] {
			t.Errorf("%s: no identity attribute first", typ)
		}
	}
	for _, tb := range tables() {
		names, ident, settable, shown := tb.describe()
		check(tb.objectType(), names, ident, settable, shown)
	}
}

// TestCFStatusShapes: DISPLAY CFSTATUS shows, per state, the attributes
// it showed before the tables, in that order; a recoverer that is not a
// member (no name) still has RECOVERER and RECPID.
func TestCFStatusShapes(t *testing.T) {
	reason := "being recovered by pid 7"
	for _, c := range []struct {
		o    cfstatusObj
		want string
	}{
		{cfstatusObj{name: "A", status: "RECOVERING", recpid: 7, reason: &reason},
			"CFSTRUCT(A) STATUS(RECOVERING) RECOVERER() RECPID(7) REASON('being recovered by pid 7')"},
		{cfstatusObj{name: "A", status: "RECOVERING", recoverer: "QM2", recpid: 7, reason: &reason},
			"CFSTRUCT(A) STATUS(RECOVERING) RECOVERER(QM2) RECPID(7) REASON('being recovered by pid 7')"},
		{cfstatusObj{name: "A", status: "FAILED", reason: &reason},
			"CFSTRUCT(A) STATUS(FAILED) REASON('being recovered by pid 7')"},
		{cfstatusObj{name: "A", status: "ACTIVE", usage: &cfUsage{1, 2, 3, 4, 5, 6, 7}},
			"CFSTRUCT(A) STATUS(ACTIVE) SIZE(1) ENTSMAX(2) ENTSUSED(3) ELEMMAX(4) ELEMUSED(5) QUEUES(6) CONNS(7)"},
	} {
		got := strings.Join(strings.Fields(Text([]Result{cfstatusTable.result(&c.o, selection{all: true})})[len("AMQ8113I: Display CF status details."):]), " ")
		if got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
