package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgegate/edgegate/internal/devices"
	"github.com/edgegate/edgegate/internal/freeport"
)

// runSpec is one benchmark run.
type runSpec struct {
	Name     string
	QoS      byte
	Messages int64         // per device (throughput runs)
	Rate     float64       // total msgs/s (fixed-rate runs)
	Duration time.Duration // fixed-rate runs
}

// benchOptions are the settings shared by every run.
type benchOptions struct {
	Edgegate string
	Devices  int
	Mode     string // batch | binary | structured
	Auth     bool   // one user per device and a per-device ACL
	Inflight int
	Timeout  time.Duration // bound on the load phase of a run
	Drain    time.Duration // how long to wait for events after the load, with no progress
	Keep     bool          // keep the temp dirs
	// ValidateEvery checks one request in this many strictly against
	// CloudEvents 1.0 (1: all of them).
	ValidateEvery int64
	Env           []string  // extra environment for edgegate
	Log           io.Writer // progress lines
}

// result is the outcome of one run; times are in milliseconds or seconds as named.
type result struct {
	Name         string  `json:"name"`
	QoS          int     `json:"qos"`
	Mode         string  `json:"mode"`
	Devices      int     `json:"devices"`
	Auth         bool    `json:"auth"`
	ConnectSec   float64 `json:"connect_s"` // all devices connected (and authenticated)
	TargetRate   float64 `json:"target_rate,omitempty"`
	Published    int64   `json:"published"`
	PubErrors    int64   `json:"pub_errors"`
	Received     int64   `json:"received"`
	EventsPerSec float64 `json:"events_per_sec"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	Maxms        float64 `json:"max_ms"`
	Lost         int64   `json:"lost"`
	LostAcked    int64   `json:"lost_acked"`
	Duplicated   int64   `json:"duplicated"`
	Unexpected   int64   `json:"unexpected"`
	Foreign      int64   `json:"foreign"`
	BadRequests  int64   `json:"bad_requests"`
	Invalid      int64   `json:"invalid_events"`           // events that violate CloudEvents 1.0
	InvalidFirst string  `json:"invalid_sample,omitempty"` // the first violation seen
	Requests     int64   `json:"requests"`
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	CPUSeconds   float64 `json:"cpu_s"`
	CPUPercent   float64 `json:"cpu_pct"`
	WallSeconds  float64 `json:"wall_s"`
	StopSeconds  float64 `json:"stop_s"`
	Error        string  `json:"error,omitempty"`
	Dir          string  `json:"dir,omitempty"`
}

// gatewayConfig renders the edgegate config of one run.
func gatewayConfig(admin, mqttAddr, dataDir, uplinkURL, mode string) string {
	return fmt.Sprintf(`gateway_id: bench
log: {level: warn}
admin: {listen: %q}
mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
buffer:
  dir: %q
  max_bytes: 1GiB
events:
  topics:
    - {match: "devices/{device}/{kind}", source: "/edgegate/{gateway_id}/devices/{device}", type: "io.edgegate.device.{kind}", subject: "{device}"}
uplinks:
  - {name: cloud, http: {url: %q, mode: %s}}
`, admin, mqttAddr, dataDir, uplinkURL, mode)
}

// runOnce starts a fresh edgegate and receiver, runs spec's load through them and
// measures the result. A failure is reported in result.Error.
func runOnce(ctx context.Context, o benchOptions, spec runSpec) result {
	start := time.Now()
	b := &bench{o: o, spec: spec, res: result{Name: spec.Name, QoS: int(spec.QoS), Mode: o.Mode, Devices: o.Devices, Auth: o.Auth, TargetRate: spec.Rate}}
	if err := b.run(ctx); err != nil {
		b.fail(err)
	}
	b.close()
	b.res.WallSeconds = time.Since(start).Seconds()
	return b.res
}

// bench is one run in progress: what runOnce started, in order, and its result.
type bench struct {
	o    benchOptions
	spec runSpec
	res  result

	dir       string        // temp dir: config, data, edgegate.log
	rec       *recorder     // the uplink's endpoint
	srv       *http.Server  // serving rec
	srvDone   chan struct{} // closed when srv has stopped
	admin     string        // edgegate's admin address
	mqttAddr  string        // edgegate's MQTT listener
	gw        *gatewayProc
	gwStopped bool
	fleet     *devices.Fleet
}

func (b *bench) logf(format string, args ...any) {
	if b.o.Log != nil {
		fmt.Fprintf(b.o.Log, "edgebench: %s: "+format+"\n", append([]any{b.spec.Name}, args...)...)
	}
}

// fail records the error that ended the run, with edgegate's log once it runs.
func (b *bench) fail(err error) {
	b.res.Error = err.Error()
	b.logf("FAILED: %v", err)
	if b.gw != nil && b.o.Log != nil {
		fmt.Fprintf(b.o.Log, "--- edgegate log (tail) ---\n%s\n", b.gw.logTail(30))
	}
}

// run sets up, starts edgegate, runs the load and measures; an error ends it early.
func (b *bench) run(ctx context.Context) error {
	if err := b.setUp(); err != nil {
		return err
	}
	if err := b.startGateway(ctx); err != nil {
		return err
	}
	lr, before, timedOut, err := b.load(ctx)
	if err != nil {
		return err
	}
	after, err := readProcStats(b.gw.pid())
	if err != nil {
		return err
	}
	b.fleet.Close()
	b.stopGateway()
	b.measure(lr, before, after)
	if timedOut && b.res.Error == "" {
		b.res.Error = fmt.Sprintf("load did not finish within --timeout %s", b.o.Timeout)
	}
	b.logf("received %d/%d, %.0f events/s", b.res.Received, lr.Sent, b.res.EventsPerSec)
	return nil
}

// setUp makes the temp dir, starts the receiver (first, so its port is ours for
// certain) and writes edgegate's config.
func (b *bench) setUp() error {
	dir, err := os.MkdirTemp("", "edgebench-*")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	b.dir = dir
	if b.o.Keep {
		b.res.Dir = dir
	}
	b.rec = newRecorder()
	b.rec.validateEvery = max(b.o.ValidateEvery, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("receiver listen: %w", err)
	}
	b.srv = &http.Server{Handler: b.rec, ReadHeaderTimeout: 10 * time.Second}
	b.srvDone = make(chan struct{})
	go func() { defer close(b.srvDone); _ = b.srv.Serve(ln) }()

	var err1, err2 error
	b.admin, err1 = freeport.Addr()
	b.mqttAddr, err2 = freeport.Addr()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	cfg := gatewayConfig(b.admin, b.mqttAddr, filepath.Join(dir, "data"), "http://"+ln.Addr().String()+"/", b.o.Mode)
	if b.o.Auth {
		section, err := b.writeUsers()
		if err != nil {
			return err
		}
		cfg += section
	}
	if err := os.WriteFile(b.configPath(), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// benchSecret is every bench device's secret. Each device is its own user,
// so the gateway verifies each once (its cache is keyed by user); sharing
// the secret and its hash only spares edgebench hashing thousands.
const benchSecret = "bench-secret"

// writeUsers writes a users file with one user per device, all with the
// hash `edgegate passwd` makes of benchSecret, and returns the auth
// section that uses it: each device may publish under its own topics.
func (b *bench) writeUsers() (string, error) {
	cmd := exec.Command(b.o.Edgegate, "passwd")
	cmd.Env = append(os.Environ(), b.o.Env...)
	cmd.Stdin = strings.NewReader(benchSecret + "\n")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("edgegate passwd: %w", err)
	}
	hash := strings.TrimSpace(string(out))
	var users strings.Builder
	users.WriteString("users:\n")
	cfg := loadConfig("", b.o, b.spec)
	for i := range b.o.Devices {
		fmt.Fprintf(&users, "  - {username: %q, password_hash: %q}\n", cfg.ClientIDPrefix+cfg.DeviceID(i), hash)
	}
	path := filepath.Join(b.dir, "devices.yaml")
	if err := os.WriteFile(path, []byte(users.String()), 0o600); err != nil {
		return "", fmt.Errorf("write users: %w", err)
	}
	return fmt.Sprintf(`auth:
  users_file: %q
  acl:
    - users: ["*"]
      publish: ["devices/%%u/#"]
      subscribe: ["devices/%%u/cmd/#"]
`, path), nil
}

func (b *bench) configPath() string { return filepath.Join(b.dir, "edgegate.yaml") }

// startGateway starts edgegate and waits until it is ready.
func (b *bench) startGateway(ctx context.Context) error {
	gw, err := startGateway(b.o.Edgegate, b.configPath(), filepath.Join(b.dir, "edgegate.log"), b.o.Env)
	if err != nil {
		return err
	}
	b.gw = gw
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return gw.waitReady(readyCtx, b.admin)
}

// load connects the devices, publishes spec's load within --timeout and waits for
// the receiver to drain. before is edgegate's process statistics once the devices are
// connected (the CPU of connecting, authentication included, is not the load's).
// timedOut reports a throughput run cut short by --timeout.
func (b *bench) load(ctx context.Context) (lr devices.Result, before procStats, timedOut bool, err error) {
	start := time.Now()
	b.fleet, err = devices.Connect(ctx, loadConfig("tcp://"+b.mqttAddr, b.o, b.spec))
	if err != nil {
		return lr, before, false, err
	}
	b.res.ConnectSec = time.Since(start).Seconds()
	if before, err = readProcStats(b.gw.pid()); err != nil {
		return lr, before, false, err
	}
	b.logf("%d devices connected in %.1fs, publishing", b.o.Devices, b.res.ConnectSec)
	loadCtx, cancel := context.WithTimeout(ctx, b.o.Timeout)
	lr = b.fleet.Run(loadCtx)
	timedOut = loadCtx.Err() != nil && ctx.Err() == nil && b.spec.Duration == 0
	cancel()
	b.logf("published %d (%d failed) in %s; draining", lr.Sent, lr.Failed, lr.End.Sub(lr.Start).Round(time.Millisecond))
	waitDrain(ctx, b.rec, lr.Sent, b.o.Drain)
	return lr, before, timedOut, nil
}

// measure fills the result from what the devices published, what the receiver got
// and edgegate's process statistics before and after the load.
func (b *bench) measure(lr devices.Result, before, after procStats) {
	snap := b.rec.snapshot()
	acc := account(lr.Devices, snap.Counts)
	lat := summarizeLatencies(snap.Latencies)
	r := &b.res
	r.Published, r.PubErrors, r.Received = lr.Sent, lr.Failed, acc.Received
	r.P50ms, r.P99ms, r.Maxms = ms(lat.P50), ms(lat.P99), ms(lat.Max)
	r.Lost, r.LostAcked, r.Duplicated, r.Unexpected = acc.Lost, acc.LostAcked, acc.Duplicated, acc.Unexpected
	r.Foreign, r.BadRequests, r.Requests = snap.Foreign, snap.Bad, snap.Requests
	r.Invalid, r.InvalidFirst = snap.Invalid, snap.Sample
	r.PeakRSSMB = float64(after.PeakRSS) / (1 << 20)
	r.CPUSeconds = (after.CPU - before.CPU).Seconds()
	if !snap.Last.IsZero() && snap.Last.After(lr.Start) {
		span := snap.Last.Sub(lr.Start).Seconds()
		r.EventsPerSec = float64(acc.Received) / span
		r.CPUPercent = 100 * r.CPUSeconds / span
	}
}

// stopGateway stops edgegate once and records how long it took.
func (b *bench) stopGateway() {
	if b.gw == nil || b.gwStopped {
		return
	}
	b.gwStopped = true
	d, err := b.gw.stop(15 * time.Second)
	b.res.StopSeconds = d.Seconds()
	if err != nil && b.res.Error == "" {
		b.res.Error = err.Error()
		b.logf("stop: %v\n--- edgegate log (tail) ---\n%s", err, b.gw.logTail(30))
	}
}

// close stops whatever the run started, last first, and removes the temp dir
// unless --keep.
func (b *bench) close() {
	if b.fleet != nil {
		b.fleet.Close()
	}
	b.stopGateway()
	if b.srv != nil {
		_ = b.srv.Close()
		<-b.srvDone
	}
	if b.dir != "" && !b.o.Keep {
		os.RemoveAll(b.dir)
	}
}

// waitDrain waits until the receiver has want distinct events, or no new event has
// arrived for idle, or ctx is done.
func waitDrain(ctx context.Context, recv *recorder, want int64, idle time.Duration) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := recv.unique(), time.Now()
	for int64(last) < want {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			n := recv.unique()
			if n != last {
				last, lastChange = n, now
			} else if now.Sub(lastChange) > idle {
				return
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
