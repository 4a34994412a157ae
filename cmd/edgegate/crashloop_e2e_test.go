package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
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
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// The crash loop of issue 11 through the real binary: with the buffer on a
// 64 MiB file system, devices publish through an uplink outage until the
// disk guard trips, and the gateway is killed (kill -9) every few seconds
// and started again, as systemd's Restart=always would. Every start must
// reach "listening" without dying, nothing acknowledged may be lost, and
// once the uplink is back and the backlog delivered the gateway must accept
// events again. Before the fix Badger died with SIGBUS in compaction or in
// Open and every later start died in Open.
func TestRestartsNearAFullDisk(t *testing.T) {
	e := newE2E(t, "fills a file system and kills the real binary")
	release := holdPort(t, e.uplink)
	disk := mountSmallDisk(t)
	writeDiskConfig(t, e, filepath.Join(disk, "buffer"), "overflow: reject")

	fleet := startFleet(e.mqtt, 20, 20*time.Millisecond, 900) // ~1.1 MB/s
	defer fleet.stop()

	// Fill: the gateway runs until the disk guard refuses events, and for
	// at least 50 s: it saves its resend marks every 30 s, under a key that
	// sorts before every record, so the compactions that follow rewrite
	// every table (in the runs Badger died in one of them).
	p := startListening(t, e)
	started := time.Now()
	deadline := started.Add(90 * time.Second)
	for refusedForDisk(t, e.admin, p) == 0 || time.Since(started) < 50*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("disk guard never tripped (acked %d); log:\n%s", fleet.acked(), tail(p.log.String(), 20))
		}
		checkAlive(t, p, "while the disk filled")
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("guard tripped after %d acked events; %s; %s", fleet.acked(), diskFree(disk), logLines(p, "disk"))

	// Near full: kill -9 every 1-3 s, restart at once; devices keep
	// publishing.
	const restarts = 12
	saidFull := 0
	for i := range restarts {
		time.Sleep(time.Duration(1000+(i*700)%2000) * time.Millisecond)
		checkAlive(t, p, fmt.Sprintf("before kill %d", i+1))
		if _, why := readyz(t, e.admin); strings.Contains(why, "disk almost full") {
			saidFull++
		}
		p.kill()
		p = startListening(t, e)
	}
	t.Logf("%d restarts near full; acked %d, refused %d; /readyz said the disk was full %d times; %s",
		restarts, fleet.acked(), fleet.refused(), saidFull, diskFree(disk))
	checkAlive(t, p, "after the restarts")
	if fleet.refused() == 0 || saidFull == 0 {
		t.Fatalf("near a full disk: %d events refused, /readyz said so %d times; want both", fleet.refused(), saidFull)
	}

	// The uplink comes back: every acknowledged event arrives, then the
	// gateway accepts events again.
	release()
	s := startSink(t, e.uplink)
	waitDelivered(t, s, fleet, p, 90*time.Second)
	before := fleet.acked()
	deadline = time.Now().Add(90 * time.Second)
	for fleet.acked() < before+100 {
		if time.Now().After(deadline) {
			t.Fatalf("not accepting events after the backlog drained (%d acked since); %s; log:\n%s",
				fleet.acked()-before, diskFree(disk), tail(p.log.String(), 20))
		}
		checkAlive(t, p, "while draining")
		time.Sleep(100 * time.Millisecond)
	}
	fleet.stop()
	waitDelivered(t, s, fleet, p, 60*time.Second)
	d, total := s.Counts()
	t.Logf("delivered all %d acknowledged events (%d distinct arrivals, %d in all); %s", fleet.acked(), d, total, diskFree(disk))
}

// Something else filled the disk while the gateway was down: it starts,
// listens and refuses events, its buffer unopened (Badger would die in
// Open) and /readyz saying why; with some room back it opens the buffer
// and delivers the backlog while still refusing new events; with the disk
// free again it accepts them.
func TestStartsOnAFullDisk(t *testing.T) {
	e := newE2E(t, "fills a file system under the real binary")
	release := holdPort(t, e.uplink)
	disk := mountSmallDisk(t)
	writeDiskConfig(t, e, filepath.Join(disk, "buffer"), "overflow: reject")
	fl := startFleet(e.mqtt, 4, 5*time.Millisecond, 900)
	defer fl.stop()
	p := startListening(t, e)
	for fl.acked() < 3000 {
		checkAlive(t, p, "while publishing")
		time.Sleep(50 * time.Millisecond)
	}
	p.kill()
	backlog := fl.acked()

	// Another program leaves 1 MiB free.
	ballast := filepath.Join(disk, "ballast")
	fill := func(leave int64) {
		t.Helper()
		os.Remove(ballast)
		var st syscall.Statfs_t
		if err := syscall.Statfs(disk, &st); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("fallocate", "-l", fmt.Sprint(int64(st.Bavail)*st.Bsize-leave), ballast).CombinedOutput(); err != nil {
			t.Fatalf("fallocate: %v %s", err, out)
		}
	}
	fill(1 << 20)
	p = startListening(t, e)
	defer func() { p.kill() }()
	waitReadyz(t, e.admin, p, "not enough disk space")
	refused := fl.refused()
	for fl.refused() == refused {
		checkAlive(t, p, "on a full disk")
		time.Sleep(20 * time.Millisecond)
	}
	if fl.acked() != backlog {
		t.Fatalf("%d events acknowledged on a full disk", fl.acked()-backlog)
	}
	t.Logf("full disk: %s; %s", diskFree(disk), logLines(p, "buffer unavailable"))

	// Some room back: the buffer opens and the backlog is delivered, while
	// new events are still refused.
	fill(36 << 20)
	release()
	s := startSink(t, e.uplink)
	waitDelivered(t, s, fl, p, 30*time.Second)
	t.Logf("room for Badger: %s; backlog of %d delivered; %s", diskFree(disk), backlog, logLines(p, "disk"))

	// The disk is free again: events are accepted.
	os.Remove(ballast)
	before := fl.acked()
	for deadline := time.Now().Add(30 * time.Second); fl.acked() < before+100; {
		if time.Now().After(deadline) {
			t.Fatalf("not accepting events with the disk free; log:\n%s", tail(p.log.String(), 20))
		}
		checkAlive(t, p, "with the disk free")
		time.Sleep(50 * time.Millisecond)
	}
	fl.stop()
	waitDelivered(t, s, fl, p, 30*time.Second)
}

// waitReadyz waits up to 10 s for /readyz to answer 503 with why in it.
func waitReadyz(t *testing.T, admin string, p *gatewayProc, why string) {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, body = readyz(t, admin); code == 503 && strings.Contains(body, why) {
			return
		}
	}
	t.Fatalf("/readyz = %d %q, want 503 with %q; log:\n%s", code, body, why, tail(p.log.String(), 20))
}

// writeDiskConfig writes e's config with the buffer in dir, min_free_bytes
// 16MiB and the extra buffer settings given.
func writeDiskConfig(t *testing.T, e e2e, dir string, extra ...string) {
	t.Helper()
	buf := append([]string{fmt.Sprintf("dir: %q", dir), "min_free_bytes: 16MiB", "max_bytes: 1GiB"}, extra...)
	cfg := fmt.Sprintf(`gateway_id: crashloop
log: {level: info}
admin: {listen: %q}
mqtt:
  listeners: [{id: tcp, type: tcp, address: %q}]
buffer: {%s}
uplinks:
  - {name: cloud, http: {url: "http://%s/", mode: batch}, retry: {initial: 50ms, max: 500ms}}
`, e.admin, e.mqtt, strings.Join(buf, ", "), e.uplink)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startListening starts the gateway and waits until its MQTT listener
// accepts connections (not for /readyz: near a full disk the gateway is
// not ready, by design). It fails the test if the process dies first.
func startListening(t *testing.T, e e2e) *gatewayProc {
	t.Helper()
	p := &gatewayProc{t: t, log: &syncBuffer{}, admin: e.admin}
	p.cmd = exec.Command(e.bin, "run", "--config", e.config)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	p.exited = exited
	go func() { p.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("gateway died while starting (%v); log:\n%s", p.cmd.ProcessState, tail(p.log.String(), 40))
		default:
		}
		if c, err := net.DialTimeout("tcp", e.mqtt, time.Second); err == nil {
			c.Close()
			return p
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.kill()
	t.Fatalf("gateway not listening after 20s; log:\n%s", tail(p.log.String(), 40))
	return nil
}

// checkAlive fails the test if p has exited.
func checkAlive(t *testing.T, p *gatewayProc, when string) {
	t.Helper()
	if p.exited == nil {
		return
	}
	select {
	case <-p.exited:
		t.Fatalf("gateway died %s (%v); log:\n%s", when, p.cmd.ProcessState, tail(p.log.String(), 40))
	default:
	}
}

// diskFree describes the free space of the file system holding dir.
func diskFree(dir string) string {
	out, err := exec.Command("df", "-B1", "--output=avail", dir).Output()
	if err != nil {
		return "free space unknown"
	}
	f := strings.Fields(string(out))
	return "free bytes " + f[len(f)-1]
}

// fleet is a set of mqtttest.Publishers whose acknowledged messages are
// recorded by payload.
type fleet struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	pubs   []*mqtttest.Publisher
	ackMu  sync.Mutex
	ack    map[string]bool
}

// startFleet starts n devices publishing a message every interval, each
// message {"dev":d,"seq":s,"pad":"…"} padded to about size bytes.
func startFleet(addr string, n int, interval time.Duration, size int) *fleet {
	ctx, cancel := context.WithCancel(context.Background())
	f := &fleet{cancel: cancel, ack: make(map[string]bool)}
	pad := strings.Repeat("x", max(size-40, 0))
	for d := range n {
		p := &mqtttest.Publisher{
			Addr: addr, ClientID: fmt.Sprintf("dev-%d", d), Topic: fmt.Sprintf("devices/dev-%d/telemetry", d),
			Interval: interval, Inflight: 32,
		}
		p.Payload = func(seq int64) []byte { return fmt.Appendf(nil, `{"dev":%d,"seq":%d,"pad":"%s"}`, d, seq, pad) }
		p.Acked = func(seq int64) {
			f.ackMu.Lock()
			f.ack[fmt.Sprintf("%d/%d", d, seq)] = true
			f.ackMu.Unlock()
		}
		f.pubs = append(f.pubs, p)
		f.wg.Go(func() { p.Run(ctx) })
	}
	return f
}

func (f *fleet) stop() {
	f.cancel()
	f.wg.Wait()
}

// refused counts the negative PUBACKs the fleet got.
func (f *fleet) refused() int64 {
	var n int64
	for _, p := range f.pubs {
		n += p.Stats().Refused
	}
	return n
}

func (f *fleet) acked() int {
	f.ackMu.Lock()
	defer f.ackMu.Unlock()
	return len(f.ack)
}

// ackedNow returns the messages acknowledged so far.
func (f *fleet) ackedNow() map[string]bool {
	f.ackMu.Lock()
	defer f.ackMu.Unlock()
	out := make(map[string]bool, len(f.ack))
	for k := range f.ack {
		out[k] = true
	}
	return out
}

// arrived is what a sink received, by "dev/seq", decoded as it comes.
type arrived struct {
	got map[string]bool
	n   int // events of s.Events() decoded
}

// update decodes the events s received since the last update.
func (a *arrived) update(s *cetest.Server) {
	events := s.Events()
	for _, e := range events[a.n:] {
		var m struct{ Dev, Seq int }
		if json.Unmarshal(e.Data(), &m) == nil {
			a.got[fmt.Sprintf("%d/%d", m.Dev, m.Seq)] = true
		}
	}
	a.n = len(events)
}

// missing returns the messages of want that have not arrived.
func (a *arrived) missing(want map[string]bool) []string {
	var out []string
	for k := range want {
		if !a.got[k] {
			out = append(out, k)
		}
	}
	return out
}

// waitDelivered waits until every message the fleet has seen acknowledged
// so far arrives at s (devices may go on publishing), as long as
// deliveries keep coming (at most idle without progress), and fails the
// test otherwise.
func waitDelivered(t *testing.T, s *cetest.Server, f *fleet, p *gatewayProc, idle time.Duration) {
	t.Helper()
	want := f.ackedNow()
	a := &arrived{got: make(map[string]bool)}
	a.update(s)
	missing := a.missing(want)
	for last, since := len(missing), time.Now(); len(missing) > 0 && time.Since(since) < idle; {
		checkAlive(t, p, "while delivering the backlog")
		time.Sleep(250 * time.Millisecond)
		a.update(s)
		if missing = a.missing(want); len(missing) < last {
			last, since = len(missing), time.Now()
		}
	}
	if len(missing) > 0 {
		d, total := s.Counts()
		var counters []string
		for _, l := range strings.Split(adminMetrics(t, p.admin), "\n") {
			if strings.HasPrefix(l, "edgegate_buffer_appended_total") || strings.HasPrefix(l, "edgegate_buffer_acked_total") ||
				strings.HasPrefix(l, "edgegate_events_ingested_total") || strings.HasPrefix(l, "edgegate_events_refused_total") ||
				strings.HasPrefix(l, "edgegate_mqtt_") {
				counters = append(counters, l)
			}
		}
		t.Fatalf("%d of %d acknowledged events never arrived (e.g. %v); sink: %d distinct, %d in all, violations %v; counters (this process):\n%s\nstatus:\n%s\nlog:\n%s",
			len(missing), len(want), missing[:min(5, len(missing))], d, total, s.Violations(), strings.Join(counters, "\n"), adminStatus(p), tail(p.log.String(), 30))
	}
}

// logLines returns the lines of p's log that contain s.
func logLines(p *gatewayProc, s string) string {
	var out []string
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// adminStatus returns /status of p's admin endpoint, or why not.
func adminStatus(p *gatewayProc) string {
	resp, err := http.Get("http://" + p.admin + "/status")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// holdPort keeps addr bound while the uplink is meant to be down:
// connections are accepted and closed at once (the gateway retries), so no
// other program on the machine (another test's server, in a parallel test
// run) can take the free port and acknowledge the gateway's deliveries.
// release frees it for the real receiver; it is also called when the test
// ends.
func holdPort(t *testing.T, addr string) (release func()) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var once sync.Once
	release = func() {
		once.Do(func() {
			l.Close()
			<-done
		})
	}
	t.Cleanup(release)
	return release
}
