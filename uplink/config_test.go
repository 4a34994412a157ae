package uplink

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	want := DeliveryConfig{
		Batch: BatchConfig{MaxEvents: 500, MaxBytes: 1 << 20},
		Retry: RetryConfig{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2},
	}
	if c.DeliveryConfig != want || c.HTTP != nil || c.MQTT != nil {
		t.Fatalf("DefaultConfig() = %+v, want %+v", c, want)
	}
	h := DefaultHTTPConfig()
	if !reflect.DeepEqual(h, HTTPConfig{Mode: "batch", Timeout: 10 * time.Second, MaxInFlight: 32, Compression: "none"}) {
		t.Fatalf("DefaultHTTPConfig() = %+v", h)
	}
	m := DefaultMQTTConfig()
	if m != (MQTTConfig{Topic: DefaultMQTTTopic, KeepAlive: 30 * time.Second, SessionStore: "memory", MaxInFlight: 100, Timeout: 10 * time.Second}) {
		t.Fatalf("DefaultMQTTConfig() = %+v", m)
	}
	c.Name, h.URL = "cloud", "https://example.com/events"
	c.HTTP = &h
	if err := c.Validate(); err != nil {
		t.Fatalf("default config with name and url: %v", err)
	}
	if c.Type() != TypeHTTP || c.Mode() != ModeBatch || c.URL() != h.URL {
		t.Errorf("Type/Mode/URL = %s %s %s", c.Type(), c.Mode(), c.URL())
	}
}

// decodeUplinks decodes an uplinks list as the gateway does.
func decodeUplinks(t *testing.T, src string) ([]Config, error) {
	t.Helper()
	var v struct {
		Uplinks []Config `yaml:"uplinks"`
	}
	_, err := yamlconf.Decode("u.yaml", []byte(src), &v)
	return v.Uplinks, err
}

func TestConfigYAML(t *testing.T) {
	list, err := decodeUplinks(t, `uplinks:
  - name: knative
    http:
      url: http://broker-ingress.knative-eventing.svc/default/default
      mode: binary
      timeout: 3s
      max_in_flight: 16
      headers: {Authorization: Bearer x}
    batch: {max_events: 100, max_bytes: 64KiB, linger: 50ms}
    retry: {initial: 1s, max: 1m, multiplier: 1.5, jitter: 0}
  - name: iot
    mqtt: {url: "tls://broker:8883", keep_alive: 10s}
    batch: {max_bytes: 1MiB}
`)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateList(list); err != nil {
		t.Fatal(err)
	}
	c, m := list[0], list[1]
	if c.HTTP.Timeout != 3*time.Second || c.HTTP.MaxInFlight != 16 || c.HTTP.Compression != CompressionNone ||
		c.Batch.Linger != 50*time.Millisecond || c.Batch.MaxBytes != 64<<10 || c.Retry.Max != time.Minute ||
		c.Retry.Multiplier != 1.5 || c.HTTP.Headers["Authorization"] != "Bearer x" {
		t.Fatalf("decoded %+v %+v", c, c.HTTP)
	}
	// An explicit 0 stays 0; what the file leaves out keeps its default.
	if c.Retry.Jitter != 0 || c.Retry.Initial != time.Second || c.MQTT != nil {
		t.Errorf("retry %+v", c.Retry)
	}
	if m.MQTT.KeepAlive != 10*time.Second || m.MQTT.Topic != DefaultMQTTTopic || m.MQTT.MaxInFlight != DefaultMQTTMaxInFlight ||
		m.Batch.MaxEvents != DefaultBatchMaxEvents || m.Retry.Jitter != DefaultRetryJitter || m.Mode() != ModeStructured {
		t.Errorf("mqtt defaults: %+v %+v", m.DeliveryConfig, m.MQTT)
	}
}

// A configuration of the old flat layout is refused key by key, each
// problem saying where the key went.
func TestConfigYAMLMovedKeys(t *testing.T) {
	_, err := decodeUplinks(t, `uplinks:
  - name: cloud
    type: http
    url: http://x/
    mode: binary
    headers: {X: y}
    batch: {max_events: 0}
  - name: iot
    type: mqtt
    url: tls://x:8883
    mode: structured
    topic: t
    compression: gzip
  - name: both
    mqtt: {url: "tcp://x:1"}
    timeout: 1s
    http: {url: "http://x/", topic: t}
`)
	want := []string{
		"u.yaml:3:5: uplinks[0].type: removed: the sender's section names the type; put the sender's settings under uplinks[0].http",
		"u.yaml:4:5: uplinks[0].url: moved to uplinks[0].http.url",
		"u.yaml:5:5: uplinks[0].mode: moved to uplinks[0].http.mode",
		"u.yaml:6:5: uplinks[0].headers: moved to uplinks[0].http.headers",
		"u.yaml:9:5: uplinks[1].type: removed: the sender's section names the type; put the sender's settings under uplinks[1].mqtt",
		"u.yaml:10:5: uplinks[1].url: moved to uplinks[1].mqtt.url",
		"u.yaml:11:5: uplinks[1].mode: removed: an mqtt uplink always publishes structured mode",
		"u.yaml:12:5: uplinks[1].topic: moved to uplinks[1].mqtt.topic",
		"u.yaml:13:5: uplinks[1].compression: not supported by an mqtt uplink",
		"u.yaml:16:5: uplinks[2].timeout: moved to uplinks[2].http.timeout",
		`u.yaml:17:30: uplinks[2].http.topic: unknown field "topic"`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestConfigValidate(t *testing.T) {
	h := HTTPConfig{
		URL: "ftp://x", Mode: "smoke", Timeout: -1, MaxInFlight: 0, Compression: CompressionNone,
		Headers: map[string]string{
			"Content-Type": "x", "Ce-Id": "x", "Bad Header": "x", "X-Token": "abc\r\nInjected: yes",
		},
	}
	c := Config{
		Name: "Bad Name", HTTP: &h,
		DeliveryConfig: DeliveryConfig{
			Batch: BatchConfig{MaxEvents: 0, MaxBytes: 10, Linger: -time.Second},
			Retry: RetryConfig{Initial: time.Second, Max: time.Millisecond, Multiplier: 0.5, Jitter: 2},
		},
	}
	err := c.Validate()
	want := []string{
		`name: "Bad Name" must be 1-64 of a-z, 0-9, '_' or '-'`,
		`http.url: must be an http:// or https:// URL`,
		`http.mode: must be one of batch, binary, structured, got "smoke"`,
		`http.headers.Bad Header: is not a valid HTTP header name`,
		`http.headers.Ce-Id: is set by the sender and cannot be configured`,
		`http.headers.Content-Type: is set by the sender and cannot be configured`,
		`http.headers.X-Token: value must not contain CR, LF or NUL`,
		`http.timeout: must be positive`,
		`http.max_in_flight: must be between 1 and 1024`,
		`batch.max_events: must be between 1 and 100000`,
		`batch.max_bytes: must be between 1KiB and 64MiB`,
		`batch.linger: must not be negative`,
		`retry.max: must be at least retry.initial (1s)`,
		`retry.multiplier: must be between 1 and 100`,
		`retry.jitter: must be between 0 and 1`,
	}
	got := strings.Split(err.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Validate:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "Injected") {
		t.Error("header value echoed in error")
	}

	withHTTP := func(name, url string) Config {
		c := DefaultConfig()
		h := DefaultHTTPConfig()
		c.Name, h.URL, c.HTTP = name, url, &h
		return c
	}
	both := withHTTP("a", "http://x/")
	m := DefaultMQTTConfig()
	m.URL, both.MQTT = "tcp://x:1", &m
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{DefaultConfig(), "name: is required\na sender is required: an http or mqtt section"},
		{withHTTP("a", ""), "http.url: is required"},
		{withHTTP("a", "http://"), "http.url: must be an http:// or https:// URL"},
		{withHTTP("a", "://x"), "http.url: must be an http:// or https:// URL"},
		{withHTTP(strings.Repeat("a", 65), "http://x/"), `name: "` + strings.Repeat("a", 65) + `" must be 1-64 of a-z, 0-9, '_' or '-'`},
		{both, "mqtt: an uplink has one sender: set http or mqtt, not both"},
	} {
		if err := tc.cfg.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}

	// The list: names unique, dead letters name an uplink, at least one.
	a, b := withHTTP("a", "http://x/"), withHTTP("a", "http://y/")
	b.DeadLetter = "nowhere"
	want2 := "[1].name: \"a\" is already used by uplinks[0]\n[1].dead_letter: no uplink is named \"nowhere\""
	if err := ValidateList([]Config{a, b}); err == nil || err.Error() != want2 {
		t.Errorf("ValidateList = %v, want %q", err, want2)
	}
	if err := ValidateList(nil); err == nil || err.Error() != "at least one uplink is required" {
		t.Errorf("ValidateList(nil) = %v", err)
	}
}

func TestBackoff(t *testing.T) {
	cfg := RetryConfig{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.2}
	b := newBackoff(cfg, rand.NewPCG(1, 2))
	bases := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	var first []time.Duration
	for i, base := range bases {
		base *= time.Millisecond
		d := b.next()
		first = append(first, d)
		lo := time.Duration(float64(base) * 0.8)
		hi := min(time.Duration(float64(base)*1.2), time.Second)
		if d < lo || d > hi {
			t.Errorf("attempt %d: %v not in [%v, %v]", i, d, lo, hi)
		}
	}
	b.reset()
	if d := b.next(); d < 80*time.Millisecond || d > 120*time.Millisecond {
		t.Errorf("after Reset: %v", d)
	}
	// Same seed, same sequence.
	b2 := newBackoff(cfg, rand.NewPCG(1, 2))
	for i, want := range first {
		if d := b2.next(); d != want {
			t.Fatalf("attempt %d: %v, want %v (not deterministic)", i, d, want)
		}
	}
	// No jitter: exact values; many attempts never overflow.
	b3 := newBackoff(RetryConfig{Initial: time.Second, Max: time.Hour, Multiplier: 10, Jitter: 1e-12}, nil)
	for range 100 {
		if d := b3.next(); d <= 0 || d > time.Hour {
			t.Fatalf("delay %v out of range", d)
		}
	}
}

func TestClassify(t *testing.T) {
	if r, a := classify(nil); r || a != 0 {
		t.Errorf("nil: %v %v", r, a)
	}
	perm := &Error{Err: errors.New("bad request"), StatusCode: 400}
	if r, _ := classify(perm); r {
		t.Error("400 retryable")
	}
	wrapped := errors.Join(errors.New("ctx"), &Error{Retryable: true, RetryAfter: time.Second})
	if r, a := classify(wrapped); !r || a != time.Second {
		t.Errorf("wrapped: %v %v", r, a)
	}
	if r, _ := classify(errors.New("something")); !r {
		t.Error("unknown error not retryable")
	}
	if (&Error{}).Error() == "" || errors.Unwrap(perm) == nil {
		t.Error("Error/Unwrap")
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"12", 12 * time.Second}, {" 5 ", 5 * time.Second},
		{"99999999999", time.Hour}, {"later", 0},
		{now.Add(42 * time.Second).Format(http.TimeFormat), 42 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestSnippet(t *testing.T) {
	if got := snippet([]byte("a\nb\x00c")); got != "a b?c" {
		t.Errorf("snippet = %q", got)
	}
	long := strings.Repeat("é", 300)
	if got := snippet([]byte(long)); !strings.HasSuffix(got, "…") || len(got) > snippetLen+len("…") {
		t.Errorf("long snippet %d bytes: %q", len(got), got)
	}
}

// The delivery settings validate on their own, with the same field paths
// as inside an uplink (the section is inline).
func TestDeliveryConfigValidate(t *testing.T) {
	d := DefaultConfig().DeliveryConfig
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	d.Retry.MaxAttempts, d.Replay.MaxRate, d.Batch.Linger = -1, -2, -time.Second
	want := "batch.linger: must not be negative\n" +
		"retry.max_attempts: must be ≥ 0 (0 retries forever)\n" +
		"replay.max_rate: must be ≥ 0 (0 drains at full speed)"
	if err := d.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate = %v, want %q", err, want)
	}
}
