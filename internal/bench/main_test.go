package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
)

func TestPlan(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{
			"ceiling/100/throughput-qos0", "ceiling/100/throughput-qos1",
			"batch/100/throughput-qos0", "batch/100/throughput-qos1", "batch/100/latency-qos1-5000/s",
			"binary/100/throughput-qos0", "binary/100/throughput-qos1", "binary/100/latency-qos1-5000/s",
		}},
		{[]string{"--qos", "0", "--mode", "structured", "--ceiling=false"}, []string{"structured/100/throughput-qos0", "structured/100/latency-qos0-5000/s"}},
		{[]string{"--qos", "1", "--rate", "0", "--mode", "batch", "--devices", "100,1000"}, []string{
			"ceiling/100/throughput-qos1", "batch/100/throughput-qos1", "ceiling/1000/throughput-qos1", "batch/1000/throughput-qos1",
		}},
		{[]string{"--messages", "0", "--rate", "250.5", "--mode", "batch", "--outage", "5s"}, []string{"batch/100/latency-qos1-250.5/s", "batch/100/outage-qos1-250.5/s"}},
		{[]string{"--quick"}, []string{
			"ceiling/3/throughput-qos0", "ceiling/3/throughput-qos1",
			"batch/3/throughput-qos0", "batch/3/throughput-qos1", "batch/3/latency-qos1-200/s", "batch/3/outage-qos1-200/s",
			"batch/3/overload-qos1-2x", "batch/3/startup-2000",
		}},
		{[]string{"--messages", "0", "--rate", "0", "--mode", "binary,batch", "--devices", "10,20", "--startup", "1000,5000"}, []string{
			"binary/10/startup-1000", "binary/10/startup-5000",
		}},
		{[]string{"--rate", "0", "--messages", "0", "--overload", "1m", "--mode", "binary"}, []string{"binary/100/overload-qos1-2x"}},
	}
	for _, tt := range tests {
		c, err := parseFlags(tt.args, "edgegate", io.Discard)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		var got []string
		for _, s := range c.plan() {
			got = append(got, fmt.Sprintf("%s/%d/%s", s.Mode, s.Devices, s.Name))
			if strings.HasPrefix(s.Name, "latency") && (s.Duration != c.duration || s.Messages != 0) {
				t.Errorf("%v: latency run %+v", tt.args, s)
			}
			if strings.HasPrefix(s.Name, "outage") && (s.Duration != 3*s.Outage || s.Outage <= 0) {
				t.Errorf("%v: outage run %+v", tt.args, s)
			}
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%v: plan %v, want %v", tt.args, got, tt.want)
		}
	}
}

func TestOverloadRate(t *testing.T) {
	runs := []result{
		{Mode: modeCeiling, Name: "throughput-qos1", QoS: 1, Devices: 100, EventsPerSec: 50000},
		{Mode: "batch", Name: "throughput-qos0", QoS: 0, Devices: 100, EventsPerSec: 30000},
		{Mode: "batch", Name: "throughput-qos1", QoS: 1, Devices: 100, EventsPerSec: 20000},
	}
	if got := overloadRate(runs, runSpec{Mode: "batch", Devices: 100, OverloadFactor: 2}, 5000); got != 40000 {
		t.Errorf("with a throughput run: %v, want 40000", got)
	}
	if got := overloadRate(runs, runSpec{Mode: "binary", Devices: 100, OverloadFactor: 2}, 5000); got != 10000 {
		t.Errorf("without one: %v, want 2 x --rate", got)
	}
}

func TestSetRatios(t *testing.T) {
	runs := []result{
		{Mode: modeCeiling, QoS: 1, Devices: 100, EventsPerSec: 50000},
		{Mode: "batch", QoS: 1, Devices: 100, EventsPerSec: 40000},
		{Mode: "batch", QoS: 0, Devices: 100, EventsPerSec: 40000},
		{Mode: "batch", QoS: 1, Devices: 100, EventsPerSec: 4000, TargetRate: 5000},
	}
	setRatios(runs)
	if runs[1].CeilingRatio != 0.8 || runs[2].CeilingRatio != 0 || runs[3].CeilingRatio != 0 || runs[0].CeilingRatio != 0 {
		t.Errorf("ratios %v %v %v %v", runs[0].CeilingRatio, runs[1].CeilingRatio, runs[2].CeilingRatio, runs[3].CeilingRatio)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	_, err := parseFlags([]string{"--qos", "2", "--mode", "batch,x", "--devices", "0", "--duration", "0", "--outage", "-1s", "--overload", "-1s", "--startup", "x", "--startup-drain", "0s"}, "edgegate", io.Discard)
	for _, want := range []string{"--startup: must be >= 1", "--startup-drain: must be > 0", "--overload: must be >= 0", "--qos: must be 0 or 1", "--mode: must be batch, binary, structured or mqtt", "--devices: must be >= 1", "--duration: must be > 0", "--outage: must be >= 0"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
	if _, err := parseFlags([]string{"-h"}, "edgegate", io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestPrintTable(t *testing.T) {
	var b bytes.Buffer
	printTable(&b, Report{Runs: []result{
		{Name: "throughput-qos1", QoS: 1, Mode: "batch", Devices: 100, Published: 50000, Received: 50000, EventsPerSec: 12345, P50ms: 1.5, P99ms: 20, PeakRSSMB: 48.2, CeilingRatio: 0.5},
		{Name: "latency-qos1-5000/s", QoS: 1, Mode: "batch", Devices: 100, Error: "boom"},
	}})
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")[1:] // after the machine line
	if len(lines) != 4 || !strings.Contains(lines[0], "events/s") || !strings.Contains(lines[1], "12345") || !strings.Contains(lines[1], "50%") || !strings.Contains(lines[3], "ERROR: boom") {
		t.Errorf("table:\n%s", b.String())
	}
	if len(lines[0]) != len(lines[1]) || len(lines[1]) != len(lines[2]) {
		t.Errorf("columns not aligned:\n%s", b.String())
	}
}

// The startup run's backlog is what the gateway stores: CloudEvents in
// the buffer's record format, in the uplink's queue, each with the
// device payload the recorder counts.
func TestFillBuffer(t *testing.T) {
	dir := t.TempDir()
	if err := fillBuffer(context.Background(), dir, 2500, 7); err != nil {
		t.Fatal(err)
	}
	cfg := buffer.DefaultConfig()
	cfg.Dir = dir
	b, err := buffer.Open(cfg, nil, nil, buffer.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if s := b.Stats(); s.Records != 2500 || s.Queues[startupQueue].Records != 2500 || s.Counting {
		t.Fatalf("stats %+v", s)
	}
	q, err := b.Queue(startupQueue)
	if err != nil {
		t.Fatal(err)
	}
	bt, err := q.Next(context.Background(), 3000, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[eventKey]bool{}
	for _, r := range bt.Records() {
		var e cloudevent.Event
		if err := cloudevent.Decode(r, &e); err != nil {
			t.Fatal(err)
		}
		var p devicePayloadJSON
		if err := json.Unmarshal(e.Data, &p); err != nil || e.Type != "io.edgegate.device.telemetry" || e.Subject != p.Dev {
			t.Fatalf("event %+v: %v", e, err)
		}
		seen[eventKey{p.Dev, p.Seq}] = true
	}
	if len(seen) != 2500 {
		t.Fatalf("%d distinct device messages, want 2500", len(seen))
	}
}

// Every `edgegate bench` command the README shows parses and plans runs:
// a renamed or mistyped flag in the README fails here.
func TestREADMEBenchCommands(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(readme)) {
		if !strings.HasPrefix(line, "edgegate bench") {
			continue
		}
		cmd, _, _ := strings.Cut(line, "#")
		args := strings.Fields(cmd)[2:]
		c, err := parseFlags(args, "edgegate", io.Discard)
		if err != nil {
			t.Errorf("README: %s: %v", strings.TrimSpace(cmd), err)
			continue
		}
		if len(c.plan()) == 0 {
			t.Errorf("README: %s: plans no run", strings.TrimSpace(cmd))
		}
		n++
	}
	if n < 10 {
		t.Fatalf("found %d edgegate bench commands in the README, want the Performance section's", n)
	}
}
