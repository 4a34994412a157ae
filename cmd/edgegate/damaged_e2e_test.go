package main

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/faults"
)

// A damaged buffer through the real binary: the gateway starts anyway (no
// crash loop), refuses every event with a log line, a metric and /readyz
// saying why; `edgegate buffer check` reports the damage (exit 1),
// `edgegate buffer repair` salvages every record, and after a restart every
// acknowledged event is delivered and new ones are accepted.
func TestDamagedBuffer(t *testing.T) {
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, dir string)
		salvage bool // every acknowledged event survives the repair
	}{
		{"torn MANIFEST", func(t *testing.T, dir string) {
			path := filepath.Join(dir, "MANIFEST")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for i := len(data) / 2; i < len(data); i++ {
				data[i] ^= 0x5a
			}
			os.WriteFile(path, data, 0o600)
		}, true},
		{"truncated table", func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("no table file")
			}
			fi, _ := os.Stat(ssts[0])
			os.Truncate(ssts[0], fi.Size()/2)
		}, false},
		// A bad sector inside a table: the index is sound, a block panics
		// Badger where it is read.
		{"damaged block", func(t *testing.T, dir string) {
			ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
			if len(ssts) == 0 {
				t.Fatal("no table file")
			}
			if _, err := faults.GarbleBlocks(ssts[0], 2); err != nil {
				t.Fatal(err)
			}
		}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newE2E(t, "damages the buffer of the real binary")
			release := holdPort(t, e.uplink)
			dir := filepath.Join(e.dir, "buffer")
			// Events stored while the uplink is down; a clean stop writes
			// them into a table.
			fl := startFleet(e.mqtt, 4, 5*time.Millisecond, 300)
			p := startListening(t, e)
			for fl.acked() < 2000 {
				checkAlive(t, p, "while publishing")
				time.Sleep(50 * time.Millisecond)
			}
			fl.stop()
			p.cmd.Process.Signal(syscall.SIGTERM)
			<-p.exited
			c.damage(t, dir)

			// Three starts: each listens and stays up, refusing events.
			for i := range 3 {
				p = startListening(t, e)
				code, body := readyz(t, e.admin)
				for deadline := time.Now().Add(5 * time.Second); !strings.Contains(body, "buffer") && time.Now().Before(deadline); {
					time.Sleep(20 * time.Millisecond)
					code, body = readyz(t, e.admin)
				}
				if code != http.StatusServiceUnavailable || !strings.Contains(body, "buffer unavailable") {
					t.Fatalf("start %d: /readyz = %d %q, want 503 and why", i+1, code, body)
				}
				refused := startFleet(e.mqtt, 1, 10*time.Millisecond, 100)
				for refused.pubs[0].Stats().Refused == 0 {
					checkAlive(t, p, "while refusing events")
					time.Sleep(20 * time.Millisecond)
				}
				refused.stop()
				if refused.acked() > 0 {
					t.Fatalf("start %d: %d events acknowledged without a buffer", i+1, refused.acked())
				}
				if !strings.Contains(adminMetrics(t, e.admin), `edgegate_events_refused_total{reason="buffer_unavailable"}`) {
					t.Fatal("no edgegate_events_refused_total{reason=\"buffer_unavailable\"}")
				}
				if !scanLogFor(p, "buffer unavailable: refusing every event until it opens") {
					t.Fatalf("no log line saying why; log:\n%s", tail(p.log.String(), 20))
				}
				checkAlive(t, p, "after refusing events")
				p.kill()
			}

			out, err := exec.Command(e.bin, "buffer", "check", "--config", e.config).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "DAMAGED") {
				t.Fatalf("buffer check: %v, want exit 1 and the damage:\n%s", err, out)
			}
			t.Logf("buffer check:\n%s", out)
			out, err = exec.Command(e.bin, "buffer", "repair", "--config", e.config).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "salvaged") {
				t.Fatalf("buffer repair: %v\n%s", err, out)
			}
			t.Logf("buffer repair:\n%s", out)
			if out, err := exec.Command(e.bin, "buffer", "check", "--config", e.config).CombinedOutput(); err != nil {
				t.Fatalf("buffer check after repair: %v\n%s", err, out)
			}

			// Repaired: ready, delivers what was salvaged, accepts events.
			release()
			s := startSink(t, e.uplink)
			p = startProc(t, e.bin, e.config, e.admin)
			defer p.kill()
			if c.salvage {
				waitDelivered(t, s, fl, p, 30*time.Second)
			}
			after := startFleet(e.mqtt, 1, 10*time.Millisecond, 100)
			defer after.stop()
			for deadline := time.Now().Add(20 * time.Second); after.acked() < 10; {
				if time.Now().After(deadline) {
					t.Fatalf("not accepting events after the repair; log:\n%s", tail(p.log.String(), 20))
				}
				time.Sleep(20 * time.Millisecond)
			}
			d, _ := s.Counts()
			t.Logf("%d events acknowledged before the damage; %d delivered after the repair", fl.acked(), d)
		})
	}
}

// readyz returns /readyz's status and body.
func readyz(t *testing.T, admin string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// scanLogFor waits up to 5 s for a line of p's log containing s.
func scanLogFor(p *gatewayProc, s string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(p.log.String(), s) {
			return true
		}
	}
	return false
}
