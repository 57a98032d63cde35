package channel

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"testing"

	"github.com/qmgr/qmgr/defs"
)

const testKey = "0123456789abcdef-secret"

func testCtx() AuthContext {
	return AuthContext{Channel: "TO.R", SenderQMgr: "QM1", SenderGroup: "QSG1", RecvQMgr: "RQM", SenderNonce: Nonce{1}, RecvNonce: Nonce{2}}
}

// TestProofBinding: a proof depends on the secret, the role and every
// field of the context; the sender's is not the receiver's.
func TestProofBinding(t *testing.T) {
	base := MakeProof(testKey, RoleSender, testCtx())
	if base != MakeProof(testKey, RoleSender, testCtx()) {
		t.Fatal("a proof is not a function of its inputs")
	}
	if !checkProof(testKey, RoleSender, testCtx(), base) {
		t.Fatal("the right proof refused")
	}
	changes := map[string]func(c *AuthContext){
		"channel":        func(c *AuthContext) { c.Channel = "TO.S" },
		"sender qmgr":    func(c *AuthContext) { c.SenderQMgr = "QM2" },
		"sender group":   func(c *AuthContext) { c.SenderGroup = "QSG2" },
		"receiver qmgr":  func(c *AuthContext) { c.RecvQMgr = "RQM2" },
		"sender nonce":   func(c *AuthContext) { c.SenderNonce[31] = 1 },
		"receiver nonce": func(c *AuthContext) { c.RecvNonce[31] = 1 },
		"names run on":   func(c *AuthContext) { c.Channel, c.SenderQMgr = "TO.RQ", "M1" },
		"names swapped":  func(c *AuthContext) { c.SenderQMgr, c.RecvQMgr = c.RecvQMgr, c.SenderQMgr },
		"nonces swapped": func(c *AuthContext) { c.SenderNonce, c.RecvNonce = c.RecvNonce, c.SenderNonce },
	}
	for what, f := range changes {
		c := testCtx()
		f(&c)
		if checkProof(testKey, RoleSender, c, base) {
			t.Errorf("a proof holds with the %s changed", what)
		}
	}
	if checkProof(testKey, RoleReceiver, testCtx(), base) {
		t.Error("the sender's proof passes for the receiver's")
	}
	if checkProof("another-secret-0123456", RoleSender, testCtx(), base) {
		t.Error("a proof holds for another secret")
	}
	n1, _ := NewNonce()
	n2, _ := NewNonce()
	if n1 == n2 || n1 == (Nonce{}) {
		t.Error("nonces are not fresh")
	}
}

func TestServerName(t *testing.T) {
	for _, ch := range []string{"TO.R", "a/b%c_D", "X"} {
		if got := sniChannel(ServerName(ch)); got != ch {
			t.Errorf("%q: server name %q names %q", ch, ServerName(ch), got)
		}
	}
	for _, bad := range []string{"", "127.0.0.1", "zz.chl.qmgr", "544f2e52", hexOf("a b") + sniSuffix} {
		if got := sniChannel(bad); got != "" {
			t.Errorf("%q names channel %q", bad, got)
		}
	}
}

func hexOf(s string) string { return strings.TrimSuffix(ServerName(s), sniSuffix) }

// TestCheckPartner: every requirement of a receiver channel on its
// partner, and that nothing but the right combination passes.
func TestCheckPartner(t *testing.T) {
	ctx := testCtx()
	h := Hello{Channel: "TO.R", QMgr: "QM1", Group: "QSG1"}
	good := Auth{HasProof: true, Proof: MakeProof(testKey, RoleSender, ctx)}
	keyed := defs.DefaultChannel("TO.R", defs.ChlReceiver)
	keyed.AuthKey = testKey
	open := defs.DefaultChannel("TO.R", defs.ChlReceiver)
	open.Auth = defs.AuthOptional
	bare := defs.DefaultChannel("TO.R", defs.ChlReceiver) // from before AUTH: nothing configured
	sender := defs.DefaultChannel("TO.R", defs.ChlSender)
	withRQM := keyed
	withRQM.RQMName = "QM9"
	withGroup := keyed
	withGroup.RQMName = "QSG1"
	tlsDef := defs.DefaultChannel("TO.R", defs.ChlReceiver)
	tlsDef.SSLCert, tlsDef.SSLKey, tlsDef.SSLCA, tlsDef.SSLPeer = "c", "k", "ca", "CN=QM1"
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "QM1"}}
	other := &x509.Certificate{Subject: pkix.Name{CommonName: "QM2"}}
	state := func(sni string, c *x509.Certificate) *tls.ConnectionState {
		st := &tls.ConnectionState{ServerName: ServerName(sni)}
		if c != nil {
			st.VerifiedChains = [][]*x509.Certificate{{c}}
		}
		return st
	}
	for _, c := range []struct {
		what string
		def  defs.Channel
		ok   bool
		a    Auth
		tls  *tls.ConnectionState
		pass bool
	}{
		{"secret", keyed, true, good, nil, true},
		{"unknown channel", keyed, false, good, nil, false},
		{"a sender channel", sender, true, good, nil, false},
		{"no proof", keyed, true, Auth{}, nil, false},
		{"wrong proof", keyed, true, Auth{HasProof: true, Proof: Proof{1}}, nil, false},
		{"a proof, no AUTHKEY", open, true, good, nil, false},
		{"AUTH(OPTIONAL) without a proof", open, true, Auth{}, nil, true},
		{"nothing configured", bare, true, Auth{}, nil, false},
		{"RQMNAME another", withRQM, true, good, nil, false},
		{"RQMNAME the group", withGroup, true, good, nil, true},
		{"TLS to a plain channel", keyed, true, good, state("TO.R", cert), false},
		{"plain to a TLS channel", tlsDef, true, Auth{}, nil, false},
		{"TLS, SSLPEER matched", tlsDef, true, Auth{}, state("TO.R", cert), true},
		{"TLS, SSLPEER not matched", tlsDef, true, Auth{}, state("TO.R", other), false},
		{"TLS, no certificate", tlsDef, true, Auth{}, state("TO.R", nil), false},
		{"TLS for another channel", tlsDef, true, Auth{}, state("TO.B", cert), false},
	} {
		err := checkPartner(c.def, c.ok, h, c.a, ctx, c.tls)
		if (err == nil) != c.pass {
			t.Errorf("%s: %v, want pass %v", c.what, err, c.pass)
		}
		if err != nil && !errors.Is(err, errNotAuthorized) {
			t.Errorf("%s: %v is not errNotAuthorized", c.what, err)
		}
	}
}

// authSamples are valid payloads of the authentication exchange.
func authSamples() [][]byte {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Hello(Hello{Channel: "TO.R", QMgr: "QM1", Group: "QSG1", BatchSz: 50, MaxMsgL: 1 << 20, HBInt: 300, MinVer: 2, MaxVer: 2, Nonce: Nonce{7, 7}})
	w.Challenge(Challenge{QMgr: "RQM", Nonce: Nonce{9}})
	w.Auth(Auth{HasProof: true, Proof: MakeProof(testKey, RoleSender, testCtx())})
	w.Auth(Auth{})
	w.HelloAck(HelloAck{QMgr: "RQM", BatchSz: 50, MaxMsgL: 1 << 20, HBInt: 300, Version: 2, LastBatch: 6, HasProof: true, Proof: Proof{3}})
	w.HelloAck(HelloAck{QMgr: "RQM", BatchSz: 50, MaxMsgL: 1 << 20, HBInt: 300, Version: 2})
	w.Flush()
	r := NewReader(bytes.NewReader(b.Bytes()), 1<<20)
	var out [][]byte
	for {
		f, err := r.Read()
		if err != nil {
			return out
		}
		out = append(out, append([]byte{f.Type}, f.Payload...))
	}
}

func TestAuthFramesRoundTrip(t *testing.T) {
	s := authSamples()
	if len(s) != 6 {
		t.Fatalf("%d sample frames", len(s))
	}
	h, err := DecodeHello(s[0][1:])
	if err != nil || h.Nonce != (Nonce{7, 7}) {
		t.Fatalf("hello %+v %v", h, err)
	}
	c, err := DecodeChallenge(s[1][1:])
	if err != nil || c.QMgr != "RQM" || c.Nonce != (Nonce{9}) {
		t.Fatalf("challenge %+v %v", c, err)
	}
	if a, err := DecodeAuth(s[2][1:]); err != nil || !a.HasProof || a.Proof != MakeProof(testKey, RoleSender, testCtx()) {
		t.Fatalf("auth %+v %v", a, err)
	}
	if a, err := DecodeAuth(s[3][1:]); err != nil || a.HasProof {
		t.Fatalf("empty auth %+v %v", a, err)
	}
	if a, err := DecodeHelloAck(s[4][1:]); err != nil || !a.HasProof || a.Proof != (Proof{3}) || a.LastBatch != 6 {
		t.Fatalf("ack %+v %v", a, err)
	}
	bad := append([]byte(nil), s[3][1:]...)
	bad[20] = 1 // proof bytes without the flag
	if _, err := DecodeAuth(bad); !errors.Is(err, ErrProtocol) {
		t.Fatalf("AUTH with stray proof bytes: %v", err)
	}
}

// FuzzAuthExchange feeds arbitrary payloads to the decoders of the
// authentication exchange (HELLO, CHALLENGE, AUTH, HELLO_ACK): malformed
// input is an error, never a panic; what decodes encodes back to the
// same bytes; and a decoded AUTH passes checkPartner only with the
// proof of the channel's secret.
func FuzzAuthExchange(f *testing.F) {
	for _, s := range authSamples() {
		f.Add(s)
	}
	f.Add([]byte{FrameAuth, 2})
	f.Add(append([]byte{FrameChallenge}, make([]byte, challengeSize)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		p := b[1:]
		var out bytes.Buffer
		w := NewWriter(&out)
		switch b[0] % 4 {
		case 0:
			h, err := DecodeHello(p)
			if err != nil {
				return
			}
			w.Hello(h)
		case 1:
			c, err := DecodeChallenge(p)
			if err != nil {
				return
			}
			w.Challenge(c)
		case 2:
			a, err := DecodeAuth(p)
			if err != nil {
				return
			}
			w.Auth(a)
			def := defs.DefaultChannel("TO.R", defs.ChlReceiver)
			def.AuthKey = testKey
			err = checkPartner(def, true, Hello{Channel: "TO.R", QMgr: "QM1", Group: "QSG1"}, a, testCtx(), nil)
			if want := a.HasProof && a.Proof == MakeProof(testKey, RoleSender, testCtx()); (err == nil) != want {
				t.Fatalf("checkPartner(%+v) = %v", a, err)
			}
		case 3:
			a, err := DecodeHelloAck(p)
			if err != nil {
				return
			}
			w.HelloAck(a)
		}
		w.Flush()
		if got := out.Bytes()[frameHdrSize:]; !bytes.Equal(got, p) {
			t.Fatalf("decoded and encoded again:\n%x\nwas\n%x", got, p)
		}
	})
}
