package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/mqtttest"
	"github.com/edgegate/edgegate/internal/yamlconf"
	"github.com/edgegate/edgegate/uplink"
)

const reloadConfig = `gateway_id: gw-reload
log: {level: warn}
admin: {listen: "127.0.0.1:0"}
mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
buffer:
  dir: %q
  min_free_bytes: 16MiB
events:
  topics:
    - {match: "devices/{device}/{kind}", source: "/gw/{device}", type: %q, subject: "{device}"}
  presence: {enabled: false}   # the test counts device events
remote_config: {events: false}
uplinks:
  - {name: cloud, http: {url: %q}, retry: {initial: 20ms, max: 200ms}}
rules:
  rules:
    - name: tag
      actions: [{set: {data.config: "'%s'"}}]
`

// A reload under steady publishing changes the mapping for later events,
// disconnects no device and loses no event; a change that needs a restart
// is refused by name and the running configuration stays.
func TestReloadUnderLoad(t *testing.T) {
	rcv := newReceiver(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "edgegate.yaml")
	write := func(mqttAddr, typ string) {
		data := fmt.Sprintf(reloadConfig, mqttAddr, filepath.Join(dir, "buf"), typ, rcv.URL(), typ)
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.1:0", "io.before")
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	g, err := New(cfg, Options{Log: log, ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-g.Broker().Ready()
	broker := "tcp://" + g.Broker().Addr("tcp").String()

	var lost atomic.Int32
	c, err := mqtttest.Dial(broker, "steady", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { lost.Add(1) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(50)

	stop := make(chan struct{})
	var sent atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		mqtttest.Steady(c, "devices/d1/telemetry", 2*time.Millisecond, stop, func(int) { sent.Add(1) })
	})

	reload := func() (int, string) {
		resp, err := http.Post("http://"+g.AdminAddr().String()+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	time.Sleep(200 * time.Millisecond)
	write("127.0.0.1:0", "io.after")
	if code, body := reload(); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	time.Sleep(200 * time.Millisecond)
	write("127.0.0.1:1884", "io.third")
	code, body := reload()
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, path+":6:37: mqtt.listeners[0].address: change requires restart") {
		t.Fatalf("restart-only change: %d %q", code, body)
	}
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	events := rcv.WaitFor(int(sent.Load()), 20*time.Second)
	checkOrder(t, events)
	types := map[string]int{}
	for _, e := range events {
		types[e.Type()]++
		// The mapping and the rules of one configuration, never a mix.
		if !strings.Contains(string(e.Data()), `"config":"`+e.Type()+`"`) {
			t.Errorf("event of type %s has data %s", e.Type(), e.Data())
		}
	}
	if types["io.before"] == 0 || types["io.after"] == 0 || types["io.third"] != 0 {
		t.Errorf("types across reloads: %v", types)
	}
	if lost.Load() != 0 {
		t.Errorf("device disconnected %d times during reloads", lost.Load())
	}
	t.Logf("sent %d, types %v", sent.Load(), types)
}

// restartOnly names each changed field that needs a restart by its full
// path, and nothing that changes live.
func TestRestartOnlyNamesTheLeaf(t *testing.T) {
	base := testConfig(t, "http://a/")
	tests := []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"live changes only", func(c *Config) {
			c.Log.Level = "debug"
			c.Uplinks[0].HTTP.URL = "http://b/"
			c.ShutdownTimeout = time.Minute
		}, nil},
		{"a listener's address", func(c *Config) { c.MQTT.Listeners[0].Address = "127.0.0.1:1884" },
			[]string{"mqtt.listeners[0].address: change requires restart"}},
		{"a listener added and a buffer size", func(c *Config) {
			l := c.MQTT.Listeners[0]
			l.ID = "second"
			c.MQTT.Listeners = append(c.MQTT.Listeners, l)
			c.Buffer.MaxBytes *= 2
		}, []string{"mqtt.listeners[1]: change requires restart", "buffer.max_bytes: change requires restart"}},
		{"gateway id and log format", func(c *Config) { c.GatewayID = "other"; c.Log.Format = "json" },
			[]string{"gateway_id: change requires restart", "log.format: change requires restart"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base
			next.MQTT.Listeners = slices.Clone(base.MQTT.Listeners)
			u := base.Uplinks[0]
			h := *u.HTTP
			u.HTTP = &h
			next.Uplinks = []uplink.Config{u}
			tt.change(&next)
			var got []string
			for _, e := range yamlconf.Problems(restartOnly(base, next)) {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("restartOnly = %q, want %q", got, tt.want)
			}
		})
	}
}
