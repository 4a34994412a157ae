package uplink

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	want := Config{
		Type: "http", Mode: "batch", Timeout: 10 * time.Second, MaxInFlight: 8,
		DeliveryConfig: DeliveryConfig{
			Batch: BatchConfig{MaxEvents: 500, MaxBytes: 1 << 20},
			Retry: RetryConfig{Initial: 200 * time.Millisecond, Max: 30 * time.Second, Multiplier: 2, Jitter: 0.2},
		},
	}
	if c.Type != want.Type || c.Mode != want.Mode || c.Timeout != want.Timeout || c.MaxInFlight != want.MaxInFlight ||
		c.Batch != want.Batch || c.Retry != want.Retry {
		t.Fatalf("DefaultConfig() = %+v, want %+v", c, want)
	}
	c.Name, c.URL = "cloud", "https://example.com/events"
	if err := c.Validate(); err != nil {
		t.Fatalf("default config with name and url: %v", err)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
name: knative
type: http
url: http://broker-ingress.knative-eventing.svc/default/default
mode: binary
timeout: 3s
max_in_flight: 16
batch: {max_events: 100, max_bytes: 65536, linger: 50ms}
retry: {initial: 1s, max: 1m, multiplier: 1.5, jitter: 0.1}
headers: {Authorization: Bearer x}
`
	c := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Timeout != 3*time.Second || c.MaxInFlight != 16 || c.Batch.Linger != 50*time.Millisecond ||
		c.Retry.Max != time.Minute || c.Retry.Multiplier != 1.5 || c.Headers["Authorization"] != "Bearer x" {
		t.Fatalf("decoded %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{
		Name: "Bad Name", Type: "carrier-pigeon", URL: "ftp://x", Mode: "smoke",
		Timeout: -1, MaxInFlight: 0,
		DeliveryConfig: DeliveryConfig{
			Batch: BatchConfig{MaxEvents: 0, MaxBytes: 10, Linger: -time.Second},
			Retry: RetryConfig{Initial: time.Second, Max: time.Millisecond, Multiplier: 0.5, Jitter: 2},
		},
		Headers: map[string]string{
			"Content-Type": "x", "Ce-Id": "x", "Bad Header": "x", "X-Token": "abc\r\nInjected: yes",
		},
	}
	err := c.Validate()
	want := []string{
		`name: must match [a-z0-9_-]+, got "Bad Name"`,
		`type: unknown uplink type "carrier-pigeon" (known: http, mqtt)`,
		`url: must be an http:// or https:// URL`,
		`mode: must be one of batch, binary, structured, got "smoke"`,
		`timeout: must be positive`,
		`max_in_flight: must be between 1 and 1024`,
		`batch.max_events: must be between 1 and 100000`,
		`batch.max_bytes: must be between 1024 and 67108864`,
		`batch.linger: must not be negative`,
		`retry.max: must be at least retry.initial (1s)`,
		`retry.multiplier: must be between 1 and 100`,
		`retry.jitter: must be between 0 and 1`,
		`headers.Bad Header: is not a valid HTTP header name`,
		`headers.Ce-Id: is set by the sender and cannot be configured`,
		`headers.Content-Type: is set by the sender and cannot be configured`,
		`headers.X-Token: value must not contain CR, LF or NUL`,
	}
	got := strings.Split(err.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Validate:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "Injected") {
		t.Error("header value echoed in error")
	}

	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "name: is required\nurl: is required"},
		{Config{Name: "a"}, "url: is required"},
		{Config{Name: "a", URL: "http://"}, "url: must be an http:// or https:// URL"},
		{Config{Name: "a", URL: "://x"}, "url: must be an http:// or https:// URL"},
	} {
		tc.cfg.ApplyDefaults()
		if err := tc.cfg.Validate(); err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
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
