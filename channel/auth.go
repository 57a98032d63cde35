package channel

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/qmgr/qmgr/defs"
	"github.com/qmgr/qmgr/group"
)

// Partner authentication (protocol version 2).
//
// The sender's HELLO carries a fresh nonce (cn); the receiver answers with
// a CHALLENGE, its queue manager's name and a fresh nonce of its own (sn);
// the sender answers with AUTH, its proof; the receiver checks it, and
// everything else the channel requires of its partner (see
// receiver.authenticate), before it touches the channel's status entry or
// a queue, and answers with HELLO_ACK carrying its own proof, which the
// sender checks before it resolves anything. A proof is
//
//	HMAC-SHA256(AUTHKEY, "qmgr channel auth v2" | role | channel | sending
//	            queue manager | sending group | receiving queue manager |
//	            cn | sn)
//
// names NUL padded to 48 bytes, role 'S' for the sender's proof and 'R'
// for the receiver's: neither side's proof is the other's, and each is
// bound to both nonces, so a proof seen once is worth nothing later.
// Proofs are compared in constant time (hmac.Equal).

// proofLabel begins every proof's message (domain separation).
const proofLabel = "qmgr channel auth v2"

// Proof roles.
const (
	RoleSender   byte = 'S'
	RoleReceiver byte = 'R'
)

// AuthContext is what a proof is bound to.
type AuthContext struct {
	Channel     string
	SenderQMgr  string
	SenderGroup string
	RecvQMgr    string
	SenderNonce Nonce
	RecvNonce   Nonce
}

// MakeProof is the proof of role (RoleSender or RoleReceiver) for secret
// key in context c.
func MakeProof(key string, role byte, c AuthContext) Proof {
	m := hmac.New(sha256.New, []byte(key))
	var name [48]byte
	m.Write([]byte(proofLabel))
	m.Write([]byte{0, role})
	for _, s := range []string{c.Channel, c.SenderQMgr, c.SenderGroup, c.RecvQMgr} {
		clear(name[:])
		copy(name[:], s)
		m.Write(name[:])
	}
	m.Write(c.SenderNonce[:])
	m.Write(c.RecvNonce[:])
	var p Proof
	m.Sum(p[:0])
	return p
}

// checkProof reports whether got is role's proof of key in c, in
// constant time.
func checkProof(key string, role byte, c AuthContext, got Proof) bool {
	want := MakeProof(key, role, c)
	return hmac.Equal(want[:], got[:])
}

// NewNonce is a fresh random nonce.
func NewNonce() (Nonce, error) {
	var n Nonce
	if _, err := rand.Read(n[:]); err != nil {
		return n, fmt.Errorf("channel: nonce: %w", err)
	}
	return n, nil
}

// errNotAuthorized is a partner's failure to authenticate; the detail is
// logged on this side only.
var errNotAuthorized = errors.New("channel: partner not authorised")

// sniSuffix ends the TLS server name a sender sends: the channel's name in
// hexadecimal, so that any channel name is a valid host name and keeps its
// case.
const sniSuffix = ".chl.qmgr"

// ServerName is the TLS server name (SNI) a sender sends for channel ch.
func ServerName(ch string) string { return hex.EncodeToString([]byte(ch)) + sniSuffix }

// sniChannel is the channel a TLS server name names ("" when none).
func sniChannel(sni string) string {
	h, ok := strings.CutSuffix(sni, sniSuffix)
	if !ok {
		return ""
	}
	b, err := hex.DecodeString(h)
	if err != nil || !defs.ValidChannelName(string(b)) {
		return ""
	}
	return string(b)
}

// peerMatches checks a partner's verified certificate chain against the
// channel's SSLPEER; an empty SSLPEER matches any.
func peerMatches(def defs.Channel, chains [][]*x509.Certificate) error {
	if def.SSLPeer == "" {
		return nil
	}
	pn, err := defs.ParsePeerName(def.SSLPeer)
	if err != nil {
		return err
	}
	if len(chains) == 0 || len(chains[0]) == 0 {
		return fmt.Errorf("%w: no verified certificate, and SSLPEER is set", errNotAuthorized)
	}
	if subj := chains[0][0].Subject; !pn.Match(subj) {
		return fmt.Errorf("%w: certificate subject %q does not match SSLPEER(%s)", errNotAuthorized, subj.String(), def.SSLPeer)
	}
	return nil
}

// hello reads the partner's HELLO. A partner of protocol version 1 (which
// cannot authenticate) is told so in a CLOSE of its own version.
func (r *receiver) hello() (Hello, error) {
	if hdr, err := r.r.r.Peek(3); err == nil && HeaderVersion(hdr) == 1 {
		why := fmt.Sprintf("protocol version 1 is refused: this queue manager speaks version %d, in which partners authenticate (AUTHKEY or TLS with SSLPEER); upgrade the partner", ProtoVersion)
		r.w.closeV(1, ReasonProtocol, why)
		r.w.Flush()
		r.ci.refuseAuth(r.nc, "", "", "protocol version 1")
		return Hello{}, fmt.Errorf("refused: %s", why)
	}
	f, err := r.r.Read()
	if err != nil {
		return Hello{}, err
	}
	if f.Type != FrameHello {
		r.ci.refuseAuth(r.nc, "", "", fmt.Sprintf("frame %d instead of HELLO", f.Type))
		return Hello{}, r.refuse(ReasonProtocol, "frame %d instead of HELLO", f.Type)
	}
	h, err := DecodeHello(f.Payload)
	if err != nil {
		r.ci.refuseAuth(r.nc, "", "", err.Error())
		return h, r.refuse(ReasonProtocol, "%v", err)
	}
	if h.MinVer > ProtoVersion || h.MaxVer < ProtoVersion {
		r.ci.refuseAuth(r.nc, h.Channel, h.QMgr, fmt.Sprintf("protocol versions %d..%d", h.MinVer, h.MaxVer))
		return h, r.refuse(ReasonProtocol, "protocol versions %d..%d; this side speaks %d", h.MinVer, h.MaxVer, ProtoVersion)
	}
	return h, nil
}

// authenticate challenges the partner that sent HELLO h and checks its
// answer and everything else the channel requires of it (checkPartner).
// A partner that fails is told only "not authorised" (nothing about the
// group or its channels, nor which check failed); the refusal is logged
// here, with the partner's address, and counted. It returns the channel's
// definition and the receiver's proof for the HELLO_ACK (nil: the
// channel has no AUTHKEY).
func (r *receiver) authenticate(h Hello, tlsState *tls.ConnectionState) (defs.Channel, *Proof, error) {
	sn, err := NewNonce()
	if err != nil {
		return defs.Channel{}, nil, r.refuse(ReasonInternal, "internal error")
	}
	r.w.Challenge(Challenge{QMgr: r.ci.cfg.QMgr, Nonce: sn})
	if err := r.w.Flush(); err != nil {
		return defs.Channel{}, nil, err
	}
	f, err := r.r.Read()
	if err != nil {
		return defs.Channel{}, nil, err
	}
	if f.Type != FrameAuth {
		r.ci.refuseAuth(r.nc, h.Channel, h.QMgr, fmt.Sprintf("frame %d instead of AUTH", f.Type))
		return defs.Channel{}, nil, r.refuse(ReasonProtocol, "frame %d instead of AUTH", f.Type)
	}
	a, err := DecodeAuth(f.Payload)
	if err != nil {
		r.ci.refuseAuth(r.nc, h.Channel, h.QMgr, err.Error())
		return defs.Channel{}, nil, r.refuse(ReasonProtocol, "%v", err)
	}
	if err := r.ci.refreshDefs(); err != nil {
		return defs.Channel{}, nil, r.refuse(ReasonInternal, "internal error")
	}
	def, ok := r.ci.channelDef(h.Channel)
	ctx := AuthContext{Channel: h.Channel, SenderQMgr: h.QMgr, SenderGroup: h.Group, RecvQMgr: r.ci.cfg.QMgr, SenderNonce: h.Nonce, RecvNonce: sn}
	if err := checkPartner(def, ok, h, a, ctx, tlsState); err != nil {
		r.ci.refuseAuth(r.nc, h.Channel, h.QMgr, err.Error())
		return def, nil, r.refuse(ReasonNotAuthorized, "not authorised")
	}
	if def.AuthKey == "" {
		return def, nil, nil
	}
	p := MakeProof(def.AuthKey, RoleReceiver, ctx)
	return def, &p, nil
}

// checkPartner checks what a receiver channel requires of the partner
// that sent HELLO h and AUTH a (ok: the channel def is defined), in
// authentication context ctx, on a connection with TLS state tlsState
// (nil: plain):
//   - def is a receiver channel, with TLS (SSLCERT) if and only if the
//     connection is TLS, and the TLS server name (SNI) named it;
//   - with SSLPEER, the partner's certificate subject matches it;
//   - with AUTHKEY, the partner's proof is right; without, it sent none;
//   - with RQMNAME, the partner's queue manager or group is that;
//   - with AUTH(REQUIRED) (the default), one of AUTHKEY or TLS with SSLCA
//     and SSLPEER authenticated the partner.
//
// The error says which failed, for this side's log.
func checkPartner(def defs.Channel, ok bool, h Hello, a Auth, ctx AuthContext, tlsState *tls.ConnectionState) error {
	switch {
	case !ok || def.Type != defs.ChlReceiver:
		return fmt.Errorf("%w: no receiver channel %s", errNotAuthorized, h.Channel)
	case (tlsState != nil) != (def.SSLCert != ""):
		return fmt.Errorf("%w: TLS connection %v, channel with TLS (SSLCERT) %v", errNotAuthorized, tlsState != nil, def.SSLCert != "")
	}
	authenticated := false
	if tlsState != nil {
		if got := sniChannel(tlsState.ServerName); got != h.Channel {
			return fmt.Errorf("%w: TLS was set up for channel %q and the HELLO names %s", errNotAuthorized, got, h.Channel)
		}
		if err := peerMatches(def, tlsState.VerifiedChains); err != nil {
			return err
		}
		authenticated = def.TLSAuthenticates() && len(tlsState.VerifiedChains) > 0
	}
	switch {
	case def.AuthKey != "" && !a.HasProof:
		return fmt.Errorf("%w: the partner proved no secret, and the channel has AUTHKEY", errNotAuthorized)
	case def.AuthKey != "" && !checkProof(def.AuthKey, RoleSender, ctx, a.Proof):
		return fmt.Errorf("%w: wrong proof of the channel's AUTHKEY", errNotAuthorized)
	case def.AuthKey == "" && a.HasProof:
		return fmt.Errorf("%w: the partner has a secret, and the channel has no AUTHKEY", errNotAuthorized)
	case def.AuthKey != "":
		authenticated = true
	}
	if def.RQMName != "" && h.QMgr != def.RQMName && h.Group != def.RQMName {
		return fmt.Errorf("%w: partner queue manager %s of group %s, and the channel has RQMNAME(%s)", errNotAuthorized, h.QMgr, h.Group, def.RQMName)
	}
	if def.AuthRequired() && !authenticated {
		return fmt.Errorf("%w: the channel has AUTH(REQUIRED) and neither AUTHKEY nor TLS with SSLCA and SSLPEER", errNotAuthorized)
	}
	return nil
}

// refuseAuth logs and counts an inbound connection refused before its
// partner authenticated (channel and qmgr as its HELLO says, if it got
// that far): in this process (Refusals) and in the group's counters
// (DISPLAY QMGR INUNAUTH), logged with the peer's address as brokers log
// failed logins, through the listeners' rate limit (refusals.note).
func (ci *Chinit) refuseAuth(nc net.Conn, channel, qmgr, why string) {
	n := ci.refusals.Add(1)
	ci.refused.note(ci, group.CounterInboundUnauth, "inbound channel refused",
		"event", "connection_refused", "listener", "channel", "reason", "unauthenticated", "remote", nc.RemoteAddr().String(), "channel", channel, "partner", qmgr, "why", why, "refused_total", n)
}

// Refusals is the number of inbound connections this channel initiator
// refused before their partner authenticated.
func (ci *Chinit) Refusals() uint64 { return ci.refusals.Load() }

func derefProof(p *Proof) Proof {
	if p == nil {
		return Proof{}
	}
	return *p
}
