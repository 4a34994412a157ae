package main

import (
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/mqtttest"
)

// The README's troubleshooting section names only what exists, checked
// against the real binary: every command of its sh blocks exits 0 on a
// gateway holding a dead letter (the example id and config path replaced
// by the test's); every other `edgegate ...` it names is a command
// (`-h` exits 0); every admin path it names answers 200; every metric it
// names is a family of that gateway's /metrics.
func TestReadmeTroubleshooting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section, ok := strings.CutPrefix(string(readme[strings.Index(string(readme), "\n## Troubleshooting\n")+1:]), "## Troubleshooting\n")
	if !ok {
		t.Fatal("README has no ## Troubleshooting section")
	}
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	for _, want := range []string{"### Backlog growing", "### Device can't connect", "### Events dead-lettered"} {
		if !strings.Contains(section, want) {
			t.Errorf("the troubleshooting section has no %q", want)
		}
	}
	var commands []string // in sh blocks: run
	for _, b := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		commands = append(commands, readmeCommands(b[1], "edgegate ")...)
	}
	prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(section, "")
	var named [][]string // in the text: must be commands
	for _, m := range regexp.MustCompile("`edgegate ([a-z][a-z ]*)`").FindAllStringSubmatch(prose, -1) {
		named = append(named, strings.Fields(m[1]))
	}
	metrics := map[string]bool{}
	for _, m := range regexp.MustCompile(`\bedgegate_[a-z0-9_]+`).FindAllString(section, -1) {
		metrics[m] = true
	}
	paths := map[string]bool{}
	for _, m := range regexp.MustCompile(`localhost:8080(/[a-z0-9/]*)`).FindAllStringSubmatch(section, -1) {
		paths[m[1]] = true
	}
	if len(commands) < 5 || len(named) < 2 || len(metrics) < 10 || len(paths) < 2 {
		t.Fatalf("found only %d commands, %d named commands, %d metrics and %d admin paths in the section", len(commands), len(named), len(metrics), len(paths))
	}

	e := newE2E(t, "builds and runs the real binary")
	// A user, so that a wrong password is counted, and anonymous devices.
	cfg, err := os.ReadFile(e.config)
	if err != nil {
		t.Fatal(err)
	}
	auth := "auth:\n  allow_anonymous: true\n  users: [{username: dev1, password_hash: " + `"` + hashSecret(t, e.bin, "dev1-secret") + `"` + "}]\n"
	if err := os.WriteFile(e.config, append(cfg, auth...), 0o644); err != nil {
		t.Fatal(err)
	}
	sink, p, dead := startWithDeadLetter(t, e, 3, 1)
	defer p.kill()
	sink.Respond(nil) // fixed before the replay
	if c, err := mqtttest.Dial("tcp://"+e.mqtt, "dev1", func(o *paho.ClientOptions) { login("dev1")(o); o.SetPassword("wrong") }); err == nil {
		c.Disconnect(0)
		t.Fatal("a wrong password connected")
	}

	body := httpGet(t, "http://"+e.admin+"/metrics")
	for m := range metrics { // a histogram's samples are _bucket, _sum and _count
		if !regexp.MustCompile(`(?m)^` + m + `(_bucket|_sum|_count)?[{ ]`).MatchString(body) {
			t.Errorf("README troubleshooting names %s, which is not in /metrics", m)
		}
	}
	for path := range paths {
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("README troubleshooting names %s: GET answers %d", path, resp.StatusCode)
		}
	}
	for _, line := range commands {
		args := readmeArgs(line, dead.ID, e.config)
		if (args[0] == "buffer" || args[0] == "status") && !slices.Contains(args, "--config") {
			args = append(args, "--admin", e.admin)
		}
		out := cliOK(t, e.bin, args...)
		t.Logf("$ %s\n%s", line, out)
	}
	for _, args := range named {
		cliOK(t, e.bin, append(args, "-h")...)
	}
}

// httpGet returns the body of a GET that must answer 200.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
