package testpki

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
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// serial numbers the certificates of a process.
var serial atomic.Int64

// CA is a self-signed certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// File is the CA certificate as a PEM file (a ca_file).
	File string
	// Pool holds Cert, for a client's RootCAs or a server's ClientCAs.
	Pool *x509.CertPool

	dir string
}

// Leaf is a certificate signed by a CA, with its key.
type Leaf struct {
	Cert *x509.Certificate
	// TLS is the pair for a tls.Config.
	TLS tls.Certificate
	// CertFile and KeyFile are the pair as PEM files (the key in SEC 1
	// form, "EC PRIVATE KEY").
	CertFile, KeyFile string
}

// NewCA makes a CA named cn; its files go to a fresh t.TempDir().
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	ca := &CA{dir: t.TempDir()}
	der, key := issue(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, nil, nil)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	ca.Cert, ca.Key = cert, key
	ca.File = writePEM(t, ca.dir, "ca-"+fileName(cn)+".pem", "CERTIFICATE", der)
	ca.Pool = x509.NewCertPool()
	ca.Pool.AddCert(cert)
	return ca
}

// Server issues a server certificate named cn for 127.0.0.1, ::1,
// localhost and names.
func (ca *CA) Server(t testing.TB, cn string, names ...string) *Leaf {
	t.Helper()
	return ca.Issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    append([]string{"localhost"}, names...),
	})
}

// Client issues a client certificate with common name cn.
func (ca *CA) Client(t testing.TB, cn string) *Leaf {
	t.Helper()
	return ca.Issue(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// Issue signs tmpl (its subject, names and usages; serial number and
// validity are set here) and writes the pair to files named after the
// common name, replacing those of an earlier leaf of the same name.
func (ca *CA) Issue(t testing.TB, tmpl *x509.Certificate) *Leaf {
	t.Helper()
	der, key := issue(t, tmpl, ca.Cert, ca.Key)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	name := fileName(tmpl.Subject.CommonName)
	return &Leaf{
		Cert:     cert,
		TLS:      tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert},
		CertFile: writePEM(t, ca.dir, name+".pem", "CERTIFICATE", der),
		KeyFile:  writePEM(t, ca.dir, name+"-key.pem", "EC PRIVATE KEY", keyDER),
	}
}

// issue makes a P-256 key and a certificate for it from tmpl, valid from an
// hour ago for a day, signed by parent (self-signed when parent is nil).
func issue(t testing.TB, tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) ([]byte, *ecdsa.PrivateKey) {
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

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fileName makes a common name usable as a file name.
func fileName(cn string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' || r == 0 {
			return '_'
		}
		return r
	}, cn)
}
