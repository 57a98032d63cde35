package defs

import (
	"crypto/x509/pkix"
	"fmt"
	"strings"
)

// PeerName is a parsed SSLPEER: the attributes a partner's certificate
// subject must have, as MQ's SSLPEER. "CN=QM2,O=Example Ltd,OU=*" is
// matched by a subject whose common name is QM2, whose organisation is
// Example Ltd and which has some organisational unit. Attribute names are
// CN, O, OU, L, ST (or S), C, SERIALNUMBER, STREET and POSTALCODE; a
// value is compared without regard to case, a * in it stands for any
// characters (none included); a value with a comma is written in double
// quotes. Every attribute of the pattern must be matched by one of the
// subject's values of that attribute; the subject may have more.
type PeerName struct {
	Attrs []PeerAttr
}

// PeerAttr is one attribute of an SSLPEER pattern.
type PeerAttr struct {
	Key   string // CN, O, OU...
	Value string // the pattern, lower case
}

// peerKeys are the attribute names SSLPEER knows, with what they are of a
// certificate subject.
var peerKeys = map[string]func(n pkix.Name) []string{
	"CN":           func(n pkix.Name) []string { return []string{n.CommonName} },
	"O":            func(n pkix.Name) []string { return n.Organization },
	"OU":           func(n pkix.Name) []string { return n.OrganizationalUnit },
	"L":            func(n pkix.Name) []string { return n.Locality },
	"ST":           func(n pkix.Name) []string { return n.Province },
	"S":            func(n pkix.Name) []string { return n.Province },
	"C":            func(n pkix.Name) []string { return n.Country },
	"SERIALNUMBER": func(n pkix.Name) []string { return []string{n.SerialNumber} },
	"STREET":       func(n pkix.Name) []string { return n.StreetAddress },
	"POSTALCODE":   func(n pkix.Name) []string { return n.PostalCode },
}

// ParsePeerName parses an SSLPEER pattern.
func ParsePeerName(s string) (PeerName, error) {
	var p PeerName
	bad := func(why string) (PeerName, error) {
		return PeerName{}, fmt.Errorf("%w: SSLPEER(%s): %s", ErrBadValue, s, why)
	}
	rest := strings.TrimSpace(s)
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return bad("an attribute without =")
		}
		key := strings.ToUpper(strings.TrimSpace(rest[:eq]))
		if peerKeys[key] == nil {
			return bad("unknown attribute " + key)
		}
		rest = strings.TrimSpace(rest[eq+1:])
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := strings.IndexByte(rest[1:], '"')
			if end < 0 {
				return bad("an unterminated quote")
			}
			val, rest = rest[1:1+end], strings.TrimSpace(rest[2+end:])
			if rest != "" && rest[0] != ',' {
				return bad("characters after a quoted value")
			}
		} else {
			end := strings.IndexByte(rest, ',')
			if end < 0 {
				end = len(rest)
			}
			val, rest = strings.TrimSpace(rest[:end]), rest[end:]
		}
		rest = strings.TrimPrefix(rest, ",")
		rest = strings.TrimSpace(rest)
		if val == "" {
			return bad("an empty value for " + key)
		}
		p.Attrs = append(p.Attrs, PeerAttr{Key: key, Value: asciiLower(val)})
	}
	if len(p.Attrs) == 0 {
		return bad("no attribute")
	}
	return p, nil
}

// Match reports whether certificate subject n has every attribute of p.
func (p PeerName) Match(n pkix.Name) bool {
	for _, a := range p.Attrs {
		ok := false
		for _, v := range peerKeys[a.Key](n) {
			if v != "" && globMatch(a.Value, asciiLower(v)) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// globMatch reports whether s matches pattern, in which * stands for any
// characters.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// asciiLower folds A-Z only: Unicode folding would let a subject in other
// letters (K and the Kelvin sign U+212A fold alike) match a pattern a CA
// checked byte for byte.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
