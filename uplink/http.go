package uplink

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
)

// Content types of the CloudEvents HTTP bindings.
const (
	contentTypeBatch      = event.ApplicationCloudEventsBatchJSON // application/cloudevents-batch+json
	contentTypeStructured = event.ApplicationCloudEventsJSON      // application/cloudevents+json
)

// maxResponseRead is how much of a response body is read (and discarded) so
// the connection can be reused; larger bodies close the connection.
const maxResponseRead = 64 << 10

var errNotObject = errors.New("not a JSON object")

// httpSender sends CloudEvents over HTTP in batch, binary or structured mode.
type httpSender struct {
	name    string
	mode    string
	url     string // full URL, used for requests only
	safeURL string // scheme://host/path: no credentials, no query; for errors and logs
	headers http.Header
	auth    *authenticator // nil: no auth section
	gzip    bool
	client  *http.Client
	sem     chan struct{} // bounds concurrent requests across Send calls
	workers int
	maxBody int
	log     *slog.Logger

	set      *metrics.Set
	events   *metrics.Counter
	duration *metrics.Histogram
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
	name := cfg.Name
	return &httpSender{
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
		events:   m.GetOrCreateCounter(fmt.Sprintf(`edgegate_uplink_events_sent_total{uplink=%q}`, name)),
		duration: m.GetOrCreateHistogram(fmt.Sprintf(`edgegate_uplink_request_duration_seconds{uplink=%q}`, name)),
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
func (s *httpSender) Send(ctx context.Context, records [][]byte) error {
	if len(records) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return &Error{Err: fmt.Errorf("send: %w", err), Retryable: true}
	}
	switch s.mode {
	case ModeBinary, ModeStructured:
		return s.sendEach(ctx, records)
	default:
		return s.sendBatch(ctx, records)
	}
}

// sendBatch posts the records as JSON arrays, split so each body stays under
// maxBody (a single larger record goes alone). Chunks go out in order; the
// first failure ends the call.
func (s *httpSender) sendBatch(ctx context.Context, records [][]byte) error {
	for i, r := range records {
		if !isJSONObject(r) {
			return &Error{Err: &RecordError{Index: i, Err: errNotObject}}
		}
	}
	for start := 0; start < len(records); {
		end, size := start, 1 // "["
		for end < len(records) {
			add := len(records[end]) + 1 // "," or "]"
			if end > start && size+add > s.maxBody {
				break
			}
			size += add
			end++
		}
		body := make([]byte, 0, size)
		body = append(body, '[')
		for i, r := range records[start:end] {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, r...)
		}
		body = append(body, ']')

		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
		if err != nil {
			return &Error{Err: fmt.Errorf("build request: %w", err)}
		}
		req.Header.Set("Content-Type", contentTypeBatch)
		if err := s.do(req, end-start); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// isJSONObject reports whether b is one valid JSON object.
func isJSONObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' && json.Valid(b)
}

// sendEach sends one request per record (binary or structured mode). Records
// of one source go sequentially in slice order; sources run in parallel on
// up to MaxInFlight workers. After the first failure no new request starts,
// so within a source no later event is delivered after an earlier failed one.
func (s *httpSender) sendEach(ctx context.Context, records [][]byte) error {
	events := make([]event.Event, len(records))
	var order []string
	groups := make(map[string][]int)
	for i, r := range records {
		if err := json.Unmarshal(r, &events[i]); err != nil {
			return &Error{Err: &RecordError{Index: i, Err: fmt.Errorf("decode cloudevent: %w", err)}}
		}
		if err := events[i].Validate(); err != nil {
			return &Error{Err: &RecordError{Index: i, Err: fmt.Errorf("invalid cloudevent: %w", err)}}
		}
		src := events[i].Source()
		if _, ok := groups[src]; !ok {
			order = append(order, src)
		}
		groups[src] = append(groups[src], i)
	}

	var (
		mu     sync.Mutex
		failed []*Error
		stop   atomic.Bool
		ok     = make([]bool, len(records)) // [i] written by one worker, read after Wait
		wg     sync.WaitGroup
		work   = make(chan []int)
	)
	for range min(s.workers, len(order)) {
		wg.Go(func() {
			for idx := range work {
				for _, i := range idx {
					if stop.Load() || ctx.Err() != nil {
						break
					}
					if err := s.sendOne(ctx, &events[i], records[i]); err != nil {
						stop.Store(true)
						mu.Lock()
						failed = append(failed, &Error{
							Err:        &RecordError{Index: i, Err: err},
							Retryable:  err.Retryable,
							RetryAfter: err.RetryAfter,
							StatusCode: err.StatusCode,
						})
						mu.Unlock()
						break
					}
					ok[i] = true
				}
			}
		})
	}
	for _, src := range order {
		if stop.Load() || ctx.Err() != nil {
			break
		}
		work <- groups[src]
	}
	close(work)
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
func (s *httpSender) sendOne(ctx context.Context, ev *event.Event, record []byte) *Error {
	var req *http.Request
	var err error
	if s.mode == ModeStructured {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(record))
		if err == nil {
			req.Header.Set("Content-Type", contentTypeStructured)
		}
	} else {
		// JSON-format events may omit datacontenttype for JSON data; the
		// binary binding needs it to set Content-Type.
		if ev.DataContentType() == "" && len(ev.Data()) > 0 && !ev.DataBase64 {
			ev.SetDataContentType(event.ApplicationJSON)
		}
		req, err = cehttp.NewHTTPRequestFromEvent(ctx, s.url, *ev)
		if err == nil {
			err = checkHeaderValues(req.Header)
		}
		if err == nil {
			percentEncodeCEHeaders(req.Header)
		}
	}
	if err != nil {
		return &Error{Err: fmt.Errorf("build request: %w", err)}
	}
	return s.do(req, 1)
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
	resp, err := s.client.Do(req)
	var body []byte
	if err == nil {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
		resp.Body.Close()
	}
	<-s.sem
	elapsed := time.Since(start)
	s.duration.Update(elapsed.Seconds())

	if err != nil {
		s.set.GetOrCreateCounter(`edgegate_uplink_requests_total{uplink="` + s.name + `",code="error"}`).Inc()
		// *url.Error repeats the full URL, which may carry credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		s.log.Debug("uplink request failed", "events", n, "duration", elapsed, "err", err)
		return &Error{Err: fmt.Errorf("post %s: %w", s.safeURL, err), Retryable: true}
	}
	s.set.GetOrCreateCounter(`edgegate_uplink_requests_total{uplink="` + s.name + `",code="` + strconv.Itoa(resp.StatusCode) + `"}`).Inc()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 && resp.StatusCode != http.StatusMultiStatus {
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

// checkHeaderValues rejects values net/http would refuse to send (control
// characters); sending would fail every time, so the record is malformed.
// (Attribute Strings may not hold them either.)
func checkHeaderValues(h http.Header) error {
	for k, vals := range h {
		for _, v := range vals {
			for i := 0; i < len(v); i++ {
				if c := v[i]; (c < 0x20 && c != '\t') || c == 0x7f {
					return fmt.Errorf("attribute %s: control character in value", strings.ToLower(k))
				}
			}
		}
	}
	return nil
}

// percentEncodeCEHeaders percent-encodes every ce- header value as the
// HTTP binding requires (3.1.3.2): space, '"', '%' and every byte outside
// printable ASCII become %XX (UTF-8 bytes, upper-case hex). sdk-go v2.16.2
// sends values raw.
func percentEncodeCEHeaders(h http.Header) {
	for k, vals := range h {
		if len(k) < 3 || !strings.EqualFold(k[:3], "ce-") {
			continue
		}
		for i, v := range vals {
			vals[i] = percentEncodeHeader(v)
		}
	}
}

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
