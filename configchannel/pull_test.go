package configchannel

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/configsign"
	"github.com/edgegate/edgegate/internal/freeport"
)

// configServer serves one document with an ETag and honours If-None-Match
// unless ignoreETag; respond, when set, answers instead.
type configServer struct {
	mu         sync.Mutex
	doc, sig   string
	etag       string
	ignoreETag bool
	respond    func(w http.ResponseWriter, r *http.Request) bool // true: answered
	requests   []*http.Request
}

func (s *configServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r)
	if s.respond != nil && s.respond(w, r) {
		return
	}
	if !s.ignoreETag && s.etag != "" && r.Header.Get("If-None-Match") == s.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if s.etag != "" {
		w.Header().Set("ETag", s.etag)
	}
	if s.sig != "" {
		w.Header().Set(configsign.Header, s.sig)
	}
	w.Header().Set("Content-Type", "application/yaml")
	fmt.Fprint(w, s.doc)
}

func (s *configServer) set(f func(s *configServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *configServer) last() *http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

// recorder is an ApplyFunc that records its updates and answers with err.
type recorder struct {
	mu      sync.Mutex
	updates []Update
	err     error
}

func (r *recorder) apply(_ context.Context, u Update) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, u)
	if r.err != nil {
		return Result{}, r.err
	}
	return Result{Applied: true, Version: int64(len(r.updates)), Hash: fmt.Sprintf("h%d", len(r.updates))}, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.updates)
}

func newPuller(t *testing.T, url string, mod func(*PullConfig)) (*Puller, *recorder, *metrics.Set) {
	t.Helper()
	cfg := DefaultPullConfig()
	// The interval is the request timeout too: long enough for a TLS
	// handshake on a loaded machine under -race.
	cfg.URL, cfg.Interval = url, 10*time.Second
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	m := metrics.NewSet()
	p, err := NewPuller(cfg, rec.apply, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return p, rec, m
}

func counted(m *metrics.Set, result string) uint64 {
	return m.GetOrCreateCounter(`edgegate_config_pull_total{result="` + result + `"}`).Get()
}

func poll(t *testing.T, p *Puller, want string) {
	t.Helper()
	got, err := p.Poll(context.Background())
	if got != want {
		t.Fatalf("poll = %s (%v), want %s", got, err, want)
	}
}

// Only changed documents reach the apply path; the ETag is sent back.
func TestPullAppliesOnlyChanges(t *testing.T) {
	srv := &configServer{doc: "log: {level: debug}\n", etag: `"v1"`, sig: "# edgegate-signature: v1 ..."}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	p, rec, m := newPuller(t, ts.URL+"/gw-1.yaml?fleet=a", func(c *PullConfig) { c.TokenFile = tokenFile })

	poll(t, p, "applied")
	if rec.count() != 1 {
		t.Fatalf("%d applies", rec.count())
	}
	u := rec.updates[0]
	if u.Source != SourcePull || u.Origin != ts.URL+"/gw-1.yaml" || string(u.Data) != srv.doc || string(u.Signature) != srv.sig {
		t.Errorf("update = %+v", u)
	}
	if got := srv.last().Header.Get("Authorization"); got != "Bearer s3cret" {
		t.Errorf("Authorization = %q", got)
	}
	poll(t, p, "not_modified")
	if got := srv.last().Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("If-None-Match = %q", got)
	}
	// A server without ETags repeating itself: nothing to apply.
	srv.set(func(s *configServer) { s.ignoreETag = true })
	poll(t, p, "unchanged")
	// A new document (the token rotated meanwhile).
	os.WriteFile(tokenFile, []byte("n3w"), 0o600)
	srv.set(func(s *configServer) { s.doc, s.etag, s.ignoreETag = "log: {level: warn}\n", `"v2"`, false })
	poll(t, p, "applied")
	if rec.count() != 2 || string(rec.updates[1].Data) != "log: {level: warn}\n" {
		t.Fatalf("applies: %+v", rec.updates)
	}
	if got := srv.last().Header.Get("Authorization"); got != "Bearer n3w" {
		t.Errorf("rotated token: Authorization = %q", got)
	}
	// The same body with another signature is another document.
	srv.set(func(s *configServer) { s.sig, s.etag = "# edgegate-signature: v1 other", `"v3"` })
	poll(t, p, "applied")

	// A rejected document is not offered again until it changes.
	rec.err = &Rejection{Reason: "invalid", Err: errors.New("pull:1:1: nope")}
	srv.set(func(s *configServer) { s.doc, s.etag, s.ignoreETag = "garbage: [", `"v4"`, true })
	poll(t, p, "rejected")
	poll(t, p, "unchanged")
	if rec.count() != 4 {
		t.Errorf("%d applies, want 4", rec.count())
	}
	st := p.Status()
	if st.URL != ts.URL+"/gw-1.yaml" || st.LastResult != "unchanged" || st.ETag != `"v4"` || st.Failures != 0 {
		t.Errorf("status = %+v", st)
	}
	for r, want := range map[string]uint64{"applied": 3, "not_modified": 1, "unchanged": 2, "rejected": 1, "error": 0} {
		if got := counted(m, r); got != want {
			t.Errorf("edgegate_config_pull_total{result=%q} = %d, want %d", r, got, want)
		}
	}
}

// Nothing a server does reaches the apply path unless it is a document.
func TestPullErrorsAreHarmless(t *testing.T) {
	srv := &configServer{doc: "log: {level: debug}\n"}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	p, rec, m := newPuller(t, ts.URL, nil)
	for _, tc := range []struct {
		name    string
		respond func(w http.ResponseWriter, r *http.Request) bool
		want    string
	}{
		{"500", func(w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(500); return true }, "500 Internal Server Error"},
		{"401", func(w http.ResponseWriter, _ *http.Request) bool { w.WriteHeader(401); return true }, "401 Unauthorized"},
		{"html", func(w http.ResponseWriter, _ *http.Request) bool {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, "<html>captive portal</html>")
			return true
		}, "HTML page"},
		{"empty", func(w http.ResponseWriter, _ *http.Request) bool { fmt.Fprint(w, "\n \n"); return true }, "empty document"},
		{"too large", func(w http.ResponseWriter, _ *http.Request) bool {
			fmt.Fprint(w, strings.Repeat("#", MaxDocument+1))
			return true
		}, "larger than 1048576 bytes"},
		{"slow", func(w http.ResponseWriter, r *http.Request) bool {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			return true
		}, "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.set(func(s *configServer) { s.respond = tc.respond })
			if tc.name == "slow" { // the timeout is the interval (at most 30s): shorten it
				defer func(d time.Duration) { p.client.Timeout = d }(p.client.Timeout)
				p.client.Timeout = 500 * time.Millisecond
			}
			got, err := p.Poll(context.Background())
			if got != "error" || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("poll = %s, %v; want error containing %q", got, err, tc.want)
			}
		})
	}
	if rec.count() != 0 {
		t.Fatalf("%d applies of garbage", rec.count())
	}
	if st := p.Status(); st.Failures != 6 || st.LastError == "" {
		t.Errorf("status = %+v", st)
	}
	if got := counted(m, "error"); got != 6 {
		t.Errorf("errors counted: %d", got)
	}
	// The server recovers: the next poll applies and resets the failures.
	srv.set(func(s *configServer) { s.respond = nil })
	poll(t, p, "applied")
	if st := p.Status(); st.Failures != 0 {
		t.Errorf("failures after recovery: %d", st.Failures)
	}

	// A server that is not there at all.
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	down, _, _ := newPuller(t, "http://"+addr, nil)
	if got, err := down.Poll(context.Background()); got != "error" || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("down: %s, %v", got, err)
	}
}

// Run keeps polling through failures, backing off, and applies once the
// server answers.
func TestPullRun(t *testing.T) {
	fail := 2
	srv := &configServer{doc: "log: {level: debug}\n", etag: `"a"`}
	srv.respond = func(w http.ResponseWriter, _ *http.Request) bool {
		if fail > 0 {
			fail--
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	p, rec, m := newPuller(t, ts.URL, func(c *PullConfig) { c.Jitter, c.Interval = 0, time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for counted(m, "not_modified") == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rec.count() != 1 || counted(m, "error") != 2 || counted(m, "not_modified") == 0 {
		t.Errorf("applies %d, errors %d, not modified %d", rec.count(), counted(m, "error"), counted(m, "not_modified"))
	}
}

// ca_file replaces the system's CAs.
func TestPullCAFile(t *testing.T) {
	ts := httptest.NewTLSServer(&configServer{doc: "log: {level: debug}\n"})
	defer ts.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o644)
	p, _, _ := newPuller(t, ts.URL, func(c *PullConfig) { c.CAFile = ca })
	poll(t, p, "applied")
	p, _, _ = newPuller(t, ts.URL, nil)
	if got, err := p.Poll(context.Background()); got != "error" || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without ca_file: %s, %v", got, err)
	}
	cfg := DefaultPullConfig()
	cfg.URL, cfg.CAFile = ts.URL, "ca.pem"
	cfg.ResolveFiles(filepath.Dir(ca))
	if cfg.CAFile != ca || cfg.CheckFiles() != nil {
		t.Errorf("ResolveFiles: ca_file %s, CheckFiles %v", cfg.CAFile, cfg.CheckFiles())
	}
	os.WriteFile(ca, []byte("not pem"), 0o644)
	if _, err := NewPuller(cfg, (&recorder{}).apply, nil, nil); err == nil || !strings.Contains(err.Error(), "no PEM certificates found") {
		t.Errorf("bad ca_file: %v", err)
	}
	if err := cfg.CheckFiles(); err == nil || !strings.Contains(err.Error(), "ca_file: "+ca+": no PEM certificates found") {
		t.Errorf("CheckFiles: %v", err)
	}
}

func TestPullConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*PullConfig)
		want string
	}{
		{func(c *PullConfig) {}, ""},
		{func(c *PullConfig) { c.URL = "https://cfg.example.com/gw.yaml" }, ""},
		{func(c *PullConfig) { c.URL = "http://127.0.0.1:8000/gw.yaml" }, ""},
		{func(c *PullConfig) { c.URL = "http://cfg.example.com/gw.yaml" }, "url: must be https"},
		{func(c *PullConfig) { c.URL = "ftp://cfg.example.com/gw.yaml" }, `url: scheme "ftp"`},
		{func(c *PullConfig) { c.URL = "https://u:p@cfg.example.com/" }, "url: must not carry credentials"},
		{func(c *PullConfig) { c.URL = "cfg.yaml" }, "url: not an absolute URL"},
		{func(c *PullConfig) { c.Interval = 0 }, "interval: must be at least 1s"},
		{func(c *PullConfig) { c.TokenFile = "t" }, "url: is required with token_file"},
	} {
		c := DefaultPullConfig()
		tc.mod(&c)
		checkErr(t, c, c.Validate(), tc.want)
	}
}
