package testpki

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// A server certificate verifies for the loopback names against its CA; a
// client certificate verifies as a client's, and not against another CA.
func TestIssue(t *testing.T) {
	ca := NewCA(t, "test CA")
	srv := ca.Server(t, "server", "gw.test")
	for _, name := range []string{"127.0.0.1", "::1", "localhost", "gw.test"} {
		if _, err := srv.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool, DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	cli := ca.Client(t, "device-1")
	opts := x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := cli.Cert.Verify(opts); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	opts.Roots = NewCA(t, "other").Pool
	if _, err := cli.Cert.Verify(opts); err == nil {
		t.Error("client certificate verified against another CA")
	}
	if _, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile); err != nil {
		t.Errorf("files: %v", err)
	}
	if !srv.Cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("server IPs %v", srv.Cert.IPAddresses)
	}
}
