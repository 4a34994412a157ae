package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// setUplinks replaces the uplinks section, the last of the e2e config,
// with list (YAML entries, indented as list items), and sets
// shutdown_timeout (the uplinks' handoff bound) when not "".
func setUplinks(t *testing.T, path, shutdownTimeout, list string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, ok := strings.Cut(string(data), "uplinks:\n")
	if !ok {
		t.Fatal("no uplinks section in the e2e config")
	}
	if shutdownTimeout != "" && !strings.Contains(head, "shutdown_timeout:") {
		head += "shutdown_timeout: " + shutdownTimeout + "\n"
	}
	if err := os.WriteFile(path, []byte(head+"uplinks:\n"+list), 0o644); err != nil {
		t.Fatal(err)
	}
}

// httpUplinkYAML is one uplinks entry: an http uplink in batch mode of at
// most 50 events to addr.
func httpUplinkYAML(name, addr string) string {
	return fmt.Sprintf(`  - name: %s
    http: {url: "http://%s/", mode: batch}
    batch: {max_events: 50}
    retry: {initial: 50ms, max: 500ms}
`, name, addr)
}

// seqOf returns an event's data.seq.
func seqOf(t *testing.T, data []byte) int {
	var d struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.Seq == nil {
		t.Fatalf("event data %s: no seq (%v)", data, err)
	}
	return *d.Seq
}

// An uplink's URL changes by SIGHUP under steady QoS 1 load from three
// devices: every acknowledged event arrives (at the old or the new
// endpoint), each endpoint gets each device's events in order, the cut is
// clean (the old endpoint gets nothing after the events the new one
// starts with, but the batch abandoned in flight), the events both
// endpoints got are at most that one batch, and no device disconnects.
// The old endpoint turns slow just before the change, so its batch in
// flight outlives the handoff bound (shutdown_timeout) and is abandoned.
func TestUplinkChangeUnderLoad(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	newAddr := freeAddr(t)
	setUplinks(t, e.config, "300ms", httpUplinkYAML("cloud", e.uplink))
	old, next := startSink(t, e.uplink), startSink(t, newAddr)
	var slow atomic.Bool
	var slowStarted, slowDone atomic.Int32
	old.Respond(func(http.ResponseWriter, *cetest.Request) int {
		if slow.Load() {
			slowStarted.Add(1)
			time.Sleep(1500 * time.Millisecond)
			slowDone.Add(1) // its events are recorded: the gateway gave up waiting
		}
		return http.StatusOK
	})
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	const devices = 3
	var lost atomic.Int32
	var mu sync.Mutex
	acked := map[string][]int{} // device → seqs acknowledged
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for d := range devices {
		dev := fmt.Sprintf("d%d", d)
		c, err := mqtttest.Dial("tcp://"+e.mqtt, dev, func(o *paho.ClientOptions) {
			o.SetConnectionLostHandler(func(paho.Client, error) { lost.Add(1) })
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(50)
		wg.Go(func() {
			mqtttest.Steady(c, "devices/"+dev+"/telemetry", 2*time.Millisecond, stop, func(seq int) {
				mu.Lock()
				acked[dev] = append(acked[dev], seq)
				mu.Unlock()
			})
		})
	}
	stopPublishing := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopPublishing()

	eventuallyE2E(t, "events at the first endpoint", func() bool { return len(old.Events()) >= 200 })
	slow.Store(true)
	time.Sleep(100 * time.Millisecond) // a slow request is in flight
	setUplinks(t, e.config, "", httpUplinkYAML("cloud", newAddr))
	p.cmd.Process.Signal(syscall.SIGHUP)
	eventuallyE2E(t, "events at the new endpoint", func() bool { return len(next.Events()) >= 200 })
	stopPublishing()
	lostConns := lost.Load()
	eventuallyE2E(t, "the old endpoint's slow requests", func() bool { return slowDone.Load() == slowStarted.Load() })

	mu.Lock()
	want := 0
	for _, seqs := range acked {
		want += len(seqs)
	}
	mu.Unlock()
	key := func(ev interface {
		Subject() string
		Data() []byte
	}) string {
		return fmt.Sprintf("%s/%d", ev.Subject(), seqOf(t, ev.Data()))
	}
	eventuallyE2E(t, "every acknowledged event at one endpoint or the other", func() bool {
		got := map[string]bool{}
		for _, s := range []*cetest.Server{old, next} {
			for _, ev := range s.Events() {
				got[key(ev)] = true
			}
		}
		mu.Lock()
		defer mu.Unlock()
		for dev, seqs := range acked {
			for _, s := range seqs {
				if !got[fmt.Sprintf("%s/%d", dev, s)] {
					return false
				}
			}
		}
		return true
	})

	// In order per device at each endpoint, each event once there; the
	// old endpoint's events precede the new one's but for the overlap.
	byDev := func(s *cetest.Server) map[string][]int {
		out := map[string][]int{}
		for _, ev := range s.Events() {
			out[ev.Subject()] = append(out[ev.Subject()], seqOf(t, ev.Data()))
		}
		return out
	}
	oldSeqs, nextSeqs := byDev(old), byDev(next)
	both := 0
	for dev, seqs := range nextSeqs {
		inNext := map[int]bool{}
		for i, s := range seqs {
			if i > 0 && s <= seqs[i-1] {
				t.Errorf("new endpoint: device %s: seq %d after %d", dev, s, seqs[i-1])
			}
			inNext[s] = true
		}
		for i, s := range oldSeqs[dev] {
			if i > 0 && s <= oldSeqs[dev][i-1] {
				t.Errorf("old endpoint: device %s: seq %d after %d", dev, s, oldSeqs[dev][i-1])
			}
			switch {
			case inNext[s]:
				both++
			case s > seqs[0]:
				t.Errorf("device %s: seq %d reached the old endpoint only, after seq %d reached the new one", dev, s, seqs[0])
			}
		}
	}
	if both < 1 || both > 50 {
		t.Errorf("%d events reached both endpoints; want the abandoned batch (1 to 50 events)", both)
	}
	if lostConns != 0 {
		t.Errorf("devices lost their connection %d times", lostConns)
	}
	if d := old.Duplicates() + next.Duplicates(); d != 0 {
		t.Errorf("%d events arrived twice at one endpoint", d)
	}
	log := p.log.String()
	for _, want := range []string{"uplink changed", "abandoning the send in flight"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	var ups []struct {
		Name, URL string
		Removed   bool
	}
	getJSON(t, "http://"+e.admin+"/v1/uplinks", &ups)
	if len(ups) != 1 || ups[0].Name != "cloud" || !strings.Contains(ups[0].URL, newAddr) {
		t.Errorf("/v1/uplinks after the change: %+v", ups)
	}
	t.Logf("acked %d; old endpoint %d events, new %d, %d at both (the abandoned batch)",
		want, len(old.Events()), len(next.Events()), both)
}

// getJSON decodes the JSON answer of url (admin, no token) into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
