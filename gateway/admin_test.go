package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/testpki"
)

// plainVerifier stands in for package access's VerifySecret in tests: a
// hash is "$plain$" followed by the token. It counts its calls.
func plainVerifier(calls *atomic.Int32) tokenVerifier {
	return func(hash string, secret []byte) (bool, error) {
		calls.Add(1)
		want, ok := strings.CutPrefix(hash, "$plain$")
		if !ok {
			return false, errors.New("not a $plain$ hash")
		}
		return subtle.ConstantTimeCompare([]byte(want), secret) == 1, nil
	}
}

// newTestLog returns a log at level info that writes to a file of the
// test (the handler serializes writes), and a function that reads what it
// wrote.
func newTestLog(t *testing.T) (*slog.Logger, func() string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log.txt")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})), func() string {
		b, _ := os.ReadFile(path)
		return string(b)
	}
}

// adminCall is one request to the admin endpoint and what it got.
type adminCall struct {
	code      int
	challenge string
	body      string
}

// call makes a request with the given Authorization header values.
func call(t *testing.T, client *http.Client, method, url string, auth ...string) adminCall {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return adminCall{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body)}
}

// With tokens, the probes stay open and everything else, unknown paths
// included, needs one: 401 with an RFC 6750 challenge when it is missing,
// malformed or wrong, counted by reason and logged at most once per
// interval; a verified token is remembered.
func TestAdminTokens(t *testing.T) {
	cfg := testConfig(t, "http://127.0.0.1:1/")
	cfg.Admin.Tokens = []AdminToken{{Name: "ops", Hash: "$plain$ops-secret"}, {Name: "prometheus", Hash: "$plain$scrape.Token_1~+/=="}}
	var calls atomic.Int32
	logger, readLog := newTestLog(t)
	gw := startWith(t, cfg, Options{Log: logger, verifyToken: plainVerifier(&calls)})
	base := "http://" + gw.g.AdminAddr().String()
	c := http.DefaultClient
	const realm = `Bearer realm="edgegate admin"`

	// The probes and the status page's files (which hold no data) are open.
	for _, p := range []string{"/healthz", "/readyz", "/ui/", "/ui/app.js", "/"} {
		if got := call(t, c, "GET", base+p); got.code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want 200 (probes and the page stay open)", p, got.code)
		}
		if got := call(t, c, "GET", base+p, "Bearer wrong"); got.code != http.StatusOK {
			t.Errorf("GET %s with a wrong token: %d, want 200", p, got.code)
		}
	}
	routes := [][2]string{{"GET", "/metrics"}, {"GET", "/status"}, {"POST", "/-/reload"}, {"GET", "/v1/future"}, {"POST", "/healthz"}, {"GET", "/healthz/../metrics"},
		{"GET", "/v1/uplinks"}, {"GET", "/v1/events"}, {"POST", "/ui/"}, {"GET", "/ui/../status"}}
	refused := []struct {
		name      string
		auth      []string
		challenge string
	}{
		{"missing", nil, realm},
		{"empty", []string{""}, realm},
		{"other scheme", []string{"Basic b3BzOm9wcy1zZWNyZXQ="}, realm},
		{"no token", []string{"Bearer"}, realm + `, error="invalid_request"`},
		{"bad characters", []string{"Bearer ops secret"}, realm + `, error="invalid_request"`},
		{"two headers", []string{"Bearer ops-secret", "Bearer ops-secret"}, realm + `, error="invalid_request"`},
		{"too long", []string{"Bearer " + strings.Repeat("a", maxAdminTokenLen+1)}, realm + `, error="invalid_request"`},
		{"wrong", []string{"Bearer ops-secreT"}, realm + `, error="invalid_token"`},
		{"hash as token", []string{"Bearer $plain$ops-secret"}, realm + `, error="invalid_request"`},
		{"prefix", []string{"Bearer ops"}, realm + `, error="invalid_token"`},
	}
	for _, r := range routes {
		for _, tc := range refused {
			got := call(t, c, r[0], base+r[1], tc.auth...)
			if got.code != http.StatusUnauthorized || got.challenge != tc.challenge {
				t.Errorf("%s %s, %s: %d %q, want 401 %q", r[0], r[1], tc.name, got.code, got.challenge, tc.challenge)
			}
		}
	}
	verifies := calls.Load()

	// The right tokens, scheme in any case.
	for i, auth := range []string{"Bearer ops-secret", "bearer ops-secret", "BEARER   scrape.Token_1~+/=="} {
		for _, r := range [][2]string{{"GET", "/metrics"}, {"GET", "/status"}, {"GET", "/v1/uplinks"}} {
			if got := call(t, c, r[0], base+r[1], auth); got.code != http.StatusOK {
				t.Errorf("%s %s with token %d: %d %s", r[0], r[1], i, got.code, got.body)
			}
		}
	}
	if got := call(t, c, "GET", base+"/v1/future", "Bearer ops-secret"); got.code != http.StatusNotFound {
		t.Errorf("an unknown path with a token: %d, want 404", got.code)
	}
	// Started without a file: reload is not available, but asked for.
	if got := call(t, c, "POST", base+"/-/reload", "Bearer ops-secret"); got.code != http.StatusNotFound {
		t.Errorf("POST /-/reload with a token: %d %s", got.code, got.body)
	}
	// Each right token was verified once (ops: tried first; prometheus:
	// after ops' hash): the rest came from the cache.
	if n := calls.Load() - verifies; n != 3 {
		t.Errorf("%d hash verifications for the right tokens, want 3 (then cached)", n)
	}

	m := metricsText(t, gw.g)
	perRoute := map[string]int{"missing": 2, "malformed": 6, "invalid": 2}
	for reason, n := range perRoute {
		want := fmt.Sprintf("\nedgegate_admin_auth_failures_total{reason=%q} %d\n", reason, n*len(routes))
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", strings.TrimSpace(want))
		}
	}
	gw.stop(t)
	log := readLog()
	lines := strings.Count(log, `msg="admin authentication failed"`)
	if lines != 2 || !strings.Contains(log, `msg="admin authentication failed" component=admin reason=missing remote_addr=127.0.0.1:`) ||
		!strings.Contains(log, "repeated="+fmt.Sprint(len(routes)*len(refused)-1)) {
		t.Errorf("want one failure line at once and one summary (at stop) with the count, got %d:\n%s", lines, log)
	}
	if !strings.Contains(log, `msg="admin request" component=admin method=POST path=/-/reload token=ops remote_addr=127.0.0.1:`) {
		t.Errorf("the reload request is not logged with its token's name:\n%s", log)
	}
}

// metricsText is the gateway's /metrics text, starting with a newline.
func metricsText(t *testing.T, g *Gateway) string {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('\n')
	g.metrics.WritePrometheus(&b)
	return b.String()
}

// Tokens change with a reload: the old one is refused at once, the new
// one accepted; listen and tls need a restart.
func TestAdminTokenReload(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "edgegate.yaml")
	write := func(listen, token string) {
		t.Helper()
		data := fmt.Sprintf(`gateway_id: gw
admin:
  listen: %q
  tokens: [{name: %s, hash: "$plain$%s"}]
mqtt: {listeners: [{id: tcp, type: tcp, address: "127.0.0.1:0"}]}
buffer: {dir: %q, min_free_bytes: 16MiB}
uplinks: [{name: cloud, http: {url: %q}}]
`, listen, token, token, filepath.Join(dir, "buf"), rcv.URL())
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.1:0", "first")
	url := startFromFile(t, path)
	write("127.0.0.1:0", "second")
	if got := call(t, http.DefaultClient, "POST", url+"/-/reload", "Bearer first"); got.code != http.StatusOK {
		t.Fatalf("reload: %d %s", got.code, got.body)
	}
	if got := call(t, http.DefaultClient, "GET", url+"/metrics", "Bearer first"); got.code != http.StatusUnauthorized {
		t.Errorf("the removed token: %d, want 401", got.code)
	}
	if got := call(t, http.DefaultClient, "GET", url+"/metrics", "Bearer second"); got.code != http.StatusOK {
		t.Errorf("the new token: %d, want 200", got.code)
	}
	write("127.0.0.1:1", "second")
	got := call(t, http.DefaultClient, "POST", url+"/-/reload", "Bearer second")
	if want := path + ":3:11: admin.listen: change requires restart"; got.code != http.StatusUnprocessableEntity || !strings.Contains(got.body, want) {
		t.Errorf("listen change: %d %q, want 422 %q", got.code, got.body, want)
	}
}

// startFromFile runs a gateway from the config file at path (which POST
// /-/reload reads again), its admin tokens "$plain$" hashes, and returns
// the admin endpoint's base URL.
func startFromFile(t *testing.T, path string) string {
	t.Helper()
	c, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	gw := startWith(t, c.Config, Options{ConfigPath: path, verifyToken: plainVerifier(&calls)})
	return "http://" + gw.g.AdminAddr().String()
}

// admin.pprof serves Go's profiles behind the admin token; off (the
// default) they answer 404 like an unknown path, and a reload turns them on.
func TestAdminPprof(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "edgegate.yaml")
	write := func(pprof bool) {
		t.Helper()
		data := fmt.Sprintf(`gateway_id: gw
admin: {listen: "127.0.0.1:0", tokens: [{name: ops, hash: "$plain$ops"}], pprof: %v}
mqtt: {listeners: [{id: tcp, type: tcp, address: "127.0.0.1:0"}]}
buffer: {dir: %q, min_free_bytes: 16MiB}
uplinks: [{name: cloud, http: {url: %q}}]
`, pprof, filepath.Join(dir, "buf"), rcv.URL())
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(false)
	url := startFromFile(t, path)
	cl := http.DefaultClient
	paths := []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"}
	for _, p := range paths {
		if got := call(t, cl, "GET", url+p, "Bearer ops"); got.code != http.StatusNotFound {
			t.Errorf("GET %s with pprof off: %d, want 404", p, got.code)
		}
	}
	write(true)
	if got := call(t, cl, "POST", url+"/-/reload", "Bearer ops"); got.code != http.StatusOK {
		t.Fatalf("reload: %d %s", got.code, got.body)
	}
	for _, p := range paths {
		if got := call(t, cl, "GET", url+p); got.code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", p, got.code)
		}
		if got := call(t, cl, "GET", url+p, "Bearer ops"); got.code != http.StatusOK || got.body == "" {
			t.Errorf("GET %s with pprof on: %d, %d bytes", p, got.code, len(got.body))
		}
	}
	if got := call(t, cl, "GET", url+"/debug/pprof/goroutine?debug=1", "Bearer ops"); !strings.Contains(got.body, "serveAdmin") {
		t.Errorf("goroutine profile does not show the admin server:\n%.500s", got.body)
	}
}

// Over TLS, with the certificate from the files.
func TestAdminTLS(t *testing.T) {
	ca := testpki.NewCA(t, "admin CA")
	srv := ca.Server(t, "edgegate")
	cfg := testConfig(t, "http://127.0.0.1:1/")
	cfg.Admin.Tokens = []AdminToken{{Name: "ops", Hash: "$plain$s3cret"}}
	cfg.Admin.TLS = AdminTLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile}
	var calls atomic.Int32
	gw := startWith(t, cfg, Options{verifyToken: plainVerifier(&calls)})
	addr := gw.g.AdminAddr().String()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool}}}
	defer client.CloseIdleConnections()
	if got := call(t, client, "GET", "https://"+addr+"/metrics", "Bearer s3cret"); got.code != http.StatusOK {
		t.Errorf("https /metrics with the token: %d %s", got.code, got.body)
	}
	if got := call(t, client, "GET", "https://"+addr+"/metrics"); got.code != http.StatusUnauthorized {
		t.Errorf("https /metrics without a token: %d", got.code)
	}
	if got := call(t, http.DefaultClient, "GET", "http://"+addr+"/healthz"); got.code != http.StatusBadRequest {
		t.Errorf("plain http to the TLS port: %d, want 400", got.code)
	}
}

// admin.tls.client_ca_file: a client certificate signed by it opens the
// authenticated routes without a token; without one, a token still works,
// and with neither the answer is 401; a certificate from another CA fails
// the handshake.
func TestAdminClientCertificate(t *testing.T) {
	ca := testpki.NewCA(t, "admin CA")
	srv := ca.Server(t, "edgegate")
	ops := ca.Client(t, "ops-laptop")
	stranger := testpki.NewCA(t, "other CA").Client(t, "intruder")
	for _, tokens := range []bool{false, true} {
		cfg := testConfig(t, "http://127.0.0.1:1/")
		cfg.Admin.TLS = AdminTLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File}
		if tokens {
			cfg.Admin.Tokens = []AdminToken{{Name: "ops", Hash: "$plain$s3cret"}}
		}
		var calls atomic.Int32
		gw := startWith(t, cfg, Options{verifyToken: plainVerifier(&calls)})
		url := "https://" + gw.g.AdminAddr().String() + "/metrics"
		client := func(l *testpki.Leaf) *http.Client {
			c := &tls.Config{RootCAs: ca.Pool}
			if l != nil { // presented whatever CAs the server names
				c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &l.TLS, nil }
			}
			return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
		}
		if got := call(t, client(ops), "GET", url); got.code != http.StatusOK {
			t.Errorf("tokens %v: with a client certificate: %d %s", tokens, got.code, got.body)
		}
		if got := call(t, client(nil), "GET", url); got.code != http.StatusUnauthorized {
			t.Errorf("tokens %v: with neither: %d", tokens, got.code)
		}
		want := http.StatusUnauthorized
		if tokens {
			want = http.StatusOK
		}
		if got := call(t, client(nil), "GET", url, "Bearer s3cret"); got.code != want {
			t.Errorf("tokens %v: with a token and no certificate: %d, want %d", tokens, got.code, want)
		}
		if _, err := client(stranger).Get(url); err == nil {
			t.Errorf("tokens %v: a certificate of another CA was accepted", tokens)
		}
	}
}

// Without a verifier (package access not wired in), tokens cannot start
// an endpoint: never open by mistake.
func TestAdminTokensNeedVerifier(t *testing.T) {
	_, err := newAdminAuth([]AdminToken{{Name: "ops", Hash: "$x$y"}}, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "admin.tokens") {
		t.Fatalf("got %v", err)
	}
	if a, err := newAdminAuth(nil, nil, slog.New(slog.DiscardHandler)); a != nil || err != nil {
		t.Fatalf("no tokens: %v, %v", a, err)
	}
}

// Slow verifications run one at a time with a bounded queue; beyond it,
// requests are refused at once (429) instead of piling up. A hash that
// cannot be used is logged and skipped.
func TestAdminAuthBounded(t *testing.T) {
	release := make(chan struct{})
	var running, peak atomic.Int32
	verify := func(hash string, secret []byte) (bool, error) {
		if hash == "$broken" {
			return false, errors.New("unknown hash format")
		}
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return string(secret) == "right", nil
	}
	logger, readLog := newTestLog(t)
	a, err := newAdminAuth([]AdminToken{{Name: "old", Hash: "$broken"}, {Name: "ops", Hash: "$h"}}, verify, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer a.stop()
	ctx := context.Background()
	var wg sync.WaitGroup
	results := make(chan error, maxAdminTokenWaiters+1)
	for range maxAdminTokenWaiters + 1 { // one verifying, the rest waiting
		wg.Go(func() {
			_, err := a.check(ctx, []byte("wrong"))
			results <- err
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.waiting.Load() < maxAdminTokenWaiters && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, err := a.check(ctx, []byte("another")); !errors.Is(err, errAuthBusy) {
		t.Errorf("beyond the queue: %v, want errAuthBusy", err)
	}
	// A waiter whose client leaves gives up its place.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	a.waiting.Add(-1) // make room for it
	if _, err := a.check(gone, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled waiter: %v", err)
	}
	a.waiting.Add(1)
	close(release)
	wg.Wait()
	close(results)
	for err := range results {
		if !errors.Is(err, errInvalidToken) {
			t.Errorf("wrong token: %v", err)
		}
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d verifications ran at once, want 1", p)
	}
	if name, err := a.check(ctx, []byte("right")); name != "ops" || err != nil {
		t.Errorf("right token: %q %v", name, err)
	}
	a.stop()
	if log := readLog(); !strings.Contains(log, `msg="admin token hash unusable: fix admin.tokens" token=old err="unknown hash format"`) {
		t.Errorf("the broken hash is not logged:\n%s", log)
	}
}

// The cache is bounded: with more verified variants of a token than it
// holds (bcrypt ignores what follows 72 bytes), the oldest are verified
// again.
func TestAdminAuthCacheBound(t *testing.T) {
	var calls atomic.Int32
	verify := func(_ string, secret []byte) (bool, error) {
		calls.Add(1)
		return bytes.HasPrefix(secret, []byte("tok")), nil
	}
	a, err := newAdminAuth([]AdminToken{{Name: "ops", Hash: "$h"}}, verify, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range adminTokenCacheSize + 1 {
		if name, err := a.check(context.Background(), fmt.Appendf(nil, "tok%d", i)); name != "ops" || err != nil {
			t.Fatalf("variant %d: %q %v", i, name, err)
		}
	}
	calls.Store(0)
	a.check(context.Background(), []byte("tok1")) // still cached
	a.check(context.Background(), []byte("tok0")) // evicted
	if n := calls.Load(); n != 1 {
		t.Errorf("%d verifications, want 1 (the evicted variant)", n)
	}
}

// The admin section's checks, each problem naming its field.
func TestAdminConfigValidate(t *testing.T) {
	ca := testpki.NewCA(t, "admin CA")
	srv := ca.Server(t, "edgegate")
	other := ca.Server(t, "other")
	hash := "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA"
	cases := []struct {
		name  string
		admin AdminConfig
		want  []string // each the start of one problem
	}{
		{"default", DefaultConfig().Admin, nil},
		{"disabled", AdminConfig{}, nil},
		{"loopback", AdminConfig{Listen: "127.0.0.2:8080"}, nil},
		{"ipv6 loopback", AdminConfig{Listen: "[::1]:8080"}, nil},
		{"localhost", AdminConfig{Listen: "localhost:8080"}, nil},
		{"every interface with tokens", AdminConfig{Listen: ":8080", Tokens: []AdminToken{{"ops", hash}}}, nil},
		{"open on purpose", AdminConfig{Listen: "0.0.0.0:8080", AllowUnauthenticated: true}, nil},
		{"tls", AdminConfig{Listen: ":8443", Tokens: []AdminToken{{"ops", hash}}, TLS: AdminTLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile}}, nil},
		{"every interface", AdminConfig{Listen: ":8080"},
			[]string{`admin.listen: ":8080" is reachable beyond loopback and admin.tokens is not set: set admin.tokens`}},
		{"lan address", AdminConfig{Listen: "192.168.1.10:8080"}, []string{"admin.listen: "}},
		{"host name", AdminConfig{Listen: "gateway.local:8080"}, []string{"admin.listen: "}},
		{"not host:port", AdminConfig{Listen: "8080"}, []string{`admin.listen: "8080" must be host:port`}},
		{"both", AdminConfig{Listen: ":8080", AllowUnauthenticated: true, Tokens: []AdminToken{{"ops", hash}}},
			[]string{"admin.allow_unauthenticated: cannot be combined with admin.tokens"}},
		{"tokens", AdminConfig{Listen: "127.0.0.1:8080", Tokens: []AdminToken{{"", hash}, {"ops", "s3cret"}, {"ops", "$ has space"}, {"a/b", ""}}},
			[]string{
				`admin.tokens[0].name: "" must be 1-64 letters`,
				"admin.tokens[1].hash: must be a hash printed by edgegate passwd",
				`admin.tokens[2].name: "ops" is also the name of tokens[1]`,
				"admin.tokens[2].hash: must be a hash",
				`admin.tokens[3].name: "a/b" must be`,
				"admin.tokens[3].hash: must be a hash",
			}},
		{"tls without key", AdminConfig{Listen: "127.0.0.1:0", TLS: AdminTLSConfig{CertFile: srv.CertFile}}, []string{"admin.tls.key_file: is required"}},
		{"tls wrong key", AdminConfig{Listen: "127.0.0.1:0", TLS: AdminTLSConfig{CertFile: srv.CertFile, KeyFile: other.KeyFile}},
			[]string{"admin.tls.key_file: not a key for tls.cert_file"}},
		{"client ca without tls", AdminConfig{Listen: "127.0.0.1:0", TLS: AdminTLSConfig{ClientCAFile: ca.File}},
			[]string{"admin.tls.client_ca_file: needs admin.tls.cert_file and key_file"}},
		{"client ca not a ca", AdminConfig{Listen: "127.0.0.1:0", TLS: AdminTLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: srv.KeyFile}},
			[]string{"admin.tls.client_ca_file: " + srv.KeyFile + ": no PEM certificates found"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, "http://127.0.0.1:1/")
			cfg.Admin = tc.admin
			_, err := Compile(cfg)
			var got []string
			if err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(got), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d: %q, want it to start %q", i, got[i], w)
				}
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:1": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST:1": true,
		"[::ffff:127.0.0.1]:1": true,
		":8080":                false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.1:8080": false,
		"gateway.local:8080": false, "localhost.example.com:1": false, "8080": false, "": false,
	} {
		if got := loopbackOnly(addr); got != want {
			t.Errorf("loopbackOnly(%q) = %v, want %v", addr, got, want)
		}
	}
}

// Every start warns about an admin endpoint open beyond loopback, and
// about tokens without TLS beyond loopback.
func TestAdminWarnings(t *testing.T) {
	for _, tc := range []struct {
		admin AdminConfig
		want  string
	}{
		{AdminConfig{Listen: "0.0.0.0:8080", AllowUnauthenticated: true}, "admin API open without authentication beyond loopback"},
		{AdminConfig{Listen: ":8080", Tokens: []AdminToken{{"ops", "$h"}}}, "admin tokens cross the network in clear text: set admin.tls"},
		{AdminConfig{Listen: ":8443", Tokens: []AdminToken{{"ops", "$h"}}, TLS: AdminTLSConfig{CertFile: "c", KeyFile: "k"}}, ""},
		{AdminConfig{Listen: "127.0.0.1:8080"}, ""},
	} {
		logger, readLog := newTestLog(t)
		cfg := DefaultConfig()
		cfg.Admin = tc.admin
		newGateway(cfg, Options{Log: logger}).warnAdmin()
		got := readLog()
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) || tc.want != "" && !strings.Contains(got, "level=WARN") {
			t.Errorf("%+v: logged %q, want %q", tc.admin, got, tc.want)
		}
	}
}

// FuzzParseBearer: any header values give a token or a problem, never a
// panic; a token is a bounded b64token that parses back to itself.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"", "Bearer abc", "bearer  a.b-c_d~e+f/g==", "Basic dTpw", "Bearer", "Bearer ", "Bearer a b",
		"Bearer =", "Bearer a=b", "Bearer \x00", "Bearer\ta", "Bearer é", "BEARER " + strings.Repeat("x", 600)} {
		f.Add(s, "")
		f.Add(s, "Bearer abc")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, values := range [][]string{{a}, {a, b}, nil} {
			token, p := parseBearer(values)
			if p == authOK {
				if token == "" || len(token) > maxAdminTokenLen || !isB64Token(token) {
					t.Fatalf("%q gave token %q", values, token)
				}
				if again, p := parseBearer([]string{"Bearer " + token}); p != authOK || again != token {
					t.Fatalf("token %q does not parse back: %q %v", token, again, p)
				}
			} else if token != "" {
				t.Fatalf("%q: problem %v with token %q", values, p, token)
			}
			if p.reason() == "" || !strings.HasPrefix(p.challenge(), "Bearer ") {
				t.Fatalf("problem %v has no reason or challenge", p)
			}
		}
	})
}

// BenchmarkAdminTokenCached: a request with a token verified before costs
// one HMAC and a scan of the cache.
func BenchmarkAdminTokenCached(b *testing.B) {
	var calls atomic.Int32
	a, err := newAdminAuth([]AdminToken{{Name: "ops", Hash: "$plain$ops-secret"}}, plainVerifier(&calls), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	token := []byte("ops-secret")
	for b.Loop() {
		if _, err := a.check(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		b.Fatalf("%d verifications", calls.Load())
	}
}
