package defs

import (
	"crypto/x509/pkix"
	"testing"
)

// TestPeerNameFoldsASCIIOnly: SSLPEER ignores the case of ASCII letters
// only: a subject spelled with other letters that Unicode folds alike
// (the Kelvin sign for K) does not match.
func TestPeerNameFoldsASCIIOnly(t *testing.T) {
	p, err := ParsePeerName("CN=BANK,O=Example")
	if err != nil {
		t.Fatal(err)
	}
	if p.Match(pkix.Name{CommonName: "BAN\u212A", Organization: []string{"Example"}}) {
		t.Error("CN=BANK matched a subject CN of BAN + KELVIN SIGN")
	}
	if !p.Match(pkix.Name{CommonName: "bank", Organization: []string{"EXAMPLE"}}) {
		t.Error("CN=BANK did not match cn bank of EXAMPLE")
	}
}
