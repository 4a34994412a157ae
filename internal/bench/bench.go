package bench

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
	"strconv"
	"strings"
	"time"

	"github.com/edgegate/edgegate/internal/devices"
	"github.com/edgegate/edgegate/internal/freeport"
	"github.com/edgegate/edgegate/mqtt"
)

// runSpec is one benchmark run.
type runSpec struct {
	Name     string
	Mode     string // batch | binary | structured | mqtt | ceiling
	Devices  int
	QoS      byte
	Messages int64         // per device (throughput runs)
	Rate     float64       // total msgs/s (fixed-rate runs)
	Duration time.Duration // fixed-rate runs
	// Outage makes the receiver refuse every request (503) for this long,
	// starting a third into a fixed-rate run.
	Outage time.Duration
	// Overload runs: Rate is set, before the run, to OverloadFactor × the
	// events/s of the same mode's QoS 1 throughput run; Steady devices
	// publish SteadyRate msgs/s in all beside that load, and their latency
	// is reported on its own.
	OverloadFactor float64
	Steady         int
	SteadyRate     float64
	// Startup runs: this many events are written into the buffer before
	// the gateway starts (runStartup).
	Startup int64
}

// benchOptions are the settings shared by every run.
type benchOptions struct {
	Edgegate string
	Devices  int
	Mode     string // batch | binary | structured | mqtt
	Auth     bool   // one user per device and a per-device ACL
	Inflight int
	Payload  int           // bytes per device message (0: about 60, unpadded)
	Timeout  time.Duration // bound on the load phase of a run
	Drain    time.Duration // how long to wait for events after the load, with no progress
	Keep     bool          // keep the temp dirs
	// CommitInterval is the gateway's buffer.commit_interval.
	CommitInterval time.Duration
	// ValidateEvery checks one request in this many strictly against
	// CloudEvents 1.0 (1: all of them).
	ValidateEvery int64
	Env           []string  // extra environment for edgegate
	Log           io.Writer // progress lines
	// ProfileDir, when set, receives each gateway run's CPU profile of
	// ProfileSeconds from half a second into its load, and its
	// allocation profile at the end of the load (admin.pprof).
	ProfileDir     string
	ProfileSeconds int
	// StartupDrain bounds the drain of a startup run.
	StartupDrain time.Duration
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
	// PeakAnonMB and PeakFileMB are the peaks of the gateway's anonymous
	// (Go heap and off-heap allocations) and file-backed (Badger's mapped
	// files) resident memory during the load, sampled every 100 ms.
	PeakAnonMB float64 `json:"peak_anon_mb,omitempty"`
	PeakFileMB float64 `json:"peak_file_mb,omitempty"`
	CPUSeconds float64 `json:"cpu_s"`
	CPUPercent float64 `json:"cpu_pct"`
	// CPUPer1kEvents is the gateway's CPU seconds per 1,000 events received.
	CPUPer1kEvents float64 `json:"cpu_s_per_1k_events"`
	// DiskWriteBytes is what the gateway process caused to be written to
	// storage during the load (/proc/PID/io write_bytes); DiskBytesPerEvent
	// divides it by the events received.
	DiskWriteBytes    int64   `json:"disk_write_bytes"`
	DiskBytesPerEvent float64 `json:"disk_bytes_per_event"`
	// CeilingRatio is EventsPerSec over the ceiling run's with the same QoS
	// and devices (throughput runs).
	CeilingRatio float64 `json:"ceiling_ratio"`
	// Outage runs: ResumeSec is how long after the receiver came back its
	// first event arrived (the gateway's retry backoff: up to retry.max);
	// Backlog is how many published events had not arrived then;
	// DrainPerSec the rate at which events arrived from then until every
	// event published by then had, live traffic included; DrainRatio that
	// over the target rate; DrainSec how long that took.
	OutageSec   float64 `json:"outage_s"`
	ResumeSec   float64 `json:"resume_s"`
	Backlog     int64   `json:"backlog"`
	DrainPerSec float64 `json:"drain_events_per_sec"`
	DrainRatio  float64 `json:"drain_ratio"`
	DrainSec    float64 `json:"drain_s"`
	// Overload runs: the load offered (total msgs/s the load devices try),
	// the steady devices' own latency, and what the gateway dropped by its
	// policy (edgegate_mqtt_messages_dropped_total and
	// edgegate_buffer_dropped_total at the end of the run), refused
	// (edgegate_events_refused_total) and held back to the publishers'
	// fair share (edgegate_mqtt_fair_share_delayed_total).
	OfferedPerSec float64 `json:"offered_per_sec"`
	SteadyDevices int     `json:"steady_devices"`
	SteadyP50ms   float64 `json:"steady_p50_ms"`
	SteadyP99ms   float64 `json:"steady_p99_ms"`
	Dropped       int64   `json:"dropped"`
	Refused       int64   `json:"refused"`
	// FairShareDelayed counts publishes held back to their fair share.
	FairShareDelayed int64 `json:"fair_share_delayed"`
	// Startup runs (runStartup): the events stored before the gateway
	// started, how long writing them took and what they occupy on disk;
	// from exec to the MQTT listener accepting a connection and to /readyz
	// answering 200; the resident memory once ready (and its file-backed
	// part: Badger's mapped files); the peaks while draining, anonymous
	// and file-backed. Received, DrainPerSec and DrainSec are the drain's,
	// cut at --startup-drain.
	StartupEvents int64   `json:"startup_events,omitempty"`
	FillSec       float64 `json:"fill_s,omitempty"`
	BufferDiskMB  float64 `json:"buffer_disk_mb,omitempty"`
	ListenMs      float64 `json:"startup_listen_ms,omitempty"`
	ReadyMs       float64 `json:"startup_ready_ms,omitempty"`
	ReadyRSSMB    float64 `json:"ready_rss_mb,omitempty"`
	ReadyFileMB   float64 `json:"ready_rss_file_mb,omitempty"`
	DrainAnonMB   float64 `json:"drain_peak_anon_mb,omitempty"`
	DrainFileMB   float64 `json:"drain_peak_file_mb,omitempty"`
	WallSeconds   float64 `json:"wall_s"`
	StopSeconds   float64 `json:"stop_s"`
	Error         string  `json:"error,omitempty"`
	Dir           string  `json:"dir,omitempty"`
}

// modeMQTT is the uplink mode whose receiver is a cloud MQTT broker in the
// bench (an uplink of type mqtt) instead of an HTTP endpoint.
const modeMQTT = "mqtt"

// uplinkSection is the uplink entry of a run's config: an http uplink in
// mode to the receiver at url, or in modeMQTT an mqtt uplink to the broker
// at url.
func uplinkSection(url, mode string) string {
	if mode == modeMQTT {
		return fmt.Sprintf("{name: cloud, mqtt: {url: %q}}", url)
	}
	return fmt.Sprintf("{name: cloud, http: {url: %q, mode: %s}}", url, mode)
}

// gatewayConfig renders the edgegate config of one run: the topic mapping
// and benchRules, so events pay for rule evaluation as in production.
// pprof turns on admin.pprof (--profile); maxBytes is buffer.max_bytes;
// commitInterval is buffer.commit_interval (0: left out, so that builds
// older than the key run too).
func gatewayConfig(admin, mqttAddr, dataDir, uplinkURL, mode string, pprof bool, maxBytes string, commitInterval time.Duration) string {
	var commit string
	if commitInterval > 0 {
		commit = fmt.Sprintf("\n  commit_interval: %s", commitInterval)
	}
	return fmt.Sprintf(`gateway_id: bench
log: {level: warn}
admin: {listen: %q, pprof: %v}
mqtt:
  listeners:
    - {id: tcp, type: tcp, address: %q}
buffer:
  dir: %q
  max_bytes: %s%s
events:
  topics:
    - {match: "devices/{device}/{kind}", source: "/edgegate/{gateway_id}/devices/{device}", type: "io.edgegate.device.{kind}", subject: "{device}"}
uplinks:
  - %s
%s`, admin, pprof, mqttAddr, dataDir, maxBytes, commit, uplinkSection(uplinkURL, mode), benchRules(10))
}

// benchRules returns n rules of the usual shapes (type test, threshold,
// subject/topic test, extension test) that match no bench event, so every
// event is evaluated against all of them and still reaches the uplink.
func benchRules(n int) string {
	var b strings.Builder
	b.WriteString("rules:\n  rules:\n")
	for i := range n {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "    - {name: r%d, when: \"type == 'io.acme.kind%d' && data.seq > 30\", actions: [{route: [cloud]}]}\n", i, i)
		case 1:
			fmt.Fprintf(&b, "    - {name: r%d, when: \"data.seq < -%d\", actions: [{drop: true}]}\n", i, i)
		case 2:
			fmt.Fprintf(&b, "    - {name: r%d, when: \"subject == 'dev-%d' || topic startsWith 'alarms/'\", actions: [{set: {data.x: \"'1'\"}}]}\n", i, i)
		case 3:
			fmt.Fprintf(&b, "    - {name: r%d, when: \"ext.mqttqos == 2 && data.seq < %d\", actions: [{drop: true}]}\n", i, i)
		}
	}
	return b.String()
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
	srv       *http.Server  // serving rec (http modes)
	srvDone   chan struct{} // closed when srv has stopped
	stopCloud func()        // stops the broker rec handles (mqtt mode)
	admin     string        // edgegate's admin address
	mqttAddr  string        // edgegate's MQTT listener
	gw        *gatewayProc
	gwStopped bool
	fleet     *devices.Fleet
	steady    *devices.Fleet // overload runs: the devices within their rate
}

func (b *bench) logf(format string, args ...any) {
	if b.o.Log != nil {
		fmt.Fprintf(b.o.Log, "bench: %s: "+format+"\n", append([]any{b.spec.Name}, args...)...)
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
	stopSampling := b.sampleMem()
	lr, before, timedOut, err := b.load(ctx)
	peak := stopSampling()
	if err != nil {
		return err
	}
	after, err := readProcStats(b.gw.pid())
	if err != nil {
		return err
	}
	b.res.PeakAnonMB, b.res.PeakFileMB = mb(peak.Anon), mb(peak.File)
	b.fleet.Close()
	if b.steady != nil {
		b.steady.Close()
	}
	if b.spec.OverloadFactor > 0 {
		c, err := scrapeOverload(ctx, b.admin)
		if err != nil {
			return err
		}
		b.res.Dropped, b.res.Refused, b.res.FairShareDelayed = c.dropped, c.refused, c.slowed
	}
	b.stopGateway()
	b.measure(lr, before, after)
	if timedOut && b.res.Error == "" {
		b.res.Error = fmt.Sprintf("load did not finish within --timeout %s", b.o.Timeout)
	}
	b.logf("received %d/%d, %.0f events/s; peak RSS %.1f MB (anonymous %.1f, file-backed %.1f)", b.res.Received, lr.Sent, b.res.EventsPerSec, b.res.PeakRSSMB, b.res.PeakAnonMB, b.res.PeakFileMB)
	return nil
}

// setUp makes the temp dir, starts the receiver (first, so its port is ours for
// certain) and writes edgegate's config.
func (b *bench) setUp() error {
	dir, err := os.MkdirTemp("", "edgegate-bench-*")
	if err != nil {
		return fmt.Errorf("temp dir: %w", err)
	}
	b.dir = dir
	if b.o.Keep {
		b.res.Dir = dir
	}
	b.rec = newRecorder()
	b.rec.validateEvery = max(b.o.ValidateEvery, 1)
	uplinkURL, err := b.startReceiver()
	if err != nil {
		return err
	}

	var err1, err2 error
	b.admin, err1 = freeport.Addr()
	b.mqttAddr, err2 = freeport.Addr()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	maxBytes := "1GiB"
	if b.spec.Startup > 0 {
		maxBytes = startupMaxBytes(b.spec.Startup)
	}
	cfg := gatewayConfig(b.admin, b.mqttAddr, b.dataDir(), uplinkURL, b.o.Mode, b.o.ProfileDir != "", maxBytes, b.o.CommitInterval)
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

// startReceiver starts what the gateway's uplink sends to, on 127.0.0.1,
// with the recorder behind it: an HTTP server, or in mqtt mode the
// embedded broker (a cloud MQTT broker). It returns the uplink's URL.
func (b *bench) startReceiver() (string, error) {
	if b.o.Mode == modeMQTT {
		// The gateway's uplink is one connection carrying every event: a
		// per-connection publish rate (1,000/s by default, which devices
		// face) would measure the cloud broker, not the gateway.
		limits := mqtt.DefaultLimits()
		limits.PublishRate, limits.PublishBurst = 0, 0
		addr, stop, err := startBroker(context.Background(), b.rec, limits)
		if err != nil {
			return "", fmt.Errorf("receiver broker: %w", err)
		}
		b.stopCloud = stop
		return "tcp://" + addr, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("receiver listen: %w", err)
	}
	b.srv = &http.Server{Handler: b.rec, ReadHeaderTimeout: 10 * time.Second}
	b.srvDone = make(chan struct{})
	go func() { defer close(b.srvDone); _ = b.srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/", nil
}

// benchSecret is every bench device's secret. Each device is its own user,
// so the gateway verifies each once (its cache is keyed by user); sharing
// the secret and its hash only spares the bench hashing thousands.
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
	steady := steadyConfig("", b.o, b.spec)
	for i := range b.spec.Steady {
		fmt.Fprintf(&users, "  - {username: %q, password_hash: %q}\n", steady.ClientIDPrefix+steady.DeviceID(i), hash)
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

func (b *bench) dataDir() string { return filepath.Join(b.dir, "data") }

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
	if b.spec.Steady > 0 {
		if b.steady, err = devices.Connect(ctx, steadyConfig("tcp://"+b.mqttAddr, b.o, b.spec)); err != nil {
			return lr, before, false, err
		}
		b.rec.setSteady(steadyPrefix)
	}
	b.res.ConnectSec = time.Since(start).Seconds()
	if before, err = readProcStats(b.gw.pid()); err != nil {
		return lr, before, false, err
	}
	b.logf("%d devices connected in %.1fs, publishing", b.o.Devices, b.res.ConnectSec)
	loadCtx, cancel := context.WithTimeout(ctx, b.o.Timeout+b.spec.Duration)
	outageDone := make(chan outageResult, 1)
	if b.spec.Outage > 0 {
		go func() { outageDone <- b.outage(loadCtx) }()
	}
	steadyDone := make(chan devices.Result, 1)
	if b.steady != nil {
		go func() { steadyDone <- b.steady.Run(loadCtx) }()
	}
	profiled := make(chan error, 1)
	if b.o.ProfileDir != "" {
		go func() { profiled <- b.profileCPU(loadCtx) }()
	}
	lr = b.fleet.Run(loadCtx)
	if b.o.ProfileDir != "" {
		if err := errors.Join(<-profiled, b.fetchProfile(ctx, "allocs", "")); err != nil {
			b.logf("profile: %v", err)
		}
	}
	if b.steady != nil {
		lr = mergeResults(lr, <-steadyDone)
	}
	if b.spec.Outage > 0 {
		b.setOutage(<-outageDone)
	}
	timedOut = loadCtx.Err() != nil && ctx.Err() == nil && b.spec.Duration == 0
	cancel()
	b.logf("published %d (%d failed) in %s; draining", lr.Sent, lr.Failed, lr.End.Sub(lr.Start).Round(time.Millisecond))
	waitCount(ctx, func() int64 { return int64(b.rec.unique()) }, lr.Sent, b.o.Drain)
	return lr, before, timedOut, nil
}

// profileCPU waits half a second into the load and fetches a CPU profile
// of ProfileSeconds.
func (b *bench) profileCPU(ctx context.Context) error {
	t := time.NewTimer(500 * time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-t.C:
	}
	return b.fetchProfile(ctx, "profile", "seconds="+strconv.Itoa(b.o.ProfileSeconds))
}

// fetchProfile saves the gateway's /debug/pprof/NAME?QUERY as
// ProfileDir/MODE-RUN-NAME.pb.gz.
func (b *bench) fetchProfile(ctx context.Context, name, query string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.admin+"/debug/pprof/"+name+"?"+query, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s profile: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s profile: %s %v", name, resp.Status, err)
	}
	file := strings.NewReplacer("/", "_", " ", "_").Replace(b.o.Mode+"-"+b.spec.Name+"-"+name) + ".pb.gz"
	if err := os.WriteFile(filepath.Join(b.o.ProfileDir, file), body, 0o644); err != nil {
		return fmt.Errorf("save %s profile: %w", name, err)
	}
	return nil
}

// outageResult is what outage saw.
type outageResult struct {
	resume   time.Duration // from the receiver's return until its first event
	backlog  int64         // events published but not arrived at resume
	drained  int64         // events that arrived from resume until caught up
	drainFor time.Duration // from resume until caught up (0: never)
}

// outage waits a third of the run, makes the receiver refuse every request
// for spec.Outage, and then measures how long the gateway takes to resume
// (the first event arriving after the receiver's return: the retry backoff
// decides it, not the drain) and the drain: from then until as many
// distinct events have arrived as had been published when it resumed. It
// polls every 5 ms, well under the times measured.
func (b *bench) outage(ctx context.Context) outageResult {
	var r outageResult
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if !sleep(b.spec.Duration / 3) {
		return r
	}
	b.rec.down.Store(true)
	b.logf("receiver down for %s", b.spec.Outage)
	ok := sleep(b.spec.Outage)
	b.rec.down.Store(false)
	if !ok {
		return r
	}
	back := time.Now()
	got := int64(b.rec.unique())
	var resumed time.Time
	var sent int64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n := int64(b.rec.unique())
		if resumed.IsZero() && n > got {
			resumed, sent = time.Now(), b.fleet.Progress().Sent
			r.resume, r.backlog = resumed.Sub(back), sent-got
		}
		if !resumed.IsZero() && n >= sent {
			r.drained, r.drainFor = n-got, time.Since(resumed)
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-tick.C:
		}
	}
}

// setOutage records an outage run's figures.
func (b *bench) setOutage(o outageResult) {
	r := &b.res
	r.OutageSec, r.ResumeSec, r.Backlog, r.DrainSec = b.spec.Outage.Seconds(), o.resume.Seconds(), o.backlog, o.drainFor.Seconds()
	if o.drainFor > 0 {
		r.DrainPerSec = float64(o.drained) / o.drainFor.Seconds()
		r.DrainRatio = r.DrainPerSec / b.spec.Rate
	} else if r.Error == "" {
		r.Error = "the backlog of the outage did not drain before the load ended"
	}
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
	if b.spec.Steady > 0 {
		sl := summarizeLatencies(snap.SteadyLatencies)
		r.SteadyDevices, r.SteadyP50ms, r.SteadyP99ms = b.spec.Steady, ms(sl.P50), ms(sl.P99)
		r.OfferedPerSec = b.spec.Rate
	}
	r.Lost, r.LostAcked, r.Duplicated, r.Unexpected = acc.Lost, acc.LostAcked, acc.Duplicated, acc.Unexpected
	r.Foreign, r.BadRequests, r.Requests = snap.Foreign, snap.Bad, snap.Requests
	r.Invalid, r.InvalidFirst = snap.Invalid, snap.Sample
	r.PeakRSSMB = float64(after.PeakRSS) / (1 << 20)
	r.CPUSeconds = (after.CPU - before.CPU).Seconds()
	r.DiskWriteBytes = after.WriteBytes - before.WriteBytes
	if acc.Received > 0 {
		r.CPUPer1kEvents = 1000 * r.CPUSeconds / float64(acc.Received)
		r.DiskBytesPerEvent = float64(r.DiskWriteBytes) / float64(acc.Received)
	}
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
	if b.steady != nil {
		b.steady.Close()
	}
	b.stopGateway()
	if b.srv != nil {
		_ = b.srv.Close()
		<-b.srvDone
	}
	if b.stopCloud != nil {
		b.stopCloud()
	}
	if b.dir != "" && !b.o.Keep {
		os.RemoveAll(b.dir)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// sampleMem samples the gateway's resident memory every 100 ms until the
// returned function is called, which returns the peaks.
func (b *bench) sampleMem() (stop func() memStats) {
	done := make(chan struct{})
	out := make(chan memStats, 1)
	pid := b.gw.pid()
	go func() {
		var peak memStats
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if m, err := readMem(pid); err == nil {
				peak = peak.max(m)
			}
			select {
			case <-done:
				out <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() memStats { close(done); return <-out }
}
