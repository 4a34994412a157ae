package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"
)

// `edgegate bench --quick --json -` runs the ceiling and the real binary
// end to end (throughput at QoS 0 and 1, a fixed-rate run, an outage, an
// overload and a startup on a buffer of 2,000 events) with tiny numbers,
// and its JSON holds every figure the README's performance table is made
// of, each plausible.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway six times")
	}
	checkBenchQuick(t, "batch")
}

// The same through an MQTT uplink (issue 11: overload in every uplink
// mode): the bench's receiver is then a cloud broker counting what the
// gateway publishes, and every figure is there too.
func TestBenchQuickMQTT(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the gateway five times")
	}
	checkBenchQuick(t, "mqtt")
}

// checkBenchQuick runs `edgegate bench --quick --mode MODE --json -` and
// checks its report.
func checkBenchQuick(t *testing.T, mode string) {
	t.Helper()
	bin := edgegateBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "bench", "--quick", "--mode", mode, "--json", "-")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("edgegate bench: %v\n%s", err, stderr.String())
	}
	var rep struct {
		Machine map[string]any   `json:"machine"`
		Runs    []map[string]any `json:"runs"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"time", "goarch", "cpus", "go_version", "load_avg_start", "load_avg_end"} {
		if _, ok := rep.Machine[k]; !ok {
			t.Errorf("machine: no %q", k)
		}
	}
	every := []string{"name", "mode", "qos", "devices", "published", "received", "events_per_sec", "p50_ms", "p99_ms",
		"max_ms", "lost", "lost_acked", "duplicated", "invalid_events", "peak_rss_mb", "cpu_s", "cpu_s_per_1k_events",
		"disk_write_bytes", "disk_bytes_per_event", "ceiling_ratio", "backlog", "drain_events_per_sec", "drain_ratio",
		"offered_per_sec", "steady_devices", "steady_p50_ms", "steady_p99_ms", "dropped"}
	num := func(r map[string]any, k string) float64 { f, _ := r[k].(float64); return f }
	seen := map[string]bool{}
	gatewayCPU := 0.0
	for _, r := range rep.Runs {
		name := r["mode"].(string) + "/" + r["name"].(string)
		seen[name] = true
		for _, k := range every {
			if _, ok := r[k]; !ok {
				t.Errorf("%s: no %q", name, k)
			}
		}
		if num(r, "events_per_sec") <= 0 || num(r, "received") != num(r, "published") || num(r, "published") == 0 {
			t.Errorf("%s: %v", name, r)
		}
		if r["mode"] == "ceiling" {
			continue
		}
		if num(r, "peak_rss_mb") <= 0 {
			t.Errorf("%s: no peak RSS: %v", name, r)
		}
		// CPU time comes in 10 ms ticks: a run of 60 events may not see one.
		gatewayCPU += num(r, "cpu_s")
		if r["qos"] == 1.0 && num(r, "disk_bytes_per_event") <= 0 {
			t.Errorf("%s: durable events but no disk bytes: %v", name, r)
		}
		if r["name"] == "throughput-qos1" && num(r, "ceiling_ratio") <= 0 {
			t.Errorf("%s: no ratio to the ceiling: %v", name, r)
		}
		if r["name"] == "overload-qos1-2x" && (num(r, "offered_per_sec") <= 0 || num(r, "steady_devices") != 10 || num(r, "steady_p99_ms") <= 0) {
			t.Errorf("%s: no offered load or steady devices: %v", name, r)
		}
		if r["name"] == "outage-qos1-200/s" && (num(r, "backlog") <= 0 || num(r, "drain_events_per_sec") <= 0 || num(r, "drain_ratio") <= 0) {
			t.Errorf("%s: no backlog or drain: %v", name, r)
		}
		if r["name"] == "startup-2000" && (num(r, "startup_events") != 2000 || num(r, "startup_listen_ms") <= 0 ||
			num(r, "startup_ready_ms") < num(r, "startup_listen_ms") || num(r, "ready_rss_mb") <= 0 ||
			num(r, "drain_events_per_sec") <= 0 || num(r, "buffer_disk_mb") <= 0) {
			t.Errorf("%s: no startup figures: %v", name, r)
		}
	}
	if gatewayCPU <= 0 {
		t.Error("the gateway runs took no CPU time together")
	}
	for _, want := range []string{mode + "/overload-qos1-2x", "ceiling/throughput-qos0", "ceiling/throughput-qos1", mode + "/throughput-qos0", mode + "/throughput-qos1",
		mode + "/latency-qos1-200/s", mode + "/outage-qos1-200/s", mode + "/startup-2000"} {
		if !seen[want] {
			t.Errorf("no run %s in %v", want, seen)
		}
	}
}
