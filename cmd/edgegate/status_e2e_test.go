package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/edgegate/edgegate/gateway"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// waitStatus runs `edgegate status args…` until its output matches want
// (exit 0) and returns that output.
func waitStatus(t *testing.T, bin string, want *regexp.Regexp, args ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, code := cli(t, bin, append([]string{"status"}, args...)...)
		if code == 0 && want.MatchString(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %v: exit %d, no match for %s in\n%s%s", args, code, want, out, errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkWidth fails for a line of out wider than 80 columns.
func checkWidth(t *testing.T, out string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("line of %d columns:\n%s", n, l)
		}
	}
}

// `edgegate status` through the real binary against a real gateway: a
// device online, an uplink down (backlog, failing, its error), then up
// (backlog drained, deliveries counted); --json is the admin API's JSON;
// --config finds the admin API in the file.
func TestStatusE2E(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	dev := mqtttest.Connect(t, "tcp://"+e.mqtt, "dev-1")
	defer dev.Disconnect(50)
	for i := range 3 {
		mqtttest.Publish(t, dev, "devices/dev-1/telemetry", 1, fmt.Sprintf(`{"seq":%d}`, i))
	}

	// The uplink's endpoint is down: the events wait, the uplink fails.
	start := time.Now()
	out := waitStatus(t, e.bin, regexp.MustCompile(`(?m)^cloud +failing\(\d+\) +3 `), "--admin", e.admin)
	t.Logf("failing after %v", time.Since(start))
	t.Logf("uplink down:\n%s", out)
	for _, want := range []string{
		"crash-test dev: READY\n",
		"\ndevices  1 online: dev-1\n",
		"\nbuffer   3 events, ",
		"\nevents   3 in, 0 delivered, ",
		"\nUPLINK  ", "\ncloud: post http://" + e.uplink + "/: ", "connection refused\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	checkWidth(t, out)

	raw := cliOK(t, e.bin, "status", "--admin", e.admin, "--json")
	var st struct {
		Ready   bool `json:"ready"`
		Clients int  `json:"mqtt_clients"`
		Uplinks []struct {
			Name    string `json:"name"`
			Backlog int64  `json:"backlog"`
		} `json:"uplinks"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil || !st.Ready || st.Clients != 1 || len(st.Uplinks) != 1 || st.Uplinks[0].Backlog != 3 {
		t.Errorf("--json: %v %+v\n%s", err, st, raw)
	}

	// The endpoint is back: the backlog drains, deliveries count.
	sink := startSink(t, e.uplink)
	sink.WaitFor(3, 20*time.Second)
	t.Logf("delivered after %v", time.Since(start))
	out = waitStatus(t, e.bin, regexp.MustCompile(`(?m)^cloud +idle +0 +- +3 +0$`), "--config", e.config)
	t.Logf("idle after %v", time.Since(start))
	t.Logf("uplink up (--config):\n%s", out)
	if !strings.Contains(out, "\nevents   3 in, 3 delivered, ") {
		t.Errorf("deliveries not counted:\n%s", out)
	}
}

// With admin.tokens, status needs a token (--token-file, --token or
// EDGEGATE_TOKEN) and says so when it has none.
func TestStatusNeedsToken(t *testing.T) {
	e := startWithAdminToken(t, "status-token")

	if _, errOut, code := cli(t, e.bin, "status", "--admin", e.admin); code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "--token-file") {
		t.Errorf("no token: exit %d\n%s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(file, []byte("status-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := cliOK(t, e.bin, "status", "--admin", e.admin, "--token-file", file); !strings.Contains(out, ": READY\n") {
		t.Errorf("--token-file:\n%s", out)
	}
	// The buffer commands take the same flags (one owner).
	cliOK(t, e.bin, "buffer", "stats", "--admin", e.admin, "--token-file", file)
	if _, errOut, code := cli(t, e.bin, "status", "--admin", e.admin, "--token-file", file, "--token", "x"); code != 2 || !strings.Contains(errOut, "give one") {
		t.Errorf("--token and --token-file: exit %d\n%s", code, errOut)
	}
}

// A gateway that is not ready makes status exit 1 with the reasons, as
// does one that does not answer; --json prints the JSON and exits 1 too.
func TestStatusNotReady(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the real binary")
	}
	bin := edgegateBinary(t)
	now := time.Date(2026, 11, 23, 3, 41, 7, 0, time.UTC)
	body, err := json.Marshal(gateway.Status{
		GatewayID: "gw-7", Version: "v1.2.3", StartedAt: now.Add(-3 * time.Hour), Now: now,
		NotReady: []string{"buffer: refusing events: the disk has 10.0 MiB free, below min_free_bytes"},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" || r.URL.Query().Get("clients") != "5" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()

	out, errOut, code := cli(t, bin, "status", "--admin", srv.URL)
	if code != 1 || !strings.HasPrefix(out, "gw-7 v1.2.3: NOT READY\n  buffer: refusing events: ") || !strings.Contains(errOut, "not ready") {
		t.Errorf("not ready: exit %d\n%s%s", code, out, errOut)
	}
	if out, _, code := cli(t, bin, "status", "--admin", srv.URL, "--json"); code != 1 || strings.TrimSpace(out) != string(body) {
		t.Errorf("--json: exit %d\n%s", code, out)
	}
	srv.Close()
	if _, errOut, code := cli(t, bin, "status", "--admin", srv.URL); code != 1 || !strings.Contains(errOut, "is the gateway running?") {
		t.Errorf("no gateway: exit %d\n%s", code, errOut)
	}
}

// The README's `edgegate status` examples run against a real gateway and
// exit 0, and its example output has the lines and columns the real one
// has, in 80 columns.
func TestReadmeStatusExamples(t *testing.T) {
	const heading = "### At a terminal: edgegate status"
	lines := readmeCommands(readmeBlock(t, heading, "sh"), "edgegate status")
	example := readmeBlock(t, heading, "text")
	checkWidth(t, example)
	if len(lines) < 3 {
		t.Fatalf("only %d edgegate status lines in the README block", len(lines))
	}

	e := newE2E(t, "builds and runs the real binary")
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	dev := mqtttest.Connect(t, "tcp://"+e.mqtt, "dev-1")
	defer dev.Disconnect(50)
	mqtttest.Publish(t, dev, "devices/dev-1/telemetry", 1, `{"seq":1}`)
	real := waitStatus(t, e.bin, regexp.MustCompile(`(?m)^cloud +failing`), "--admin", e.admin)

	for _, line := range lines {
		args := strings.Fields(line)[1:]
		if j := slices.Index(args, "--config"); j >= 0 {
			args[j+1] = e.config
		} else {
			args = append(args, "--admin", e.admin)
		}
		out := cliOK(t, e.bin, args...)
		if slices.Contains(args, "--json") && !json.Valid([]byte(out)) {
			t.Errorf("README %q: not JSON:\n%s", line, out)
		}
	}

	// The example's shape is the real output's: the verdict line, the
	// labelled lines in order, the uplink table's header, the error line.
	shape := func(out string) []string {
		var s []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			switch f := strings.Fields(l); {
			case len(f) == 0, strings.HasPrefix(l, " "), strings.HasPrefix(l, "cloud"), strings.HasPrefix(l, "backup"):
			case regexp.MustCompile(`^\S+ \S+: (NOT )?READY$`).MatchString(l):
				s = append(s, "VERDICT")
			case f[0] == "UPLINK":
				s = append(s, strings.Join(f, " "))
			default:
				s = append(s, f[0])
			}
		}
		return s
	}
	got, want := shape(real), slices.DeleteFunc(shape(example), func(s string) bool { return s == "dead" })
	if !slices.Equal(got, want) {
		t.Errorf("README example output\n%s\nis not shaped like the real one\n%s\n(%q vs %q)", example, real, want, got)
	}
}
