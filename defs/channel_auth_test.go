package defs

import (
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"
)

func TestChannelAuthValidate(t *testing.T) {
	key := "0123456789abcdef"
	rcvr := func(f func(c *Channel)) Channel { c := DefaultChannel("TO.R", ChlReceiver); f(&c); return c }
	sdr := func(f func(c *Channel)) Channel {
		c := DefaultChannel("TO.R", ChlSender)
		c.ConnName, c.XmitQ = "host(1414)", "XQ"
		f(&c)
		return c
	}
	for _, c := range []struct {
		what string
		ch   Channel
		ok   bool
		msg  string
	}{
		{"receiver without means", rcvr(func(c *Channel) {}), false, "cannot authenticate"},
		{"sender without means", sdr(func(c *Channel) {}), false, "cannot authenticate"},
		{"receiver, AUTH(OPTIONAL)", rcvr(func(c *Channel) { c.Auth = AuthOptional }), true, ""},
		{"receiver with a secret", rcvr(func(c *Channel) { c.AuthKey = key }), true, ""},
		{"secret too short", rcvr(func(c *Channel) { c.AuthKey = "short" }), false, "AUTHKEY"},
		{"secret with a control character", rcvr(func(c *Channel) { c.AuthKey = key + "\n" }), false, "printable"},
		{"receiver TLS without SSLCA", rcvr(func(c *Channel) { c.SSLCert, c.SSLKey, c.SSLPeer = "c", "k", "CN=A" }), false, "SSLCA"},
		{"receiver SSLPEER without SSLCA, with a secret", rcvr(func(c *Channel) { c.AuthKey, c.SSLCert, c.SSLKey, c.SSLPeer = key, "c", "k", "CN=A" }), false, "needs SSLCA"},
		{"receiver TLS with SSLCA and SSLPEER", rcvr(func(c *Channel) { c.SSLCert, c.SSLKey, c.SSLCA, c.SSLPeer = "c", "k", "ca", "CN=A" }), true, ""},
		{"receiver TLS without SSLPEER", rcvr(func(c *Channel) { c.SSLCert, c.SSLKey, c.SSLCA = "c", "k", "ca" }), false, "cannot authenticate"},
		{"sender TLS with SSLPEER", sdr(func(c *Channel) { c.SSLCert, c.SSLKey, c.SSLPeer = "c", "k", "CN=A" }), true, ""},
		{"SSLPEER without TLS", rcvr(func(c *Channel) { c.AuthKey, c.SSLPeer = key, "CN=A" }), false, "SSLPEER"},
		{"bad SSLPEER", rcvr(func(c *Channel) { c.SSLCert, c.SSLKey, c.SSLCA, c.SSLPeer = "c", "k", "ca", "XX=A" }), false, "unknown attribute"},
		{"AUTH value", rcvr(func(c *Channel) { c.AuthKey, c.Auth = key, "MAYBE" }), false, "AUTH(MAYBE)"},
		{"RQMNAME on a sender", sdr(func(c *Channel) { c.AuthKey, c.RQMName = key, "QM1" }), false, "receiver"},
		{"RQMNAME on a receiver", rcvr(func(c *Channel) { c.AuthKey, c.RQMName = key, "QM1" }), true, ""},
		{"INQUEUES", rcvr(func(c *Channel) { c.AuthKey, c.InQueues = key, "SOME" }), false, "INQUEUES"},
	} {
		err := c.ch.Validate()
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.what, err)
		case !c.ok && (err == nil || !errors.Is(err, ErrBadValue) || !strings.Contains(err.Error(), c.msg)):
			t.Errorf("%s: %v, want an error saying %q", c.what, err, c.msg)
		}
	}
	// A definition stored before AUTH (none) requires authentication.
	if (Channel{}).AuthRequired() != true {
		t.Error("a channel without AUTH does not require authentication")
	}
}

func TestPeerName(t *testing.T) {
	subj := pkix.Name{CommonName: "QM2", Organization: []string{"Example, Inc"}, OrganizationalUnit: []string{"Ops", "Payments"}, Country: []string{"GB"}}
	for _, c := range []struct {
		pattern string
		match   bool
	}{
		{"CN=QM2", true},
		{"cn=qm2", true},
		{"CN=QM2, O=\"Example, Inc\"", true},
		{"CN=QM*,OU=Pay*", true},
		{"CN=*2,C=GB", true},
		{"CN=Q*M*2", true},
		{"CN=QM3", false},
		{"CN=QM2,OU=Sales", false},
		{"CN=QM2,L=London", false},
		{"CN=QM22*", false},
		{"O=Example", false},
	} {
		p, err := ParsePeerName(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := p.Match(subj); got != c.match {
			t.Errorf("%q matches %v: %v, want %v", c.pattern, subj, got, c.match)
		}
	}
	for _, bad := range []string{"", "CN", "XX=1", "CN=", "CN=\"open", "CN=\"a\"b"} {
		if _, err := ParsePeerName(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
