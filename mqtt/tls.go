package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// validateTLS checks the tls section of listener l (at is its path): present
// exactly for tls and wss, its files loadable, its choices known.
func (l ListenerConfig) validateTLS(errs *yamlconf.List, at yamlconf.Path) {
	needs := l.Type == TypeTLS || l.Type == TypeWSS
	switch {
	case l.TLS == nil && needs:
		errs.Add(at.Key("tls"), "is required for a %s listener (cert_file and key_file)", l.Type)
		return
	case l.TLS == nil:
		return
	case !needs && (l.Type == TypeTCP || l.Type == TypeWebsocket):
		secure := map[string]string{TypeTCP: TypeTLS, TypeWebsocket: TypeWSS}[l.Type]
		errs.Add(at.Key("tls"), "is only for tls and wss listeners; use type: %s for TLS", secure)
		return
	case !needs:
		return // unknown type, reported already
	}
	at = at.Key("tls")
	t := l.TLS
	if t.CertFile == "" && t.KeyFile == "" {
		errs.Add(at.Key("cert_file"), "must not be empty (the server certificate, PEM)")
	} else {
		errs.Nest(at, certfile.Check(t.CertFile, t.KeyFile))
	}
	if t.ClientCAFile == "" {
		if t.ClientCerts != "" {
			errs.Add(at.Key("client_certs"), "needs client_ca_file (the CA that signs device certificates)")
		}
		if t.Identity != "" {
			errs.Add(at.Key("identity"), "needs client_ca_file (the CA that signs device certificates)")
		}
		return
	}
	if _, err := certfile.LoadCAs(t.ClientCAFile); err != nil {
		errs.Add(at.Key("client_ca_file"), "%v", err)
	}
	switch t.ClientCerts {
	case "", ClientCertsRequire, ClientCertsOptional:
	default:
		errs.Add(at.Key("client_certs"), "%q is not supported (require or optional)", t.ClientCerts)
	}
	switch t.Identity {
	case "", IdentityCN, IdentitySANDNS, IdentitySANEmail, IdentitySANURI:
	default:
		errs.Add(at.Key("identity"), "%q is not supported (cn, san_dns, san_email or san_uri)", t.Identity)
	}
}

// serverTLS is what a tls or wss listener serves with: its certificate
// pair, kept current with its files (certfile: checked at a handshake at
// most every certfile.Recheck, a pair that does not load keeps the
// previous one), and, with client_ca_file (read at start), the devices'
// CAs.
func serverTLS(id string, t TLSConfig, log *slog.Logger) (*tls.Config, *certfile.Pair, error) {
	pair, err := certfile.Open(t.CertFile, t.KeyFile, log.With("listener", id))
	if err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: pair.GetCertificate}
	if t.ClientCAFile == "" {
		return cfg, pair, nil
	}
	if cfg.ClientCAs, err = certfile.LoadCAs(t.ClientCAFile); err != nil {
		return nil, nil, yamlconf.Errorf(yamlconf.Key("client_ca_file"), "%v", err)
	}
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if t.ClientCerts == ClientCertsOptional {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, pair, nil
}

// certExpiry is when the certificate pair serves expires (zero if
// unknown).
func certExpiry(pair *certfile.Pair) time.Time {
	c, err := pair.Certificate()
	if err != nil || c.Leaf == nil {
		return time.Time{}
	}
	return c.Leaf.NotAfter
}

// VerifiesClients reports whether the listener authenticates devices by
// their certificate: a tls or wss listener with a client_ca_file.
func (l ListenerConfig) VerifiesClients() bool {
	return (l.Type == TypeTLS || l.Type == TypeWSS) && l.TLS != nil && l.TLS.ClientCAFile != ""
}

// ResolveFiles makes every relative file path of c's listeners relative
// to dir (the configuration file's directory). The gateway calls it after
// decoding, before validating.
func (c *Config) ResolveFiles(dir string) {
	for i := range c.Listeners {
		t := c.Listeners[i].TLS
		if t == nil {
			continue
		}
		r := *t // the decoded struct may be shared with a caller's copy
		for _, p := range []*string{&r.CertFile, &r.KeyFile, &r.ClientCAFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		c.Listeners[i].TLS = &r
	}
}

// certIdentity returns the identity of cl's verified client certificate,
// taken from the field its listener's tls.identity names, and the
// certificate itself (the leaf of the verified chain). It returns "", nil
// for a client without a verified certificate (plain TCP or websocket, no
// client_ca_file, client_certs: optional and none presented) and for
// Broker.Publish's inline client; the identity is "" when the certificate
// lacks the named field. Safe once the client's CONNECT was read (its TLS
// handshake is complete by then).
func (b *Broker) certIdentity(cl *mochi.Client) (identity string, cert *x509.Certificate) {
	if cl == nil || cl.Net.Inline {
		return "", nil
	}
	cc, ok := cl.Net.Conn.(*clientConn)
	if !ok || cc.peer == nil {
		return "", nil
	}
	return certName(cc.peer, cc.identity), cc.peer
}

// certName reads identity field from cert.
func certName(cert *x509.Certificate, field string) string {
	switch field {
	case IdentitySANDNS:
		if len(cert.DNSNames) > 0 {
			return cert.DNSNames[0]
		}
	case IdentitySANEmail:
		if len(cert.EmailAddresses) > 0 {
			return cert.EmailAddresses[0]
		}
	case IdentitySANURI:
		if len(cert.URIs) > 0 {
			return cert.URIs[0].String()
		}
	default:
		return cert.Subject.CommonName
	}
	return ""
}

// verifiedLeaf returns the leaf of the first verified chain of a completed
// handshake, or nil when the peer presented no certificate that verified.
func verifiedLeaf(st tls.ConnectionState) *x509.Certificate {
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return nil
	}
	return st.VerifiedChains[0][0]
}
