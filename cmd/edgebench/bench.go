package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
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
func runOnce(ctx context.Context, o benchOptions, spec runSpec) (res result) {
	res = result{Name: spec.Name, QoS: int(spec.QoS), Mode: o.Mode, Devices: o.Devices, TargetRate: spec.Rate}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, "edgebench: %s: "+format+"\n", append([]any{spec.Name}, args...)...)
		}
	}
	fail := func(err error) result {
		res.Error = err.Error()
		logf("FAILED: %v", err)
		return res
	}
	runStart := time.Now()
	defer func() { res.WallSeconds = time.Since(runStart).Seconds() }()

	dir, err := os.MkdirTemp("", "edgebench-*")
	if err != nil {
		return fail(fmt.Errorf("temp dir: %w", err))
	}
	if o.Keep {
		res.Dir = dir
	} else {
		defer os.RemoveAll(dir)
	}

	// The receiver listens first, so its port is ours for certain.
	recv := newReceiver()
	recv.validateEvery = max(o.ValidateEvery, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(fmt.Errorf("receiver listen: %w", err))
	}
	srv := &http.Server{Handler: recv, ReadHeaderTimeout: 10 * time.Second}
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); _ = srv.Serve(ln) }()
	defer func() { _ = srv.Close(); <-srvDone }()

	admin, err1 := freePort()
	mqttAddr, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return fail(err)
	}
	cfgPath := filepath.Join(dir, "edgegate.yaml")
	cfg := gatewayConfig(admin, mqttAddr, filepath.Join(dir, "data"), "http://"+ln.Addr().String()+"/", o.Mode)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return fail(fmt.Errorf("write config: %w", err))
	}

	gw, err := startGateway(o.Edgegate, cfgPath, filepath.Join(dir, "edgegate.log"), o.Env)
	if err != nil {
		return fail(err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		d, err := gw.stop(15 * time.Second)
		res.StopSeconds = d.Seconds()
		if err != nil && res.Error == "" {
			res.Error = err.Error()
			logf("stop: %v\n--- edgegate log (tail) ---\n%s", err, gw.logTail(30))
		}
	}
	defer stop()
	failLog := func(err error) result {
		r := fail(err)
		if o.Log != nil {
			fmt.Fprintf(o.Log, "--- edgegate log (tail) ---\n%s\n", gw.logTail(30))
		}
		return r
	}

	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = gw.waitReady(readyCtx, admin)
	cancel()
	if err != nil {
		return failLog(err)
	}
	before, err := readProcStats(gw.pid())
	if err != nil {
		return failLog(err)
	}

	lcfg := loadConfig{
		Broker:     "tcp://" + mqttAddr,
		Devices:    o.Devices,
		Messages:   spec.Messages,
		Rate:       spec.Rate,
		Duration:   spec.Duration,
		QoS:        spec.QoS,
		Inflight:   o.Inflight,
		AckTimeout: 30 * time.Second,
		Prefix:     "d-",
	}
	gen, err := connectLoad(ctx, lcfg)
	if err != nil {
		return failLog(err)
	}
	defer gen.Close()
	logf("%d devices connected, publishing", o.Devices)

	loadCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	lr := gen.Run(loadCtx)
	timedOut := loadCtx.Err() != nil && ctx.Err() == nil && spec.Duration == 0
	cancel()
	logf("published %d (%d failed) in %s; draining", lr.Published, lr.Failed, lr.End.Sub(lr.Start).Round(time.Millisecond))

	waitDrain(ctx, recv, lr.Published, o.Drain)

	after, err := readProcStats(gw.pid())
	if err != nil {
		return failLog(err)
	}
	gen.Close()
	stop()

	snap := recv.snapshot()
	acc := account(lr.Devices, snap.Counts)
	lat := summarizeLatencies(snap.Latencies)
	res.Published = lr.Published
	res.PubErrors = lr.Failed
	res.Received = acc.Received
	if !snap.Last.IsZero() && snap.Last.After(lr.Start) {
		res.EventsPerSec = float64(acc.Received) / snap.Last.Sub(lr.Start).Seconds()
	}
	res.P50ms = ms(lat.P50)
	res.P99ms = ms(lat.P99)
	res.Maxms = ms(lat.Max)
	res.Lost = acc.Lost
	res.LostAcked = acc.LostAcked
	res.Duplicated = acc.Duplicated
	res.Unexpected = acc.Unexpected
	res.Foreign = snap.Foreign
	res.BadRequests = snap.Bad
	res.Invalid = snap.Invalid
	res.InvalidFirst = snap.Sample
	res.Requests = snap.Requests
	res.PeakRSSMB = float64(after.PeakRSS) / (1 << 20)
	res.CPUSeconds = (after.CPU - before.CPU).Seconds()
	if !snap.Last.IsZero() && snap.Last.After(lr.Start) {
		res.CPUPercent = 100 * res.CPUSeconds / snap.Last.Sub(lr.Start).Seconds()
	}
	if timedOut && res.Error == "" {
		res.Error = fmt.Sprintf("load did not finish within --timeout %s", o.Timeout)
	}
	logf("received %d/%d, %.0f events/s", acc.Received, lr.Published, res.EventsPerSec)
	return res
}

// waitDrain waits until the receiver has want distinct events, or no new event has
// arrived for idle, or ctx is done.
func waitDrain(ctx context.Context, recv *receiver, want int64, idle time.Duration) {
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
