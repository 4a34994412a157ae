package bench

import (
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseVmHWM(t *testing.T) {
	status := "Name:\tedgegate\nVmPeak:\t  812344 kB\nVmHWM:\t   45120 kB\nVmRSS:\t   40000 kB\n"
	got, err := parseVmHWM(status)
	if err != nil || got != 45120*1024 {
		t.Errorf("parseVmHWM = %d, %v", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmHWM:\t12 MB\n", "VmHWM:\tx kB\n"} {
		if _, err := parseVmHWM(bad); err == nil {
			t.Errorf("parseVmHWM(%q): no error", bad)
		}
	}
}

func TestParseCPUTime(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	stat := "4242 (edge gate) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 12 0 500 1000000 2000 18446744073709551615"
	got, err := parseCPUTime(stat)
	if err != nil || got != 3800*time.Millisecond {
		t.Errorf("parseCPUTime = %s, %v; want 3.8s", got, err)
	}
	for _, bad := range []string{"4242 edgegate S 1", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 a 1 1"} {
		if _, err := parseCPUTime(bad); err == nil {
			t.Errorf("parseCPUTime(%q): no error", bad)
		}
	}
}

func TestParseWriteBytes(t *testing.T) {
	pio := "rchar: 6976\nwchar: 10\nsyscr: 10\nsyscw: 1\nread_bytes: 0\nwrite_bytes: 8192\ncancelled_write_bytes: 0\n"
	if got, err := parseWriteBytes(pio); err != nil || got != 8192 {
		t.Errorf("parseWriteBytes = %d, %v", got, err)
	}
	for _, bad := range []string{"rchar: 1\n", "write_bytes: x\n"} {
		if _, err := parseWriteBytes(bad); err == nil {
			t.Errorf("parseWriteBytes(%q): no error", bad)
		}
	}
}

func TestSumCounters(t *testing.T) {
	text := `# TYPE edgegate_mqtt_messages_dropped_total counter
edgegate_mqtt_messages_dropped_total{reason="overloaded"} 7
edgegate_mqtt_messages_dropped_total{reason="rejected"} 2
edgegate_mqtt_messages_dropped_totalx 100
edgegate_buffer_dropped_total{reason="overflow",queue="a b}"} 1e3
edgegate_buffer_dropped 5
`
	if got := sumCounters(text, droppedMetrics); got != 1009 {
		t.Errorf("sumCounters = %d, want 1009", got)
	}
}

func TestReadProcStatsSelf(t *testing.T) {
	ps, err := readProcStats(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if ps.PeakRSS < 1<<20 {
		t.Errorf("peak RSS of the test process = %d bytes", ps.PeakRSS)
	}
	if ps.CPU < 0 {
		t.Errorf("CPU = %s", ps.CPU)
	}
}

func TestTailFile(t *testing.T) {
	p := t.TempDir() + "/log"
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := tailFile(p, 2); got != "c\nd" {
		t.Errorf("tail = %q", got)
	}
	if got := tailFile(p+"x", 2); !strings.Contains(got, "read") {
		t.Errorf("tail of missing file = %q", got)
	}
}

// The config the bench writes must be the YAML the lead's loader reads, keys included.
func TestGatewayConfig(t *testing.T) {
	s := gatewayConfig("127.0.0.1:1", "127.0.0.1:2", "/tmp/x y/data", "http://127.0.0.1:3/", "binary", true, "1GiB", 2*time.Millisecond)
	var c fakeConfig
	dec := yaml.NewDecoder(strings.NewReader(s))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("config does not parse: %v\n%s", err, s)
	}
	if c.GatewayID != "bench" || c.Admin.Listen != "127.0.0.1:1" || !c.Admin.PProf || len(c.MQTT.Listeners) != 1 ||
		c.MQTT.Listeners[0].Address != "127.0.0.1:2" || c.Buffer.Dir != "/tmp/x y/data" || c.Buffer.MaxBytes != "1GiB" || c.Buffer.CommitInterval != "2ms" ||
		len(c.Uplinks) != 1 || c.Uplinks[0].HTTP.URL != "http://127.0.0.1:3/" || c.Uplinks[0].HTTP.Mode != "binary" ||
		len(c.Events.Topics) != 1 || c.Events.Topics[0].Match != "devices/{device}/{kind}" ||
		len(c.Rules.Rules) != 10 || c.Rules.Rules[9].Name != "r9" {
		t.Errorf("config = %+v", c)
	}
}
