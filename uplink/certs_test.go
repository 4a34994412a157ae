package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"testing"

	"github.com/edgegate/edgegate/internal/testpki"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, all generated for one test and written as PEM files.
type testPKI struct {
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
	ca := testpki.NewCA(t, "edgegate test CA")
	cli := ca.Client(t, "gateway-1")
	other := testpki.NewCA(t, "other CA")
	intruder := other.Client(t, "intruder")
	return &testPKI{
		caFile:              ca.File,
		caPool:              ca.Pool,
		serverCert:          ca.Server(t, "receiver", "receiver.test").TLS,
		clientCertFile:      cli.CertFile,
		clientKeyFile:       cli.KeyFile,
		otherCAFile:         other.File,
		otherClientCertFile: intruder.CertFile,
		otherClientKeyFile:  intruder.KeyFile,
	}
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
