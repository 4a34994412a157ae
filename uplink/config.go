package uplink

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Sender types accepted in Config.Type.
const (
	TypeHTTP = "http"
)

// HTTP delivery modes accepted in Config.Mode.
const (
	// ModeBatch sends one request per batch with the CloudEvents JSON batch
	// format (application/cloudevents-batch+json).
	ModeBatch = "batch"
	// ModeBinary sends one request per event with the CloudEvents HTTP
	// binary binding (ce-* headers, body = data), as Knative brokers expect.
	ModeBinary = "binary"
	// ModeStructured sends one request per event whose body is the event in
	// the CloudEvents JSON format (application/cloudevents+json).
	ModeStructured = "structured"
)

// Config describes one uplink (one cloud endpoint). It is the YAML section
// of one entry in the gateway's uplinks list.
type Config struct {
	// Name identifies the uplink in metrics and logs; [a-z0-9_-]+.
	Name string `yaml:"name"`
	// Type selects the sender: "http".
	Type string `yaml:"type"`
	// URL is the http:// or https:// endpoint events are POSTed to.
	URL string `yaml:"url"`
	// Mode is "batch" (default), "binary" or "structured".
	Mode string `yaml:"mode"`
	// Timeout bounds one HTTP request, from dial to the end of the response.
	Timeout time.Duration `yaml:"timeout"`
	// MaxInFlight bounds concurrent requests in binary and structured mode.
	MaxInFlight int `yaml:"max_in_flight"`
	// Batch tells the caller how to cut batches for Send.
	Batch BatchConfig `yaml:"batch"`
	// Retry configures the caller's Backoff between failed sends.
	Retry RetryConfig `yaml:"retry"`
	// Headers are added to every request (e.g. Authorization). Values are
	// never logged.
	Headers map[string]string `yaml:"headers"`
}

// BatchConfig bounds the record slices given to Send. The caller (the
// forward loop) batches; Sender splits batch requests by MaxBytes again.
type BatchConfig struct {
	// MaxEvents is the largest number of records per Send call.
	MaxEvents int `yaml:"max_events"`
	// MaxBytes is the largest request body in batch mode; larger slices are
	// split into several requests. A single larger record is sent alone.
	MaxBytes int `yaml:"max_bytes"`
	// Linger is how long the caller may wait for a batch to fill; 0 sends
	// whatever is available.
	Linger time.Duration `yaml:"linger"`
}

// RetryConfig configures exponential backoff with jitter (see Backoff).
type RetryConfig struct {
	// Initial is the first delay.
	Initial time.Duration `yaml:"initial"`
	// Max caps every delay.
	Max time.Duration `yaml:"max"`
	// Multiplier grows the delay after each failure; ≥ 1.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter spreads each delay uniformly by ±Jitter (a fraction in [0, 1]).
	// ApplyDefaults treats 0 as unset; start from DefaultConfig to keep an
	// explicit 0.
	Jitter float64 `yaml:"jitter"`
}

// Default values used by DefaultConfig and ApplyDefaults.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxInFlight     = 8
	DefaultBatchMaxEvents  = 500
	DefaultBatchMaxBytes   = 1 << 20
	DefaultRetryInitial    = 200 * time.Millisecond
	DefaultRetryMax        = 30 * time.Second
	DefaultRetryMultiplier = 2.0
	DefaultRetryJitter     = 0.2
)

// DefaultConfig returns a Config with every default filled in. Name and URL
// are left empty: they have no defaults.
func DefaultConfig() Config {
	c := Config{}
	c.ApplyDefaults()
	return c
}

// ApplyDefaults fills every zero-valued field that has a default.
func (c *Config) ApplyDefaults() {
	if c.Type == "" {
		c.Type = TypeHTTP
	}
	if c.Mode == "" {
		c.Mode = ModeBatch
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Batch.MaxEvents == 0 {
		c.Batch.MaxEvents = DefaultBatchMaxEvents
	}
	if c.Batch.MaxBytes == 0 {
		c.Batch.MaxBytes = DefaultBatchMaxBytes
	}
	if c.Retry.Initial == 0 {
		c.Retry.Initial = DefaultRetryInitial
	}
	if c.Retry.Max == 0 {
		c.Retry.Max = DefaultRetryMax
	}
	if c.Retry.Multiplier == 0 {
		c.Retry.Multiplier = DefaultRetryMultiplier
	}
	if c.Retry.Jitter == 0 {
		c.Retry.Jitter = DefaultRetryJitter
	}
}

// Limits enforced by Validate.
const (
	maxInFlightLimit = 1024
	maxEventsLimit   = 100_000
	maxBytesLimit    = 64 << 20
	minBytesLimit    = 1 << 10
)

// Validate reports every problem in c, each as "field.path: what is wrong"
// with yaml key names, joined with errors.Join. It expects defaults to have
// been applied.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}

	switch {
	case c.Name == "":
		add("name", "is required")
	case !validName(c.Name):
		add("name", "must match [a-z0-9_-]+, got %q", c.Name)
	}

	switch c.Type {
	case TypeHTTP:
	case "":
		add("type", "is required")
	default:
		add("type", "unknown uplink type %q (known: %s)", c.Type, TypeHTTP)
	}

	if c.URL == "" {
		add("url", "is required")
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url", "must be an http:// or https:// URL")
	}

	switch c.Mode {
	case ModeBatch, ModeBinary, ModeStructured:
	default:
		add("mode", "must be one of batch, binary, structured, got %q", c.Mode)
	}

	if c.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightLimit {
		add("max_in_flight", "must be between 1 and %d", maxInFlightLimit)
	}

	if c.Batch.MaxEvents < 1 || c.Batch.MaxEvents > maxEventsLimit {
		add("batch.max_events", "must be between 1 and %d", maxEventsLimit)
	}
	if c.Batch.MaxBytes < minBytesLimit || c.Batch.MaxBytes > maxBytesLimit {
		add("batch.max_bytes", "must be between %d and %d", minBytesLimit, maxBytesLimit)
	}
	if c.Batch.Linger < 0 {
		add("batch.linger", "must not be negative")
	}

	if c.Retry.Initial <= 0 {
		add("retry.initial", "must be positive")
	}
	if c.Retry.Max < c.Retry.Initial {
		add("retry.max", "must be at least retry.initial (%s)", c.Retry.Initial)
	}
	if c.Retry.Multiplier < 1 || c.Retry.Multiplier > 100 {
		add("retry.multiplier", "must be between 1 and 100")
	}
	if c.Retry.Jitter < 0 || c.Retry.Jitter > 1 {
		add("retry.jitter", "must be between 0 and 1")
	}

	keys := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "headers." + k
		lk := strings.ToLower(k)
		switch {
		case !validHeaderName(k):
			add(field, "is not a valid HTTP header name")
		case lk == "content-type" || lk == "content-length" || lk == "host" ||
			lk == "transfer-encoding" || lk == "connection" || strings.HasPrefix(lk, "ce-"):
			add(field, "is set by the sender and cannot be configured")
		case strings.ContainsAny(c.Headers[k], "\r\n\x00"):
			// Never echo the value: it may be a token.
			add(field, "value must not contain CR, LF or NUL")
		}
	}

	return errors.Join(errs...)
}

func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if (b < 'a' || b > 'z') && (b < '0' || b > '9') && b != '_' && b != '-' {
			return false
		}
	}
	return s != ""
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}
