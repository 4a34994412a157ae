package certtest

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
	"sync/atomic"
	"testing"
	"time"
)

// CA is a certificate authority for one test.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// File is the CA certificate as a PEM file.
	File string
	// Pool holds the CA certificate alone.
	Pool *x509.CertPool

	t   testing.TB
	dir string
}

// Leaf is a certificate issued by a CA, with its key, in memory and as PEM
// files.
type Leaf struct {
	Cert     *x509.Certificate
	Key      *ecdsa.PrivateKey
	CertFile string // PEM certificate
	KeyFile  string // PEM EC private key
	// TLS is the certificate and key for a tls.Config.
	TLS tls.Certificate
}

var serial atomic.Int64

// NewCA makes a self-signed CA named cn, valid from an hour ago for a day,
// and writes it to <name>.pem in a new temporary directory of t (name: cn
// with spaces as dashes).
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, key := sign(t, tmpl, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca := &CA{Cert: cert, Key: key, Pool: x509.NewCertPool(), t: t, dir: t.TempDir()}
	ca.Pool.AddCert(cert)
	ca.File = WritePEM(t, filepath.Join(ca.dir, fileName(cn)+".pem"), "CERTIFICATE", der)
	return ca
}

// Issue signs a certificate from tmpl (Server or Client, adjusted as the
// test needs) with a new P-256 key, valid from an hour ago for a day, and
// writes it to <name>.pem and <name>-key.pem next to the CA's file.
func (ca *CA) Issue(name string, tmpl *x509.Certificate) *Leaf {
	ca.t.Helper()
	der, key := sign(ca.t, tmpl, ca.Cert, ca.Key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		ca.t.Fatal(err)
	}
	base := filepath.Join(ca.dir, fileName(name))
	l := &Leaf{Cert: cert, Key: key}
	l.CertFile = WritePEM(ca.t, base+".pem", "CERTIFICATE", der)
	l.KeyFile = WriteKey(ca.t, base+"-key.pem", key)
	l.TLS = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}
	return l
}

// Server is a template for a server certificate for 127.0.0.1, ::1,
// localhost and the given extra DNS names; its common name is cn.
func Server(cn string, dnsNames ...string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    append([]string{"localhost"}, dnsNames...),
	}
}

// Client is a template for a client certificate with common name cn; add
// subject alternative names (DNSNames, EmailAddresses, URIs) as needed.
func Client(cn string) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
}

// sign makes a key and a certificate for it from tmpl, signed by parent
// (self-signed when parent is nil).
func sign(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano() + serial.Add(1))
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

// WritePEM writes one PEM block to path and returns path.
func WritePEM(t testing.TB, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// WriteKey writes key to path as a PEM "EC PRIVATE KEY" and returns path.
func WriteKey(t testing.TB, path string, key *ecdsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return WritePEM(t, path, "EC PRIVATE KEY", der)
}

func fileName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == ' ' || c == '/' {
			b[i] = '-'
		}
	}
	return string(b)
}
