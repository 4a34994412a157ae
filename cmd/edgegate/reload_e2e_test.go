package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/cetest"
	"github.com/edgegate/edgegate/internal/mqtttest"
)

// versionRules is a rules file (included by the main config) whose rule
// stamps every event with data.version.
const versionRules = `rules:
  - name: version
    actions:
      - set: { data.version: %q }
`

// Reloading the rules of the real binary with SIGHUP while a device
// publishes at QoS 1: the rules switch between two consecutive events, no
// device is disconnected, no acknowledged event is lost; an invalid rules
// file is refused with its file:line:col and the running rules stay.
func TestReloadRulesUnderLoad(t *testing.T) {
	e := newE2E(t, "builds and runs the real binary")
	f, err := os.OpenFile(e.config, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "rules: {file: rules.yaml}")
	f.Close()
	rulesPath := filepath.Join(e.dir, "rules.yaml")
	writeRules := func(expr string) {
		t.Helper()
		if err := os.WriteFile(rulesPath, []byte(fmt.Sprintf(versionRules, expr)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeRules("1")
	rec := startVersionSink(t, e.uplink)
	p := startProc(t, e.bin, e.config, e.admin)
	stopped := false
	defer func() {
		if !stopped {
			p.kill()
		}
	}()

	dev := startSteady(t, e.mqtt)
	waitFor, stopPublishing := dev.waitFor, dev.stop

	waitFor("version 1 events", func() bool { return rec.count(1) >= 50 })
	writeRules("2")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor("a version 2 event", func() bool { return rec.count(2) > 0 })
	waitFor("more version 2 events", func() bool { return rec.count(2) >= 50 })

	// An expr type error: refused, version 2 stays.
	writeRules("'two' * 2")
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitFor("the failed reload", func() bool {
		return strings.Contains(adminMetrics(t, e.admin), "\nedgegate_config_last_reload_successful 0\n")
	})
	after := rec.count(2)
	waitFor("events after the failed reload", func() bool { return rec.count(2) >= after+50 })
	stopPublishing()

	sent := dev.sent()
	waitFor("every acked event at the sink", func() bool { return rec.has(sent) })

	m := adminMetrics(t, e.admin)
	for _, want := range []string{"\nedgegate_config_last_reload_successful 0\n", "\nedgegate_config_reload_failures_total 1\n"} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	lostConns := dev.lost.Load() // before the gateway stops
	dev.c.Disconnect(50)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	stopped = true
	log := p.log.String()
	if !strings.Contains(log, "config reloaded") {
		t.Errorf("no successful reload in the log:\n%s", log)
	}
	if want := rulesPath + ":4:37: rules[0].actions[0].set.data.version: invalid operation: *"; !strings.Contains(log, want) {
		t.Errorf("the failed reload is not logged with file:line:col (%s):\n%s", want, log)
	}

	if n := lostConns; n != 0 {
		t.Errorf("the device lost its connection %d times", n)
	}
	seqs, versions, bad := rec.snapshot()
	for _, b := range bad {
		t.Error(b)
	}
	missing := 0
	for _, s := range sent {
		if _, ok := versions[s]; !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acked events never arrived", missing, len(sent))
	}
	switches, prev := 0, 1
	for _, s := range seqs {
		v := versions[s]
		if v != 1 && v != 2 {
			t.Fatalf("event seq %d has version %d", s, v)
		}
		if v != prev {
			switches++
			if v < prev {
				t.Errorf("event seq %d carries version %d after a version %d event", s, v, prev)
			}
			prev = v
		}
	}
	if switches != 1 || prev != 2 {
		t.Errorf("versions switched %d times (last %d), want once from 1 to 2", switches, prev)
	}
	t.Logf("%d events acked, %d received; %d with version 1, %d with version 2",
		len(sent), len(seqs), rec.count(1), rec.count(2))
}

// steadyDevice publishes {"seq":N} at QoS 1 every 2 ms as client
// "steady" to devices/d1/telemetry and records the acked seqs and the
// connections it lost.
type steadyDevice struct {
	t     *testing.T
	c     paho.Client
	lost  atomic.Int32
	mu    sync.Mutex
	acked []int
	stop  func()
}

func startSteady(t *testing.T, mqttAddr string) *steadyDevice {
	t.Helper()
	d := &steadyDevice{t: t}
	c, err := mqtttest.Dial("tcp://"+mqttAddr, "steady", func(o *paho.ClientOptions) {
		o.SetConnectionLostHandler(func(paho.Client, error) { d.lost.Add(1) })
	})
	if err != nil {
		t.Fatal(err)
	}
	d.c = c
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		mqtttest.Steady(c, "devices/d1/telemetry", 2*time.Millisecond, stop, func(seq int) {
			d.mu.Lock()
			d.acked = append(d.acked, seq)
			d.mu.Unlock()
		})
	})
	d.stop = sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(func() { d.stop(); c.Disconnect(50) })
	return d
}

// sent returns the acked seqs so far.
func (d *steadyDevice) sent() []int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]int(nil), d.acked...)
}

// waitFor polls cond for up to 10 s; on a timeout it stops publishing and
// fails the test.
func (d *steadyDevice) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			d.stop()
			d.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// versionSink records the data.seq and data.version of every CloudEvent an
// uplink delivers.
type versionSink struct {
	mu       sync.Mutex
	versions map[int]int // seq → version
	byVer    map[int]int // version → events
	bad      []string
}

func startVersionSink(t *testing.T, addr string) *versionSink {
	t.Helper()
	s := &versionSink{versions: map[int]int{}, byVer: map[int]int{}}
	s.serve(t, addr)
	return s
}

// serve records what a receiver on addr gets too (an uplink's URL changed
// to it).
func (s *versionSink) serve(t *testing.T, addr string) *cetest.Server {
	srv := startSink(t, addr)
	srv.Respond(func(w http.ResponseWriter, r *cetest.Request) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range r.Events {
			var d struct {
				Seq     *int `json:"seq"`
				Version int  `json:"version"`
			}
			if err := e.DataAs(&d); err != nil || d.Seq == nil {
				s.bad = append(s.bad, fmt.Sprintf("event %s: data %s: %v", e.ID(), e.Data(), err))
				continue
			}
			if v, dup := s.versions[*d.Seq]; dup {
				if v != d.Version {
					s.bad = append(s.bad, fmt.Sprintf("seq %d arrived with versions %d and %d", *d.Seq, v, d.Version))
				}
				continue
			}
			s.versions[*d.Seq] = d.Version
			s.byVer[d.Version]++
		}
		return http.StatusOK
	})
	return srv
}

// count is the number of distinct events received with version v.
func (s *versionSink) count(v int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byVer[v]
}

// has reports whether every seq has arrived.
func (s *versionSink) has(seqs []int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		if _, ok := s.versions[q]; !ok {
			return false
		}
	}
	return true
}

// snapshot returns the received seqs in publish order, their versions and
// the problems seen.
func (s *versionSink) snapshot() ([]int, map[int]int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	versions := make(map[int]int, len(s.versions))
	seqs := make([]int, 0, len(s.versions))
	for q, v := range s.versions {
		versions[q] = v
		seqs = append(seqs, q)
	}
	sort.Ints(seqs)
	return seqs, versions, append([]string(nil), s.bad...)
}

// adminMetrics returns the gateway's /metrics text, starting with a newline
// so every metric line can be matched as "\nname value\n".
func adminMetrics(t testing.TB, admin string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	b.WriteByte('\n')
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String()
}
