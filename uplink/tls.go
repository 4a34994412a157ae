package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// tlsKey is the path of the tls section in a sender's section.
var tlsKey = yamlconf.Key("tls")

// loadCAFile reads a PEM bundle of CA certificates.
func loadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificates found", path)
	}
	return pool, nil
}

// loadKeyPair loads a client certificate and key. Its errors are
// *yamlconf.Error with the field's path from the sender's section
// (tls.cert_file or tls.key_file), and never hold key material.
func loadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, yamlconf.Errorf(tlsKey.Key("cert_file"), "%v", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, yamlconf.Errorf(tlsKey.Key("key_file"), "%v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, yamlconf.Errorf(tlsKey.Key("key_file"), "not a key for tls.cert_file (%s, %s): %v", certFile, keyFile, err)
	}
	return cert, nil
}

// buildTLSConfig returns the client TLS configuration for t, or nil when t
// is empty. The client certificate is reloaded when its files change
// (checked at most every secretRecheck, during handshakes).
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
		pool, err := loadCAFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		r, err := newCertReloader(t.CertFile, t.KeyFile, log)
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = r.get
	}
	return c, nil
}

// certReloader serves a client certificate and reloads it when either file
// changes. A broken new pair is ignored (with one warning) in favour of the
// last good one.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    tls.Certificate
	stamp   [2]time.Time
	checked time.Time
	failing bool
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := r.stat()
	if err != nil {
		return nil, err
	}
	if r.cert, err = loadKeyPair(certFile, keyFile); err != nil {
		return nil, err
	}
	r.stamp, r.checked = stamp, time.Now()
	return r, nil
}

func (r *certReloader) stat() ([2]time.Time, error) {
	var s [2]time.Time
	for i, p := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(p)
		if err != nil {
			return s, fmt.Errorf("tls.%s: %w", [2]string{"cert_file", "key_file"}[i], err)
		}
		s[i] = st.ModTime()
	}
	return s, nil
}

func (r *certReloader) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.checked) >= secretRecheck {
		r.checked = time.Now()
		stamp, err := r.stat()
		if err == nil && stamp != r.stamp {
			var cert tls.Certificate
			if cert, err = loadKeyPair(r.certFile, r.keyFile); err == nil {
				r.cert, r.stamp = cert, stamp
				r.log.Info("client certificate changed: using the new one", "cert_file", r.certFile)
			}
		}
		switch {
		case err != nil && !r.failing:
			r.failing = true
			r.log.Warn("client certificate unusable: keeping the previous one", "err", err)
		case err == nil:
			r.failing = false
		}
	}
	if r.cert.Certificate == nil {
		return nil, errors.New("no client certificate")
	}
	c := r.cert // a copy: the field changes on reload
	return &c, nil
}
