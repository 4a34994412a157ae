package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/edgegate/edgegate/internal/browsertest"
)

// The status page in a real headless Chromium, on the real binary while
// `edgegate simulate` publishes: the page loads from the binary alone (no
// request leaves the admin origin), and its numbers move: devices online,
// events in per second, the healthy uplink's deliveries, the failing
// uplink's backlog, oldest age and last error, the rule's hit count; the
// live tail shows events, and its filter narrows them to one device. A
// screenshot goes to $EDGEGATE_SCREENSHOT_DIR (or the test's temp dir).
func TestStatusPageInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test")
	}
	browsertest.Find(t) // skip (or fail under make test) before starting anything
	bin := edgegateBinary(t)
	dir := t.TempDir()
	mqttAddr, admin, cloudAddr, downAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	sink := startSink(t, cloudAddr)
	startSink(t, downAddr).Refuse(http.StatusServiceUnavailable) // an outage that holds its port
	cfg := filepath.Join(dir, "edgegate.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`gateway_id: pi-in-a-box
admin: {listen: %q}
mqtt: {listeners: [{id: tcp, type: tcp, address: %q}]}
buffer: {dir: %q, min_free_bytes: 16MiB}
events: {presence: {enabled: false}}
uplinks:
  - name: cloud
    http: {url: "http://%s/"}
  - name: backup             # answers 503: failing, its backlog grows
    http: {url: "http://%s/"}
    retry: {initial: 100ms, max: 500ms}
rules:
  rules:
    - name: warm
      when: data.temperature > 0
      actions: [{set: {data.warm: "true"}}]
`, admin, mqttAddr, filepath.Join(dir, "buffer"), cloudAddr, downAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, bin, cfg, admin)
	defer p.kill()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim := exec.CommandContext(ctx, bin, "simulate", "--broker", "tcp://"+mqttAddr,
		"--devices", "3", "--rate", "30", "--duration", "120s", "--progress", "0")
	var simLog syncBuffer
	sim.Stdout, sim.Stderr = &simLog, &simLog
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		sim.Wait()
		if t.Failed() {
			t.Logf("simulate:\n%s\ngateway:\n%s", &simLog, p.log)
		}
	}()

	base := "http://" + admin
	b := browsertest.New(t, 60*time.Second, base+"/")
	b.Do(chromedp.Navigate(base + "/"))
	if loc, _ := chromedp.Run(b.Ctx, chromedp.Location()); loc != base+"/ui/" {
		t.Errorf("/ went to %s, want %s/ui/", loc, base)
	}
	b.Do(chromedp.WaitVisible(chromedp.ID("main")))
	if !browsertest.Eval[bool](b, `document.getElementById('login').hidden`) {
		t.Error("the login form shows although admin.tokens is not set")
	}

	num := func(s string) float64 {
		f, _ := strconv.ParseFloat(strings.NewReplacer(",", "", " ", "").Replace(strings.Fields(s + " x")[0]), 64)
		return f
	}
	uplink := func(name, field string) string {
		return b.Text(fmt.Sprintf(`[data-uplink=%q] dd.%s`, name, field))
	}
	b.Until("3 devices online and events flowing in", func() (bool, string) {
		d, in := b.Text("#devices"), b.Text("#rate-in")
		return d == "3" && num(in) > 0, "devices " + d + ", rate in " + in
	})
	if got := b.Text("#gateway"); got != "pi-in-a-box" {
		t.Errorf("gateway id %q", got)
	}
	if got := b.Text("#ready"); got != "ready" {
		t.Errorf("readiness badge %q with an uplink down, want ready", got)
	}
	b.Until("the backup uplink failing, with a backlog and an error", func() (bool, string) {
		state := b.Text(`[data-uplink="backup"] .state`)
		return state == "failing" && num(uplink("backup", "backlog")) > 0 && strings.Contains(uplink("backup", "last-error"), "503"),
			state + " / " + uplink("backup", "backlog") + " / " + uplink("backup", "last-error")
	})
	// The numbers move while devices publish.
	backlog, delivered, matches := num(uplink("backup", "backlog")), num(uplink("cloud", "delivered")), num(b.Text(`[data-rule="warm"] .matches`))
	b.Until("the backlog, the deliveries and the rule's hits growing", func() (bool, string) {
		nb, nd, nm := num(uplink("backup", "backlog")), num(uplink("cloud", "delivered")), num(b.Text(`[data-rule="warm"] .matches`))
		return nb > backlog && nd > delivered && nm > matches, fmt.Sprintf("backlog %v→%v, delivered %v→%v, matches %v→%v", backlog, nb, delivered, nd, matches, nm)
	})
	b.Until("the oldest waiting event's age shown", func() (bool, string) {
		o := b.Text("#oldest")
		return strings.HasSuffix(o, "s") && o != "0s", o
	})
	if st := b.Text(`[data-uplink="cloud"] .state`); st == "failing" {
		t.Errorf("cloud uplink %s", st)
	}

	// The live tail shows events, and its filter narrows them.
	b.Until("events in the live tail", func() (bool, string) {
		n := browsertest.Eval[int](b, `document.querySelectorAll('#tail li:not(.skipped)').length`)
		first := b.Text("#tail li:not(.skipped)")
		return n >= 3 && strings.Contains(first, "io.edgegate.device.telemetry"), fmt.Sprintf("%d events, first %q", n, first)
	})
	b.Do(chromedp.SendKeys(chromedp.ID("filter"), "sim-002"))
	b.Until("only sim-002 in the filtered tail", func() (bool, string) {
		lines := browsertest.Eval[[]string](b, `[...document.querySelectorAll('#tail li:not(.skipped)')].map(li => li.textContent)`)
		for _, l := range lines {
			if !strings.Contains(l, "sim-002") {
				return false, l
			}
		}
		return len(lines) >= 2, fmt.Sprint(len(lines), " lines")
	})
	b.Until("the page settled for the screenshot", func() (bool, string) {
		return b.Text("#rate-in") != "–", b.Text("#rate-in")
	})
	shots := os.Getenv("EDGEGATE_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	}
	t.Logf("screenshot: %s", b.Screenshot(shots, "statuspage.png"))

	// Nothing the page shows needed the internet, and the sink got events.
	if n, _ := sink.Counts(); n == 0 {
		t.Error("the sink got no events")
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d with one uplink down", resp.StatusCode)
	}
}
