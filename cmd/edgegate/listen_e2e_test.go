package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/internal/testpki"
)

// metricValue reads one metric line of the gateway's /metrics (0 when
// absent).
func metricValue(t testing.TB, admin, name string) float64 {
	t.Helper()
	m := regexp.MustCompile("\n" + regexp.QuoteMeta(name) + ` (\S+)\n`).FindStringSubmatch(adminMetrics(t, admin))
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// An oversized payload is refused (MQTT 5: PUBACK 0x95; a packet over the
// packet limit closes the connection), counted, and never becomes an
// event; the device's next message does.
func TestOversizePayloadRefused(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	e.config = writeConfigMQTT(t, e.dir, fmt.Sprintf(`mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
  max_payload_bytes: 1024
`, e.mqtt), e.admin, e.uplink)
	s := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	rc, connack := mqtttest.DialRaw(t, e.mqtt, 5, "big5", true)
	if max := connack.Properties.MaximumPacketSize; max == 0 || max > 1024+128<<10 {
		t.Errorf("CONNACK maximum packet size %d", max)
	}
	rc.Publish("devices/big5/telemetry", bytes.Repeat([]byte("x"), 2000), 1, 1, packets.Properties{})
	if ack, err := rc.Read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0x95 {
		t.Errorf("v5 oversized payload: %+v reason %#x (%v), want PUBACK 0x95", ack.FixedHeader, ack.ReasonCode, err)
	}
	rc.Publish("devices/big5/telemetry", []byte(`{"n":1}`), 1, 2, packets.Properties{})
	if ack, err := rc.Read(); err != nil || ack.ReasonCode != 0 {
		t.Errorf("v5 small payload after the big one: %+v reason %#x (%v)", ack.FixedHeader, ack.ReasonCode, err)
	}

	var lost atomic.Bool
	big := mqtttest.Connect(t, "tcp://"+e.mqtt, "big3", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { lost.Store(true) })
	})
	big.Publish("devices/big3/telemetry", 1, false, bytes.Repeat([]byte("y"), 1<<20)).WaitTimeout(5 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for !lost.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !lost.Load() {
		t.Error("a packet over the packet limit did not close the connection")
	}
	small := mqtttest.Connect(t, "tcp://"+e.mqtt, "small3")
	mqtttest.Publish(t, small, "devices/small3/telemetry", 1, `{"n":2}`)

	events := s.WaitFor(2, 20*time.Second)
	time.Sleep(300 * time.Millisecond) // anything else would have arrived by now
	if d, _ := s.Counts(); d != 2 {
		t.Errorf("%d events arrived, want the 2 small ones", d)
	}
	for _, ev := range events {
		if len(ev.Data()) > 100 {
			t.Errorf("an oversized payload became event %s", ev.ID())
		}
	}
	if n := metricValue(t, e.admin, "edgegate_mqtt_messages_too_large_total"); n != 2 {
		t.Errorf("too_large = %v, want 2", n)
	}
}

// tlsSetup is a devices CA, the gateway's server certificate and key
// written next to the config (named relatively in it), and a device
// certificate.
type tlsSetup struct {
	ca     *testpki.CA
	device *testpki.Leaf
}

func newTLSSetup(t *testing.T, dir string) tlsSetup {
	t.Helper()
	ca := testpki.NewCA(t, "devices CA")
	srv := ca.Server(t, "gateway")
	for src, dst := range map[string]string{srv.CertFile: "server.pem", srv.KeyFile: "server-key.pem", ca.File: "devices-ca.pem"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return tlsSetup{ca: ca, device: ca.Client(t, "door-front")}
}

// client returns a paho adjustment: MQTT 3.1.1, trust the CA, present cert
// (nil: none).
func (s tlsSetup) client(cert *testpki.Leaf) func(*paho.ClientOptions) {
	c := &tls.Config{RootCAs: s.ca.Pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert.TLS, nil }
	}
	return func(o *paho.ClientOptions) { o.SetTLSConfig(c).SetProtocolVersion(4) }
}

// Devices publish over TLS without a client certificate and over mutual
// TLS with one, whose events carry the certificate's identity; without a
// certificate the mutual-TLS listener refuses the handshake. A device
// publishes over WSS; a browser page from a foreign origin cannot open the
// WebSocket. Certificate paths are relative to the config file.
func TestTLSAndWSSDevices(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	ts := newTLSSetup(t, e.dir)
	tlsAddr, mtlsAddr, wssAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	e.config = writeConfigMQTT(t, e.dir, fmt.Sprintf(`mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
    - id: tls
      type: tls
      address: %q
      tls: {cert_file: server.pem, key_file: server-key.pem}
    - id: mtls
      type: tls
      address: %q
      tls: {cert_file: server.pem, key_file: server-key.pem, client_ca_file: devices-ca.pem, identity: cn}
    - id: wss
      type: wss
      address: %q
      tls: {cert_file: server.pem, key_file: server-key.pem}
auth:
  allow_anonymous: true   # the devices without a certificate
`, e.mqtt, tlsAddr, mtlsAddr, wssAddr), e.admin, e.uplink)
	s := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	plain := mqtttest.Connect(t, "ssl://"+tlsAddr, "sensor-tls", ts.client(nil))
	mqtttest.Publish(t, plain, "devices/sensor-tls/telemetry", 1, `{"via":"tls"}`)
	door := mqtttest.Connect(t, "ssl://"+mtlsAddr, "door-front", ts.client(ts.device))
	mqtttest.Publish(t, door, "devices/door-front/telemetry", 1, `{"via":"mtls"}`)
	if _, err := mqtttest.Dial("ssl://"+mtlsAddr, "no-cert", ts.client(nil)); err == nil {
		t.Error("the mutual-TLS listener accepted a device without a certificate")
	}
	ws := mqtttest.Connect(t, "wss://"+wssAddr+"/mqtt", "sensor-wss", ts.client(nil))
	mqtttest.Publish(t, ws, "devices/sensor-wss/telemetry", 1, `{"via":"wss"}`)

	// A browser page on another site tries to open the WebSocket.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.ca.Pool}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "https://"+wssAddr+"/mqtt", nil)
	for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
		"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "mqtt", "Origin": "https://evil.example.com"} {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("upgrade from a foreign origin: status %d, want 403", resp.StatusCode)
	}

	events := s.WaitFor(3, 20*time.Second)
	var got []string
	for _, ev := range events {
		got = append(got, string(ev.Data()))
		ext := ev.Extensions()
		want := [2]any{nil, "anonymous"} // edgegateuser, edgegateauth
		if ev.Subject() == "door-front" {
			want = [2]any{"door-front", "certificate"}
		}
		if have := [2]any{ext["edgegateuser"], ext["edgegateauth"]}; have != want {
			t.Errorf("event of %s: edgegateuser, edgegateauth = %v, want %v", ev.Subject(), have, want)
		}
	}
	for _, via := range []string{"tls", "mtls", "wss"} {
		if !strings.Contains(strings.Join(got, " "), `"via":"`+via+`"`) {
			t.Errorf("no event via %s in %v", via, got)
		}
	}
	if n := metricValue(t, e.admin, `edgegate_mqtt_connections_refused_total{reason="tls_handshake"}`); n != 1 {
		t.Errorf("tls handshake refusals %v, want 1", n)
	}
	if n := metricValue(t, e.admin, `edgegate_mqtt_connections_refused_total{reason="origin"}`); n != 1 {
		t.Errorf("origin refusals %v, want 1", n)
	}
}

// flooder publishes QoS 0 messages to topic as fast as its connection takes
// them until stop is closed or the broker closes the connection; it
// returns how many it wrote.
func flooder(t testing.TB, addr, id string, stop <-chan struct{}) (written func() int, done <-chan struct{}) {
	rc, _ := mqtttest.DialRaw(t, addr, 5, id, true)
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5,
		TopicName: "devices/" + id + "/telemetry", Payload: []byte(`{"flood":true}`)}
	if err := pk.PublishEncode(&buf); err != nil {
		t.Fatal(err)
	}
	batch := bytes.Repeat(buf.Bytes(), 100)
	var n atomic.Int64
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = rc.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := rc.Conn.Write(batch); err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					continue
				}
				return
			}
			n.Add(100)
		}
	}()
	return func() int { return int(n.Load()) }, ch
}

// One device floods: it is held to its publish rate (counted) and
// disconnected when it keeps on, while every message of the other devices
// is acknowledged and delivered. (The rate is 100/s here: at the default
// 1000/s this machine's disk, not the limit, holds one connection back;
// BenchmarkNeighboursUnderFlood measures both.)
func TestFloodFromOneDevice(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	e.config = writeConfigMQTT(t, e.dir, fmt.Sprintf(`mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
  limits: {publish_rate: 100, publish_burst: 100}
`, e.mqtt), e.admin, e.uplink)
	s := startSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	const devices = 5
	stop := make(chan struct{})
	written, flooded := flooder(t, e.mqtt, "flooder", stop)
	var (
		wg    sync.WaitGroup
		acked atomic.Int64
	)
	for d := range devices {
		c := mqtttest.Connect(t, "tcp://"+e.mqtt, fmt.Sprintf("dev-%d", d))
		wg.Go(func() {
			mqtttest.Steady(c, fmt.Sprintf("devices/dev-%d/telemetry", d), 20*time.Millisecond, stop, func(int) { acked.Add(1) })
		})
	}
	select {
	case <-flooded:
	case <-time.After(30 * time.Second):
		t.Error("the flooder was not disconnected within 30 s")
	}
	time.Sleep(time.Second) // the others go on after the flooder left
	close(stop)
	wg.Wait()

	delayed := metricValue(t, e.admin, "edgegate_mqtt_publish_delayed_total")
	disconnects := metricValue(t, e.admin, "edgegate_mqtt_rate_limit_disconnects_total")
	t.Logf("flooder wrote %d messages, %v held back to its rate, %v disconnects; the others had %d acknowledged", written(), delayed, disconnects, acked.Load())
	if delayed == 0 || disconnects != 1 {
		t.Errorf("delayed publishes %v, rate limit disconnects %v; want > 0 and 1", delayed, disconnects)
	}
	if !strings.Contains(p.log.String(), "publish rate exceeded") {
		t.Errorf("no log line about the flooder:\n%s", tail(p.log.String(), 20))
	}
	// Every message of the others arrived.
	others := func() int {
		ids := map[string]bool{}
		for _, ev := range s.Events() {
			if ev.Subject() != "flooder" {
				ids[ev.ID()] = true
			}
		}
		return len(ids)
	}
	deadline := time.Now().Add(60 * time.Second)
	for int64(others()) < acked.Load() && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if got := others(); int64(got) != acked.Load() {
		t.Errorf("%d events from the other devices arrived, want their %d acknowledged messages", got, acked.Load())
	}
}
