package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/metricname"
)

// Content types of the CloudEvents HTTP bindings.
const (
	contentTypeBatch      = "application/cloudevents-batch+json"
	contentTypeStructured = "application/cloudevents+json"
)

// maxResponseRead is how much of a response body is read (and discarded) so
// the connection can be reused; larger bodies close the connection.
const maxResponseRead = 64 << 10

// httpSender sends CloudEvents over HTTP in batch, binary or structured mode.
type httpSender struct {
	name    string
	mode    string
	url     string // full URL, used for requests only
	safeURL string // scheme://host/path: no credentials, no query; for errors and logs
	headers http.Header
	auth    *authenticator // nil: no auth section
	urlAuth string         // Authorization from the URL's user info; "": none
	gzip    bool
	client  *http.Client
	sem     chan struct{} // bounds concurrent requests across Send calls
	workers int
	maxBody int
	log     *slog.Logger

	set      *metrics.Set
	events   *metrics.Counter
	duration *metrics.PrometheusHistogram
	// requests[code] is edgegate_uplink_requests_total for that status
	// code (index 0: "error"), created on first use: building the name
	// and looking it up in set on every request showed in profiles.
	requests [600]atomic.Pointer[metrics.Counter]
}

var (
	_ Sender    = (*httpSender)(nil)
	_ io.Closer = (*httpSender)(nil)
)

func newHTTPSender(cfg Config, log *slog.Logger, m *metrics.Set) (*httpSender, error) {
	u, err := url.Parse(cfg.HTTP.URL)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: parse url: %w", cfg.Name, err)
	}
	safe := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		safe += "?…"
	}

	// Like http.DefaultTransport, with enough idle connections per host to
	// keep MaxInFlight requests on keep-alive connections.
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(cfg.HTTP.Timeout, 30*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          max(100, 2*cfg.HTTP.MaxInFlight),
		MaxIdleConnsPerHost:   max(cfg.HTTP.MaxInFlight, 2),
		MaxConnsPerHost:       max(cfg.HTTP.MaxInFlight, 2), // sem bounds requests; this, sockets
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(cfg.HTTP.Timeout, 10*time.Second),
		ExpectContinueTimeout: time.Second,
	}

	if tr.TLSClientConfig, err = buildTLSConfig(cfg.HTTP.TLS, log); err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}
	auth, err := newAuthenticator(cfg.HTTP.Auth, log)
	if err != nil {
		return nil, fmt.Errorf("uplink %q: %w", cfg.Name, err)
	}

	h := make(http.Header, len(cfg.HTTP.Headers))
	for k, v := range cfg.HTTP.Headers {
		h.Set(k, v)
	}

	workers := 1
	if cfg.HTTP.Mode != ModeBatch {
		workers = cfg.HTTP.MaxInFlight
	}
	var urlAuth string
	if u.User != nil {
		pw, _ := u.User.Password()
		urlAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw))
	}
	name := cfg.Name
	return &httpSender{
		urlAuth: urlAuth,
		name:    name,
		mode:    cfg.HTTP.Mode,
		url:     cfg.HTTP.URL,
		safeURL: safe,
		headers: h,
		auth:    auth,
		gzip:    cfg.HTTP.Compression == CompressionGzip,
		client: &http.Client{
			Transport:     tr,
			Timeout:       cfg.HTTP.Timeout,
			CheckRedirect: checkRedirect,
		},
		sem:      make(chan struct{}, cfg.HTTP.MaxInFlight),
		workers:  workers,
		maxBody:  int(cfg.Batch.MaxBytes),
		log:      log,
		set:      m,
		events:   m.GetOrCreateCounter(metricname.With("edgegate_uplink_events_sent_total", "uplink", name)),
		duration: m.GetOrCreatePrometheusHistogramExt(metricname.With("edgegate_uplink_request_duration_seconds", "uplink", name), requestBuckets()),
	}, nil
}

// checkRedirect follows only 307 and 308, which keep the method and body; a
// POST must not turn into a GET. Other redirects come back as the response.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return http.ErrUseLastResponse
	}
	if req.Response != nil {
		switch req.Response.StatusCode {
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return nil
		}
	}
	return http.ErrUseLastResponse
}

// Close releases idle connections.
func (s *httpSender) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// Send implements Sender.
func (s *httpSender) Send(ctx context.Context, events []*cloudevent.Event) error {
	if len(events) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &Error{Err: fmt.Errorf("send: %w", err), Retryable: true}
	}
	for i, e := range events {
		if err := e.Validate(); err != nil {
			return &Error{Err: &RecordError{Index: i, Err: fmt.Errorf("invalid cloudevent: %w", err)}}
		}
	}
	switch s.mode {
	case ModeBinary, ModeStructured:
		return s.sendEach(ctx, events)
	default:
		return s.sendBatch(ctx, events)
	}
}

// sendBatch posts the events as JSON arrays, split so each body stays under
// maxBody (a single larger event goes alone). Chunks go out in order; the
// first failure ends the call.
func (s *httpSender) sendBatch(ctx context.Context, events []*cloudevent.Event) error {
	one := make([]byte, 0, 1024) // one event's JSON before it joins the body
	var body []byte
	n := 0 // events in body
	flush := func() error {
		body = append(body, ']')
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
		if err != nil {
			return &Error{Err: fmt.Errorf("build request: %w", err)}
		}
		req.Header.Set("Content-Type", contentTypeBatch)
		if err := s.do(req, n); err != nil {
			return err
		}
		body, n = nil, 0 // the next body gets its own array
		return nil
	}
	for i, e := range events {
		one = cloudevent.AppendJSON(one[:0], e)
		if n > 0 && len(body)+len(one)+1 > s.maxBody { // "," or "]"
			if err := flush(); err != nil {
				return err
			}
		}
		if n == 0 {
			// Room for the events left, if they are like this one.
			body = make([]byte, 0, min(s.maxBody, (len(events)-i)*(len(one)+1))+len(one)+2)
			body = append(body, '[')
		} else {
			body = append(body, ',')
		}
		body = append(body, one...)
		n++
	}
	return flush()
}

// sendEach sends one request per event (binary or structured mode) on up
// to MaxInFlight workers, scheduled by lanes: events of one source go
// sequentially in slice order, sources in parallel. After the first
// failure no new request starts, so within a source no later event is
// delivered after an earlier failed one.
func (s *httpSender) sendEach(ctx context.Context, events []*cloudevent.Event) error {
	l := newLanes(events)
	var (
		mu     sync.Mutex
		failed []*Error
		ok     = make([]bool, len(events)) // [i] written by one worker, read after Wait
		wg     sync.WaitGroup
	)
	for range min(s.workers, l.count()) {
		wg.Go(func() {
			for {
				j, i, more := l.take()
				if !more {
					return
				}
				if ctx.Err() != nil {
					l.stop()
					l.done(j)
					return
				}
				if err := s.sendOne(ctx, events[i]); err != nil {
					l.stop()
					mu.Lock()
					failed = append(failed, &Error{
						Err:        &RecordError{Index: i, Err: err},
						Retryable:  err.Retryable,
						RetryAfter: err.RetryAfter,
						StatusCode: err.StatusCode,
					})
					mu.Unlock()
					l.done(j)
					return
				}
				ok[i] = true
				l.done(j)
			}
		})
	}
	wg.Wait()

	if e := eachError(ctx, failed, ok); e != nil {
		return e
	}
	return nil // not a nil *Error in a non-nil error
}

// eachError is the outcome of sendEach: nil when every record was
// accepted, else the failure (the lowest record's when several failed)
// with Accepted naming the records that got their own 2xx, so the caller
// never sends those again.
func eachError(ctx context.Context, failed []*Error, ok []bool) *Error {
	var accepted []int
	for i, o := range ok {
		if o {
			accepted = append(accepted, i)
		}
	}
	var e *Error
	switch {
	case len(failed) == 1:
		e = failed[0]
	case len(failed) > 1:
		slices.SortFunc(failed, func(a, b *Error) int {
			return a.Err.(*RecordError).Index - b.Err.(*RecordError).Index
		})
		e = &Error{StatusCode: failed[0].StatusCode}
		errs := make([]error, len(failed))
		for i, f := range failed {
			errs[i] = f
			e.Retryable = e.Retryable || f.Retryable
			e.RetryAfter = max(e.RetryAfter, f.RetryAfter)
		}
		e.Err = errors.Join(errs...)
	case len(accepted) < len(ok):
		e = &Error{Err: fmt.Errorf("send: %d of %d records not sent: %w", len(ok)-len(accepted), len(ok), context.Cause(ctx)), Retryable: true}
	default:
		return nil
	}
	e.Accepted = accepted
	return e
}

// sendOne sends one event in binary or structured mode.
func (s *httpSender) sendOne(ctx context.Context, e *cloudevent.Event) *Error {
	var body []byte
	var h http.Header
	if s.mode == ModeStructured {
		body = cloudevent.AppendJSON(make([]byte, 0, 512+len(e.Data)*4/3), e)
		h = http.Header{"Content-Type": {contentTypeStructured}}
	} else {
		var err error
		if h, err = binaryHeaders(e); err != nil {
			return &Error{Err: fmt.Errorf("build request: %w", err)}
		}
		body = e.Data
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return &Error{Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header = h
	return s.do(req, 1)
}

// binaryHeaders returns the headers of e in binary mode (HTTP binding
// 3.1): a ce- header per attribute and extension, in its canonical string
// form and percent-encoded (3.1.3.2), and Content-Type from
// datacontenttype. JSON data without a datacontenttype is declared
// application/json, as the JSON format implies it. A value with a control
// character cannot be sent, nor a datacontenttype that is a CloudEvents
// format: receivers would read the request as structured mode and take the
// data for the event (the mapping turns a device's claim of one into
// application/octet-stream, so this is a safety net). Both are errors.
func binaryHeaders(e *cloudevent.Event) (http.Header, error) {
	n := 8 + len(e.Extensions)
	h := make(http.Header, n)
	// One backing array for every value: each header gets a capped slice
	// of it, so the headers cost two allocations, not one per header.
	vals := make([]string, 0, n)
	add := func(key, v string) {
		vals = append(vals, v)
		h[key] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set := func(key, name, v string) error {
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
				return fmt.Errorf("attribute %s: control character in value", name)
			}
		}
		if key != "Content-Type" {
			v = percentEncodeHeader(v)
		}
		add(key, v)
		return nil
	}
	attrs := [...]struct{ key, name, v string }{
		{"Ce-Specversion", "specversion", cloudevent.SpecVersion},
		{"Ce-Id", "id", e.ID},
		{"Ce-Source", "source", e.Source},
		{"Ce-Type", "type", e.Type},
		{"Ce-Subject", "subject", e.Subject},
		{"Ce-Dataschema", "dataschema", e.DataSchema},
	}
	for _, a := range attrs {
		if a.v == "" {
			continue
		}
		if err := set(a.key, a.name, a.v); err != nil {
			return nil, err
		}
	}
	if !e.Time.IsZero() {
		add("Ce-Time", e.Time.UTC().Format(time.RFC3339Nano))
	}
	ct := e.DataContentType
	if ct == "" && len(e.Data) > 0 && !e.DataBase64 {
		ct = "application/json"
	}
	if ct != "" {
		if cloudevent.CloudEventsFormat(ct) { // mapping never makes one: a safety net
			return nil, fmt.Errorf("datacontenttype %q is a CloudEvents format: binary mode cannot carry it", ct)
		}
		if err := set("Content-Type", "datacontenttype", ct); err != nil {
			return nil, err
		}
	}
	for _, x := range e.Extensions {
		if e.Replayed && x.Name == cloudevent.ExtReplayed {
			continue
		}
		if err := set(extensionHeader(x.Name), x.Name, x.Value.String()); err != nil {
			return nil, err
		}
	}
	if e.Replayed {
		add("Ce-Replayed", "true")
	}
	return h, nil
}

// extensionHeader is the canonical header name of an extension (names are
// lower-case a-z0-9): "mqtttopic" → "Ce-Mqtttopic". The extensions the
// gateway itself sets on every event cost no allocation.
func extensionHeader(name string) string {
	switch name {
	case cloudevent.ExtTopic:
		return "Ce-Mqtttopic"
	case cloudevent.ExtQoS:
		return "Ce-Mqttqos"
	case cloudevent.ExtClientID:
		return "Ce-Edgegateclientid"
	case cloudevent.ExtUser:
		return "Ce-Edgegateuser"
	case cloudevent.ExtAuth:
		return "Ce-Edgegateauth"
	}
	b := make([]byte, 0, 3+len(name))
	b = append(b, "Ce-"...)
	b = append(b, name...)
	if c := b[3]; c >= 'a' && c <= 'z' {
		b[3] = c - 'a' + 'A'
	}
	return string(b)
}

// do performs one request and classifies its outcome. n is the number of
// events the request carries.
func (s *httpSender) do(req *http.Request, n int) *Error {
	for k, v := range s.headers {
		req.Header[k] = v
	}
	if s.auth != nil {
		req.Header.Set("Authorization", s.auth.authHeader())
	}
	if s.gzip {
		if err := compressRequest(req); err != nil {
			return &Error{Err: fmt.Errorf("compress request: %w", err)}
		}
	}
	select {
	case s.sem <- struct{}{}:
	case <-req.Context().Done():
		return &Error{Err: fmt.Errorf("post %s: %w", s.safeURL, context.Cause(req.Context())), Retryable: true}
	}
	start := time.Now()
	ctx, cancel := req.Context(), context.CancelFunc(func() {})
	if s.client.Timeout > 0 { // Validate requires one; New does not check
		ctx, cancel = context.WithTimeout(ctx, s.client.Timeout)
	}
	resp, err := s.roundTrip(req.WithContext(ctx))
	var body []byte
	if err == nil {
		if accepted(resp.StatusCode) { // the body is not needed: drain it for reuse
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
		} else {
			body, _ = io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
		}
		resp.Body.Close()
	}
	cancel()
	<-s.sem
	elapsed := time.Since(start)
	s.duration.Update(elapsed.Seconds())

	if err != nil {
		s.requestCounter(0).Inc()
		// *url.Error repeats the full URL, which may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		s.log.Debug("uplink request failed", "events", n, "duration", elapsed, "err", err)
		return &Error{Err: fmt.Errorf("post %s: %w", s.safeURL, err), Retryable: true}
	}
	s.requestCounter(resp.StatusCode).Inc()
	if accepted(resp.StatusCode) {
		s.events.Add(n)
		s.log.Debug("uplink request", "events", n, "status", resp.StatusCode, "duration", elapsed)
		return nil
	}
	if resp.StatusCode == http.StatusUnauthorized && s.auth != nil {
		s.auth.rejected() // a rotated token file is read again at once
	}
	e := &Error{StatusCode: resp.StatusCode, Retryable: retryableStatus(resp.StatusCode)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	msg := fmt.Sprintf("post %s: %s", s.safeURL, resp.Status)
	if resp.StatusCode == http.StatusMultiStatus {
		msg += " (partial acceptance: the receiver did not take every event)"
	}
	if sn := snippet(body); sn != "" {
		msg += ": " + sn
	}
	e.Err = errors.New(msg)
	s.log.Debug("uplink request rejected", "events", n, "status", resp.StatusCode, "duration", elapsed)
	return e
}

// roundTrip sends req on the transport itself rather than through
// http.Client, whose work per request (a copy of every header, kept for
// redirects, and a timer) showed in binary-mode profiles at ~7% of the
// gateway's CPU; req's context carries the timeout instead. What the
// client would add is kept: basic auth from the URL's user info, and a
// 307 or 308 (rare) sends the request again through the client, which
// follows it with its own checks (checkRedirect; credentials dropped on
// a redirect to another host).
func (s *httpSender) roundTrip(req *http.Request) (*http.Response, error) {
	if s.urlAuth != "" && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", s.urlAuth)
	}
	resp, err := s.client.Transport.RoundTrip(req)
	if err != nil || req.GetBody == nil ||
		resp.StatusCode != http.StatusTemporaryRedirect && resp.StatusCode != http.StatusPermanentRedirect {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseRead))
	resp.Body.Close()
	again := req.Clone(req.Context())
	if again.Body, err = req.GetBody(); err != nil {
		return nil, err
	}
	return s.client.Do(again)
}

// accepted reports whether a response status means the receiver took every
// event of the request: a 2xx other than 207 (partial acceptance).
func accepted(code int) bool {
	return code >= 200 && code < 300 && code != http.StatusMultiStatus
}

// requestCounter returns edgegate_uplink_requests_total for a response
// status code, or for no response (code 0: "error").
func (s *httpSender) requestCounter(code int) *metrics.Counter {
	if code < 0 || code >= len(s.requests) {
		return s.set.GetOrCreateCounter(metricname.With("edgegate_uplink_requests_total", "uplink", s.name, "code", strconv.Itoa(code)))
	}
	if c := s.requests[code].Load(); c != nil {
		return c
	}
	label := "error"
	if code != 0 {
		label = strconv.Itoa(code)
	}
	c := s.set.GetOrCreateCounter(metricname.With("edgegate_uplink_requests_total", "uplink", s.name, "code", label))
	s.requests[code].Store(c) // a racing store holds the same counter
	return c
}

// percentEncodeHeader percent-encodes a ce- header value as the HTTP
// binding requires (3.1.3.2): space, '"', '%' and every byte outside
// printable ASCII become %XX (UTF-8 bytes, upper-case hex).
func percentEncodeHeader(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// gzipWriters recycles gzip writers (each holds ~800 KB of state).
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return w
}}

// compressRequest replaces req's body with its gzip encoding.
func compressRequest(req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	raw, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	buf.Grow(len(raw)/4 + 64)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, err = zw.Write(raw)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	gzipWriters.Put(zw)
	if err != nil {
		return err
	}
	body := buf.Bytes()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Encoding", "gzip")
	return nil
}
