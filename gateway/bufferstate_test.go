package gateway

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// A buffer that cannot be opened does not stop the gateway: devices
// connect, their events are refused (MQTT 5: 0x97) and counted, /readyz
// answers 503 with the reason, and once the cause is gone the gateway
// opens the buffer by itself and accepts events.
func TestRunsWithoutItsBufferUntilItOpens(t *testing.T) {
	s := newReceiver(t)
	cfg := testConfig(t, s.URL())
	// A file where the buffer's directory should be: Open fails.
	cfg.Buffer.Dir = filepath.Join(t.TempDir(), "buffer")
	if err := os.WriteFile(cfg.Buffer.Dir, []byte("not a directory"), 0o644); err != nil {
		t.Fatal(err)
	}
	gw := start(t, cfg, func(g *Gateway) { g.bufRetry = 50 * time.Millisecond })
	admin := "http://" + gw.g.AdminAddr().String()

	code, body := get(t, admin+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "buffer unavailable") || !strings.Contains(body, cfg.Buffer.Dir) {
		t.Fatalf("/readyz = %d %q, want 503 naming the buffer and why", code, body)
	}
	if code, body := get(t, admin+"/status"); code != http.StatusOK || !strings.Contains(body, `buffer: refusing events: buffer unavailable`) {
		t.Fatalf("/status = %d %s", code, body)
	}
	addr := strings.TrimPrefix(gw.mqtt, "tcp://")
	c, _ := mqtttest.DialRaw(t, addr, 5, "dev-1", true)
	c.Publish("devices/dev-1/telemetry", []byte(`{"n":1}`), 1, 1, packets.Properties{})
	if ack, err := c.Read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != packets.ErrQuotaExceeded.Code {
		t.Fatalf("publish without a buffer: %+v %v, want PUBACK 0x97", ack.FixedHeader, err)
	}
	if n := metricValue(t, gw, `edgegate_events_refused_total{reason="buffer_unavailable"}`); n != 1 {
		t.Fatalf("refused (buffer_unavailable) = %v, want 1", n)
	}
	if n := metricValue(t, gw, `edgegate_buffer_available`); n != 0 {
		t.Fatalf("edgegate_buffer_available = %v, want 0", n)
	}

	// The cause goes away: the buffer opens, events are accepted and
	// delivered.
	if err := os.Remove(cfg.Buffer.Dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for code, _ := get(t, admin+"/readyz"); code != http.StatusOK; code, _ = get(t, admin+"/readyz") {
		if time.Now().After(deadline) {
			t.Fatalf("buffer not opened after the cause went away: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Publish("devices/dev-1/telemetry", []byte(`{"n":2}`), 1, 2, packets.Properties{})
	if ack, err := c.Read(); err != nil || ack.FixedHeader.Type != packets.Puback || ack.ReasonCode != 0 {
		t.Fatalf("publish once the buffer opened: %+v %v, want PUBACK 0", ack.FixedHeader, err)
	}
	if got := s.WaitFor(1, 10*time.Second); len(got) != 1 || string(got[0].Data()) != `{"n":2}` {
		t.Fatalf("delivered %v", got)
	}
	if n := metricValue(t, gw, `edgegate_buffer_available`); n != 1 {
		t.Fatalf("edgegate_buffer_available = %v, want 1", n)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
