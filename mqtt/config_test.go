package mqtt

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/testpki"
	"github.com/edgegate/edgegate/internal/yamlconf"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   []string // each must appear in the error
	}{
		{"no listeners", func(c *Config) { c.Listeners = nil }, []string{"listeners: at least one"}},
		{"listener fields", func(c *Config) {
			c.Listeners = []ListenerConfig{
				{ID: "a", Type: TypeTCP, Address: ":1883"},
				{ID: "a", Type: "quic", Address: "1883"},
				{ID: "", Type: "", Address: ""},
				{ID: "d", Type: TypeWebsocket, Address: ":99999"},
				{ID: "e", Type: TypeTCP, Address: ":1883"},
			}
		}, []string{
			`listeners[1].id: "a" is already used by listeners[0]`,
			`listeners[1].type: "quic" is not supported (tcp, tls, websocket or wss)`,
			`listeners[1].address: must be host:port`,
			`listeners[2].id: must not be empty`,
			`listeners[2].type: must not be empty`,
			`listeners[2].address: must not be empty`,
			`listeners[3].address: port must be a number between 0 and 65535`,
			`listeners[4].address: ":1883" is already used by listeners[0]`,
		}},
		{"limits", func(c *Config) {
			c.MaxPayloadBytes = 0
			c.MaxInflight = 70000
			c.SessionExpiry = -time.Second
		}, []string{"max_payload_bytes: must be between", "max_inflight: must be between", "max_session_expiry: must be between"}},
		{"connection limits", func(c *Config) {
			c.Limits = LimitsConfig{MaxConnections: 0, PublishRate: -1, MaxTopicLength: 70000, MaxTopicLevels: 0,
				MaxRetainedMessages: -1, MaxRetainedBytes: -1, ServerKeepAlive: 1500 * time.Millisecond}
		}, []string{
			"limits.max_connections: must be between 1 and", "limits.publish_rate: must be 0 (off) or a positive number",
			"limits.max_topic_length: must be between 1 and 65535, got 70000", "limits.max_topic_levels: must be between 1",
			"limits.max_retained_messages: must be between 0", "limits.max_retained_bytes: must not be negative",
			"limits.server_keep_alive: must be 0s (clients' own) or whole seconds",
		}},
		{"burst", func(c *Config) { c.Limits.PublishBurst = 0 }, []string{"limits.publish_burst: must be between 1"}},
		{"exempt", func(c *Config) { c.Limits.PublishRateExempt = []string{"a", "", "a"} }, []string{"limits.publish_rate_exempt[1]: must not be empty", "limits.publish_rate_exempt[2]: \"a\" is listed twice"}},
		{"origins", func(c *Config) {
			c.Listeners = []ListenerConfig{
				{ID: "ws", Type: TypeWebsocket, Address: ":8083", AllowedOrigins: []string{"*", "https://a.example", "a.example", "https://a.example/app", "ftp://a"}},
				{ID: "tcp", Type: TypeTCP, Address: ":1883", AllowedOrigins: []string{"*"}},
			}
		}, []string{
			`listeners[0].allowed_origins[2]: "a.example" must be "*" or an origin`,
			`listeners[0].allowed_origins[3]: "https://a.example/app" must be`,
			`listeners[0].allowed_origins[4]: "ftp://a" must be`,
			"listeners[1].allowed_origins: is only for websocket and wss listeners",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.modify(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if n, w := strings.Count(err.Error(), "\n")+1, len(tc.want); n != w {
				t.Errorf("%d errors, want %d:\n%v", n, w, err)
			}
		})
	}
	c := DefaultConfig()
	c.Listeners = append(c.Listeners, ListenerConfig{ID: "b", Type: TypeTCP, Address: "127.0.0.1:0"}, ListenerConfig{ID: "c", Type: TypeTCP, Address: "127.0.0.1:0"})
	if err := c.Validate(); err != nil {
		t.Errorf("two port-0 listeners: %v", err)
	}
}

// Every problem of a listener's tls section is reported at its key: a
// missing or wrong section, files that are missing, unreadable or do not
// match, client-certificate choices without a CA.
func TestTLSConfigValidate(t *testing.T) {
	ca := testpki.NewCA(t, "devices CA")
	srv := ca.Server(t, "gateway")
	other := ca.Server(t, "other")
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	os.WriteFile(garbage, []byte("not PEM"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	good := func() *TLSConfig { return &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile} }
	for _, tc := range []struct {
		name string
		l    ListenerConfig
		want string // "" = valid
	}{
		{"tls", ListenerConfig{Type: TypeTLS, TLS: good()}, ""},
		{"wss with client certs", ListenerConfig{Type: TypeWSS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile,
			ClientCAFile: ca.File, ClientCerts: ClientCertsOptional, Identity: IdentitySANURI}}, ""},
		{"tls without tls", ListenerConfig{Type: TypeTLS}, "listeners[0].tls: is required for a tls listener"},
		{"wss without tls", ListenerConfig{Type: TypeWSS}, "listeners[0].tls: is required for a wss listener"},
		{"tls on tcp", ListenerConfig{Type: TypeTCP, TLS: good()}, "listeners[0].tls: is only for tls and wss listeners; use type: tls"},
		{"tls on websocket", ListenerConfig{Type: TypeWebsocket, TLS: good()}, "listeners[0].tls: is only for tls and wss listeners; use type: wss"},
		{"no files", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{}}, "listeners[0].tls.cert_file: must not be empty"},
		{"no cert_file", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{KeyFile: srv.KeyFile}}, "listeners[0].tls.cert_file: is required with tls.key_file"},
		{"no key_file", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile}}, "listeners[0].tls.key_file: is required with tls.cert_file"},
		{"missing cert", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: missing, KeyFile: srv.KeyFile}},
			"listeners[0].tls.cert_file: open " + missing + ": no such file"},
		{"cert not PEM", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: garbage, KeyFile: srv.KeyFile}},
			"listeners[0].tls.key_file: not a key for tls.cert_file (" + garbage + ", " + srv.KeyFile + "): tls: failed to find any PEM data in certificate input"},
		{"key a directory", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: dir}},
			"listeners[0].tls.key_file: read " + dir + ": is a directory"},
		{"key not PEM", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: garbage}},
			"listeners[0].tls.key_file: not a key for tls.cert_file (" + srv.CertFile + ", " + garbage + "): tls: failed to find any PEM data in key input"},
		{"key of another cert", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: other.KeyFile}},
			"listeners[0].tls.key_file: not a key for tls.cert_file (" + srv.CertFile + ", " + other.KeyFile + "): tls: private key does not match public key"},
		{"CA not PEM", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: garbage}},
			"listeners[0].tls.client_ca_file: " + garbage + ": no PEM certificates found"},
		{"client_certs without CA", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCerts: "require"}},
			"listeners[0].tls.client_certs: needs client_ca_file"},
		{"identity without CA", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, Identity: "cn"}},
			"listeners[0].tls.identity: needs client_ca_file"},
		{"bad choices", ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.File,
			ClientCerts: "sometimes", Identity: "serial"}},
			"listeners[0].tls.client_certs: \"sometimes\" is not supported (require or optional)\nlisteners[0].tls.identity: \"serial\" is not supported (cn, san_dns, san_email or san_uri)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.l.ID, tc.l.Address = "l", "127.0.0.1:0"
			c.Listeners = []ListenerConfig{tc.l}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
				t.Errorf("Validate: %v\nwant %s", err, tc.want)
			}
		})
	}
}

// Only a tls or wss listener with a client CA authenticates devices by
// certificate.
func TestVerifiesClients(t *testing.T) {
	withCA := &TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}
	for _, tc := range []struct {
		l    ListenerConfig
		want bool
	}{
		{ListenerConfig{Type: TypeTLS, TLS: withCA}, true},
		{ListenerConfig{Type: TypeWSS, TLS: withCA}, true},
		{ListenerConfig{Type: TypeTLS, TLS: &TLSConfig{CertFile: "c", KeyFile: "k"}}, false},
		{ListenerConfig{Type: TypeTCP, TLS: withCA}, false}, // refused by Validate anyway
		{ListenerConfig{Type: TypeWebsocket}, false},
	} {
		if got := tc.l.VerifiesClients(); got != tc.want {
			t.Errorf("%s with %+v: %v, want %v", tc.l.Type, tc.l.TLS, got, tc.want)
		}
	}
}

// ResolveFiles makes relative tls paths relative to the configuration's
// directory and leaves absolute ones and the caller's struct alone.
func TestResolveFiles(t *testing.T) {
	shared := &TLSConfig{CertFile: "certs/server.pem", KeyFile: "/etc/edgegate/key.pem", ClientCAFile: "ca.pem"}
	c := Config{Listeners: []ListenerConfig{{ID: "tcp"}, {ID: "tls", TLS: shared}}}
	c.ResolveFiles("/srv/gw")
	got := *c.Listeners[1].TLS
	want := TLSConfig{CertFile: "/srv/gw/certs/server.pem", KeyFile: "/etc/edgegate/key.pem", ClientCAFile: "/srv/gw/ca.pem"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if shared.CertFile != "certs/server.pem" {
		t.Error("ResolveFiles changed the caller's TLSConfig")
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
listeners:
  - id: devices
    type: tcp
    address: ":1883"
  - id: browsers
    type: websocket
    address: "127.0.0.1:8083"
max_payload_bytes: 65536
max_inflight: 64
max_session_expiry: 30m
`
	c := DefaultConfig()
	if _, err := yamlconf.Decode("mqtt.yaml", []byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 2 || c.Listeners[1].Type != TypeWebsocket || c.MaxPayloadBytes != 65536 ||
		c.MaxInflight != 64 || c.SessionExpiry != 30*time.Minute {
		t.Errorf("decoded %+v", c)
	}
}

// mochi's Info and Warn logs become Debug, its "error" key our "err".
func TestMochiLogIsQuiet(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(mochiLog{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})})
	l.Info("attached listener")
	l.Warn("error processing packet", "error", "boom")
	if buf.Len() != 0 {
		t.Errorf("logged at Info level: %s", buf.String())
	}
	l.Error("publish packet error", "error", "boom")
	if got := buf.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "err=boom") {
		t.Errorf("got %q", got)
	}
	if !l.Enabled(context.Background(), slog.LevelError) || l.Enabled(context.Background(), slog.LevelWarn) {
		t.Error("Enabled does not follow the mapped level")
	}
}
