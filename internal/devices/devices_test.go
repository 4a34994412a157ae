package devices

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

func testConfig(broker string) Config {
	return Config{
		Broker: broker, Devices: 3, IDPrefix: "d-", ClientIDPrefix: "test-", Topic: "devices/{device}/telemetry",
		CleanSession: true, QoS: 1, Inflight: 8, ConnectTimeout: 2 * time.Second, AckTimeout: time.Second,
		Payload: func(i int, id string) Payload {
			return func(seq int64, _ time.Time) []byte { return fmt.Appendf(nil, `{"dev":%q,"seq":%d}`, id, seq) }
		},
	}
}

func TestRunCountsEveryAck(t *testing.T) {
	broker := mqtttest.StartBroker(t).URL
	cfg := testConfig(broker)
	cfg.Messages = 20
	f, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res := f.Run(context.Background())
	if res.Sent != 60 || res.Acked != 60 || res.Failed != 0 || len(res.Devices) != 3 ||
		res.Devices[2].ID != "d-003" || res.Devices[2].Published != 20 || res.Devices[2].Failed != nil {
		t.Errorf("result %+v", res)
	}
	if res.Start.IsZero() || res.End.Before(res.Start) {
		t.Errorf("start %v end %v", res.Start, res.End)
	}
}

// Once the broker is gone, acknowledgements never come: the run still ends
// AckTimeout after its Duration (here 1 s + 1 s), not after one AckTimeout
// per queued publish, and counts those publishes as failed.
func TestRunEndsWhenBrokerGone(t *testing.T) {
	srv := mqtttest.StartBroker(t)
	broker := srv.URL
	cfg := testConfig(broker)
	cfg.Reconnect = true
	cfg.Rate = 300
	cfg.Duration = time.Second
	f, err := Connect(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	time.AfterFunc(300*time.Millisecond, func() { srv.Close() })
	start := time.Now()
	res := f.Run(context.Background())
	if el := time.Since(start); el > cfg.Duration+cfg.AckTimeout+3*time.Second { // one AckTimeout per queued publish would be 8 s more
		t.Errorf("Run took %s, want at most Duration %s + AckTimeout %s", el, cfg.Duration, cfg.AckTimeout)
	}
	failed := 0
	for _, d := range res.Devices {
		failed += len(d.Failed)
	}
	if res.Failed == 0 || int64(failed) != res.Failed || res.Acked+res.Failed != res.Sent {
		t.Errorf("sent %d acked %d failed %d (%d by device)", res.Sent, res.Acked, res.Failed, failed)
	}
}

func TestConnectErrorNamesDevices(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1") // nothing listens on port 1
	_, err := Connect(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "connect d-001 to tcp://127.0.0.1:1") || !strings.Contains(err.Error(), "connect d-003") {
		t.Fatalf("err = %v", err)
	}
}

func TestTelemetryPayload(t *testing.T) {
	next := Telemetry(7)
	now := time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC)
	for seq := int64(1); seq <= 1000; seq++ {
		p := next(seq, now)
		var m struct {
			Seq         int64   `json:"seq"`
			Temperature float64 `json:"temperature"`
			Humidity    float64 `json:"humidity"`
			TS          string  `json:"ts"`
		}
		if err := json.Unmarshal(p, &m); err != nil {
			t.Fatalf("payload %s: %v", p, err)
		}
		if m.Seq != seq || m.TS != "2026-11-23T10:00:00.123456789Z" {
			t.Fatalf("payload %s: wrong seq or ts", p)
		}
		if m.Temperature < 15 || m.Temperature > 28 || m.Humidity < 30 || m.Humidity > 60 {
			t.Fatalf("payload %s: implausible values", p)
		}
	}
}
