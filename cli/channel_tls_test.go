package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/qmgr/qmgr/channel"
)

// testPKI is a CA and certificates it signed, written to dir: name.pem
// and name.key for each.
type testPKI struct {
	t      *testing.T
	dir    string
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	serial int64
}

func newTestPKI(t *testing.T) *testPKI {
	p := &testPKI{t: t, dir: t.TempDir(), serial: 1}
	p.caKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "qmgr test CA", Organization: []string{"Example"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.caKey.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	p.caCert, _ = x509.ParseCertificate(der)
	p.write("ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(name, typ string, b []byte) {
	if err := os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

func (p *testPKI) ca() string { return filepath.Join(p.dir, "ca.pem") }

// cert makes certificate name (for 127.0.0.1, client and server) with
// subject CN=cn,O=org and returns it loaded.
func (p *testPKI) cert(name, cn, org string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: cn, Organization: []string{org}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	p.write(name+".pem", "CERTIFICATE", der)
	p.write(name+".key", "EC PRIVATE KEY", keyDER)
	c, err := tls.LoadX509KeyPair(filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+".key"))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// files is the TLS attributes of a channel using certificate name.
func (p *testPKI) files(name string) string {
	return fmt.Sprintf("SSLCERT('%s') SSLKEY('%s') SSLCA('%s')", filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+".key"), p.ca())
}

// openTLSPeer connects to port over TLS naming channel sni in the server
// name, with client certificate cert (nil: none), and opens channel ch as
// queue manager QM1 without a secret. It returns the answer to its AUTH
// (or the error that ended the connection).
func openTLSPeer(t *testing.T, port int, sni, ch string, cert *tls.Certificate) (channel.Frame, error) {
	t.Helper()
	cfg := &tls.Config{ServerName: channel.ServerName(sni), InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	nc, err := tls.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port), cfg)
	if err != nil {
		return channel.Frame{}, err
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	r, w := channel.NewReader(nc, 1<<20), channel.NewWriter(nc)
	cn, _ := channel.NewNonce()
	w.Hello(channel.Hello{Channel: ch, QMgr: "QM1", Group: "HG", BatchSz: 10, MaxMsgL: 1 << 20, HBInt: 1, MinVer: channel.ProtoVersion, MaxVer: channel.ProtoVersion, Nonce: cn})
	if err := w.Flush(); err != nil {
		return channel.Frame{}, err
	}
	f, err := r.Read()
	if err != nil || f.Type != channel.FrameChallenge {
		return f, err
	}
	w.Auth(channel.Auth{})
	if err := w.Flush(); err != nil {
		return channel.Frame{}, err
	}
	return r.Read()
}

// TestChannelTLSPeers: each receiver channel uses its own TLS
// configuration (chosen by the server name the sender sends) and checks
// the partner's certificate against its own SSLPEER; a client without a
// certificate, with one whose subject does not match, or with the
// certificate of another channel is refused; the sender checks the
// receiver's certificate against its SSLPEER too.
func TestChannelTLSPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process")
	}
	pki := newTestPKI(t)
	pki.cert("rqm", "RQM", "Example")
	good := pki.cert("qm1", "QM1", "Example")
	other := pki.cert("other", "OTHER", "Example")
	bcert := pki.cert("b", "BPEER", "Example")
	r := newRemoteGroup(t)
	r.port = freePort(t)
	r.startWith("RQM", "--port", strconv.Itoa(r.port))
	// TO.R authenticates by TLS alone: a certificate from the CA whose
	// subject matches SSLPEER.
	r.mqsc("DEFINE CHANNEL(TO.R) CHLTYPE(RCVR) " + pki.files("rqm") + " SSLPEER('CN=QM*,O=Example')")
	r.mqsc("DEFINE CHANNEL(TO.B) CHLTYPE(RCVR) " + pki.files("rqm") + " SSLPEER('CN=BPEER')")
	// TO.P is plain (a secret): a TLS client naming it is refused.
	r.mqsc("DEFINE CHANNEL(TO.P) CHLTYPE(RCVR) AUTHKEY('" + testAuthKey + "')")
	r.mqsc("DEFINE QLOCAL(TARGET) MAXDEPTH(999999999)")
	waitFor(t, "the remote channel initiator listening", 15*time.Second, func() bool {
		return logsContain(r, "channel initiator started", "port="+strconv.Itoa(r.port))
	})
	refused := func(what string, f channel.Frame, err error) {
		t.Helper()
		if err == nil && f.Type != channel.FrameClose {
			t.Fatalf("%s: answered with frame %d, want a refusal", what, f.Type)
		}
		if err == nil {
			if reason, text, _ := channel.DecodeClose(f.Payload); reason != channel.ReasonNotAuthorized || text != "not authorised" {
				t.Fatalf("%s: CLOSE %d %q", what, reason, text)
			}
		}
	}
	t.Run("no client certificate", func(t *testing.T) {
		f, err := openTLSPeer(t, r.port, "TO.R", "TO.R", nil)
		refused("no client certificate", f, err)
		// The client may see the handshake fail before the receiver logs it.
		waitFor(t, "the refusal of a client without a certificate logged", 10*time.Second, func() bool {
			return logsContain(r, "inbound channel refused", "TLS handshake", "certificate")
		})
	})
	t.Run("subject not SSLPEER", func(t *testing.T) {
		f, err := openTLSPeer(t, r.port, "TO.R", "TO.R", &other)
		refused("a certificate whose subject does not match SSLPEER", f, err)
		if !logsContain(r, "inbound channel refused", "does not match SSLPEER") {
			t.Error("the SSLPEER refusal is not logged")
		}
	})
	t.Run("certificate of another channel", func(t *testing.T) {
		f, err := openTLSPeer(t, r.port, "TO.B", "TO.B", &good)
		refused("TO.R's certificate on TO.B", f, err)
	})
	t.Run("server name of another channel", func(t *testing.T) {
		// TLS set up for TO.B with its certificate, the HELLO naming TO.R.
		f, err := openTLSPeer(t, r.port, "TO.B", "TO.R", &bcert)
		refused("TLS for TO.B, HELLO for TO.R", f, err)
	})
	t.Run("TLS to a plain channel", func(t *testing.T) {
		f, err := openTLSPeer(t, r.port, "TO.P", "TO.P", &good)
		refused("TLS naming a channel without TLS", f, err)
		waitFor(t, "the refusal of TLS for a plain channel logged", 10*time.Second, func() bool {
			return logsContain(r, "inbound channel refused", "TLS handshake", "not a receiver channel with SSLCERT")
		})
	})
	t.Run("good", func(t *testing.T) {
		f, err := openTLSPeer(t, r.port, "TO.R", "TO.R", &good)
		if err != nil || f.Type != channel.FrameHelloAck {
			t.Fatalf("the right certificate: frame %d, %v; want a HELLO_ACK", f.Type, err)
		}
		f, err = openTLSPeer(t, r.port, "TO.B", "TO.B", &bcert)
		if err != nil || f.Type != channel.FrameHelloAck {
			t.Fatalf("TO.B's certificate on TO.B: frame %d, %v; want a HELLO_ACK", f.Type, err)
		}
	})
	t.Run("sender checks the receiver", func(t *testing.T) {
		g := newTestGroupSized(t, 64<<20)
		g.start("QM1")
		g.mqsc("DEFINE QLOCAL(XQ) USAGE(XMITQ) MAXDEPTH(999999999)")
		g.mqsc("DEFINE QREMOTE(RQ) RNAME(TARGET) RQMNAME(RQM) XMITQ(XQ)")
		// The receiver's certificate is CN=RQM: a sender expecting
		// another partner refuses it and moves nothing.
		g.mqsc(fmt.Sprintf("DEFINE CHANNEL(TO.R) CHLTYPE(SDR) CONNAME('127.0.0.1(%d)') XMITQ(XQ) SHORTTMR(1) %s SSLPEER('CN=NOTRQM')", r.port, pki.files("qm1")))
		putSeq(t, g, "QM1", 20)
		g.mqsc("START CHANNEL(TO.R)")
		waitFor(t, "the sender refusing the receiver", 30*time.Second, func() bool {
			return logsContain(g, "channel failed", "does not match SSLPEER(CN=NOTRQM)")
		})
		if d := r.depth("TARGET"); d != 0 {
			t.Fatalf("%d messages went to a receiver whose certificate does not match the sender's SSLPEER", d)
		}
		g.mqsc("STOP CHANNEL(TO.R)")
		waitFor(t, "the channel stopped", 30*time.Second, func() bool { st, _ := g.chStatus("TO.R"); return st.State == channel.Stopped })
		g.mqsc("ALTER CHANNEL(TO.R) CHLTYPE(SDR) SSLPEER('CN=RQM,O=Example')")
		g.mqsc("START CHANNEL(TO.R)")
		waitFor(t, "the messages over TLS", 30*time.Second, func() bool { return r.depth("TARGET") == 20 })
		checkSeq(t, r, 20)
	})
}
