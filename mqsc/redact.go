package mqsc

import "regexp"

// secretAttr is an attribute whose value is a secret (AUTHKEY of a
// channel), quoted or not, in any case.
var secretAttr = regexp.MustCompile(`(?i)(AUTHKEY\s*\(\s*)('(?:[^']|'')*'|[^)]*)(\s*\))`)

// Redact is command text fit for a log: the values of secret attributes
// (AUTHKEY) replaced by ********.
func Redact(cmd string) string {
	return secretAttr.ReplaceAllString(cmd, "${1}********${3}")
}
