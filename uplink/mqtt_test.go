package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/ceconform"
)

// brokerMsg is one PUBLISH a test broker accepted.
type brokerMsg struct {
	Topic    string
	Payload  []byte
	QoS      byte
	ClientID string
}

// testBroker is an embedded mochi broker on 127.0.0.1 standing in for a
// cloud MQTT broker. Its hook allows every client (or checks one
// username/password) and records each PUBLISH in OnPublish, which mochi runs
// before it sends the PUBACK: every acknowledged message is recorded.
type testBroker struct {
	tb   testing.TB
	srv  *mochi.Server
	addr string

	user, pass string // when user != "", CONNECT must carry these
	noAck      bool   // refuse every PUBLISH (no PUBACK)
	noRecord   bool   // keep nothing (benchmarks)

	mu   sync.Mutex
	msgs []brokerMsg
}

type brokerHook struct {
	mochi.HookBase
	b *testBroker
}

func (h *brokerHook) ID() string { return "edgegate-test" }

func (h *brokerHook) Provides(x byte) bool {
	return x == mochi.OnConnectAuthenticate || x == mochi.OnACLCheck || x == mochi.OnPublish
}

func (h *brokerHook) OnConnectAuthenticate(_ *mochi.Client, pk packets.Packet) bool {
	return h.b.user == "" || (string(pk.Connect.Username) == h.b.user && string(pk.Connect.Password) == h.b.pass)
}

func (h *brokerHook) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *brokerHook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if h.b.noAck {
		return pk, packets.ErrRejectPacket
	}
	if h.b.noRecord {
		return pk, nil
	}
	h.b.mu.Lock()
	h.b.msgs = append(h.b.msgs, brokerMsg{Topic: pk.TopicName, Payload: append([]byte(nil), pk.Payload...), QoS: pk.FixedHeader.Qos, ClientID: cl.ID})
	h.b.mu.Unlock()
	return pk, nil
}

// startBroker serves a broker on addr ("127.0.0.1:0" for any port).
func startBroker(tb testing.TB, addr string, tlsCfg *tls.Config, mod func(*testBroker)) *testBroker {
	tb.Helper()
	b := &testBroker{tb: tb}
	if mod != nil {
		mod(b)
	}
	b.srv = mochi.New(&mochi.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := b.srv.AddHook(&brokerHook{b: b}, nil); err != nil {
		tb.Fatal(err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "t", Address: addr, TLSConfig: tlsCfg})
	if err := b.srv.AddListener(l); err != nil {
		tb.Fatal(err)
	}
	if err := b.srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	b.addr = l.Address()
	tb.Cleanup(b.stop)
	return b
}

var stopMu sync.Mutex

func (b *testBroker) stop() {
	stopMu.Lock()
	defer stopMu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

func (b *testBroker) messages() []brokerMsg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]brokerMsg(nil), b.msgs...)
}

// newMQTTTestSender builds an mqtt sender for url with fast settings.
func newMQTTTestSender(tb testing.TB, url string, mod func(*Config)) Sender {
	tb.Helper()
	cfg := DefaultConfig()
	cfg.Name, cfg.GatewayID = "cloud-mqtt", "gw-1"
	m := DefaultMQTTConfig()
	m.URL, m.StateDir, m.Timeout = url, tb.TempDir(), 5*time.Second
	cfg.MQTT = &m
	return startSender(tb, cfg, mod)
}

// checkMQTTMessages validates every message with the strict validator and
// returns them as views keyed by event id.
func checkMQTTMessages(t *testing.T, msgs []brokerMsg) map[string][]ceconform.Event {
	t.Helper()
	byID := map[string][]ceconform.Event{}
	for _, m := range msgs {
		if m.QoS != 1 {
			t.Errorf("message on %s with QoS %d, want 1", m.Topic, m.QoS)
		}
		v, warns, err := ceconform.ValidateStructured(m.Payload)
		if err != nil || len(warns) > 0 {
			t.Fatalf("invalid CloudEvent on %s: %v %v\n%s", m.Topic, err, warns, m.Payload)
		}
		byID[v.Attrs["id"]] = append(byID[v.Attrs["id"]], v)
	}
	return byID
}

func TestMQTTPublish(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", nil, nil)
	records := testRecords(t, 30, 3)
	cases := []struct {
		topic string
		want  func(v ceconform.Event) string
	}{
		{DefaultMQTTTopic, func(v ceconform.Event) string { return "gateways/gw-1/events/com.example.telemetry" }},
		{"gw/{gateway_id}/{subject}/{id}", func(v ceconform.Event) string {
			return "gw/gw-1/" + v.Attrs["subject"] + "/" + v.Attrs["id"]
		}},
		{"{source}/{type}", func(v ceconform.Event) string { return v.Attrs["source"] + "/com.example.telemetry" }},
	}
	for i, tc := range cases {
		t.Run(tc.topic, func(t *testing.T) {
			s := newMQTTTestSender(t, "tcp://"+b.addr, func(c *Config) {
				c.MQTT.Topic = tc.topic
				c.Name = fmt.Sprintf("m%d", i)
				c.MQTT.MaxInFlight = 7 // exercise the window
			})
			before := len(b.messages())
			if err := s.Send(context.Background(), records); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := b.messages()[before:]
			if len(msgs) != len(records) {
				t.Fatalf("%d messages, want %d", len(msgs), len(records))
			}
			byID := checkMQTTMessages(t, msgs)
			for j, m := range msgs {
				v := byID[fmt.Sprintf("evt-%04d", j)][0]
				if err := sameEvent(v, records[j]); err != nil { // one client, QoS 1: in order
					t.Errorf("message %d: %v", j, err)
				}
				if m.Topic != tc.want(v) {
					t.Errorf("topic %q, want %q", m.Topic, tc.want(v))
				}
				if want := fmt.Sprintf("edgegate-gw-1-m%d", i); m.ClientID != want {
					t.Errorf("client id %q, want %q", m.ClientID, want)
				}
			}
		})
	}
}

func TestMQTTAuth(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", nil, func(b *testBroker) { b.user, b.pass = "gw", "pa55" })
	pw := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pw, []byte("pa55\n"), 0o600)
	records := testRecords(t, 3, 1)

	s := newMQTTTestSender(t, "mqtt://"+b.addr, func(c *Config) { c.MQTT.Auth.Basic = BasicAuth{Username: "gw", PasswordFile: pw} })
	if err := s.Send(context.Background(), records); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkMQTTMessages(t, b.messages())

	bad := newMQTTTestSender(t, "tcp://"+b.addr, func(c *Config) {
		c.Name = "bad"
		c.MQTT.Auth.Basic = BasicAuth{Username: "gw", Password: "wrong-secret"}
	})
	err := bad.Send(context.Background(), records)
	if retry, _ := classify(err); err == nil || !retry {
		t.Fatalf("wrong password: err %v retryable %v", err, retry)
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Errorf("error leaks the password: %v", err)
	}
	if n := len(b.messages()); n != len(records) {
		t.Errorf("%d messages after the refused client", n)
	}
}

func TestMQTTTLS(t *testing.T) {
	pki := newTestPKI(t)
	b := startBroker(t, "127.0.0.1:0", pki.serverTLS(true), nil)
	records := testRecords(t, 5, 1)
	s := newMQTTTestSender(t, "tls://"+b.addr, func(c *Config) {
		c.MQTT.TLS = TLSConfig{CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile}
	})
	if err := s.Send(context.Background(), records); err != nil {
		t.Fatalf("Send: %v", err)
	}
	checkMQTTMessages(t, b.messages())

	noCert := newMQTTTestSender(t, "tls://"+b.addr, func(c *Config) {
		c.Name = "nocert"
		c.MQTT.TLS = TLSConfig{CAFile: pki.caFile}
	})
	if err := noCert.Send(context.Background(), records); err == nil {
		t.Fatal("broker requiring a client certificate accepted none")
	}
}

func TestMQTTPermanentAndRetryable(t *testing.T) {
	b := startBroker(t, "127.0.0.1:0", nil, nil)
	good := testRecords(t, 3, 1)
	s := newMQTTTestSender(t, "tcp://"+b.addr, func(c *Config) { c.Batch.MaxBytes = 2048 })
	for _, bad := range []*cloudevent.Event{
		{ID: "1", Source: "s"},
		{ID: "1", Source: "s", Type: "t", Extensions: []cloudevent.Extension{{Name: "id", Value: cloudevent.String("x")}}},
		{ID: "1", Source: "s", Type: "t", Data: []byte(strings.Repeat("x", 3000)), DataBase64: true},
	} {
		err := s.Send(context.Background(), []*cloudevent.Event{good[0], good[1], bad, good[2]})
		var re *RecordError
		if retry, _ := classify(err); err == nil || retry || !errors.As(err, &re) || re.Index != 2 {
			t.Errorf("bad record %+v: err %v", bad, err)
		}
	}
	if n := len(b.messages()); n != 0 {
		t.Errorf("%d messages published despite a malformed record", n)
	}

	// No broker: retryable, and quick.
	b.stop()
	down := newMQTTTestSender(t, "tcp://"+b.addr, func(c *Config) { c.Name = "down"; c.MQTT.Timeout = time.Second })
	if retry, _ := classify(down.Send(context.Background(), good)); !retry {
		t.Error("no broker: want a retryable error")
	}

	// A broker that never acknowledges (paho's Wait could hang, #613): the
	// Send gives up after the timeout with a retryable error.
	mute := startBroker(t, "127.0.0.1:0", nil, func(b *testBroker) { b.noAck = true })
	ms := newMQTTTestSender(t, "tcp://"+mute.addr, func(c *Config) { c.Name = "mute"; c.MQTT.Timeout = 300 * time.Millisecond })
	err := ms.Send(context.Background(), good)
	if retry, _ := classify(err); err == nil || !retry {
		t.Fatalf("no PUBACK: err %v", err)
	}

	// Close: later sends fail.
	ms.(io.Closer).Close()
	if err := ms.Send(context.Background(), good); err == nil {
		t.Error("Send after Close succeeded")
	}
}

// TestMQTTBrokerRestart stops the broker while a stream of Sends is under
// way and starts a new one on the same port. A forwarder-like loop resends
// failed batches; every record of every successful Send must have reached a
// broker (duplicates allowed, same id).
func TestMQTTBrokerRestart(t *testing.T) {
	for _, store := range []string{SessionStoreFile, SessionStoreMemory} {
		t.Run(store, func(t *testing.T) { testMQTTBrokerRestart(t, store) })
	}
}

func testMQTTBrokerRestart(t *testing.T, store string) {
	b1 := startBroker(t, "127.0.0.1:0", nil, nil)
	addr := b1.addr
	s := newMQTTTestSender(t, "tcp://"+addr, func(c *Config) {
		c.MQTT.SessionStore = store
		c.MQTT.Timeout = 2 * time.Second
		c.MQTT.MaxInFlight = 10
		c.Retry.Max = time.Second // paho's reconnect interval cap
	})
	records := testRecords(t, 600, 6)
	const chunk = 20

	var mu sync.Mutex
	var delivered []int // first index of each chunk whose Send returned nil
	failures := 0
	var lastErr error
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for lo := 0; lo < len(records); lo += chunk {
			hi := min(lo+chunk, len(records))
			for {
				err := s.Send(ctx, records[lo:hi])
				if err == nil {
					break
				}
				if retry, _ := classify(err); !retry || ctx.Err() != nil {
					done <- fmt.Errorf("chunk %d: %w", lo, err)
					return
				}
				mu.Lock()
				failures++
				lastErr = err
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
			mu.Lock()
			delivered = append(delivered, lo)
			mu.Unlock()
		}
		done <- nil
	}()

	// Stop the broker mid-stream, then bring up a new one on the same port.
	deadline := time.Now().Add(10 * time.Second)
	for len(b1.messages()) < 150 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b1.stop()
	time.Sleep(300 * time.Millisecond)
	b2 := startBroker(t, addr, nil, nil)

	if err := <-done; err != nil {
		t.Fatal(err)
	}
	all := append(b1.messages(), b2.messages()...)
	byID := checkMQTTMessages(t, all)
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != (len(records)+chunk-1)/chunk {
		t.Fatalf("%d chunks delivered", len(delivered))
	}
	for _, lo := range delivered {
		for i := lo; i < min(lo+chunk, len(records)); i++ {
			vs := byID[fmt.Sprintf("evt-%04d", i)]
			if len(vs) == 0 {
				t.Errorf("record %d of a successful Send never reached a broker", i)
				continue
			}
			for _, v := range vs {
				if err := sameEvent(v, records[i]); err != nil {
					t.Errorf("record %d: %v", i, err)
				}
			}
		}
	}
	if failures == 0 || len(b2.messages()) == 0 {
		t.Errorf("restart not exercised: %d failed sends, %d messages on the second broker", failures, len(b2.messages()))
	}
	t.Logf("broker 1: %d messages, broker 2: %d, distinct %d, failed sends %d (last: %v)", len(b1.messages()), len(b2.messages()), len(byID), failures, lastErr)
}

func TestMQTTConfig(t *testing.T) {
	base := func() MQTTConfig {
		m := DefaultMQTTConfig()
		m.URL = "tls://broker.example.com:8883"
		return m
	}
	m := base()
	if m.Topic != DefaultMQTTTopic || m.SessionStore != SessionStoreMemory || m.MaxInFlight != DefaultMQTTMaxInFlight || m.KeepAlive != DefaultMQTTKeepAlive {
		t.Fatalf("mqtt defaults: %+v", m)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	// mode, compression and headers are not keys of the mqtt section (see
	// TestConfigYAMLMovedKeys): an mqtt uplink is structured JSON only.
	cases := []struct {
		mod  func(*MQTTConfig)
		want string
	}{
		{func(c *MQTTConfig) { c.URL = "https://x:1" }, "url: must be a tcp://, mqtt://, tls://, ssl://, mqtts://, ws:// or wss:// URL"},
		{func(c *MQTTConfig) { c.URL = "tcp://x" }, "url: must include a port, e.g. tls://host:8883"},
		{func(c *MQTTConfig) { c.URL = "tcp://u:p@x:1" }, "url: must not carry credentials: use auth.basic"},
		{func(c *MQTTConfig) { c.Auth.BearerToken = "t" }, "auth.bearer_token: not supported for mqtt: use auth.basic or a tls client certificate"},
		{func(c *MQTTConfig) { c.Topic = "a/{nope}" }, "topic: unknown variable {nope} (known: {gateway_id}, {type}, {source}, {subject}, {id})"},
		{func(c *MQTTConfig) { c.Topic = "a/+/{type}" }, "topic: must not contain the wildcards '+' or '#'"},
		{func(c *MQTTConfig) { c.Topic = "a/{type" }, "topic: unclosed '{'"},
		{func(c *MQTTConfig) { c.KeepAlive = time.Millisecond }, "keep_alive: must be at least 1s"},
		{func(c *MQTTConfig) { c.SessionStore = "disk" }, `session_store: must be file or memory, got "disk"`},
		{func(c *MQTTConfig) { c.URL = "tcp://x:1883"; c.TLS.InsecureSkipVerify = true }, "tls: requires a TLS url (https://, tls://, ssl://, mqtts:// or wss://)"},
	}
	for _, tc := range cases {
		c := base()
		tc.mod(&c)
		if err := c.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate: %v\nwant: %s", err, tc.want)
		}
	}
	// What only New can check: the gateway fills these in.
	cfg := DefaultConfig()
	cfg.Name = "m"
	m = base()
	m.SessionStore = SessionStoreFile
	cfg.MQTT = &m
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err := New(cfg, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "topic: uses {gateway_id} but the gateway id is not set") ||
		!strings.Contains(err.Error(), "state_dir: is required for type mqtt with session_store file") {
		t.Errorf("New without gateway id and state dir: %v", err)
	}
}

// topicSafe keeps wildcards out of expanded topics.
func TestTopicExpansion(t *testing.T) {
	tt, err := newTopicTemplate("d/{gateway_id}/{subject}/{type}", "gw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tt.topicFor(&cloudevent.Event{ID: "1", Source: "s", Type: "a+b#c", Subject: "x/y"})
	if err != nil || got != "d/gw/x/y/a_b_c" {
		t.Errorf("topic %q, %v", got, err)
	}
	if _, err := tt.topicFor(&cloudevent.Event{ID: "1", Source: "s"}); err == nil {
		t.Error("event without a type accepted")
	}
}
