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
	if !strings.Contains(adminMetrics(t, e.admin), "\nedgegate_uplink_handoffs_abandoned_total 1\n") {
		t.Error("/metrics: edgegate_uplink_handoffs_abandoned_total is not 1")
	}
	if ups := uplinks(t, e.admin); len(ups) != 1 || !strings.Contains(ups["cloud"].URL, newAddr) {
		t.Errorf("/v1/uplinks after the change: %+v", ups)
	}
	t.Logf("acked %d; old endpoint %d events, new %d, %d at both (the abandoned batch)",
		want, len(old.Events()), len(next.Events()), both)
}

// uplinkEntry is the part of a /v1/uplinks entry the tests read.
type uplinkEntry struct {
	Name    string `json:"name"`
	URL     string `json:"url"`
	State   string `json:"state"`
	Removed bool   `json:"removed"`
	Backlog int64  `json:"backlog"`
}

// uplinks returns /v1/uplinks by name.
func uplinks(t *testing.T, admin string) map[string]uplinkEntry {
	t.Helper()
	var list []uplinkEntry
	code, _, body := adminDo(t, http.DefaultClient, "GET", "http://"+admin+"/v1/uplinks", "")
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil {
		t.Fatalf("/v1/uplinks: %d %v %s", code, err, body)
	}
	out := map[string]uplinkEntry{}
	for _, u := range list {
		out[u.Name] = u
	}
	return out
}

// Uplinks are added and removed by reloads of the real binary: an added
// uplink gets the events published from then on; a removed (renamed)
// one's backlog stays, listed as removed, until `edgegate buffer replay`
// moves it to another uplink; a reload with removed_backlog=drop drops
// it. Removed uplinks' metrics go.
func TestUplinkAddRemove(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	bAddr := freeAddr(t)
	setUplinks(t, e.config, "", httpUplinkYAML("cloud", e.uplink))
	a, b := startSink(t, e.uplink), startSink(t, bAddr)
	b.Refuse(http.StatusServiceUnavailable)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	reload := func(query string, list ...string) {
		t.Helper()
		setUplinks(t, e.config, "", strings.Join(list, ""))
		resp, err := http.Post("http://"+e.admin+"/-/reload"+query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("reload%s: %s\n%s", query, resp.Status, p.log)
		}
	}
	seq := 0
	publish := func(n int) {
		t.Helper()
		publishN(t, e.mqtt, "d1", n, func(int) string { seq++; return fmt.Sprintf(`{"seq":%d}`, seq-1) })
	}

	publish(20)
	arrivals(t, a, 20)

	// "second" is added; its endpoint is down, so a backlog builds.
	reload("", httpUplinkYAML("cloud", e.uplink), httpUplinkYAML("second", bAddr))
	publish(30)
	arrivals(t, a, 50)
	eventuallyE2E(t, "second's backlog", func() bool { return uplinks(t, e.admin)["second"].Backlog == 30 })

	// Renamed to "third" (a removal and an addition): second's backlog
	// stays, listed as removed, and its metrics go.
	reload("", httpUplinkYAML("cloud", e.uplink), httpUplinkYAML("third", bAddr))
	b.Refuse(0)
	if u := uplinks(t, e.admin)["second"]; !u.Removed || u.State != "removed" || u.Backlog != 30 {
		t.Errorf("/v1/uplinks: removed uplink second is %+v, want removed with a backlog of 30", u)
	}
	if m := adminMetrics(t, e.admin); strings.Contains(m, `uplink="second"`) {
		t.Errorf("/metrics still reports the removed uplink second")
	}
	publish(10)
	arrivals(t, a, 60)
	arrivals(t, b, 10)

	// The backlog moves to third.
	out := cliOK(t, e.bin, "buffer", "replay", "--admin", "http://"+e.admin, "--queue", "uplink.second", "--to", "third")
	if !strings.Contains(out, "30") {
		t.Errorf("buffer replay output: %s", out)
	}
	got := arrivals(t, b, 40)
	for _, ev := range got[10:] {
		if s := seqOf(t, ev.Data()); s < 20 || s >= 50 {
			t.Errorf("replayed backlog holds seq %d, want 20..49", s)
		}
	}
	eventuallyE2E(t, "second gone from /v1/uplinks", func() bool {
		_, listed := uplinks(t, e.admin)["second"]
		return !listed
	})

	// third is removed with its backlog dropped.
	b.Refuse(http.StatusServiceUnavailable)
	publish(10)
	eventuallyE2E(t, "third's backlog", func() bool { return uplinks(t, e.admin)["third"].Backlog == 10 })
	reload("?removed_backlog=drop", httpUplinkYAML("cloud", e.uplink))
	if u, listed := uplinks(t, e.admin)["third"]; listed {
		t.Errorf("/v1/uplinks lists third after its backlog was dropped: %+v", u)
	}
	if !strings.Contains(p.log.String(), "its backlog is dropped") {
		t.Errorf("the drop is not logged:\n%s", p.log)
	}
	arrivals(t, a, 70)
	if d := a.Duplicates(); d != 0 {
		t.Errorf("cloud got %d events twice", d)
	}
}
