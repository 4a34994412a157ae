//go:build soak

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgegate/edgegate/internal/receiver"
)

// The fault soak (make soak; not part of make test): the real binary runs
// for -soak.duration with devices publishing, its uplink flapping (down,
// slow, 5xx, 429 with Retry-After, connection resets), a kill -9 every few
// minutes (restarted at once, as systemd's Restart=always would), and its
// buffer on a small file system that an outage or a ballast file brings
// near full. At the end every event the devices saw acknowledged must have
// arrived, and RSS, goroutines and open files must have stayed flat.
var (
	soakDuration = flag.Duration("soak.duration", 30*time.Minute, "how long the faults go on")
	soakDevices  = flag.Int("soak.devices", 10, "devices publishing")
	soakRate     = flag.Float64("soak.rate", 200, "messages per second, all devices together")
	soakSize     = flag.Int("soak.size", 600, "payload bytes")
	soakDisk     = flag.Int("soak.disk", 96, "size of the buffer's file system, MiB")
	soakKill     = flag.Duration("soak.kill", 3*time.Minute, "mean time between two kill -9")
	soakSeed     = flag.Uint64("soak.seed", 1, "seed of the fault schedule")
	soakReport   = flag.String("soak.report", "", "write the figures as JSON to this file")
)

func TestSoak(t *testing.T) {
	e := newE2E(t, "the fault soak")
	disk := mountDisk(t, *soakDisk)
	rng := rand.New(rand.NewPCG(*soakSeed, 0x50a4))
	writeSoakConfig(t, e, filepath.Join(disk, "buffer"))

	up := newFlappingUplink(t, e.uplink)
	defer up.close()
	fl := startFleet(e.mqtt, *soakDevices, time.Duration(float64(*soakDevices)/(*soakRate)*float64(time.Second)), *soakSize)
	defer fl.stop()

	sup := &supervisor{t: t, e: e}
	sup.start()
	defer sup.stop()

	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { up.schedule(ctx, rng) })
	wg.Go(func() { ballast(ctx, t, disk, rand.New(rand.NewPCG(*soakSeed, 0xba11))) })
	samples := sup.run(ctx, rand.New(rand.NewPCG(*soakSeed, 0x4111)))
	wg.Wait()

	// The end: devices stop, the uplink stays up, the backlog drains.
	fl.stop()
	up.set(modeOK)
	start := time.Now()
	missing := up.missing(fl)
	for last, since := len(missing), time.Now(); len(missing) > 0 && time.Since(since) < 3*time.Minute; {
		sup.checkAlive()
		time.Sleep(time.Second)
		if missing = up.missing(fl); len(missing) < last {
			last, since = len(missing), time.Now()
		}
	}
	drain := time.Since(start)
	final := sup.sample()
	sup.stop()

	r := soakResult{
		Duration: soakDuration.String(), Acked: fl.acked(), Lost: len(missing),
		Received: up.received(), Deliveries: up.deliveries.Load(), Kills: sup.kills, Crashes: sup.crashes,
		SlowStarts: sup.slowStarts, MaxStart: sup.maxStart.String(), Modes: up.modeCounts(), Drain: drain.String(),
		Samples: samples, Final: final,
	}
	for _, p := range fl.pubs {
		st := p.Stats()
		r.Sent += st.Sent
		r.Refused += st.Refused
		r.Unanswered += st.Unanswered
	}
	r.Ballasts = ballasts.Load()
	r.check(t)
	out, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("soak figures:\n%s", out)
	if *soakReport != "" {
		os.WriteFile(*soakReport, out, 0o644)
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged events never arrived, e.g. %v; log:\n%s", len(missing), missing[:min(5, len(missing))], tail(sup.p.log.String(), 40))
	}
}

func writeSoakConfig(t *testing.T, e e2e, dir string) {
	t.Helper()
	cfg := fmt.Sprintf(`gateway_id: soak
log: {level: info}
admin: {listen: %q}
mqtt:
  listeners: [{id: tcp, type: tcp, address: %q}]
buffer: {dir: %q, min_free_bytes: 16MiB, max_bytes: 1GiB, overflow: reject}
uplinks:
  - name: cloud
    http: {url: "http://%s/", mode: batch, timeout: 5s}
    retry: {initial: 100ms, max: 5s}
`, e.admin, e.mqtt, dir, e.uplink)
	if err := os.WriteFile(e.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Uplink modes.
const (
	modeOK    = "ok"
	modeDown  = "down"  // nothing listens: connection refused
	modeSlow  = "slow"  // answers after 1-8 s (the sender's timeout is 5 s)
	mode5xx   = "5xx"   // 500 or 503
	mode429   = "429"   // 429 with Retry-After: 2
	modeReset = "reset" // the connection is reset before an answer
)

// flappingUplink is the cloud endpoint: a lenient CloudEvents receiver that
// records the device messages it accepted, and fails as its mode says.
type flappingUplink struct {
	t    *testing.T
	addr string
	h    *receiver.Handler

	mu         sync.Mutex
	mode       string
	srv        *http.Server
	got        map[string]bool
	modeCount  map[string]int
	deliveries atomic.Int64
}

func newFlappingUplink(t *testing.T, addr string) *flappingUplink {
	u := &flappingUplink{t: t, addr: addr, got: make(map[string]bool), modeCount: make(map[string]int)}
	var n atomic.Int64
	u.h = &receiver.Handler{Lenient: true, Accept: u.accept, Check: func() bool { return n.Add(1)%50 == 1 }}
	u.set(modeOK)
	return u
}

func (u *flappingUplink) set(mode string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if mode == u.mode {
		return
	}
	u.modeCount[mode]++
	if mode == modeDown && u.srv != nil {
		u.srv.Close()
		u.srv = nil
	}
	u.mode = mode
	if mode != modeDown && u.srv == nil {
		var l net.Listener
		var err error
		for range 100 { // the port may linger a moment after Close
			if l, err = net.Listen("tcp", u.addr); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			u.t.Errorf("uplink listen: %v", err)
			return
		}
		u.srv = &http.Server{Handler: http.HandlerFunc(u.serve), ReadHeaderTimeout: 10 * time.Second}
		go u.srv.Serve(l)
	}
}

func (u *flappingUplink) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srv != nil {
		u.srv.Close()
	}
}

func (u *flappingUplink) serve(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	mode := u.mode
	u.mu.Unlock()
	switch mode {
	case modeSlow:
		time.Sleep(time.Duration(1000+rand.IntN(7000)) * time.Millisecond)
	case mode5xx:
		io.Copy(io.Discard, r.Body)
		http.Error(w, "upstream trouble", []int{500, 503}[rand.IntN(2)])
		return
	case mode429:
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "2")
		http.Error(w, "slow down", http.StatusTooManyRequests)
		return
	case modeReset:
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
				return
			}
		}
	}
	u.h.ServeHTTP(w, r)
}

func (u *flappingUplink) accept(w http.ResponseWriter, r *receiver.Request) {
	events, err := r.Decode()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	u.mu.Lock()
	for _, e := range events {
		var m struct{ Dev, Seq int }
		if json.Unmarshal(e.Data(), &m) == nil {
			u.got[fmt.Sprintf("%d/%d", m.Dev, m.Seq)] = true
		}
	}
	u.mu.Unlock()
	u.deliveries.Add(int64(len(events)))
}

func (u *flappingUplink) received() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.got)
}

func (u *flappingUplink) modeCounts() map[string]int {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make(map[string]int, len(u.modeCount))
	for k, v := range u.modeCount {
		out[k] = v
	}
	return out
}

// missing returns the messages fl saw acknowledged that u has not received.
func (u *flappingUplink) missing(fl *fleet) []string {
	fl.ackMu.Lock()
	defer fl.ackMu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for k := range fl.ack {
		if !u.got[k] {
			out = append(out, k)
		}
	}
	return out
}

// schedule flaps the uplink until ctx ends: up for 1-3 min, then one of the
// failures for 30 s - 4 min.
func (u *flappingUplink) schedule(ctx context.Context, rng *rand.Rand) {
	failures := []string{modeDown, modeDown, modeSlow, mode5xx, mode429, modeReset}
	for {
		mode, d := modeOK, time.Duration(60+rng.IntN(120))*time.Second
		if u.current() == modeOK {
			mode = failures[rng.IntN(len(failures))]
			d = time.Duration(30+rng.IntN(90)) * time.Second
			if mode == modeDown {
				d = time.Duration(60+rng.IntN(180)) * time.Second
			}
		}
		u.set(mode)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
	}
}

func (u *flappingUplink) current() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.mode
}

var ballasts atomic.Int64

// ballast plays another program on the same file system: every 4-8 min it
// fills the disk to within 8-20 MiB of full for a minute, then frees it.
func ballast(ctx context.Context, t *testing.T, disk string, rng *rand.Rand) {
	path := filepath.Join(disk, "ballast")
	defer os.Remove(path)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(240+rng.IntN(240)) * time.Second):
		}
		var st syscall.Statfs_t
		if syscall.Statfs(disk, &st) != nil {
			continue
		}
		free := int64(st.Bavail) * st.Bsize
		leave := int64(8+rng.IntN(12)) << 20
		if free > leave {
			if err := exec.Command("fallocate", "-l", strconv.FormatInt(free-leave, 10), path).Run(); err == nil {
				ballasts.Add(1)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Minute):
		}
		os.Remove(path)
	}
}

// supervisor runs the gateway as systemd would (Restart=always) and kills
// it with SIGKILL now and then.
type supervisor struct {
	t          *testing.T
	e          e2e
	p          *gatewayProc
	kills      int
	crashes    int
	slowStarts int
	maxStart   time.Duration
}

func (s *supervisor) start() {
	begin := time.Now()
	s.p = startListening(s.t, s.e)
	took := time.Since(begin)
	s.maxStart = max(s.maxStart, took)
	if took > 10*time.Second {
		s.slowStarts++
	}
}

func (s *supervisor) stop() {
	if s.p != nil {
		s.p.kill()
	}
}

// checkAlive restarts the gateway if it died by itself (counted as a
// crash).
func (s *supervisor) checkAlive() {
	select {
	case <-s.p.exited:
		s.crashes++
		s.t.Errorf("gateway died by itself (%v); log:\n%s", s.p.cmd.ProcessState, tail(s.p.log.String(), 40))
		s.start()
	default:
	}
}

// run samples the gateway every 10 s and kills it at random intervals
// around -soak.kill, until ctx ends.
func (s *supervisor) run(ctx context.Context, rng *rand.Rand) []soakSample {
	var samples []soakSample
	nextKill := time.Now().Add(jitter(rng, *soakKill))
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return samples
		case <-tick.C:
		}
		s.checkAlive()
		samples = append(samples, s.sample())
		if time.Now().After(nextKill) {
			s.p.kill()
			s.kills++
			s.start()
			nextKill = time.Now().Add(jitter(rng, *soakKill))
		}
	}
}

func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	return d/2 + time.Duration(rng.Int64N(int64(d)))
}

// soakSample is one reading of the running gateway.
type soakSample struct {
	At         string `json:"at"`
	Life       int    `json:"life"` // kills so far
	RSSKiB     int64  `json:"rss_kib"`
	FDs        int    `json:"fds"`
	Goroutines int    `json:"goroutines"`
	Stored     int64  `json:"stored_records"`
	DiskFree   int64  `json:"disk_free_bytes"`
	Ready      string `json:"ready"`
}

func (s *supervisor) sample() soakSample {
	pid := s.p.cmd.Process.Pid
	sm := soakSample{At: time.Now().Format(time.TimeOnly), Life: s.kills}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				sm.RSSKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		sm.FDs = len(ents)
	}
	if resp, err := http.Get("http://" + s.e.admin + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				continue
			}
			v, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "go_goroutines":
				sm.Goroutines = int(v)
			case "edgegate_buffer_records":
				sm.Stored = int64(v)
			case "edgegate_buffer_disk_free_bytes":
				sm.DiskFree = int64(v)
			}
		}
	}
	if resp, err := http.Get("http://" + s.e.admin + "/readyz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		sm.Ready = strings.TrimSpace(string(body))
	}
	return sm
}

type soakResult struct {
	Duration   string         `json:"duration"`
	Sent       int64          `json:"sent"`
	Acked      int            `json:"acked"`
	Refused    int64          `json:"refused"`    // negative PUBACKs (disk full, buffer unavailable)
	Unanswered int64          `json:"unanswered"` // connection lost before the PUBACK
	Received   int            `json:"received_distinct"`
	Deliveries int64          `json:"deliveries"` // duplicates included
	Lost       int            `json:"lost"`
	Kills      int            `json:"kills"`
	Crashes    int            `json:"crashes"`
	SlowStarts int            `json:"slow_starts"`
	MaxStart   string         `json:"max_start"`
	Modes      map[string]int `json:"uplink_modes"`
	Ballasts   int64          `json:"ballast_fills"`
	Drain      string         `json:"final_drain"`
	Samples    []soakSample   `json:"samples"`
	Final      soakSample     `json:"final"`
}

// check fails the test when the process died by itself, a start was slow,
// or RSS, goroutines or open files grew: each compared between the first
// and the last third of the run (samples taken at least 30 s into a
// process's life, so that start-up does not count).
func (r *soakResult) check(t *testing.T) {
	var settled []soakSample
	lifeStart := map[int]int{}
	for i, s := range r.Samples {
		if _, ok := lifeStart[s.Life]; !ok {
			lifeStart[s.Life] = i
		}
		if i-lifeStart[s.Life] >= 3 && s.RSSKiB > 0 {
			settled = append(settled, s)
		}
	}
	if r.Crashes > 0 || r.SlowStarts > 0 {
		t.Errorf("%d crashes, %d starts slower than 10 s", r.Crashes, r.SlowStarts)
	}
	if len(settled) < 6 {
		t.Logf("too few settled samples (%d) to judge growth", len(settled))
		return
	}
	third := len(settled) / 3
	peak := func(ss []soakSample, f func(soakSample) int64) int64 {
		var m int64
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	for _, c := range []struct {
		name  string
		f     func(soakSample) int64
		slack int64
	}{
		{"RSS KiB", func(s soakSample) int64 { return s.RSSKiB }, 16 << 10},
		{"goroutines", func(s soakSample) int64 { return int64(s.Goroutines) }, 40},
		{"open files", func(s soakSample) int64 { return int64(s.FDs) }, 40},
	} {
		first, last := peak(settled[:third], c.f), peak(settled[len(settled)-third:], c.f)
		t.Logf("%s: peak %d in the first third, %d in the last", c.name, first, last)
		if last > first*3/2+c.slack {
			t.Errorf("%s grew: peak %d in the first third of the run, %d in the last", c.name, first, last)
		}
	}
}
