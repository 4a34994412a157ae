package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/freeport"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// buildBinary builds the edgegate binary once per test run.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func edgegateBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "edgegate-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "edgegate")
		cmd := exec.Command("go", "build", "-o", buildOnce.path, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// freeAddr returns a free 127.0.0.1 address for a gateway to listen on or
// to send to (see internal/freeport for why not simply port 0).
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

type gatewayProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	log    *syncBuffer
	admin  string        // host:port, when known
	exited chan struct{} // closed once cmd.Wait returned, when a goroutine waits
}

// startProc starts the binary on config and waits until its admin
// endpoint (plain HTTP on admin) is ready.
func startProc(t testing.TB, bin, config, admin string) *gatewayProc {
	t.Helper()
	return startProcAt(t, bin, config, "http://"+admin, http.DefaultClient)
}

// startProcAt starts the binary on config and waits until base/readyz
// answers 200 through client.
func startProcAt(t testing.TB, bin, config, base string, client *http.Client) *gatewayProc {
	t.Helper()
	p := &gatewayProc{t: t, log: &syncBuffer{}}
	p.cmd = exec.Command(bin, "run", "--config", config)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.cmd.Process.Kill()
	p.cmd.Wait()
	t.Fatalf("edgegate not ready after 20s; log:\n%s", p.log)
	return nil
}

func (p *gatewayProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	if p.exited != nil {
		<-p.exited
		return
	}
	p.cmd.Wait()
}

// startSink starts the shared strict receiver (cetest) on addr, the uplink
// address the gateway's config names: it refuses and reports requests that
// are not strictly valid CloudEvents 1.0 and records every event.
func startSink(t testing.TB, addr string) *cetest.Server {
	return cetest.NewServer(t, cetest.Addr(addr))
}

func writeConfig(t testing.TB, dir, mqttAddr, admin, uplinkAddr string) string {
	t.Helper()
	return writeConfigMQTT(t, dir, fmt.Sprintf(`mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
`, mqttAddr), admin, uplinkAddr)
}

// writeConfigMQTT writes the test configuration with mqttSection (YAML,
// "mqtt:" included) as its mqtt section.
func writeConfigMQTT(t testing.TB, dir, mqttSection, admin, uplinkAddr string) string {
	t.Helper()
	cfg := fmt.Sprintf(`gateway_id: crash-test
log: {level: info}
admin: {listen: %q}
%sbuffer:
  dir: %q
  min_free_bytes: 16MiB
events:
  presence: {enabled: false}   # the tests count device events
remote_config: {events: false}
uplinks:
  - name: cloud
    http: {url: "http://%s/", mode: batch}
    retry: {initial: 50ms, max: 500ms}
`, admin, mqttSection, filepath.Join(dir, "buffer"), uplinkAddr)
	path := filepath.Join(dir, "edgegate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// The durability claim through the real binary: N QoS 1 messages acked
// while the uplink is down, then SIGKILL; after a restart every one of them
// arrives. A second kill in the middle of the drain loses nothing either.
// Duplicates are allowed only as repeats of the same event id.
func TestKill9LosesNoAcknowledgedEvent(t *testing.T) {
	e := newE2E(t, "builds and kills the real binary")

	p := startProc(t, e.bin, e.config, e.admin)
	const devices, perDevice = 5, 400
	var wg sync.WaitGroup
	var acked sync.Map
	for d := range devices {
		wg.Go(func() {
			c, err := mqtttest.Dial("tcp://"+e.mqtt, fmt.Sprintf("dev-%d", d))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Disconnect(50)
			for i := range perDevice {
				tok := c.Publish(fmt.Sprintf("devices/dev-%d/telemetry", d), 1, false, fmt.Sprintf(`{"seq":%d}`, i))
				if mqtttest.Acked(tok, 10*time.Second) {
					acked.Store(fmt.Sprintf("%d/%d", d, i), true)
				}
			}
		})
	}
	wg.Wait()
	n := 0
	acked.Range(func(_, _ any) bool { n++; return true })
	if n != devices*perDevice {
		t.Fatalf("only %d of %d publishes acked", n, devices*perDevice)
	}
	p.kill()

	// Restart with the receiver up; kill again once part has arrived.
	s := startSink(t, e.uplink)
	p = startProc(t, e.bin, e.config, e.admin)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if d, _ := s.Counts(); d > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	p.kill()
	partial, _ := s.Counts()

	p = startProc(t, e.bin, e.config, e.admin)
	defer p.kill()
	deadline = time.Now().Add(60 * time.Second)
	for {
		d, _ := s.Counts()
		if d >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	distinct, total := s.Counts()
	t.Logf("acked %d, received %d distinct events (%d after the mid-drain kill), %d duplicates (same id)",
		n, distinct, partial, total-distinct)
	if bad := s.Violations(); len(bad) > 0 {
		t.Errorf("%d requests were not valid CloudEvents 1.0, first: %s", len(bad), bad[0])
	}
	if distinct != n {
		t.Fatalf("received %d distinct events, want %d acked; log:\n%s", distinct, n, p.log)
	}
}

// SIGTERM stops the gateway cleanly and quickly; validate reports errors
// with file:line:col.
func TestGracefulShutdownAndValidate(t *testing.T) {
	e := newE2E(t, "builds the real binary")
	p := startProc(t, e.bin, e.config, e.admin)
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log)
	}
	if !strings.Contains(p.log.String(), "stopped") {
		t.Errorf("no clean stop in log:\n%s", p.log)
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))

	out, err := exec.Command(e.bin, "validate", "--config", e.config).CombinedOutput()
	if err != nil {
		t.Fatalf("validate good config: %v\n%s", err, out)
	}
	bad := filepath.Join(e.dir, "bad.yaml")
	os.WriteFile(bad, []byte("gateway_id: gw\nuplinks:\n  - name: x\n    http:\n      url: nope\n    colour: red\n"), 0o644)
	out, err = exec.Command(e.bin, "validate", "--config", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("validate bad config: err %v, want exit 2\n%s", err, out)
	}
	if !strings.Contains(string(out), bad+":6:5: uplinks[0].colour: unknown field") {
		t.Errorf("validate output lacks a positioned error:\n%s", out)
	}
	if !strings.Contains(string(out), bad+":5:12: uplinks[0].http.url:") {
		t.Errorf("validate did not report every error at once:\n%s", out)
	}
}

// e2e is one real-binary test setup: the binary, free loopback addresses
// (MQTT, admin, uplink) and the config file writeConfig wrote for them in
// dir.
type e2e struct{ bin, dir, mqtt, admin, uplink, config string }

// newE2E skips the test under -short (why says what it does) and prepares
// an e2e setup.
func newE2E(t *testing.T, why string) e2e {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
	e := e2e{bin: edgegateBinary(t), dir: t.TempDir(), mqtt: freeAddr(t), admin: freeAddr(t), uplink: freeAddr(t)}
	e.config = writeConfig(t, e.dir, e.mqtt, e.admin, e.uplink)
	return e
}
