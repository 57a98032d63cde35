package channel

import (
	"crypto/tls"
	"crypto/x509"
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
