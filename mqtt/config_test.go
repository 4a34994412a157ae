package mqtt

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

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
				{ID: "a", Type: "tls", Address: "1883"},
				{ID: "", Type: "", Address: ""},
				{ID: "d", Type: TypeWebsocket, Address: ":99999"},
				{ID: "e", Type: TypeTCP, Address: ":1883"},
			}
		}, []string{
			`listeners[1].id: "a" is already used by listeners[0]`,
			`listeners[1].type: "tls" is not supported`,
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
