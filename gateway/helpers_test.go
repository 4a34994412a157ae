package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/uplink"
	"github.com/edgegate/edgegate/uplink/cetest"
)

// receiver is a CloudEvents HTTP endpoint that records every event it
// accepts. Status, when not 0, makes it refuse requests with that code.
type receiver struct {
	t      testing.TB
	srv    *httptest.Server
	status atomic.Int32
	// reject, when set, makes the receiver answer 400 to a request that
	// holds an event it returns true for (the whole request fails, as a
	// real batch endpoint would).
	reject func(event.Event) bool

	mu     sync.Mutex
	events []event.Event // first arrival of each id
	all    []event.Event // every arrival
	ids    map[string]int
	dups   int
	bad    []string
	notify chan struct{}
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{t: t, ids: map[string]int{}, notify: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/" }

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if code := r.status.Load(); code != 0 {
		io.Copy(io.Discard, req.Body)
		http.Error(w, "unavailable", int(code))
		return
	}
	events, err := r.decode(req)
	if err != nil {
		r.mu.Lock()
		r.bad = append(r.bad, err.Error())
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.reject != nil {
		for _, e := range events {
			if r.reject(e) {
				http.Error(w, "event "+e.ID()+" refused", http.StatusBadRequest)
				return
			}
		}
	}
	r.mu.Lock()
	for _, e := range events {
		if err := e.Validate(); err != nil {
			r.bad = append(r.bad, err.Error())
		}
		r.all = append(r.all, e)
		if _, seen := r.ids[e.ID()]; seen {
			r.dups++
		} else {
			r.ids[e.ID()] = len(r.events)
			r.events = append(r.events, e)
		}
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
}

// decode validates req strictly against CloudEvents 1.0 (cetest: MUST and
// SHOULD violations both fail) and then decodes it with sdk-go, after
// percent-decoding the binary-mode headers, which sdk-go does not do.
func (r *receiver) decode(req *http.Request) ([]event.Event, error) {
	views, warns, err := cetest.ValidateRequest(req)
	if err == nil && len(warns) > 0 {
		err = fmt.Errorf("SHOULD violations: %s", strings.Join(warns, "; "))
	}
	if err != nil {
		return nil, fmt.Errorf("invalid CloudEvents request: %w", err)
	}
	cetest.DecodeHeaders(req.Header)
	events, err := readEvents(req)
	if err != nil {
		return nil, fmt.Errorf("sdk-go cannot decode a valid request: %w", err)
	}
	if len(events) != len(views) {
		return nil, fmt.Errorf("sdk-go decoded %d events, the validator %d", len(events), len(views))
	}
	return events, nil
}

// waitFor waits until n distinct events arrived or the deadline passes.
func (r *receiver) waitFor(n int, within time.Duration) []event.Event {
	r.t.Helper()
	deadline := time.After(within)
	for {
		r.mu.Lock()
		got := len(r.events)
		r.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("receiver got %d distinct events, want %d", got, n)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		r.t.Fatalf("receiver saw invalid requests/events: %v", r.bad[:min(5, len(r.bad))])
	}
	return append([]event.Event(nil), r.events...)
}

// arrivals returns every event received, duplicates included.
func (r *receiver) arrivals() []event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event.Event(nil), r.all...)
}

func (r *receiver) duplicates() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dups
}

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

// start runs a gateway until the test ends and waits until it is ready.
func start(t testing.TB, cfg Config) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(c, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
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
	r.mqtt = "tcp://" + g.Broker().Addr(cfg.MQTT.Listeners[0].ID).String()
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

// connect returns a connected paho MQTT 3.1.1 client.
func connect(t testing.TB, broker, id string) paho.Client {
	t.Helper()
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(10 * time.Second).SetMaxResumePubInFlight(100)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
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

// readEvents decodes a CloudEvents HTTP request in any mode.
func readEvents(r *http.Request) ([]event.Event, error) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/cloudevents-batch+json") {
		return cehttp.NewEventsFromHTTPRequest(r)
	}
	e, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		return nil, err
	}
	return []event.Event{*e}, nil
}
