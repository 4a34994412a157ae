package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mountSmallDisk mounts a 64 MiB file system for the test (see mountDisk),
// or skips it where mounting is not allowed (not root, no privileges).
func mountSmallDisk(t *testing.T) string { return mountDisk(t, 64) }

// mountDisk mounts a file system of mib MiB for the test, or skips it: a
// tmpfs, or with EDGEGATE_TEST_FS=ext4 (`make test-ext4`) an ext4 image
// made with mkfs.ext4's defaults (journal, 5% reserved for root) on a loop
// device, as on a Raspberry Pi's SD card.
func mountDisk(t *testing.T, mib int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var mount *exec.Cmd
	switch fs := os.Getenv("EDGEGATE_TEST_FS"); fs {
	case "", "tmpfs":
		mount = exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", dir)
	case "ext4":
		img := filepath.Join(t.TempDir(), "disk.ext4")
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", img, fmt.Sprintf("%dM", mib)).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
		mount = exec.Command("mount", "-t", "ext4", "-o", "loop", img, dir)
	default:
		t.Fatalf("EDGEGATE_TEST_FS=%q: want tmpfs or ext4", fs)
	}
	if out, err := mount.CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small file system here (%v: %s)", err, strings.TrimSpace(string(out)))
	}
	// Lazy: a killed gateway's files may still be open for a moment.
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

// A real full disk through the real binary: devices publish into a 64 MiB
// file system while the uplink is down. The gateway must not crash (Badger
// SIGBUSes on a full disk), must refuse (not ack) what it cannot store, must
// deliver every acknowledged event once the uplink is back, and must accept
// events again afterwards.
func TestDiskFullOnARealFilesystem(t *testing.T) {
	e := newE2E(t, "fills a file system through the real binary")
	disk := mountSmallDisk(t)
	os.WriteFile(e.config, []byte(fmt.Sprintf(`gateway_id: diskfull
log: {level: info}
admin: {listen: %q}
mqtt:
  listeners: [{id: tcp, type: tcp, address: %q}]
buffer: {dir: %q, max_bytes: 1GiB, min_free_bytes: 16MiB, overflow: reject}
events: {presence: {enabled: false}}
uplinks:
  - {name: cloud, http: {url: "http://%s/"}, retry: {initial: 50ms, max: 500ms}}
`, e.admin, e.mqtt, filepath.Join(disk, "buffer"), e.uplink)), 0o644)
	p := startProc(t, e.bin, e.config, e.admin)
	defer p.kill()

	const devices, perDevice = 20, 3000 // 60k events of ~1 KB: more than fits
	pad := `,"pad":"` + strings.Repeat("x", 600) + `"`
	var acked sync.Map
	var nAcked atomic.Int32
	var wg sync.WaitGroup
	for d := range devices {
		wg.Go(func() {
			publishPipelined(t, "tcp://"+e.mqtt, d, perDevice, pad, &acked, &nAcked)
		})
	}
	wg.Wait()
	if p.cmd.ProcessState != nil {
		t.Fatalf("gateway exited while the disk filled:\n%s", tail(p.log.String(), 30))
	}
	status := func() (full bool) {
		resp, err := http.Get("http://" + e.admin + "/status")
		if err != nil {
			t.Fatalf("gateway not answering after the disk filled: %v\n%s", err, tail(p.log.String(), 30))
		}
		defer resp.Body.Close()
		var st struct {
			Buffer struct{ Full bool } `json:"buffer"`
		}
		body, _ := io.ReadAll(resp.Body)
		json.Unmarshal(body, &st)
		return st.Buffer.Full
	}
	// The guard must have tripped. It is checked through its counter, not
	// through /status: while the disk stays low the buffer compacts every
	// 10 s and may be accepting again by the time a slow machine has
	// finished publishing (seen at a load average of 16).
	if n := refusedForDisk(t, e.admin, p); !status() && n == 0 {
		t.Fatalf("disk guard not tripped after publishing ~60 MB into 64 MiB (acked %d)", nAcked.Load())
	}
	if n := nAcked.Load(); n >= devices*perDevice {
		t.Fatalf("all %d publishes acked: nothing was refused", n)
	}

	s := startSink(t, e.uplink)
	// The drain runs at ~1k events/s under -race on a busy machine: wait
	// as long as events keep arriving, and give up after 30 s without one.
	missing := notArrived(s, &acked)
	for last, idleSince := len(missing), time.Now(); len(missing) > 0 && time.Since(idleSince) < 30*time.Second; {
		time.Sleep(100 * time.Millisecond)
		if missing = notArrived(s, &acked); len(missing) < last {
			last, idleSince = len(missing), time.Now()
		}
	}
	if len(missing) > 0 {
		d, total := s.Counts()
		t.Fatalf("%d of %d acknowledged events never arrived (sink: %d distinct, %d total, violations %v); log:\n%s",
			len(missing), nAcked.Load(), d, total, s.Violations(), tail(p.log.String(), 15))
	}
	// Space comes back as the buffer compacts (forced every 10 s while the
	// disk is low).
	deadline := time.Now().Add(60 * time.Second)
	for status() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if status() {
		t.Fatalf("still refusing after the backlog drained:\n%s", tail(p.log.String(), 20))
	}
	t.Logf("acked %d of %d publishes while filling the disk; all delivered; accepting again", nAcked.Load(), devices*perDevice)
}

// refusedForDisk reads edgegate_buffer_rejected_total{reason="disk_full"}.
func refusedForDisk(t *testing.T, admin string, p *gatewayProc) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v; log:\n%s", err, tail(p.log.String(), 30))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, `edgegate_buffer_rejected_total{reason="disk_full"} `); ok {
			n, _ := strconv.Atoi(v)
			return n
		}
	}
	return 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
