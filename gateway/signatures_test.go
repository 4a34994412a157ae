package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/configsign"
)

// The trust rules of the signatures verifier through Apply: remote sources
// need a signature and a newer version; the local file and rollbacks are
// trusted (unsigned with one warning, older allowed), though a signature
// they carry must verify.
func TestSignaturePolicy(t *testing.T) {
	key, err := configsign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	doc := func(level string) []byte {
		return []byte(fmt.Sprintf(`gateway_id: gw-sign
log: {level: %s}
admin: {listen: ""}
mqtt:
  listeners:
    - {id: tcp, type: tcp, address: "127.0.0.1:0"}
buffer: {dir: %q, min_free_bytes: 16MiB}
remote_config:
  events: false
  public_keys: [%q]
uplinks:
  - {name: cloud, http: {url: "http://127.0.0.1:9/"}}
`, level, filepath.Join(dir, "buf"), key.Public().String()))
	}
	sign := func(d []byte, v int64) []byte {
		out, _, err := configsign.SignDocument(key, d, v)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	path := filepath.Join(dir, "edgegate.yaml")
	os.WriteFile(path, doc("info"), 0o644)
	c, err := LoadStartup(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	g, err := New(c, Options{ConfigPath: path, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.buffer().Close()
	ctx := context.Background()
	apply := func(source string, data []byte) error {
		t.Helper()
		_, err := g.Apply(ctx, ConfigUpdate{Source: source, Origin: source, Data: data})
		return err
	}
	reason := func(err error) string {
		var ae *ApplyError
		if errors.As(err, &ae) {
			return ae.Reason
		}
		return fmt.Sprint(err)
	}

	if err := apply(SourceAdmin, doc("debug")); reason(err) != RefusedSignature || !strings.Contains(err.Error(), "config is not signed") {
		t.Errorf("unsigned push: %v", err)
	}
	for _, level := range []string{"warn", "error"} {
		if err := apply(SourceSIGHUP, doc(level)); err != nil {
			t.Fatalf("unsigned local file: %v", err)
		}
	}
	if n := strings.Count(logs.String(), "config is not signed but public keys are configured"); n != 1 {
		t.Errorf("the unsigned local file was warned about %d times, want once:\n%s", n, logs.String())
	}
	if err := apply(SourceMQTT, sign(doc("debug"), 10)); err != nil {
		t.Fatalf("signed v10: %v", err)
	}
	if err := apply(SourcePull, sign(doc("warn"), 9)); reason(err) != RefusedStale || !strings.Contains(err.Error(), "version 9 is older than the running version 10") {
		t.Errorf("older pull: %v", err)
	}
	if err := apply(SourceFile, sign(doc("warn"), 9)); err != nil {
		t.Errorf("older local file: %v", err)
	}
	tampered := bytes.Replace(sign(doc("info"), 20), []byte("level: info"), []byte("level: debug"), 1)
	if err := apply(SourceFile, tampered); reason(err) != RefusedSignature || !strings.Contains(err.Error(), "bad signature") {
		t.Errorf("tampered local file: %v", err)
	}
	if lvl := g.current().Log.Level; lvl != "warn" {
		t.Errorf("running log level %q, want warn (from the older local file)", lvl)
	}
}
