package channel

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/qmgr/qmgr/defs"
)

// tlsConfig builds the TLS configuration of a channel: its certificate and
// key (SSLCERT, SSLKEY) and the CA its partner's certificate must chain to
// (SSLCA; without it the system roots). A receiver with SSLCA requires a
// client certificate.
func tlsConfig(def defs.Channel, server bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(def.SSLCert, def.SSLKey)
	if err != nil {
		return nil, fmt.Errorf("channel %s: TLS certificate: %w", def.Name, err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if def.SSLCA != "" {
		pem, err := os.ReadFile(def.SSLCA)
		if err != nil {
			return nil, fmt.Errorf("channel %s: TLS CA: %w", def.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("channel %s: TLS CA %s holds no certificate", def.Name, def.SSLCA)
		}
		if server {
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		} else {
			cfg.RootCAs = pool
		}
	}
	return cfg, nil
}

// clientTLS is the TLS configuration of sender channel def dialling host:
// the channel's name goes in the server name (SNI: ServerName), so that the
// receiver takes the configuration of that channel; the receiver's
// certificate must chain to SSLCA (or the system roots) and match SSLPEER,
// or, without SSLPEER, name host.
func clientTLS(def defs.Channel, host string) (*tls.Config, error) {
	cfg, err := tlsConfig(def, false)
	if err != nil {
		return nil, err
	}
	roots := cfg.RootCAs
	cfg.ServerName = ServerName(def.Name)
	// The server name is the channel's, not the host's: the chain and
	// the name are checked here instead.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("the partner sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		if def.SSLPeer == "" {
			opts.DNSName = host
		}
		chains, err := cs.PeerCertificates[0].Verify(opts)
		if err != nil {
			return fmt.Errorf("channel %s: partner certificate: %w", def.Name, err)
		}
		return peerMatches(def, chains)
	}
	return cfg, nil
}

// serverTLS is the TLS configuration of inbound connections: that of the
// receiver channel the sender names in the server name (SNI), so that each
// channel's certificate, CA and client certificate requirement apply to
// it alone. A client naming no receiver channel with TLS fails the
// handshake; after it, the HELLO must name the same channel
// (receiver.authenticate).
func (ci *Chinit) serverTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
		name := sniChannel(hi.ServerName)
		if name == "" {
			return nil, fmt.Errorf("%w: TLS server name %q names no channel", errNotAuthorized, hi.ServerName)
		}
		if err := ci.refreshDefs(); err != nil {
			return nil, err
		}
		def, ok := ci.channelDef(name)
		if !ok || def.Type != defs.ChlReceiver || def.SSLCert == "" {
			return nil, fmt.Errorf("%w: TLS for %s, not a receiver channel with SSLCERT", errNotAuthorized, name)
		}
		return tlsConfig(def, true)
	}}
}
