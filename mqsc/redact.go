package mqsc

import "strings"

// secretAttrs are the attributes whose values are secrets: those the
// object types' tables mark secret (AUTHKEY of a channel, PASSWORD of an
// AMQP user).
var secretAttrs = tableSecrets()

// tableSecrets are the names of the attributes marked secret in the
// tables, each once.
func tableSecrets() []string {
	var out []string
	seen := map[string]bool{}
	for _, t := range tables() {
		for _, n := range t.secretNames() {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// redacted replaces a secret value.
const redacted = "********"

// Redact is command text fit for a log: the values of secret attributes
// (AUTHKEY, PASSWORD) replaced by ********. A quote starts a quoted string only
// where the parser takes one, as a value, right after "(" (a quoted value
// is never an attribute name, so DESCR('AUTHKEY(x)') stays as it is);
// any other quote (in a comment, in a malformed value) is an ordinary
// character, so it cannot hide what follows it. When a secret's value,
// or a quoted value, does not end as it should (a command the parser
// will refuse), everything after it is withheld.
func Redact(cmd string) string {
	var b strings.Builder
	afterOpen := false // the last non-blank character was "("
	for i := 0; i < len(cmd); {
		c := cmd[i]
		switch {
		case c == '\'' && afterOpen:
			j := skipQuoted(cmd, i)
			if j == len(cmd) && (j-i < 2 || cmd[j-1] != '\'') || strings.ContainsAny(cmd[i:j], "\n\r") {
				// A value that never ends, or runs over a line (a
				// continuation, or a quote left open that would take the
				// next command in): withheld.
				b.WriteString(redacted)
				return b.String()
			}
			b.WriteString(cmd[i:j])
			i = j
			afterOpen = false
		case startsSecret(cmd, i):
			open := strings.IndexByte(cmd[i:], '(') + i
			b.WriteString(cmd[i : open+1])
			end, ok := secretEnd(cmd, open+1)
			b.WriteString(redacted)
			if !ok {
				return b.String()
			}
			i = end // at the closing parenthesis
			afterOpen = false
		default:
			b.WriteByte(c)
			i++
			if c != ' ' && c != '\t' {
				afterOpen = c == '('
			}
		}
	}
	return b.String()
}

// NamesSecret reports whether cmd mentions a secret attribute anywhere
// (AUTHKEY, in any case): the error text of such a command is not fit for
// a log, since a parser's error quotes what it refused.
func NamesSecret(cmd string) bool {
	up := strings.ToUpper(cmd)
	for _, name := range secretAttrs {
		if strings.Contains(up, name) {
			return true
		}
	}
	return false
}

// skipQuoted returns the index after the quoted string starting at i (or
// len(s) when it does not end).
func skipQuoted(s string, i int) int {
	for j := i + 1; j < len(s); j++ {
		if s[j] != '\'' {
			continue
		}
		if j+1 < len(s) && s[j+1] == '\'' {
			j++
			continue
		}
		return j + 1
	}
	return len(s)
}

// startsSecret reports whether a secret attribute's name, then "(", start
// at i (not inside a longer word).
func startsSecret(s string, i int) bool {
	if i > 0 && isWordByte(s[i-1]) {
		return false
	}
	for _, name := range secretAttrs {
		if len(s)-i < len(name) || !strings.EqualFold(s[i:i+len(name)], name) {
			continue
		}
		j := skipAny(s, i+len(name), " \t\n\r+-") // blanks, and continuation characters
		if j < len(s) && s[j] == '(' {
			return true
		}
	}
	return false
}

// secretEnd finds the closing parenthesis of a value starting at i: a
// quoted string followed by ")", or text up to ")". ok is false when the
// value does not end well.
func secretEnd(s string, i int) (int, bool) {
	j := skipAny(s, i, " \t")
	if j < len(s) && s[j] == '\'' {
		k := skipQuoted(s, j)
		if k > len(s) || k == len(s) && s[k-1] != '\'' {
			return 0, false
		}
		k = skipAny(s, k, " \t")
		if k < len(s) && s[k] == ')' {
			return k, true
		}
		return 0, false
	}
	k := strings.IndexAny(s[j:], ")'")
	if k < 0 || s[j+k] == '\'' {
		return 0, false
	}
	return j + k, true
}

func isWordByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_'
}

// skipAny returns the index of the first byte of s from i on that is not
// in set.
func skipAny(s string, i int, set string) int {
	for i < len(s) && strings.IndexByte(set, s[i]) >= 0 {
		i++
	}
	return i
}
