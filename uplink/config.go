package uplink

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Sender types accepted in Config.Type.
const (
	// TypeHTTP posts CloudEvents over HTTP (batch, binary or structured).
	TypeHTTP = "http"
	// TypeMQTT publishes CloudEvents to a cloud MQTT broker (MQTT 3.1.1,
	// QoS 1, structured JSON).
	TypeMQTT = "mqtt"
)

// MQTT session stores accepted in Config.SessionStore.
const (
	// SessionStoreFile keeps unacknowledged publishes in files (paho
	// FileStore) under Config.StateDir.
	SessionStoreFile = "file"
	// SessionStoreMemory keeps them in memory.
	SessionStoreMemory = "memory"
)

// Request body compressions accepted in Config.Compression.
const (
	// CompressionNone sends bodies as they are (the default).
	CompressionNone = "none"
	// CompressionGzip gzips request bodies and sets Content-Encoding: gzip.
	CompressionGzip = "gzip"
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
	// DeliveryConfig holds the settings of the delivery loop (Delivery):
	// batch, retry, replay and dead_letter, at the uplink's top level.
	DeliveryConfig `yaml:",inline"`
	// Headers are added to every request (e.g. Authorization). Values are
	// never logged. http only.
	Headers map[string]string `yaml:"headers"`
	// Compression is "none" (default) or "gzip" (request bodies). http only.
	Compression string `yaml:"compression"`
	// Auth holds credentials: a bearer token or HTTP basic (http), or a
	// username and password (mqtt, in auth.basic).
	Auth AuthConfig `yaml:"auth"`
	// TLS configures custom CAs, client certificates (mTLS) and server
	// name checks for https:// and tls:// URLs.
	TLS TLSConfig `yaml:"tls"`

	// ClientID is the MQTT client identifier; "{gateway_id}" is replaced by
	// the gateway id. Default "edgegate-{gateway_id}-<name>". mqtt only.
	ClientID string `yaml:"client_id"`
	// Topic is the MQTT topic template. Variables: {gateway_id}, {type},
	// {source}, {subject}, {id}. Default DefaultMQTTTopic. mqtt only.
	Topic string `yaml:"topic"`
	// KeepAlive is the MQTT keep-alive interval. mqtt only.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// SessionStore keeps the MQTT publishes awaiting a PUBACK: "memory"
	// (default) or "file" (paho's FileStore in StateDir). Memory loses
	// nothing: a batch leaves the gateway's disk buffer only after every
	// PUBACK, and is sent again after a reconnect or restart. A file store
	// costs two file operations per message (~10x slower, SD-card wear).
	// mqtt only.
	SessionStore string `yaml:"session_store"`
	// StateDir holds the MQTT file session store. The gateway fills it in
	// from its data directory when left empty; New requires it for
	// session_store file. mqtt only.
	StateDir string `yaml:"state_dir"`

	// GatewayID is the gateway's id, for {gateway_id} in Topic and ClientID.
	// It is not read from the uplink's YAML: the gateway sets it.
	GatewayID string `yaml:"-"`
}

// AuthConfig holds the credentials of an uplink. At most one of bearer
// token and basic may be set. Secrets read from files are re-read when the
// file changes (checked at most every few seconds, and at once after a 401).
type AuthConfig struct {
	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string `yaml:"bearer_token"`
	// BearerTokenFile holds the token (surrounding white space is trimmed).
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Basic is HTTP basic auth (http) or the MQTT username and password.
	Basic BasicAuth `yaml:"basic"`
}

// BasicAuth is a username with a password given inline or in a file.
type BasicAuth struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig configures the TLS client side of an uplink.
type TLSConfig struct {
	// CAFile is a PEM bundle of CAs that replace the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the PEM client certificate and key (mTLS).
	// They are reloaded when the files change.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify disables server certificate checks (testing only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// ServerName overrides the name checked in the server's certificate
	// (and sent as SNI).
	ServerName string `yaml:"server_name"`
}

func (t TLSConfig) isZero() bool { return t == TLSConfig{} }

// DeliveryConfig configures how Delivery moves batches to a Sender: their
// size, the retries of failed sends, the pace of a replayed backlog and
// where refused events go. It is apart from the sender's own settings, as
// Telegraf keeps OutputConfig apart from the plugin's.
type DeliveryConfig struct {
	// Batch tells the caller how to cut batches for Send.
	Batch BatchConfig `yaml:"batch"`
	// Retry configures the backoff between failed sends.
	Retry RetryConfig `yaml:"retry"`
	// Replay paces the drain of events that waited out an outage.
	Replay ReplayConfig `yaml:"replay"`
	// DeadLetter is where events go that the endpoint refuses for good or
	// that exhaust retry.max_attempts: "" keeps them in this uplink's
	// dead-letter queue in the buffer; otherwise the name of another
	// uplink. They carry the failure as extension attributes.
	DeadLetter string `yaml:"dead_letter"`
}

// Validate reports every problem in d, each as "field.path: what is
// wrong", joined with errors.Join. It expects defaults to have been
// applied. Whether DeadLetter names an uplink is the caller's to check.
func (d DeliveryConfig) Validate() error { return errors.Join(d.validate()...) }

func (d DeliveryConfig) validate() []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if d.Batch.MaxEvents < 1 || d.Batch.MaxEvents > maxEventsLimit {
		add("batch.max_events", "must be between 1 and %d", maxEventsLimit)
	}
	if d.Batch.MaxBytes < minBytesLimit || d.Batch.MaxBytes > maxBytesLimit {
		add("batch.max_bytes", "must be between %d and %d", minBytesLimit, maxBytesLimit)
	}
	if d.Batch.Linger < 0 {
		add("batch.linger", "must not be negative")
	}
	if d.Retry.Initial <= 0 {
		add("retry.initial", "must be positive")
	}
	if d.Retry.Max < d.Retry.Initial {
		add("retry.max", "must be at least retry.initial (%s)", d.Retry.Initial)
	}
	if d.Retry.MaxAttempts < 0 {
		add("retry.max_attempts", "must be ≥ 0 (0 retries forever)")
	}
	if d.Replay.MaxRate < 0 {
		add("replay.max_rate", "must be ≥ 0 (0 drains at full speed)")
	}
	if d.Retry.Multiplier < 1 || d.Retry.Multiplier > 100 {
		add("retry.multiplier", "must be between 1 and 100")
	}
	if d.Retry.Jitter < 0 || d.Retry.Jitter > 1 {
		add("retry.jitter", "must be between 0 and 1")
	}
	return errs
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

// ReplayConfig paces the drain of a backlog after an outage.
type ReplayConfig struct {
	// MaxRate caps events/s sent while replaying a backlog; 0 drains at
	// full speed. Live events are not slowed once the backlog is gone.
	MaxRate float64 `yaml:"max_rate"`
}

// RetryConfig configures exponential backoff with jitter (Delivery's backoff).
type RetryConfig struct {
	// MaxAttempts bounds the attempts for one event before it is
	// dead-lettered; 0 (default) retries forever, so an outage never turns
	// into data loss.
	MaxAttempts int `yaml:"max_attempts"`
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
	// DefaultMQTTTopic is the default topic template of an mqtt uplink.
	DefaultMQTTTopic = "gateways/{gateway_id}/events/{type}"
	// DefaultMQTTKeepAlive is the default MQTT keep-alive interval.
	DefaultMQTTKeepAlive = 30 * time.Second
	// DefaultMQTTMaxInFlight bounds unacknowledged publishes (AWS IoT Core
	// allows 100 per connection).
	DefaultMQTTMaxInFlight = 100
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
	if c.Type == TypeMQTT {
		if c.Mode == "" {
			c.Mode = ModeStructured
		}
		if c.Topic == "" {
			c.Topic = DefaultMQTTTopic
		}
		if c.KeepAlive == 0 {
			c.KeepAlive = DefaultMQTTKeepAlive
		}
		if c.MaxInFlight == 0 {
			c.MaxInFlight = DefaultMQTTMaxInFlight
		}
		if c.SessionStore == "" {
			c.SessionStore = SessionStoreMemory
		}
	}
	if c.Mode == "" {
		c.Mode = ModeBatch
	}
	if c.Compression == "" {
		c.Compression = CompressionNone
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
// been applied. It reads the files named in auth and tls (they must exist
// and parse) but never puts a secret into an error.
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
	case TypeHTTP, TypeMQTT:
	case "":
		add("type", "is required")
	default:
		add("type", "unknown uplink type %q (known: %s, %s)", c.Type, TypeHTTP, TypeMQTT)
	}

	secure := false
	if c.URL == "" {
		add("url", "is required")
	} else if c.Type == TypeMQTT {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil || u.Host == "" || !mqttSchemes[u.Scheme]:
			add("url", "must be a tcp://, mqtt://, tls://, ssl://, mqtts://, ws:// or wss:// URL")
		case u.Port() == "" && u.Scheme != "ws" && u.Scheme != "wss":
			add("url", "must include a port, e.g. tls://host:8883")
		case u.User != nil:
			add("url", "must not carry credentials: use auth.basic")
		default:
			secure = mqttSecure[u.Scheme]
		}
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		add("url", "must be an http:// or https:// URL")
	} else {
		secure = u.Scheme == "https"
	}

	switch {
	case c.Type == TypeMQTT && c.Mode != ModeStructured:
		add("mode", "type mqtt supports only structured, got %q", c.Mode)
	case c.Mode == ModeBatch, c.Mode == ModeBinary, c.Mode == ModeStructured:
	default:
		add("mode", "must be one of batch, binary, structured, got %q", c.Mode)
	}

	switch {
	case c.Compression != "" && c.Compression != CompressionNone && c.Compression != CompressionGzip:
		add("compression", "must be none or gzip, got %q", c.Compression)
	case c.Type == TypeMQTT && c.Compression == CompressionGzip:
		add("compression", "not supported for type mqtt")
	}

	if c.Timeout <= 0 {
		add("timeout", "must be positive")
	}
	if c.MaxInFlight < 1 || c.MaxInFlight > maxInFlightLimit {
		add("max_in_flight", "must be between 1 and %d", maxInFlightLimit)
	}

	errs = append(errs, c.DeliveryConfig.validate()...)
	if c.DeadLetter == c.Name && c.Name != "" {
		add("dead_letter", "must name another uplink, not this one")
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

	if c.Type == TypeMQTT && len(c.Headers) > 0 {
		add("headers", "not supported for type mqtt")
	}
	if _, ok := headerKey(c.Headers, "Authorization"); ok && c.Auth != (AuthConfig{}) {
		add("headers.Authorization", "conflicts with auth: set one of them")
	}

	errs = append(errs, c.Auth.validate(c.Type)...)
	if !c.TLS.isZero() && !secure && c.URL != "" {
		add("tls", "requires a TLS url (https://, tls://, ssl://, mqtts:// or wss://)")
	}
	errs = append(errs, c.TLS.validate()...)

	if c.Type == TypeMQTT {
		if err := checkTopicTemplate(c.Topic); err != nil {
			add("topic", "%v", err)
		}
		if c.ClientID != "" && (len(c.ClientID) > 65535 || strings.ContainsRune(c.ClientID, 0) || !utf8.ValidString(c.ClientID)) {
			add("client_id", "must be valid UTF-8 without NUL, at most 65535 bytes")
		}
		if c.KeepAlive < time.Second {
			add("keep_alive", "must be at least 1s")
		}
		if c.SessionStore != SessionStoreFile && c.SessionStore != SessionStoreMemory {
			add("session_store", "must be file or memory, got %q", c.SessionStore)
		}
	} else {
		for _, f := range []struct {
			key string
			set bool
		}{{"client_id", c.ClientID != ""}, {"topic", c.Topic != ""}, {"keep_alive", c.KeepAlive != 0}, {"session_store", c.SessionStore != ""}, {"state_dir", c.StateDir != ""}} {
			if f.set {
				add(f.key, "only for type mqtt")
			}
		}
	}

	return errors.Join(errs...)
}

var (
	mqttSchemes = map[string]bool{"tcp": true, "mqtt": true, "tls": true, "ssl": true, "mqtts": true, "ws": true, "wss": true}
	mqttSecure  = map[string]bool{"tls": true, "ssl": true, "mqtts": true, "wss": true}
)

// headerKey finds a header name case-insensitively.
func headerKey(h map[string]string, name string) (string, bool) {
	for k := range h {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// validate checks the auth section; it reads secret files but never
// echoes a secret.
func (a AuthConfig) validate(typ string) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("auth.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	bearer := a.BearerToken != "" || a.BearerTokenFile != ""
	basic := a.Basic != (BasicAuth{})
	switch {
	case a.BearerToken != "" && a.BearerTokenFile != "":
		add("bearer_token_file", "conflicts with auth.bearer_token: set one of them")
	case bearer && typ == TypeMQTT:
		add("bearer_token", "not supported for type mqtt: use auth.basic or a tls client certificate")
	case bearer && basic:
		add("basic", "conflicts with the bearer token: set one of them")
	}
	if a.BearerToken != "" && !validSecret(a.BearerToken) {
		add("bearer_token", "must not contain control characters")
	}
	if a.BearerTokenFile != "" {
		if _, err := readSecretFile(a.BearerTokenFile); err != nil {
			add("bearer_token_file", "%v", err)
		}
	}
	if basic {
		b := a.Basic
		switch {
		case b.Username == "":
			add("basic.username", "is required")
		case typ != TypeMQTT && strings.Contains(b.Username, ":"):
			add("basic.username", "must not contain ':'")
		case !validSecret(b.Username):
			add("basic.username", "must not contain control characters")
		}
		if b.Password != "" && b.PasswordFile != "" {
			add("basic.password_file", "conflicts with auth.basic.password: set one of them")
		}
		if b.Password != "" && !validSecret(b.Password) {
			add("basic.password", "must not contain control characters")
		}
		if b.PasswordFile != "" {
			if _, err := readSecretFile(b.PasswordFile); err != nil {
				add("basic.password_file", "%v", err)
			}
		}
	}
	return errs
}

// validate checks the tls section by loading its files.
func (t TLSConfig) validate() []error {
	var errs []error
	if t.CAFile != "" {
		if _, err := loadCAFile(t.CAFile); err != nil {
			errs = append(errs, fmt.Errorf("tls.ca_file: %w", err))
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		errs = append(errs, errors.New("tls.key_file: is required with tls.cert_file"))
	case t.CertFile == "" && t.KeyFile != "":
		errs = append(errs, errors.New("tls.cert_file: is required with tls.key_file"))
	case t.CertFile != "":
		if _, err := loadKeyPair(t.CertFile, t.KeyFile); err != nil {
			errs = append(errs, err)
		}
	}
	if strings.ContainsAny(t.ServerName, " /\x00") {
		errs = append(errs, errors.New("tls.server_name: must be a host name"))
	}
	return errs
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

// redactedValue replaces secrets in Redacted.
const redactedValue = "<redacted>"

// Redacted returns a copy of c that is safe to show (logs, /status): header
// values, inline tokens and passwords become "<redacted>", and the URL loses
// its password and query values. File paths are kept: they are not secrets.
func (c Config) Redacted() Config {
	r := c
	r.URL = redactURL(c.URL)
	if c.Headers != nil {
		r.Headers = make(map[string]string, len(c.Headers))
		for k := range c.Headers {
			r.Headers[k] = redactedValue
		}
	}
	if r.Auth.BearerToken != "" {
		r.Auth.BearerToken = redactedValue
	}
	if r.Auth.Basic.Password != "" {
		r.Auth.Basic.Password = redactedValue
	}
	return r
}

// String describes the uplink without secrets.
func (c Config) String() string {
	return fmt.Sprintf("uplink %s (%s %s %s)", c.Name, c.Type, c.Mode, redactURL(c.URL))
}

// LogValue makes slog print the redacted view.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("type", c.Type),
		slog.String("mode", c.Mode),
		slog.String("url", redactURL(c.URL)),
	)
}

// redactURL drops the password and query values of a URL. An unparsable
// URL is replaced entirely.
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redactedValue
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"xxxxx"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	return u.String()
}
