package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/uplink"
)

// newReceiver starts the shared strict CloudEvents receiver (cetest): it
// refuses and reports requests that violate CloudEvents 1.0 (MUST or
// SHOULD) and records every event it accepts.
func newReceiver(t testing.TB) *cetest.Server { return cetest.NewServer(t) }

// testConfig returns a config on loopback ports with its buffer in a temp dir.
func testConfig(t testing.TB, uplinkURL string) Config {
	cfg := DefaultConfig()
	cfg.GatewayID = "gw-test"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.MQTT.Listeners[0].Address = "127.0.0.1:0"
	cfg.Buffer.Dir = t.TempDir()
	cfg.Buffer.MinFreeBytes = buffer.MinFreeFloor
	u := httpUplink("cloud", uplinkURL)
	u.Retry.Initial = 20 * time.Millisecond
	u.Retry.Max = 200 * time.Millisecond
	cfg.Uplinks = []uplink.Config{u}
	cfg.ShutdownTimeout = 5 * time.Second
	// The tests count device events; presence_test.go turns presence on.
	cfg.Events.Presence.Enabled = false
	cfg.RemoteConfig.Events = false
	return cfg
}

// httpUplink returns an http uplink with the defaults.
func httpUplink(name, url string) uplink.Config {
	u := uplink.DefaultConfig()
	h := uplink.DefaultHTTPConfig()
	u.Name, h.URL, u.HTTP = name, url, &h
	return u
}

type running struct {
	g      *Gateway
	mqtt   string // tcp://host:port
	cancel context.CancelFunc
	done   chan error
}

// start runs a gateway until the test ends and waits until it is ready
// (listening). Each adjust changes the gateway between New and Run.
func start(t testing.TB, cfg Config, adjust ...func(*Gateway)) *running {
	t.Helper()
	return startWith(t, cfg, Options{}, adjust...)
}

// startWith is start with options; the log goes to stderr (warnings and
// errors) unless opts sets one.
func startWith(t testing.TB, cfg Config, opts Options, adjust ...func(*Gateway)) *running {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	c, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range adjust {
		a(g)
	}
	return runGateway(t, g, cfg.MQTT.Listeners[0].ID)
}

// runGateway runs g until the test ends and waits until it is ready;
// running.mqtt is the address of its listener.
func runGateway(t testing.TB, g *Gateway, listener string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{g: g, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- g.Run(ctx) }()
	select {
	case <-g.Broker().Ready():
	case err := <-r.done:
		t.Fatalf("gateway stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway not ready after 10s")
	}
	r.mqtt = "tcp://" + g.Broker().Addr(listener).String()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("gateway did not stop within 30s")
	}
}

// publishSeq publishes n QoS-1 messages {"seq":i} for device and returns
// when all are acknowledged.
func publishSeq(t testing.TB, c paho.Client, device string, from, n int) {
	t.Helper()
	toks := make([]paho.Token, 0, n)
	for i := from; i < from+n; i++ {
		toks = append(toks, c.Publish("devices/"+device+"/telemetry", 1, false, fmt.Sprintf(`{"seq":%d}`, i)))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Fatalf("publish for %s: %v (timed out: %v)", device, tok.Error(), tok.Error() == nil)
		}
	}
}

// checkOrder asserts that every device's events arrived with seq 0..n-1 in
// order, and returns the count per device.
func checkOrder(t testing.TB, events []event.Event) map[string]int {
	t.Helper()
	next := map[string]int{}
	for _, e := range events {
		var d struct {
			Seq int `json:"seq"`
		}
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			t.Fatalf("event %s data %q: %v", e.ID(), e.Data(), err)
		}
		if d.Seq != next[e.Subject()] {
			t.Fatalf("device %s: got seq %d, want %d (order broken)", e.Subject(), d.Seq, next[e.Subject()])
		}
		next[e.Subject()]++
	}
	return next
}
