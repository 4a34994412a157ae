package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// BufferClient calls a running gateway's admin API: the buffer routes
// (registerBufferRoutes), what `edgegate buffer` uses with --admin, and
// /status, what `edgegate status` prints, and the config routes
// (registerConfigRoutes), what `edgegate config` uses. It is safe for
// concurrent use.
type BufferClient struct {
	base, token string
	http        *http.Client
}

// ClientOptions configure a BufferClient.
type ClientOptions struct {
	// Token is sent as a bearer token when not "" (admin.tokens).
	Token string
	// RootCAs verify an https admin API's certificate (admin.tls); nil:
	// the system's roots.
	RootCAs *x509.CertPool
	// Certificates are presented as the client's certificate
	// (admin.tls.client_ca_file).
	Certificates []tls.Certificate
}

// NewBufferClient returns a client of the admin API at base (a URL, or
// host:port for http).
func NewBufferClient(base string, opts ClientOptions) *BufferClient {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.RootCAs != nil || len(opts.Certificates) > 0 {
		tr.TLSClientConfig = &tls.Config{RootCAs: opts.RootCAs, Certificates: opts.Certificates, MinVersion: tls.VersionTLS12}
	}
	return &BufferClient{base: strings.TrimSuffix(base, "/"), token: opts.Token, http: &http.Client{Transport: tr}}
}

// Stats is GET /v1/buffer/stats.
func (c *BufferClient) Stats(ctx context.Context) (st BufferStats, err error) {
	err = c.call(ctx, "GET", "/v1/buffer/stats", nil, &st)
	return st, err
}

// List is GET /v1/buffer/events.
func (c *BufferClient) List(ctx context.Context, r ListRequest) (res ListResult, err error) {
	err = c.call(ctx, "GET", "/v1/buffer/events?"+r.Values().Encode(), nil, &res)
	return res, err
}

// Show is GET /v1/buffer/events/{id}: the event's CloudEvents JSON.
func (c *BufferClient) Show(ctx context.Context, id, queue string) ([]byte, error) {
	path := "/v1/buffer/events/" + url.PathEscape(id)
	if queue != "" {
		path += "?" + url.Values{"queue": {queue}}.Encode()
	}
	var raw json.RawMessage
	err := c.call(ctx, "GET", path, nil, &raw)
	return raw, err
}

// Replay is POST /v1/buffer/replay.
func (c *BufferClient) Replay(ctx context.Context, r ReplayRequest) (res ReplayResult, err error) {
	err = c.call(ctx, "POST", "/v1/buffer/replay", r, &res)
	return res, err
}

// Purge is POST /v1/buffer/purge.
func (c *BufferClient) Purge(ctx context.Context, r PurgeRequest) (res PurgeResult, err error) {
	err = c.call(ctx, "POST", "/v1/buffer/purge", r, &res)
	return res, err
}

// Status is GET /status as the admin API answers it (serveAdmin).
type Status = status

// Status is GET /status?clients=N, listing at most clients connected
// devices (all when negative): the decoded answer and its JSON as sent.
func (c *BufferClient) Status(ctx context.Context, clients int) (st Status, raw []byte, err error) {
	path := "/status"
	if clients >= 0 {
		path += "?clients=" + strconv.Itoa(clients)
	}
	var rm json.RawMessage
	if err := c.call(ctx, "GET", path, nil, &rm); err != nil {
		return st, nil, err
	}
	if err := json.Unmarshal(rm, &st); err != nil {
		return st, nil, fmt.Errorf("admin API %s/status: %w", c.base, err)
	}
	return st, rm, nil
}

// ErrAdminUnreachable is the error of a client whose admin API does not
// answer (no gateway running there, a wrong address).
var ErrAdminUnreachable = errors.New("is the gateway running?")

// Close releases idle connections.
func (c *BufferClient) Close() error { c.http.CloseIdleConnections(); return nil }

// call sends one request and decodes the JSON answer into out (a
// *json.RawMessage takes the body as it is); an error answer becomes an
// error with the server's message and what to do about it.
func (c *BufferClient) call(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = b
	}
	raw, _, err := c.do(ctx, method, path, body, "application/json", nil)
	if err != nil {
		return err
	}
	return c.decode(path, raw, out)
}

func (c *BufferClient) decode(path string, raw []byte, out any) error {
	if rm, ok := out.(*json.RawMessage); ok {
		*rm = raw
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("admin API %s%s: %w", c.base, path, err)
	}
	return nil
}

// do sends one request with body (of contentType, when not nil) and
// header, and returns the answer's body and header; an answer other than
// 200 is an error with the server's message.
func (c *BufferClient) do(ctx context.Context, method, path string, body []byte, contentType string, header http.Header) ([]byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("admin API %s: %w", c.base, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("admin API %s: %w\n(%w)", c.base, err, ErrAdminUnreachable)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("admin API %s: %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(raw))
		var apiErr APIError
		if json.Unmarshal(raw, &apiErr) == nil && apiErr.Error != "" {
			msg = apiErr.Error
		}
		err := fmt.Errorf("%s (admin API: %s)", msg, resp.Status)
		switch {
		case resp.StatusCode == http.StatusUnauthorized:
			err = fmt.Errorf("%w: the admin API wants a token of admin.tokens (--token, --token-file or EDGEGATE_TOKEN)", err)
		case resp.StatusCode == http.StatusNotFound && msg == "404 page not found":
			err = fmt.Errorf("%w: this gateway does not have %s (an older version?)", err, path)
		}
		return nil, nil, err
	}
	return raw, resp.Header, nil
}

// PushOptions are the choices of PushConfig.
type PushOptions struct {
	DryRun bool // validate and diff only
	// Force accepts an older signed version (honoured from the gateway's
	// own host only).
	Force bool
	// DropRemovedBacklog drops the queues of the uplinks the push removes.
	DropRemovedBacklog bool
	// Signature is a detached signature line (Edgegate-Signature).
	Signature string
}

// PushConfig is PUT /v1/config: the result of applying doc, or an error
// listing every problem of it.
func (c *BufferClient) PushConfig(ctx context.Context, doc []byte, o PushOptions) (res ApplyResult, err error) {
	q := url.Values{}
	if o.DryRun {
		q.Set("dry_run", "true")
	}
	if o.DropRemovedBacklog {
		q.Set("removed_backlog", "drop")
	}
	if o.Force {
		q.Set("force", "true")
	}
	path := "/v1/config"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	h := http.Header{}
	if o.Signature != "" {
		h.Set(SignatureHeader, o.Signature)
	}
	if doc == nil {
		doc = []byte{}
	}
	raw, _, err := c.do(ctx, "PUT", path, doc, "application/yaml", h)
	if err != nil {
		return res, err
	}
	return res, c.decode(path, raw, &res)
}

// RunningConfig is GET /v1/config: the running document (secrets
// redacted), its version and hash.
func (c *BufferClient) RunningConfig(ctx context.Context) (doc []byte, version int64, hash string, err error) {
	raw, h, err := c.do(ctx, "GET", "/v1/config", nil, "", nil)
	if err != nil {
		return nil, 0, "", err
	}
	version, _ = strconv.ParseInt(h.Get("Edgegate-Config-Version"), 10, 64)
	return raw, version, h.Get("Edgegate-Config-Hash"), nil
}

// ConfigHistory is GET /v1/config/history.
func (c *BufferClient) ConfigHistory(ctx context.Context) (h ConfigHistory, err error) {
	err = c.call(ctx, "GET", "/v1/config/history", nil, &h)
	return h, err
}

// RollbackConfig is POST /v1/config/rollback: to version, or the previous
// configuration when 0.
func (c *BufferClient) RollbackConfig(ctx context.Context, version int64) (res ApplyResult, err error) {
	err = c.call(ctx, "POST", "/v1/config/rollback", RollbackRequest{Version: version}, &res)
	return res, err
}
