package uplink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/ceconform"
	"github.com/edgegate/edgegate/internal/cetest"
)

// authReceiver accepts requests whose Authorization header passes ok and
// answers 401 otherwise.
func authReceiver(t *testing.T, ok func(r *http.Request) bool) *cetest.Server {
	return newReceiver(t, func(w http.ResponseWriter, r *http.Request, evs []ceconform.Event) int {
		if !ok(r) {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	})
}

func TestAuthKinds(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("file-pass\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		auth AuthConfig
		ok   func(r *http.Request) bool
	}{
		{"bearer", AuthConfig{BearerToken: "tok-123"}, func(r *http.Request) bool {
			return r.Header.Get("Authorization") == "Bearer tok-123"
		}},
		{"basic", AuthConfig{Basic: BasicAuth{Username: "gw", Password: "p@ss word"}}, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "gw" && p == "p@ss word"
		}},
		{"basic password_file", AuthConfig{Basic: BasicAuth{Username: "gw", PasswordFile: pwFile}}, func(r *http.Request) bool {
			u, p, ok := r.BasicAuth()
			return ok && u == "gw" && p == "file-pass"
		}},
	}
	for _, tc := range cases {
		for _, mode := range []string{ModeBatch, ModeBinary, ModeStructured} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				rc := authReceiver(t, tc.ok)
				records := testRecords(t, 6, 2)
				s := newTestSender(t, rc.URL(), mode, func(c *Config) { c.HTTP.Auth = tc.auth })
				if err := s.Send(context.Background(), records); err != nil {
					t.Fatalf("Send: %v", err)
				}
				checkSameSet(t, rc.Views(), records)

				// Wrong credentials: 401 is retryable (a rotation may be under
				// way), never a dead-letter.
				bad := newTestSender(t, rc.URL(), mode, func(c *Config) { c.HTTP.Auth = AuthConfig{BearerToken: "wrong"} })
				err := bad.Send(context.Background(), records)
				var ue *Error
				if !errors.As(err, &ue) || ue.StatusCode != 401 || !ue.Retryable {
					t.Fatalf("wrong credentials: %v", err)
				}
			})
		}
	}
}

func TestBearerTokenFileRotation(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	writeToken := func(tok string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Distinct mtimes even on coarse file systems.
		mt := time.Now().Add(age)
		if err := os.Chtimes(tokFile, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	writeToken("token-A", -time.Hour)

	var mu sync.Mutex
	want := "token-A"
	var seen []string
	rc := authReceiver(t, func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Authorization"))
		return r.Header.Get("Authorization") == "Bearer "+want
	})
	var logs bytes.Buffer
	var logMu sync.Mutex
	cfg := DefaultConfig()
	cfg.HTTP = new(DefaultHTTPConfig())
	cfg.Name, cfg.HTTP.URL = "rot", rc.URL()
	cfg.HTTP.Auth.BearerTokenFile = tokFile
	snd, err := New(cfg, slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := snd.(*httpSender)
	records := testRecords(t, 3, 1)
	ctx := context.Background()
	if err := s.Send(ctx, records); err != nil {
		t.Fatalf("token A: %v", err)
	}

	// The receiver moves to B and the file is rewritten. Within the recheck
	// interval the sender still sends A, gets a 401 (retryable), and reads
	// the file again at once.
	mu.Lock()
	want = "token-B"
	mu.Unlock()
	writeToken("token-B", -time.Minute)
	err = s.Send(ctx, records)
	if retry, _ := classify(err); err == nil || !retry {
		t.Fatalf("stale token: err %v retryable %v", err, retry)
	}
	if err := s.Send(ctx, records); err != nil {
		t.Fatalf("after 401 the new token should be used: %v", err)
	}

	// Without a 401, a change is picked up once the interval has passed.
	s.auth.bearer.file.mu.Lock()
	s.auth.bearer.file.interval = time.Millisecond
	s.auth.bearer.file.mu.Unlock()
	mu.Lock()
	want = "token-C"
	mu.Unlock()
	writeToken("token-C", 0)
	time.Sleep(5 * time.Millisecond)
	if err := s.Send(ctx, records); err != nil {
		t.Fatalf("token C: %v", err)
	}

	// A file that disappears or empties keeps the last good token.
	if err := os.WriteFile(tokFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if err := s.Send(ctx, records); err != nil {
		t.Fatalf("empty file should keep token C: %v", err)
	}
	os.Remove(tokFile)
	time.Sleep(5 * time.Millisecond)
	if err := s.Send(ctx, records); err != nil {
		t.Fatalf("missing file should keep token C: %v", err)
	}

	logMu.Lock()
	defer logMu.Unlock()
	for _, tok := range []string{"token-A", "token-B", "token-C"} {
		if strings.Contains(logs.String(), tok) {
			t.Errorf("log leaks %s: %s", tok, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "secret file unusable") {
		t.Errorf("no warning about the unusable file: %s", logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "Bearer token-A" || seen[len(seen)-1] != "Bearer token-C" {
		t.Errorf("tokens seen: %q", seen)
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	mtls := newTLSReceiver(t, pki.serverTLS(true), nil)
	plain := newTLSReceiver(t, pki.serverTLS(false), nil)
	records := testRecords(t, 4, 2)

	cases := []struct {
		name    string
		url     string
		tls     TLSConfig
		wantErr string
	}{
		{"mtls", mtls.URL(), TLSConfig{CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile}, ""},
		{"mtls server_name", strings.Replace(mtls.URL(), "127.0.0.1", "localhost", 1),
			TLSConfig{CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile, ServerName: "receiver.test"}, ""},
		// With TLS 1.3 the client learns of a refused certificate after its
		// side of the handshake: the error may be a broken pipe.
		{"mtls without client cert", mtls.URL(), TLSConfig{CAFile: pki.caFile}, "*"},
		{"mtls with a foreign client cert", mtls.URL(), TLSConfig{CAFile: pki.caFile, CertFile: pki.otherClientCertFile, KeyFile: pki.otherClientKeyFile}, "*"},
		{"custom CA", plain.URL(), TLSConfig{CAFile: pki.caFile}, ""},
		{"wrong CA", plain.URL(), TLSConfig{CAFile: pki.otherCAFile}, "certificate signed by unknown authority"},
		{"system roots", plain.URL(), TLSConfig{}, "certificate signed by unknown authority"},
		{"insecure", plain.URL(), TLSConfig{InsecureSkipVerify: true}, ""},
		{"wrong server_name", plain.URL(), TLSConfig{CAFile: pki.caFile, ServerName: "other.test"}, "other.test"},
	}
	for _, tc := range cases {
		for _, mode := range []string{ModeBatch, ModeBinary} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				s := newTestSender(t, tc.url, mode, func(c *Config) { c.HTTP.TLS = tc.tls })
				err := s.Send(context.Background(), records)
				if tc.wantErr == "" {
					if err != nil {
						t.Fatalf("Send: %v", err)
					}
					return
				}
				if err == nil || (tc.wantErr != "*" && !strings.Contains(err.Error(), tc.wantErr)) {
					t.Fatalf("err %v, want it to mention %q", err, tc.wantErr)
				}
				if retry, _ := classify(err); !retry {
					t.Errorf("TLS failure should be retryable: %v", err)
				}
			})
		}
	}
	if n := len(mtls.Views()); n != 2*2*len(records) {
		t.Errorf("mTLS receiver got %d events, want %d", n, 2*2*len(records))
	}
	for _, v := range append(mtls.Views(), plain.Views()...) {
		if v.Attrs["id"] == "" {
			t.Fatal("event without id")
		}
	}
}

func TestGzip(t *testing.T) {
	for _, mode := range []string{ModeBatch, ModeBinary, ModeStructured} {
		t.Run(mode, func(t *testing.T) {
			rc := newReceiver(t, nil)
			records := testRecords(t, 12, 3)
			s := newTestSender(t, rc.URL(), mode, func(c *Config) {
				c.HTTP.Compression = CompressionGzip
				c.Batch.MaxBytes = 2048 // several batch requests
			})
			if err := s.Send(context.Background(), records); err != nil {
				t.Fatal(err)
			}
			checkSameSet(t, rc.Views(), records)
			if st := rc.Stats(); st.Gzipped != st.Requests || st.Requests < 2 {
				t.Errorf("%d of %d requests gzipped", st.Gzipped, st.Requests)
			}
		})
	}
	// Redirects replay the compressed body.
	rc := newReceiver(t, nil)
	front := newReceiverHandler(t, http.RedirectHandler(rc.URL(), http.StatusPermanentRedirect))
	records := testRecords(t, 5, 1)
	s := newTestSender(t, front, ModeBatch, func(c *Config) { c.HTTP.Compression = CompressionGzip })
	if err := s.Send(context.Background(), records); err != nil {
		t.Fatal(err)
	}
	checkSameSet(t, rc.Views(), records)
}

func TestSecretsNeverShown(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("file-secret-pw"), 0o600)
	cfg := DefaultConfig()
	cfg.Name = "s"
	h := DefaultHTTPConfig()
	cfg.HTTP = &h
	cfg.HTTP.URL = "https://user:url-secret@example.com/ingest?sig=query-secret&x=1#frag"
	cfg.HTTP.Headers = map[string]string{"X-Api-Key": "header-secret"}
	cfg.HTTP.Auth.Basic = BasicAuth{Username: "gw", Password: "inline-secret"}
	secrets := []string{"url-secret", "query-secret", "header-secret", "inline-secret", "file-secret-pw"}

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Info("config", "uplink", cfg)
	shown := []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprint(cfg.Redacted()),
		fmt.Sprintf("%#v", cfg.Redacted()), logs.String(),
	}
	r := cfg.Redacted()
	if r.HTTP.Headers["X-Api-Key"] != "<redacted>" || r.HTTP.Auth.Basic.Password != "<redacted>" || r.HTTP.Auth.Basic.Username != "gw" {
		t.Errorf("Redacted: %#v", r.HTTP)
	}
	if r.URL() != "https://user:xxxxx@example.com/ingest?sig=xxxxx&x=xxxxx" {
		t.Errorf("Redacted URL %q", r.URL())
	}
	if cfg.HTTP.Headers["X-Api-Key"] != "header-secret" {
		t.Error("Redacted changed the original")
	}
	// Errors from a failing request.
	cfg.HTTP.URL = "http://user:url-secret@127.0.0.1:1/x?sig=query-secret"
	cfg.HTTP.Auth.Basic = BasicAuth{Username: "gw", PasswordFile: pwFile}
	s, err := New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Send(context.Background(), testRecords(t, 1, 1))
	shown = append(shown, err.Error(), logs.String())
	for _, txt := range shown {
		for _, sec := range secrets {
			if strings.Contains(txt, sec) {
				t.Errorf("%q shown in %s", sec, txt)
			}
		}
	}
}

func TestAuthTLSConfigValidate(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte(" \n"), 0o600)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	missing := filepath.Join(dir, "missing")

	cases := []struct {
		name string
		mod  func(c *HTTPConfig)
		want string
	}{
		{"token file missing", func(c *HTTPConfig) { c.Auth.BearerTokenFile = missing },
			"auth.bearer_token_file: open " + missing + ": no such file or directory"},
		{"token file empty", func(c *HTTPConfig) { c.Auth.BearerTokenFile = empty },
			"auth.bearer_token_file: " + empty + ": is empty"},
		{"token and file", func(c *HTTPConfig) { c.Auth.BearerToken = "x"; c.Auth.BearerTokenFile = empty },
			"auth.bearer_token_file: conflicts with auth.bearer_token: set one of them\nauth.bearer_token_file: " + empty + ": is empty"},
		{"bearer and basic", func(c *HTTPConfig) { c.Auth.BearerToken = "x"; c.Auth.Basic.Username = "u" },
			"auth.basic: conflicts with the bearer token: set one of them"},
		{"token control char", func(c *HTTPConfig) { c.Auth.BearerToken = "a\nb" },
			"auth.bearer_token: must not contain control characters"},
		{"basic without user", func(c *HTTPConfig) { c.Auth.Basic.Password = "p" },
			"auth.basic.username: is required"},
		{"basic colon", func(c *HTTPConfig) { c.Auth.Basic = BasicAuth{Username: "a:b", Password: "p", PasswordFile: missing} },
			"auth.basic.username: must not contain ':'\nauth.basic.password_file: conflicts with auth.basic.password: set one of them\nauth.basic.password_file: open " + missing + ": no such file or directory"},
		{"header and auth", func(c *HTTPConfig) { c.Headers = map[string]string{"authorization": "x"}; c.Auth.BearerToken = "y" },
			"headers.Authorization: conflicts with auth: set one of them"},
		{"ca missing", func(c *HTTPConfig) { c.TLS.CAFile = missing },
			"tls.ca_file: open " + missing + ": no such file or directory"},
		{"ca not pem", func(c *HTTPConfig) { c.TLS.CAFile = notPEM },
			"tls.ca_file: " + notPEM + ": no PEM certificates found"},
		{"cert without key", func(c *HTTPConfig) { c.TLS.CertFile = pki.clientCertFile },
			"tls.key_file: is required with tls.cert_file"},
		{"key mismatch", func(c *HTTPConfig) { c.TLS.CertFile, c.TLS.KeyFile = pki.clientCertFile, pki.otherClientKeyFile },
			"tls.key_file: not a key for tls.cert_file (" + pki.clientCertFile + ", " + pki.otherClientKeyFile + "): tls: private key does not match public key"},
		{"key missing", func(c *HTTPConfig) { c.TLS.CertFile, c.TLS.KeyFile = pki.clientCertFile, missing },
			"tls.key_file: open " + missing + ": no such file or directory"},
		{"tls on http", func(c *HTTPConfig) { c.URL = "http://x"; c.TLS.InsecureSkipVerify = true },
			"tls: requires a TLS url (https://, tls://, ssl://, mqtts:// or wss://)"},
		{"compression", func(c *HTTPConfig) { c.Compression = "brotli" },
			`compression: must be none or gzip, got "brotli"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultHTTPConfig()
			c.URL = "https://example.com"
			tc.mod(&c)
			err := c.Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
	c := DefaultHTTPConfig()
	c.URL = "https://example.com"
	c.TLS = TLSConfig{CAFile: pki.caFile, CertFile: pki.clientCertFile, KeyFile: pki.clientKeyFile}
	tok := filepath.Join(dir, "tok")
	os.WriteFile(tok, []byte("abc\n"), 0o600)
	c.Auth.BearerTokenFile = tok
	if err := c.Validate(); err != nil {
		t.Fatalf("valid tls+auth: %v", err)
	}
}
