package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// maxPEMBytes bounds a certificate, key or CA file.
const maxPEMBytes = 1 << 20

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
	_, err := t.load()
	var fe *fileError
	if errors.As(err, &fe) {
		errs.Add(at.Key(fe.key), "%v", fe.err)
	} else if err != nil {
		errs.Add(at, "%v", err)
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

// fileError is a problem with one of TLSConfig's files; key is its YAML
// key.
type fileError struct {
	key string
	err error
}

func (e *fileError) Error() string { return e.key + ": " + e.err.Error() }
func (e *fileError) Unwrap() error { return e.err }

// load reads t's files and builds the server side of a TLS configuration.
// Errors are *fileError naming the key of the file at fault.
func (t *TLSConfig) load() (*tls.Config, error) {
	if t.CertFile == "" {
		return nil, &fileError{"cert_file", errors.New("must not be empty (the server certificate, PEM)")}
	}
	if t.KeyFile == "" {
		return nil, &fileError{"key_file", errors.New("must not be empty (the server certificate's private key, PEM)")}
	}
	certPEM, err := readPEM(t.CertFile)
	if err != nil {
		return nil, &fileError{"cert_file", err}
	}
	if b, _ := pem.Decode(certPEM); b == nil || b.Type != "CERTIFICATE" {
		return nil, &fileError{"cert_file", fmt.Errorf("%s holds no PEM certificate", t.CertFile)}
	}
	keyPEM, err := readPEM(t.KeyFile)
	if err != nil {
		return nil, &fileError{"key_file", err}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, &fileError{"key_file", fmt.Errorf("%s does not go with cert_file %s: %w", t.KeyFile, t.CertFile, err)}
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if t.ClientCAFile == "" {
		return cfg, nil
	}
	caPEM, err := readPEM(t.ClientCAFile)
	if err != nil {
		return nil, &fileError{"client_ca_file", err}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, &fileError{"client_ca_file", fmt.Errorf("%s holds no PEM certificate", t.ClientCAFile)}
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	if t.ClientCerts == ClientCertsOptional {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// readPEM reads a regular file of at most maxPEMBytes.
func readPEM(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > maxPEMBytes {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxPEMBytes>>10)
	}
	return os.ReadFile(path)
}

// files lists t's files (the CA file only when set).
func (t *TLSConfig) files() []string {
	f := []string{t.CertFile, t.KeyFile}
	if t.ClientCAFile != "" {
		f = append(f, t.ClientCAFile)
	}
	return f
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

// fileStamp is what tells a changed file: modification time and size.
type fileStamp struct {
	mod  time.Time
	size int64
	err  bool // could not stat
}

func stampOf(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{err: true}
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}
}

// certSource serves a listener's TLS configuration and reloads it when
// one of its files changes. It is consulted at every handshake
// (GetConfigForClient): a stat of two or three files, then the cached
// configuration. Safe for concurrent use.
type certSource struct {
	listener string
	cfg      TLSConfig
	reloaded func(listener string, err error) // after a reload attempt; may be nil

	mu     sync.Mutex
	stamps []fileStamp // of the files as of the current or last tried load
	cur    *tls.Config
}

// newCertSource loads the files once; an error names the file's key.
func newCertSource(listener string, cfg TLSConfig, reloaded func(string, error)) (*certSource, error) {
	s := &certSource{listener: listener, cfg: cfg, reloaded: reloaded}
	s.stamps = s.stampFiles()
	c, err := cfg.load()
	if err != nil {
		return nil, err
	}
	s.cur = c
	return s, nil
}

func (s *certSource) stampFiles() []fileStamp {
	files := s.cfg.files()
	st := make([]fileStamp, len(files))
	for i, f := range files {
		st[i] = stampOf(f)
	}
	return st
}

// config returns the TLS configuration for the next handshake, reloading
// first if a file changed since the last attempt. A change that does not
// load keeps the previous configuration; it is tried again when a file
// changes again (a certificate and its key are seldom written at once).
func (s *certSource) config() *tls.Config {
	st := s.stampFiles()
	s.mu.Lock()
	if equalStamps(st, s.stamps) {
		defer s.mu.Unlock()
		return s.cur
	}
	s.stamps = st
	c, err := s.cfg.load()
	if err == nil {
		s.cur = c
	}
	cur := s.cur
	s.mu.Unlock()
	if s.reloaded != nil {
		s.reloaded(s.listener, err)
	}
	return cur
}

// notAfter is the expiry of the certificate in use.
func (s *certSource) notAfter() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if leaf := s.cur.Certificates[0].Leaf; leaf != nil {
		return leaf.NotAfter
	}
	return time.Time{}
}

func equalStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size || a[i].err != b[i].err {
			return false
		}
	}
	return true
}

// serverConfig is the tls.Config a listener serves with: every handshake
// asks s for the current certificates.
func (s *certSource) serverConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.config(), nil
		},
	}
}

// certReloaded logs and counts a reload attempt of listener's files.
func (b *Broker) certReloaded(listener string, err error) {
	if err != nil {
		b.m.tlsReloadFailed.Inc()
		b.log.Warn("tls files changed but do not load: keeping the previous certificate", "listener", listener, "err", err)
		return
	}
	b.m.tlsReloadOK.Inc()
	b.log.Info("tls certificate reloaded", "listener", listener, "not_after", b.certs[listener].notAfter())
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
