package configchannel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/certfile"
	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/ratelog"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

// PullConfig is remote_config.pull: poll a URL for the configuration.
type PullConfig struct {
	// URL is polled with GET; "" disables pulling. https, or http to a
	// loopback address only.
	URL string `yaml:"url"`
	// Interval between polls (default 5m, at least 1s).
	Interval time.Duration `yaml:"interval"`
	// Jitter spreads each wait uniformly by ± this fraction of it (in
	// [0, 1]; default 0.1), so a fleet that restarts together does not poll
	// together. It is written as the uplinks' retry.jitter is.
	Jitter float64 `yaml:"jitter"`
	// TokenFile holds a bearer token sent as Authorization (read on every
	// poll, so it can be rotated).
	TokenFile string `yaml:"token_file"`
	// CAFile is a PEM bundle of the CAs that sign the server's
	// certificate, instead of the system's.
	CAFile string `yaml:"ca_file"`
}

// DefaultPullConfig is remote_config.pull's defaults.
func DefaultPullConfig() PullConfig {
	return PullConfig{Interval: 5 * time.Minute, Jitter: 0.10}
}

// Validate checks the section; paths are relative to it.
func (c PullConfig) Validate() error {
	var errs yamlconf.List
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		switch {
		case err != nil || u.Host == "":
			errs.Add(yamlconf.Key("url"), "not an absolute URL")
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			errs.Add(yamlconf.Key("url"), "must be https (http only to a loopback address): a pulled config controls the gateway")
		case u.Scheme != "https" && u.Scheme != "http":
			errs.Add(yamlconf.Key("url"), "scheme %q: want https", u.Scheme)
		case u.User != nil:
			errs.Add(yamlconf.Key("url"), "must not carry credentials: use token_file")
		}
	}
	if c.Interval < time.Second {
		errs.Add(yamlconf.Key("interval"), "must be at least 1s, got %s", c.Interval)
	}
	if !(c.Jitter >= 0 && c.Jitter <= 1) {
		errs.Add(yamlconf.Key("jitter"), "must be a fraction from 0 to 1, got %v", c.Jitter)
	}
	if c.URL == "" && (c.TokenFile != "" || c.CAFile != "") {
		errs.Add(yamlconf.Key("url"), "is required with token_file or ca_file")
	}
	return errs.Err()
}

// ResolveFiles makes a relative token_file and ca_file relative to dir,
// the configuration file's directory.
func (c *PullConfig) ResolveFiles(dir string) {
	for _, p := range []*string{&c.TokenFile, &c.CAFile} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// CheckFiles reads ca_file, which is read once (the token file is read at
// every poll, so it may appear later); the error is relative to the
// section.
func (c PullConfig) CheckFiles() error {
	if c.CAFile == "" {
		return nil
	}
	if _, err := certfile.LoadCAs(c.CAFile); err != nil {
		return yamlconf.Errorf(yamlconf.Key("ca_file"), "%v", err)
	}
	return nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

// PullStatus is the pull channel's state, for /status.
type PullStatus struct {
	URL        string    `json:"url"`
	LastPoll   time.Time `json:"last_poll,omitzero"`
	LastResult string    `json:"last_result,omitempty"` // see Puller
	LastError  string    `json:"last_error,omitempty"`
	Failures   int       `json:"consecutive_failures"`
	LastChange time.Time `json:"last_change,omitzero"` // a document was handed to the apply path
	ETag       string    `json:"etag,omitempty"`
	NextPoll   time.Time `json:"next_poll,omitzero"`
}

// Puller polls PullConfig.URL and hands each changed document to the
// apply path. Every poll counts one edgegate_config_pull_total{result}:
//
//	applied       a new document, applied
//	unchanged     the same document as the last one handed on (or the
//	              apply path found it equal to the running config)
//	not_modified  304
//	rejected      refused by the apply path (not offered again until it changes)
//	error         no usable answer: connection, timeout, status, size,
//	              an empty or HTML body; the running config is untouched
type Puller struct {
	cfg     PullConfig
	origin  string // the URL without its query, for reports
	client  *http.Client
	apply   ApplyFunc
	log     *slog.Logger
	errLog  *ratelog.Limiter
	results map[string]*metrics.Counter

	mu       sync.Mutex // guards status, etag and lastHash
	status   PullStatus
	etag     string
	lastHash string // of the last document (and signature) handed on
}

// NewPuller checks what Validate cannot (the CA file) and builds the
// client; it starts nothing. log may be nil; m may be nil.
func NewPuller(cfg PullConfig, apply ApplyFunc, log *slog.Logger, m *metrics.Set) (*Puller, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewSet()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.CAFile != "" {
		pool, err := certfile.LoadCAs(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("remote_config.pull.ca_file: %w", err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	u, _ := url.Parse(cfg.URL) // checked by Validate
	u.RawQuery, u.Fragment = "", ""
	p := &Puller{
		cfg:     cfg,
		origin:  u.String(),
		client:  &http.Client{Transport: tr, Timeout: min(cfg.Interval, 30*time.Second)},
		apply:   apply,
		log:     log,
		errLog:  ratelog.New(log, slog.LevelWarn, "config pull failed: keeping the running configuration", time.Minute),
		results: map[string]*metrics.Counter{},
	}
	for _, r := range []string{"applied", "unchanged", "not_modified", "rejected", "error"} {
		p.results[r] = m.GetOrCreateCounter(metricname.With("edgegate_config_pull_total", "result", r))
	}
	p.status.URL = p.origin
	return p, nil
}

// Run polls until ctx is done: the first poll after a random share
// (Jitter) of the interval, then every Interval ± Jitter; after a failure
// sooner, backing off from 5s (or the interval, if shorter) up to the
// interval. It returns nil when ctx is done; nothing a server does stops
// it.
func (p *Puller) Run(ctx context.Context) error {
	defer p.errLog.Stop()
	first := backoff(1, 5*time.Second, p.cfg.Interval)
	wait := time.Duration(float64(p.cfg.Interval) * float64(p.cfg.Jitter) * randFloat())
	for {
		p.setNext(wait)
		if !sleep(ctx, wait) {
			return nil
		}
		result, err := p.Poll(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.mu.Lock()
		failures := p.status.Failures
		p.mu.Unlock()
		wait = jittered(p.cfg.Interval, p.cfg.Jitter)
		if err != nil && result == "error" {
			wait = jittered(backoff(failures, first, p.cfg.Interval), p.cfg.Jitter)
		}
	}
}

func (p *Puller) setNext(d time.Duration) {
	p.mu.Lock()
	p.status.NextPoll = time.Now().Add(d)
	p.mu.Unlock()
}

// Status reports the channel's state.
func (p *Puller) Status() PullStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Poll fetches the URL once and hands a changed document on; it returns
// the result it counted and, for "error" and "rejected", why.
func (p *Puller) Poll(ctx context.Context) (string, error) {
	u, changed, err := p.fetch(ctx)
	result := "not_modified"
	switch {
	case err != nil:
		result = "error"
	case u == nil && changed:
		result = "unchanged"
	case u != nil:
		var res Result
		res, err = p.apply(ctx, *u)
		switch {
		case err != nil:
			result = "rejected"
		case res.Unchanged:
			result = "unchanged"
		default:
			result = "applied"
			p.log.Info("pulled config applied", "url", p.origin, "version", res.Version, "hash", res.Hash)
		}
	}
	p.results[result].Inc()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status.LastPoll, p.status.LastResult, p.status.LastError = time.Now(), result, ""
	if err != nil {
		p.status.LastError = err.Error()
	}
	switch result {
	case "error":
		p.status.Failures++
		p.errLog.Log("url", p.origin, "failures", p.status.Failures, "err", err)
	case "rejected":
		p.status.Failures = 0
		p.status.LastChange = time.Now()
		p.log.Warn("pulled config rejected: keeping the running configuration (not applied again until the document changes)", "url", p.origin, "reason", rejectionReason(err), "err", err)
	default:
		p.status.Failures = 0
		if result == "applied" {
			p.status.LastChange = time.Now()
		}
	}
	return result, err
}

// fetch GETs the URL. It returns the update to apply, or nil with changed
// true for a 200 repeating the last document, or nil and false for a 304.
func (p *Puller) fetch(ctx context.Context) (*Update, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.cfg.URL, nil)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("Accept", "application/yaml, text/yaml, */*;q=0.5")
	p.mu.Lock()
	etag := p.etag
	p.mu.Unlock()
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	if p.cfg.TokenFile != "" {
		tok, err := os.ReadFile(p.cfg.TokenFile)
		if err != nil {
			return nil, false, fmt.Errorf("token_file: %w", err)
		}
		t := strings.TrimSpace(string(tok))
		if t == "" {
			return nil, false, fmt.Errorf("token_file %s is empty", p.cfg.TokenFile)
		}
		req.Header.Set("Authorization", "Bearer "+t)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may carry a query: report p.origin instead
		}
		return nil, false, fmt.Errorf("GET %s: %w", p.origin, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return nil, false, nil
	case resp.StatusCode != http.StatusOK:
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, false, fmt.Errorf("GET %s: %s", p.origin, resp.Status)
	}
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct == "text/html" {
		return nil, false, fmt.Errorf("GET %s: answered with an HTML page, not a configuration", p.origin)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxDocument+1))
	if err != nil {
		return nil, false, fmt.Errorf("GET %s: read body: %w", p.origin, err)
	}
	if len(data) > MaxDocument {
		return nil, false, fmt.Errorf("GET %s: document larger than %d bytes", p.origin, MaxDocument)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, false, fmt.Errorf("GET %s: empty document", p.origin)
	}
	sig := []byte(resp.Header.Get(configsign.Header))
	h := sha256.New()
	h.Write(data)
	h.Write([]byte{0})
	h.Write(sig)
	hash := hex.EncodeToString(h.Sum(nil))

	p.mu.Lock()
	defer p.mu.Unlock()
	p.etag = resp.Header.Get("ETag")
	p.status.ETag = p.etag
	if hash == p.lastHash {
		return nil, true, nil
	}
	p.lastHash = hash
	return &Update{Source: SourcePull, Origin: p.origin, Data: data, Signature: sig}, true, nil
}
