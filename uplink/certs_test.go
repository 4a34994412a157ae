package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, all generated for one test and written as PEM files.
type testPKI struct {
	dir                 string
	caFile              string
	caPool              *x509.CertPool
	serverCert          tls.Certificate
	clientCertFile      string
	clientKeyFile       string
	otherCAFile         string // a CA that signed nothing we use
	otherClientCertFile string // a client cert from otherCA
	otherClientKeyFile  string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	caCert, caKey := makeCA(t, "edgegate test CA")
	p.caFile = writePEM(t, p.dir, "ca.pem", "CERTIFICATE", caCert.Raw)
	p.caPool = x509.NewCertPool()
	p.caPool.AddCert(caCert)

	srvDER, srvKey := makeLeaf(t, caCert, caKey, "receiver", x509.ExtKeyUsageServerAuth)
	p.serverCert = tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}

	cliDER, cliKey := makeLeaf(t, caCert, caKey, "gateway-1", x509.ExtKeyUsageClientAuth)
	p.clientCertFile = writePEM(t, p.dir, "client.pem", "CERTIFICATE", cliDER)
	p.clientKeyFile = writeKey(t, p.dir, "client-key.pem", cliKey)

	otherCA, otherKey := makeCA(t, "other CA")
	p.otherCAFile = writePEM(t, p.dir, "other-ca.pem", "CERTIFICATE", otherCA.Raw)
	oDER, oKey := makeLeaf(t, otherCA, otherKey, "intruder", x509.ExtKeyUsageClientAuth)
	p.otherClientCertFile = writePEM(t, p.dir, "other-client.pem", "CERTIFICATE", oDER)
	p.otherClientKeyFile = writeKey(t, p.dir, "other-client-key.pem", oKey)
	return p
}

// serverTLS returns a server config; with mTLS it requires and verifies a
// client certificate signed by the test CA.
func (p *testPKI) serverTLS(mTLS bool) *tls.Config {
	c := &tls.Config{Certificates: []tls.Certificate{p.serverCert}, MinVersion: tls.VersionTLS12}
	if mTLS {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.caPool
	}
	return c
}

func makeCA(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	der, key := issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func makeLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	return issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost", "receiver.test"},
	}, ca, caKey)
}

// issue makes a P-256 key and a certificate for it from tmpl, valid from an
// hour ago for a day, signed by parent (self-signed when parent is nil).
func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeKey(t testing.TB, dir, name string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name, "EC PRIVATE KEY", der)
}
