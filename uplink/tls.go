package uplink

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// tlsKey is the path of the tls section in a sender's section.
var tlsKey = yamlconf.Key("tls")

// buildTLSConfig returns the client TLS configuration for t, or nil when t
// is empty. The client certificate is reloaded when its files change
// (checked at most every certfile.Recheck, during handshakes).
func buildTLSConfig(t TLSConfig, log *slog.Logger) (*tls.Config, error) {
	if t.isZero() {
		return nil, nil
	}
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // the user asked for it
	}
	if t.CAFile != "" {
		pool, err := certfile.LoadCAs(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		p, err := certfile.Open(t.CertFile, t.KeyFile, log)
		if err != nil {
			return nil, yamlconf.Nest(tlsKey, err)
		}
		c.GetClientCertificate = p.GetClientCertificate
	}
	return c, nil
}
