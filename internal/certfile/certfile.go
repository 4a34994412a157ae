package certfile

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

// Recheck is how often a Pair looks at its files' modification times and
// sizes at most.
const Recheck = 5 * time.Second

// Load reads a PEM certificate (chain) and its private key. Its errors are
// *yamlconf.Error at cert_file or key_file, relative to the tls section,
// and never hold key material.
func Load(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, yamlconf.Errorf(yamlconf.Key("cert_file"), "%v", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, yamlconf.Errorf(yamlconf.Key("key_file"), "%v", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, yamlconf.Errorf(yamlconf.Key("key_file"), "not a key for tls.cert_file (%s, %s): %v", certFile, keyFile, err)
	}
	return cert, nil
}

// Check checks the cert_file and key_file settings of a tls section: both
// or neither set, and a pair that loads. Its errors are Load's, or a
// missing half at its own path.
func Check(certFile, keyFile string) error {
	switch {
	case certFile != "" && keyFile == "":
		return yamlconf.Errorf(yamlconf.Key("key_file"), "is required with tls.cert_file")
	case certFile == "" && keyFile != "":
		return yamlconf.Errorf(yamlconf.Key("cert_file"), "is required with tls.key_file")
	case certFile != "":
		_, err := Load(certFile, keyFile)
		return err
	}
	return nil
}

// Pair is a certificate and key kept current with their files.
type Pair struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    tls.Certificate
	stamp   [2]stamp
	checked time.Time
	failing bool
}

// stamp is what tells a changed file: modification time and size.
type stamp struct {
	mod  time.Time
	size int64
}

// Open loads the pair (see Load) and keeps it current. log receives one
// line when a new pair is taken, and one warning when the files become
// unusable.
func Open(certFile, keyFile string, log *slog.Logger) (*Pair, error) {
	p := &Pair{certFile: certFile, keyFile: keyFile, log: log}
	st, err := p.stat()
	if err != nil {
		return nil, err
	}
	if p.cert, err = Load(certFile, keyFile); err != nil {
		return nil, err
	}
	p.stamp, p.checked = st, time.Now()
	return p, nil
}

func (p *Pair) stat() ([2]stamp, error) {
	var s [2]stamp
	for i, f := range [2]string{p.certFile, p.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return s, yamlconf.Errorf(yamlconf.Key([2]string{"cert_file", "key_file"}[i]), "%v", err)
		}
		s[i] = stamp{fi.ModTime(), fi.Size()}
	}
	return s, nil
}

// Certificate returns the current pair, reloading it first when the files
// changed since the last check (at most every Recheck).
func (p *Pair) Certificate() (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checked) >= Recheck {
		p.reload()
	}
	if p.cert.Certificate == nil {
		return nil, errors.New("no certificate")
	}
	c := p.cert // a copy: the field changes on reload
	return &c, nil
}

// reload takes the files' pair when they changed; p.mu is held.
func (p *Pair) reload() {
	p.checked = time.Now()
	st, err := p.stat()
	if err == nil && st != p.stamp {
		var cert tls.Certificate
		if cert, err = Load(p.certFile, p.keyFile); err == nil {
			p.cert, p.stamp = cert, st
			p.log.Info("certificate changed: using the new one", "cert_file", p.certFile)
		}
	}
	switch {
	case err != nil && !p.failing:
		p.failing = true
		p.log.Warn("certificate unusable: keeping the previous one", "cert_file", p.certFile, "err", err)
	case err == nil:
		p.failing = false
	}
}

// GetCertificate serves the pair as a server's certificate
// (tls.Config.GetCertificate).
func (p *Pair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return p.Certificate()
}

// GetClientCertificate presents the pair as a client certificate
// (tls.Config.GetClientCertificate).
func (p *Pair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return p.Certificate()
}

// LoadCAs reads a PEM bundle of CA certificates (a ca_file or
// client_ca_file) into a pool; a file without a certificate is an error.
func LoadCAs(path string) (*x509.CertPool, error) {
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
