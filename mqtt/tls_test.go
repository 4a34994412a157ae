package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/internal/testpki"
)

// withTLS returns an adjust function for mqtttest.Dial: MQTT 3.1.1 only
// (no fallback attempt), trust ca, present client (nil: no client
// certificate) even when the server asks for another issuer's.
func withTLS(ca *testpki.CA, client *testpki.Leaf) func(*paho.ClientOptions) {
	c := &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
	if client != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &client.TLS, nil }
	}
	return func(o *paho.ClientOptions) { o.SetTLSConfig(c).SetProtocolVersion(4) }
}

// connected returns the mochi client with id, or fails.
func (tb *testBroker) connected(t *testing.T, id string) (identity string, cert *x509.Certificate) {
	t.Helper()
	var ok bool
	eventually(t, "client "+id+" connected", func() bool {
		_, ok = tb.srv.Clients.Get(id)
		return ok
	})
	cl, _ := tb.srv.Clients.Get(id)
	return tb.certIdentity(cl)
}

// Devices connect over TLS (and WSS) with a client certificate from the
// devices' CA; the broker offers its verified identity. Without a
// certificate, or with one from another CA, the handshake fails and is
// counted.
func TestTLSClientCertificates(t *testing.T) {
	ca := testpki.NewCA(t, "devices CA")
	srv := ca.Server(t, "gateway")
	door := ca.Client(t, "door-front")
	other := testpki.NewCA(t, "other CA")
	intruder := other.Client(t, "door-front")
	tlsCfg := &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File}
	tb := startBroker(t, testConfig(
		ListenerConfig{ID: "tls", Type: TypeTLS, Address: "127.0.0.1:0", TLS: tlsCfg},
		ListenerConfig{ID: "wss", Type: TypeWSS, Address: "127.0.0.1:0", TLS: tlsCfg},
		ListenerConfig{ID: "tcp", Type: TypeTCP, Address: "127.0.0.1:0"},
	), &recorder{})

	for _, u := range []string{"ssl://" + tb.addr("tls"), "wss://" + tb.addr("wss") + "/mqtt"} {
		id := "door-" + u[:3]
		c := mqtttest.Connect(t, u, id, withTLS(ca, door))
		mqtttest.Publish(t, c, "devices/door-front/state", 1, "open")
		name, cert := tb.connected(t, id)
		if name != "door-front" || cert == nil || cert.Subject.CommonName != "door-front" {
			t.Errorf("%s: certIdentity = %q, %v", u, name, cert)
		}
		if _, err := mqtttest.Dial(u, "anon", withTLS(ca, nil)); err == nil {
			t.Errorf("%s: connected without a client certificate", u)
		}
		if _, err := mqtttest.Dial(u, "intruder", withTLS(ca, intruder)); err == nil {
			t.Errorf("%s: connected with a certificate from another CA", u)
		}
	}
	// The TCP listener has no certificates to offer.
	mqtttest.Connect(t, "tcp://"+tb.addr("tcp"), "plain")
	if name, cert := tb.connected(t, "plain"); name != "" || cert != nil {
		t.Errorf("plain TCP client: certIdentity = %q, %v", name, cert)
	}
	tb.wantMetric(t, `edgegate_mqtt_connections_refused_total{reason="tls_handshake"}`, "2")
}

// client_certs: optional lets a device in without a certificate (no
// identity) and verifies one it presents; identity picks the field.
func TestTLSOptionalCertificateAndIdentityField(t *testing.T) {
	ca := testpki.NewCA(t, "devices CA")
	srv := ca.Server(t, "gateway")
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "cn-name"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	tmpl.DNSNames = []string{"door.devices.example", "other.example"}
	tmpl.EmailAddresses = []string{"door@example.com"}
	u, _ := url.Parse("spiffe://example/door")
	tmpl.URIs = []*url.URL{u}
	door := ca.Issue(t, tmpl)
	other := testpki.NewCA(t, "other CA").Client(t, "x")

	tb := startBroker(t, testConfig(ListenerConfig{ID: "tls", Type: TypeTLS, Address: "127.0.0.1:0",
		TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File,
			ClientCerts: ClientCertsOptional, Identity: IdentitySANDNS}}), &recorder{})
	broker := "ssl://" + tb.addr("tls")
	mqtttest.Connect(t, broker, "anon", withTLS(ca, nil))
	if name, cert := tb.connected(t, "anon"); name != "" || cert != nil {
		t.Errorf("no certificate: certIdentity = %q, %v", name, cert)
	}
	mqtttest.Connect(t, broker, "door", withTLS(ca, door))
	if name, _ := tb.connected(t, "door"); name != "door.devices.example" {
		t.Errorf("san_dns identity = %q", name)
	}
	if _, err := mqtttest.Dial(broker, "intruder", withTLS(ca, other)); err == nil {
		t.Error("optional client certificates: a certificate from another CA was accepted")
	}

	for field, want := range map[string]string{
		IdentityCN: "cn-name", IdentitySANDNS: "door.devices.example",
		IdentitySANEmail: "door@example.com", IdentitySANURI: "spiffe://example/door",
	} {
		if got := certName(door.Cert, field); got != want {
			t.Errorf("certName(%s) = %q, want %q", field, got, want)
		}
	}
	if got := certName(other.Cert, IdentitySANEmail); got != "" {
		t.Errorf("certificate without an email SAN: %q", got)
	}
}

// The server certificate is re-read when its files change: a handshake
// after certfile.Recheck gets the new one.
func TestTLSCertificateReload(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for certfile.Recheck")
	}
	ca := testpki.NewCA(t, "devices CA")
	first := ca.Server(t, "first")
	second := ca.Server(t, "second")
	dir := t.TempDir()
	certFile, keyFile := dir+"/server.pem", dir+"/server-key.pem"
	put := func(l *testpki.Leaf, at time.Time) {
		t.Helper()
		for src, dst := range map[string]string{l.CertFile: certFile, l.KeyFile: keyFile} {
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, data, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(dst, at, at) // a distinct time, however coarse the file system's clock
		}
	}
	put(first, time.Now().Add(-time.Hour))
	tb := startBroker(t, testConfig(ListenerConfig{ID: "tls", Type: TypeTLS, Address: "127.0.0.1:0",
		TLS: &TLSConfig{CertFile: certFile, KeyFile: keyFile}}), &recorder{})
	served := func() string {
		t.Helper()
		c, err := tls.Dial("tcp", tb.addr("tls"), &tls.Config{RootCAs: ca.Pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	metric := `edgegate_mqtt_tls_cert_expiry_timestamp_seconds{listener="tls"}`
	if v, err := strconv.ParseFloat(tb.metric(t, metric), 64); err != nil || int64(v) != first.Cert.NotAfter.Unix() {
		t.Errorf("%s = %v, want %d", metric, v, first.Cert.NotAfter.Unix())
	}
	put(second, time.Now().Add(-time.Minute))
	deadline := time.Now().Add(certfile.Recheck + waitLong)
	for served() != "second" {
		if time.Now().After(deadline) {
			t.Fatalf("still serving the first certificate %v after the files changed", certfile.Recheck+waitLong)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
