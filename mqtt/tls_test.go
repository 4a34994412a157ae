package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/certtest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// withTLS returns an adjust function for mqtttest.Dial: MQTT 3.1.1 only
// (no fallback attempt), trust ca, present client (nil: no client
// certificate) even when the server asks for another issuer's.
func withTLS(ca *certtest.CA, client *certtest.Leaf) func(*paho.ClientOptions) {
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
	ca := certtest.NewCA(t, "devices CA")
	srv := ca.Issue("server", certtest.Server("gateway"))
	door := ca.Issue("door", certtest.Client("door-front"))
	other := certtest.NewCA(t, "other CA")
	intruder := other.Issue("intruder", certtest.Client("door-front"))
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
	ca := certtest.NewCA(t, "devices CA")
	srv := ca.Issue("server", certtest.Server("gateway"))
	tmpl := certtest.Client("cn-name")
	tmpl.DNSNames = []string{"door.devices.example", "other.example"}
	tmpl.EmailAddresses = []string{"door@example.com"}
	u, _ := url.Parse("spiffe://example/door")
	tmpl.URIs = []*url.URL{u}
	door := ca.Issue("door", tmpl)
	other := certtest.NewCA(t, "other CA").Issue("intruder", certtest.Client("x"))

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

// The server certificate is re-read when its files change: the next
// handshake gets the new one. Files that do not load keep the old one
// (counted, logged) until they are fixed.
func TestTLSCertificateReload(t *testing.T) {
	ca := certtest.NewCA(t, "devices CA")
	first := ca.Issue("first", certtest.Server("first"))
	second := ca.Issue("second", certtest.Server("second"))
	dir := t.TempDir()
	certFile, keyFile := dir+"/server.pem", dir+"/server-key.pem"
	put := func(l *certtest.Leaf, at time.Time) {
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
	put(second, time.Now().Add(-time.Minute))
	if cn := served(); cn != "second" {
		t.Errorf("after the files changed, served %q, want second", cn)
	}
	// A half-written rotation: the new certificate with the old key.
	data, _ := os.ReadFile(first.CertFile)
	os.WriteFile(certFile, data, 0o600)
	os.Chtimes(certFile, time.Now(), time.Now())
	if cn := served(); cn != "second" {
		t.Errorf("with mismatched files, served %q, want the previous (second)", cn)
	}
	put(first, time.Now().Add(time.Minute))
	if cn := served(); cn != "first" {
		t.Errorf("after the rotation completed, served %q, want first", cn)
	}
	if ok, failed := tb.metric(t, `edgegate_mqtt_tls_reloads_total{result="ok"}`), tb.metric(t, `edgegate_mqtt_tls_reloads_total{result="failed"}`); ok != "2" || failed != "1" {
		t.Errorf("reloads ok %s failed %s, want 2 and 1", ok, failed)
	}
	exp := tb.metric(t, `edgegate_mqtt_tls_cert_expiry_timestamp_seconds{listener="tls"}`)
	if v, err := strconv.ParseFloat(exp, 64); err != nil || int64(v) != first.Cert.NotAfter.Unix() {
		t.Errorf("expiry gauge %s, want %d", exp, first.Cert.NotAfter.Unix())
	}
}
