package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"go.yaml.in/yaml/v3"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// The test binary doubles as a stand-in edgegate: with BENCH_FAKE_EDGEGATE=1 it runs
// fakeEdgegate instead of the tests, so runOnce can be tested before bin/edgegate exists.
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_FAKE_EDGEGATE") == "1" {
		if err := fakeEdgegate(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "fake edgegate:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeConfig is the part of the edgegate config the fake reads; it also pins the keys
// the bench writes (TestGatewayConfig decodes with KnownFields).
type fakeConfig struct {
	GatewayID string `yaml:"gateway_id"`
	Log       struct {
		Level string `yaml:"level"`
	} `yaml:"log"`
	Admin struct {
		Listen string `yaml:"listen"`
		PProf  bool   `yaml:"pprof"`
	} `yaml:"admin"`
	MQTT struct {
		Listeners []struct {
			ID      string `yaml:"id"`
			Type    string `yaml:"type"`
			Address string `yaml:"address"`
		} `yaml:"listeners"`
	} `yaml:"mqtt"`
	Buffer struct {
		Dir            string `yaml:"dir"`
		MaxBytes       string `yaml:"max_bytes"`
		CommitInterval string `yaml:"commit_interval"`
	} `yaml:"buffer"`
	Events struct {
		Topics []struct {
			Match   string `yaml:"match"`
			Source  string `yaml:"source"`
			Type    string `yaml:"type"`
			Subject string `yaml:"subject"`
		} `yaml:"topics"`
	} `yaml:"events"`
	Auth struct {
		UsersFile string `yaml:"users_file"`
		ACL       []struct {
			Users     []string `yaml:"users"`
			Publish   []string `yaml:"publish"`
			Subscribe []string `yaml:"subscribe"`
		} `yaml:"acl"`
	} `yaml:"auth"`
	Uplinks []struct {
		Name string `yaml:"name"`
		HTTP struct {
			URL  string `yaml:"url"`
			Mode string `yaml:"mode"`
		} `yaml:"http"`
	} `yaml:"uplinks"`
	Rules struct {
		Rules []struct {
			Name    string           `yaml:"name"`
			When    string           `yaml:"when"`
			Actions []map[string]any `yaml:"actions"`
		} `yaml:"rules"`
	} `yaml:"rules"`
}

// fakeEdgegate implements `edgegate run --config FILE` just well enough for the bench:
// mochi on the MQTT address, /readyz on the admin address, and a forwarder that posts
// every device message as a CloudEvent (batches of up to 100, or binary) until SIGTERM.
// It is not durable: messages are forwarded after the PUBACK.
func fakeEdgegate(args []string) error {
	if len(args) == 1 && args[0] == "passwd" {
		secret, err := io.ReadAll(os.Stdin)
		if err != nil || len(secret) == 0 {
			return fmt.Errorf("passwd: no secret on stdin (%v)", err)
		}
		fmt.Println("$argon2id$fake")
		return nil
	}
	if len(args) != 3 || args[0] != "run" || args[1] != "--config" {
		return fmt.Errorf("usage: run --config FILE, got %q", args)
	}
	b, err := os.ReadFile(args[2])
	if err != nil {
		return err
	}
	var cfg fakeConfig
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		return err
	}
	if f := cfg.Auth.UsersFile; f != "" {
		var users struct {
			Users []struct {
				Username     string `yaml:"username"`
				PasswordHash string `yaml:"password_hash"`
			} `yaml:"users"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(b, &users); err != nil || len(users.Users) == 0 || users.Users[0].PasswordHash != "$argon2id$fake" {
			return fmt.Errorf("users file %s: %v %+v", f, err, users)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()

	events := make(chan []byte, 1<<16)
	s, err := mqtttest.NewBroker(cfg.MQTT.Listeners[0].Address)
	if err != nil {
		return err
	}
	var seq atomic.Int64
	err = s.Subscribe("devices/+/+", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		parts := strings.Split(pk.TopicName, "/")
		ev, _ := json.Marshal(map[string]any{
			"specversion": "1.0", "id": strconv.FormatInt(seq.Add(1), 10) + "-" + pk.TopicName,
			"source": "/edgegate/" + cfg.GatewayID + "/devices/" + parts[1], "type": "io.edgegate.device." + parts[2],
			"subject": parts[1], "datacontenttype": "application/json", "data": json.RawMessage(pk.Payload),
		})
		events <- ev
	})
	if err != nil {
		return err
	}

	adminLn, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return err
	}
	admin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") && cfg.Admin.PProf {
			fmt.Fprintln(w, "a profile of", r.URL.Path)
			return
		}
		if r.URL.Path == "/metrics" {
			fmt.Fprintln(w, `edgegate_mqtt_messages_dropped_total{reason="overloaded"} 3`)
			return
		}
		http.NotFound(w, r)
	})}
	go func() { _ = admin.Serve(adminLn) }()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		forward(cfg.Uplinks[0].HTTP.URL, cfg.Uplinks[0].HTTP.Mode, events)
	}()

	<-ctx.Done()
	_ = admin.Close()
	s.Close()
	close(events)
	wg.Wait()
	return nil
}

func forward(url, mode string, events <-chan []byte) {
	client := &http.Client{Timeout: 10 * time.Second}
	send := func(req *http.Request) {
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, "forward:", err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for ev := range events {
		if mode == "binary" {
			var e struct {
				ID, Source, Type string
				Data             json.RawMessage
			}
			_ = json.Unmarshal(ev, &e)
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(e.Data))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("ce-specversion", "1.0")
			req.Header.Set("ce-id", e.ID)
			req.Header.Set("ce-source", e.Source)
			req.Header.Set("ce-type", e.Type)
			send(req)
			continue
		}
		batch := [][]byte{ev}
	more:
		for len(batch) < 100 {
			select {
			case e, ok := <-events:
				if !ok {
					break more
				}
				batch = append(batch, e)
			default:
				break more
			}
		}
		body := append([]byte("["), bytes.Join(batch, []byte(","))...)
		body = append(body, ']')
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/cloudevents-batch+json")
		send(req)
	}
}

func fakeOptions(t *testing.T, mode string) benchOptions {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return benchOptions{
		Edgegate: exe,
		Devices:  5,
		Mode:     mode,
		Inflight: 16,
		Timeout:  20 * time.Second,
		Drain:    3 * time.Second,
		Env:      []string{"BENCH_FAKE_EDGEGATE=1"},
		Log:      &testLog{t: t},
	}
}

type testLog struct{ t *testing.T }

func (l *testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestRunOnceFakeGateway(t *testing.T) {
	tests := []struct {
		mode string
		auth bool
		spec runSpec
	}{
		{"batch", false, runSpec{Name: "throughput-qos1", QoS: 1, Messages: 200}},
		{"binary", false, runSpec{Name: "throughput-qos0", QoS: 0, Messages: 50}},
		{"batch", false, runSpec{Name: "latency-qos1", QoS: 1, Rate: 500, Duration: 500 * time.Millisecond}},
		{"batch", true, runSpec{Name: "auth-qos1", QoS: 1, Messages: 50}},
		{"batch", true, runSpec{Name: "overload", QoS: 1, Rate: 500, Duration: 500 * time.Millisecond, OverloadFactor: 2, Steady: 2, SteadyRate: 40}},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.spec.Name, func(t *testing.T) {
			if testing.Short() && tt.spec.Messages > 100 {
				t.Skip("short")
			}
			o := fakeOptions(t, tt.mode)
			o.Auth = tt.auth
			r := runOnce(context.Background(), o, tt.spec)
			t.Logf("%+v", r)
			if r.Error != "" {
				t.Fatalf("run failed: %s", r.Error)
			}
			if r.Published == 0 || r.Received != r.Published || r.Lost != 0 || r.Duplicated != 0 || r.BadRequests != 0 || r.Invalid != 0 {
				t.Errorf("published %d received %d lost %d dup %d bad %d invalid %d (%s)", r.Published, r.Received, r.Lost, r.Duplicated, r.BadRequests, r.Invalid, r.InvalidFirst)
			}
			if tt.spec.Messages > 0 && r.Published != tt.spec.Messages*5 {
				t.Errorf("published %d, want %d", r.Published, tt.spec.Messages*5)
			}
			if r.PeakRSSMB <= 0 || r.EventsPerSec <= 0 || r.P99ms < r.P50ms || r.Requests == 0 {
				t.Errorf("implausible measurements: %+v", r)
			}
			if tt.spec.Rate > 0 && (r.Published < 100 || r.Published > 300) {
				t.Errorf("published %d at 500 msg/s for 0.5 s", r.Published)
			}
			if tt.spec.Steady > 0 && (r.SteadyDevices != 2 || r.SteadyP99ms <= 0 || r.Dropped != 3 || r.OfferedPerSec != 500) {
				t.Errorf("overload: steady %d p99 %v dropped %d offered %v", r.SteadyDevices, r.SteadyP99ms, r.Dropped, r.OfferedPerSec)
			}
		})
	}
}

// The ceiling counts every message the same devices publish to the
// in-process broker, at QoS 0 and 1, and keeps their latencies.
func TestRunCeiling(t *testing.T) {
	for _, q := range []byte{0, 1} {
		o := fakeOptions(t, modeCeiling)
		r := runCeiling(context.Background(), o, runSpec{Name: "throughput", Mode: modeCeiling, Devices: o.Devices, QoS: q, Messages: 40})
		if r.Error != "" || r.Published != 200 || r.Received != 200 || r.Lost != 0 || r.EventsPerSec <= 0 || r.P50ms <= 0 || r.Mode != modeCeiling {
			t.Errorf("qos %d: %+v", q, r)
		}
	}
}

// --profile saves each run's CPU and allocation profiles.
func TestRunOnceProfiles(t *testing.T) {
	o := fakeOptions(t, "batch")
	o.ProfileDir, o.ProfileSeconds = t.TempDir(), 1
	r := runOnce(context.Background(), o, runSpec{Name: "latency-qos1-100/s", QoS: 1, Rate: 100, Duration: time.Second})
	if r.Error != "" {
		t.Fatal(r.Error)
	}
	for _, name := range []string{"batch-latency-qos1-100_s-profile.pb.gz", "batch-latency-qos1-100_s-allocs.pb.gz"} {
		if b, err := os.ReadFile(filepath.Join(o.ProfileDir, name)); err != nil || !strings.HasPrefix(string(b), "a profile of /debug/pprof/") {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
}

func TestRunOnceGatewayFails(t *testing.T) {
	o := fakeOptions(t, "batch")
	o.Env = []string{"BENCH_FAKE_EDGEGATE=1"}
	o.Edgegate = "/nonexistent/edgegate"
	r := runOnce(context.Background(), o, runSpec{Name: "x", QoS: 1, Messages: 1})
	if !strings.Contains(r.Error, "start /nonexistent/edgegate") {
		t.Errorf("error = %q", r.Error)
	}

	// A binary that exits at once: the readiness wait must notice and not wait 30 s.
	o = fakeOptions(t, "batch")
	o.Edgegate = "/bin/false"
	start := time.Now()
	r = runOnce(context.Background(), o, runSpec{Name: "x", QoS: 1, Messages: 1})
	if !strings.Contains(r.Error, "exited before ready") {
		t.Errorf("error = %q", r.Error)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %s to notice the exit", time.Since(start))
	}
}

func TestVerdict(t *testing.T) {
	if err := verdict([]result{{Name: "a", QoS: 0, LostAcked: 3}, {Name: "b", QoS: 1}}, nil); err != nil {
		t.Errorf("QoS 0 loss must not fail the bench: %v", err)
	}
	err := verdict([]result{{Name: "b", QoS: 1, LostAcked: 2}, {Name: "c", Error: "boom"}}, context.Canceled)
	for _, want := range []string{"b: 2 acknowledged", "c: boom", "interrupted"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("verdict = %v, want %q", err, want)
		}
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("verdict does not wrap ctx error")
	}
}
