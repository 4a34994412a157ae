package uplink

import (
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/edgegate/edgegate/internal/yamlconf"
)

// HTTP delivery modes accepted in HTTPConfig.Mode.
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

// Request body compressions accepted in HTTPConfig.Compression.
const (
	// CompressionNone sends bodies as they are (the default).
	CompressionNone = "none"
	// CompressionGzip gzips request bodies and sets Content-Encoding: gzip.
	CompressionGzip = "gzip"
)

// HTTP sender defaults.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 32
)

// maxInFlightLimit bounds max_in_flight of both senders.
const maxInFlightLimit = 1024

// HTTPConfig is the http section of an uplink: CloudEvents over HTTP.
type HTTPConfig struct {
	// URL is the http:// or https:// endpoint events are POSTed to.
	URL string `yaml:"url"`
	// Mode is "batch" (default), "binary" or "structured".
	Mode string `yaml:"mode"`
	// Timeout bounds one HTTP request, from dial to the end of the response.
	Timeout time.Duration `yaml:"timeout"`
	// MaxInFlight bounds concurrent requests (and connections) in binary and
	// structured mode; one device's events still go one at a time, in order.
	MaxInFlight int `yaml:"max_in_flight"`
	// Compression is "none" (default) or "gzip" (request bodies).
	Compression string `yaml:"compression"`
	// Headers are added to every request (e.g. Authorization). Values are
	// never logged.
	Headers map[string]string `yaml:"headers"`
	// Auth holds credentials: a bearer token or HTTP basic.
	Auth AuthConfig `yaml:"auth"`
	// TLS configures custom CAs, client certificates (mTLS) and server
	// name checks for https:// URLs.
	TLS TLSConfig `yaml:"tls"`
}

// DefaultHTTPConfig returns the http section's defaults; URL has none.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Mode: ModeBatch, Timeout: DefaultTimeout, MaxInFlight: DefaultMaxInFlight, Compression: CompressionNone}
}

// SetDefaults sets the defaults before the section is decoded
// (yamlconf.Defaulter).
func (h *HTTPConfig) SetDefaults() { *h = DefaultHTTPConfig() }

// Validate reports every problem in the section, each a *yamlconf.Error
// with its path from the section. It reads the files auth and tls name.
func (h HTTPConfig) Validate() error {
	var errs yamlconf.List
	secure := false
	if h.URL == "" {
		errs.Add(yamlconf.Key("url"), "is required")
	} else if u, err := url.Parse(h.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs.Add(yamlconf.Key("url"), "must be an http:// or https:// URL")
	} else {
		secure = u.Scheme == "https"
	}
	switch h.Mode {
	case ModeBatch, ModeBinary, ModeStructured:
	default:
		errs.Add(yamlconf.Key("mode"), "must be one of batch, binary, structured, got %q", h.Mode)
	}
	if h.Compression != CompressionNone && h.Compression != CompressionGzip {
		errs.Add(yamlconf.Key("compression"), "must be none or gzip, got %q", h.Compression)
	}
	validateHeaders(&errs, h.Headers)
	if _, ok := headerKey(h.Headers, "Authorization"); ok && h.Auth != (AuthConfig{}) {
		errs.Add(yamlconf.Key("headers").Key("Authorization"), "conflicts with auth: set one of them")
	}
	transport{h.URL, secure, h.Timeout, h.MaxInFlight, h.Auth, h.TLS, false}.validate(&errs)
	return errs.Err()
}

// transport is what both senders' sections have: a url, limits and
// credentials.
type transport struct {
	url         string
	secure      bool // the url's scheme is a TLS one
	timeout     time.Duration
	maxInFlight int
	auth        AuthConfig
	tls         TLSConfig
	mqtt        bool
}

// validate checks timeout, max_in_flight, auth and tls (which needs a TLS
// url); paths are from the sender's section.
func (t transport) validate(errs *yamlconf.List) {
	if t.timeout <= 0 {
		errs.Add(yamlconf.Key("timeout"), "must be positive")
	}
	if t.maxInFlight < 1 || t.maxInFlight > maxInFlightLimit {
		errs.Add(yamlconf.Key("max_in_flight"), "must be between 1 and %d", maxInFlightLimit)
	}
	errs.Nest(yamlconf.Key("auth"), t.auth.validate(t.mqtt))
	if !t.tls.isZero() && !t.secure && t.url != "" {
		errs.Add(yamlconf.Key("tls"), "requires a TLS url (https://, tls://, ssl://, mqtts:// or wss://)")
	}
	errs.Nest(yamlconf.Path{}, t.tls.validate())
}

// validateHeaders checks header names and values, never echoing a value.
func validateHeaders(errs *yamlconf.List, headers map[string]string) {
	keys := make([]string, 0, len(headers))
	for k := range headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		at := yamlconf.Key("headers").Key(k)
		lk := strings.ToLower(k)
		switch {
		case !validHeaderName(k):
			errs.Add(at, "is not a valid HTTP header name")
		case lk == "content-type" || lk == "content-length" || lk == "host" ||
			lk == "transfer-encoding" || lk == "connection" || strings.HasPrefix(lk, "ce-"):
			errs.Add(at, "is set by the sender and cannot be configured")
		case strings.ContainsAny(headers[k], "\r\n\x00"):
			// Never echo the value: it may be a token.
			errs.Add(at, "value must not contain CR, LF or NUL")
		}
	}
}

// headerKey finds a header name case-insensitively.
func headerKey(h map[string]string, name string) (string, bool) {
	for k := range h {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
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
