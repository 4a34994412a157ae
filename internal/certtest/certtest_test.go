package certtest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
)

// A server and a client certificate from one CA complete a mutual TLS
// handshake; the files load.
func TestMutualTLS(t *testing.T) {
	ca := NewCA(t, "test CA")
	srv := ca.Issue("server", Server("gateway"))
	cli := ca.Issue("device 1", Client("door-front"))
	if _, err := tls.LoadX509KeyPair(cli.CertFile, cli.KeyFile); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srv.TLS}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			got <- err.Error()
			return
		}
		got <- tc.ConnectionState().VerifiedChains[0][0].Subject.CommonName
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool, Certificates: []tls.Certificate{cli.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cn := <-got; cn != "door-front" {
		t.Errorf("server saw %q", cn)
	}
	if _, err := cli.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Error(err)
	}
	if !srv.Cert.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Error("server certificate lacks 127.0.0.1")
	}
}
