package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Main runs the benchmark the args ask for (flags as in Usage) and prints
// its table to stdout, or its JSON report with --json -; progress goes to
// stderr. edgegate is the default of --edgegate: the binary to measure.
// It returns flag.ErrHelp for -h, and an error if a run failed, a QoS 1 run
// lost an acknowledged message or an event violated CloudEvents 1.0.
func Main(ctx context.Context, edgegate string, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, edgegate, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(c.opts.Edgegate); err != nil {
		return fmt.Errorf("edgegate binary: %w (build it with make build)", err)
	}
	// The gateway runs from a copy of its own: the kernel hands back a
	// mapped page only if no other process maps it, and the bench itself
	// is usually the same binary; deployed, the gateway maps its
	// executable alone.
	private, cleanup, err := privateCopy(c.opts.Edgegate)
	if err != nil {
		return err
	}
	defer cleanup()
	c.opts.Edgegate = private
	c.opts.Log = stderr
	rep := Report{Machine: machineNow()}
	for _, spec := range c.plan() {
		if ctx.Err() != nil {
			break
		}
		o := c.opts
		o.Mode, o.Devices = spec.Mode, spec.Devices
		if spec.OverloadFactor > 0 {
			spec.Rate = overloadRate(rep.Runs, spec, c.rate)
		}
		switch {
		case spec.Mode == modeCeiling:
			rep.Runs = append(rep.Runs, runCeiling(ctx, o, spec))
		case spec.Startup > 0:
			rep.Runs = append(rep.Runs, runStartup(ctx, o, spec))
		default:
			rep.Runs = append(rep.Runs, runOnce(ctx, o, spec))
		}
	}
	rep.Machine.LoadAvgEnd = loadAvg()
	setRatios(rep.Runs)
	if c.json != "-" {
		printTable(stdout, rep)
	}
	if c.json != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode results: %w", err)
		}
		b = append(b, '\n')
		if c.json == "-" {
			_, err = stdout.Write(b)
		} else {
			err = os.WriteFile(c.json, b, 0o644)
		}
		if err != nil {
			return fmt.Errorf("write results: %w", err)
		}
	}
	return verdict(rep.Runs, ctx.Err())
}

// Report is the JSON output of one bench invocation: where it ran and every
// run's result, in order.
type Report struct {
	Machine Machine  `json:"machine"`
	Runs    []result `json:"runs"`
}

// Machine records what the absolute figures depend on: a shared, busy
// machine makes them noisy, so the load average is kept with them.
type Machine struct {
	Time         time.Time  `json:"time"`
	GOOS         string     `json:"goos"`
	GOARCH       string     `json:"goarch"`
	CPUs         int        `json:"cpus"`
	GoVersion    string     `json:"go_version"`
	LoadAvgStart [3]float64 `json:"load_avg_start"` // 1, 5, 15 minutes
	LoadAvgEnd   [3]float64 `json:"load_avg_end"`
}

func machineNow() Machine {
	return Machine{
		Time: time.Now().UTC(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, CPUs: runtime.NumCPU(),
		GoVersion: runtime.Version(), LoadAvgStart: loadAvg(),
	}
}

// loadAvg reads /proc/loadavg; zeros where it cannot.
func loadAvg() [3]float64 {
	var la [3]float64
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return la
	}
	f := strings.Fields(string(b))
	for i := 0; i < 3 && i < len(f); i++ {
		la[i], _ = strconv.ParseFloat(f[i], 64)
	}
	return la
}

// modeCeiling is the mode of the raw-ceiling runs (runCeiling).
const modeCeiling = "ceiling"

// cliConfig holds the bench flags.
type cliConfig struct {
	opts     benchOptions
	modes    []string
	devices  []int
	qos      string
	messages int64
	rate     float64
	duration time.Duration
	outage   time.Duration
	overload time.Duration
	ceiling  bool
	startup  []int64
	json     string
}

const usageHead = `Usage: edgegate bench [flags]

End-to-end benchmark: simulated MQTT devices -> a fresh edgegate process
(durable buffer, 10 rules) -> a local CloudEvents HTTP receiver, next to the
raw ceiling: the same devices publishing to the embedded broker in-process
with a Handler that only counts.

Flags:
`

func parseFlags(args []string, edgegate string, stderr io.Writer) (cliConfig, error) {
	var c cliConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
	}
	var modes, devs, startup string
	var quick bool
	fs.StringVar(&c.opts.Edgegate, "edgegate", edgegate, "path of the edgegate binary to measure")
	fs.StringVar(&devs, "devices", "100", "devices, one MQTT connection each; a comma list runs each count (e.g. 100,1000)")
	fs.StringVar(&c.qos, "qos", "", "QoS of the runs: 0 or 1 (default: throughput at both, latency and outage at 1)")
	fs.Int64Var(&c.messages, "messages", 500, "messages per device in the throughput runs (0 = skip them)")
	fs.Float64Var(&c.rate, "rate", 5000, "total msgs/s of the fixed-rate latency and outage runs (0 = skip them)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of the fixed-rate run")
	fs.DurationVar(&c.outage, "outage", 0, "also run an outage: the receiver refuses (503) for this long in the middle of a fixed-rate run of 3x its length; reports backlog and drain rate (0 = skip)")
	fs.DurationVar(&c.overload, "overload", 0, "also run an overload: QoS 1 load at 2x the mode's measured QoS 1 throughput (2x --rate without one) for this long, beside 10 steady devices at 100 msgs/s in all whose latency is reported apart; reports what was refused or dropped (0 = skip)")
	fs.StringVar(&modes, "mode", "batch,binary", "uplink modes, a comma list of batch, binary, structured (HTTP uplinks in that mode) and mqtt (an MQTT uplink to a broker in the bench)")
	fs.BoolVar(&c.ceiling, "ceiling", true, "also measure the raw ceiling (in-process broker, counting Handler) and each throughput run's ratio to it")
	fs.BoolVar(&c.opts.Auth, "auth", false, "devices authenticate (one user per device, argon2id as edgegate passwd hashes it) and a per-device ACL grants each its own topics")
	fs.IntVar(&c.opts.Inflight, "inflight", 64, "QoS 1 publishes outstanding per device")
	fs.IntVar(&c.opts.Payload, "payload", 0, "bytes per device message, padded with a \"pad\" field (0: about 60 bytes, unpadded)")
	fs.DurationVar(&c.opts.CommitInterval, "commit-interval", 0, "the gateway's buffer.commit_interval: the least time between two commits (fewer disk writes per event, for up to that much latency)")
	fs.Int64Var(&c.opts.ValidateEvery, "validate-every", 10, "check one request in N strictly against CloudEvents 1.0 (1 = all; strict checks cost the receiver CPU it shares with the gateway)")
	fs.DurationVar(&c.opts.Timeout, "timeout", 30*time.Second, "longest load phase of a throughput run")
	fs.DurationVar(&c.opts.Drain, "drain", 10*time.Second, "after the load, stop waiting for events once none arrived for this long")
	fs.StringVar(&c.opts.ProfileDir, "profile", "", "save each gateway run's CPU profile (--profile-seconds from just after the load starts) and allocation profile (at the end of the load) in this directory, for go tool pprof")
	fs.IntVar(&c.opts.ProfileSeconds, "profile-seconds", 5, "length of the CPU profiles of --profile")
	fs.BoolVar(&c.opts.Keep, "keep", false, "keep each run's temp dir (config, data, edgegate.log)")
	fs.StringVar(&startup, "startup", "", "also run startup runs: write this many events into a fresh buffer, start edgegate on it and measure the time to listening and to ready, resident memory, and the drain; a comma list runs each (e.g. 1000000,10000000)")
	fs.DurationVar(&c.opts.StartupDrain, "startup-drain", 20*time.Second, "how long a startup run measures the drain after ready (it stops sooner once every event arrived)")
	fs.StringVar(&c.json, "json", "", "also write the results as JSON to this file (- = stdout, instead of the table)")
	fs.BoolVar(&quick, "quick", false, "tiny numbers (3 devices, 20 messages each, 200 msgs/s for 1 s, a 1 s outage, a 2 s overload, batch mode) unless set explicitly: checks the bench itself")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quickDefault := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		quickDefault("devices", func() { devs = "3" })
		quickDefault("messages", func() { c.messages = 20 })
		quickDefault("rate", func() { c.rate = 200 })
		quickDefault("duration", func() { c.duration = time.Second })
		quickDefault("outage", func() { c.outage = time.Second })
		quickDefault("overload", func() { c.overload = 2 * time.Second })
		quickDefault("mode", func() { modes = "batch" })
		quickDefault("validate-every", func() { c.opts.ValidateEvery = 1 })
		quickDefault("drain", func() { c.opts.Drain = 5 * time.Second })
		quickDefault("startup", func() { startup = "2000" })
	}
	var errs []error
	for _, s := range strings.Split(devs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("--devices: must be >= 1, got %q", s))
			continue
		}
		c.devices = append(c.devices, n)
	}
	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		if m != "batch" && m != "binary" && m != "structured" && m != modeMQTT {
			errs = append(errs, fmt.Errorf("--mode: must be batch, binary, structured or mqtt, got %q", m))
			continue
		}
		c.modes = append(c.modes, m)
	}
	if startup != "" {
		for _, s := range strings.Split(startup, ",") {
			n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("--startup: must be >= 1, got %q", s))
				continue
			}
			c.startup = append(c.startup, n)
		}
	}
	if c.opts.StartupDrain <= 0 {
		errs = append(errs, fmt.Errorf("--startup-drain: must be > 0, got %s", c.opts.StartupDrain))
	}
	if c.qos != "" && c.qos != "0" && c.qos != "1" {
		errs = append(errs, fmt.Errorf("--qos: must be 0 or 1, got %q", c.qos))
	}
	if c.messages < 0 {
		errs = append(errs, fmt.Errorf("--messages: must be >= 0, got %d", c.messages))
	}
	if c.rate < 0 {
		errs = append(errs, fmt.Errorf("--rate: must be >= 0, got %v", c.rate))
	}
	if c.rate > 0 && c.duration <= 0 {
		errs = append(errs, fmt.Errorf("--duration: must be > 0 with a --rate, got %s", c.duration))
	}
	if c.outage < 0 {
		errs = append(errs, fmt.Errorf("--outage: must be >= 0, got %s", c.outage))
	}
	if c.overload < 0 {
		errs = append(errs, fmt.Errorf("--overload: must be >= 0, got %s", c.overload))
	}
	if c.opts.Inflight < 1 {
		errs = append(errs, fmt.Errorf("--inflight: must be >= 1, got %d", c.opts.Inflight))
	}
	if c.opts.ProfileSeconds < 1 {
		errs = append(errs, fmt.Errorf("--profile-seconds: must be >= 1, got %d", c.opts.ProfileSeconds))
	}
	if c.opts.ProfileDir != "" {
		if err := os.MkdirAll(c.opts.ProfileDir, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("--profile: %w", err))
		}
	}
	if c.opts.Timeout <= 0 || c.opts.Drain <= 0 {
		errs = append(errs, errors.New("--timeout and --drain: must be > 0"))
	}
	return c, errors.Join(errs...)
}

// plan returns the runs the flags ask for: for each device count, the
// ceiling's throughput runs, then per mode the throughput runs, the
// fixed-rate run and the outage run.
func (c cliConfig) plan() []runSpec {
	var specs []runSpec
	qs := []byte{0, 1}
	latQoS := byte(1)
	if c.qos != "" {
		q, _ := strconv.Atoi(c.qos)
		qs, latQoS = []byte{byte(q)}, byte(q)
	}
	rate := strconv.FormatFloat(c.rate, 'f', -1, 64)
	for _, n := range c.devices {
		modes := c.modes
		if c.ceiling && c.messages > 0 {
			modes = append([]string{modeCeiling}, modes...)
		}
		for _, mode := range modes {
			if c.messages > 0 {
				for _, q := range qs {
					specs = append(specs, runSpec{Name: fmt.Sprintf("throughput-qos%d", q), Mode: mode, Devices: n, QoS: q, Messages: c.messages})
				}
			}
			if mode == modeCeiling || c.rate <= 0 && c.overload <= 0 {
				continue
			}
			if c.rate > 0 {
				specs = append(specs, runSpec{
					Name: fmt.Sprintf("latency-qos%d-%s/s", latQoS, rate), Mode: mode, Devices: n,
					QoS: latQoS, Rate: c.rate, Duration: c.duration,
				})
			}
			if c.outage > 0 && c.rate > 0 {
				specs = append(specs, runSpec{
					Name: fmt.Sprintf("outage-qos%d-%s/s", latQoS, rate), Mode: mode, Devices: n,
					QoS: latQoS, Rate: c.rate, Duration: 3 * c.outage, Outage: c.outage,
				})
			}
			if c.overload > 0 {
				specs = append(specs, runSpec{
					Name: "overload-qos1-2x", Mode: mode, Devices: n, QoS: 1, Duration: c.overload,
					OverloadFactor: 2, Steady: 10, SteadyRate: 100,
				})
			}
		}
	}
	// Startup runs last, in the first mode with the first device count:
	// what they measure is the buffer on disk, not the uplink.
	for _, n := range c.startup {
		specs = append(specs, runSpec{Name: fmt.Sprintf("startup-%d", n), Mode: c.modes[0], Devices: c.devices[0], QoS: 1, Startup: n})
	}
	return specs
}

// overloadRate is the load of an overload run: its factor times the
// events/s of the QoS 1 throughput run with the same mode and devices, or
// times rate without one.
func overloadRate(runs []result, spec runSpec, rate float64) float64 {
	for _, r := range runs {
		if r.Mode == spec.Mode && r.Devices == spec.Devices && r.QoS == 1 && r.Name == "throughput-qos1" && r.EventsPerSec > 0 {
			return spec.OverloadFactor * r.EventsPerSec
		}
	}
	return spec.OverloadFactor * rate
}

// setRatios gives each gateway throughput run its ratio to the ceiling run
// with the same QoS and device count.
func setRatios(runs []result) {
	for i := range runs {
		r := &runs[i]
		if r.Mode == modeCeiling || r.TargetRate > 0 {
			continue
		}
		for _, c := range runs {
			if c.Mode == modeCeiling && c.QoS == r.QoS && c.Devices == r.Devices && c.EventsPerSec > 0 {
				r.CeilingRatio = r.EventsPerSec / c.EventsPerSec
			}
		}
	}
}

// verdict turns failed runs and lost QoS>=1 acks into an error.
func verdict(results []result, ctxErr error) error {
	var errs []error
	if ctxErr != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", ctxErr))
	}
	for _, r := range results {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s %s: %s", r.Mode, r.Name, r.Error))
		}
		if r.QoS > 0 && r.LostAcked > 0 {
			errs = append(errs, fmt.Errorf("%s %s: %d acknowledged messages never reached the receiver", r.Mode, r.Name, r.LostAcked))
		}
		if r.Invalid > 0 {
			errs = append(errs, fmt.Errorf("%s %s: %d events violate CloudEvents 1.0", r.Mode, r.Name, r.Invalid))
		}
	}
	return errors.Join(errs...)
}

func printTable(w io.Writer, rep Report) {
	m := rep.Machine
	fmt.Fprintf(w, "%s %s/%s, %d CPUs, load average %.2f at start, %.2f at end\n",
		m.Time.Format(time.RFC3339), m.GOOS, m.GOARCH, m.CPUs, m.LoadAvgStart[0], m.LoadAvgEnd[0])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tmode\tqos\tdevices\tpublished\treceived\tevents/s\tof ceiling\tp50 ms\tp99 ms\tmax ms\tlost\tdup\tinvalid\tpeak RSS MB\tCPU s/1k ev\tdisk B/ev\tresume s\tbacklog\tdrain ev/s\toffered/s\tsteady p99\tdropped\trefused\tslowed\t")
	for _, r := range rep.Runs {
		ratio := ""
		if r.CeilingRatio > 0 {
			ratio = fmt.Sprintf("%.0f%%", 100*r.CeilingRatio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.0f\t%s\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%.1f\t%.3f\t%.0f\t%.1f\t%d\t%.0f\t%.0f\t%.1f\t%d\t%d\t%d\t\n",
			r.Name, r.Mode, r.QoS, r.Devices, r.Published, r.Received, r.EventsPerSec, ratio,
			r.P50ms, r.P99ms, r.Maxms, r.Lost, r.Duplicated, r.Invalid,
			r.PeakRSSMB, r.CPUPer1kEvents, r.DiskBytesPerEvent, r.ResumeSec, r.Backlog, r.DrainPerSec,
			r.OfferedPerSec, r.SteadyP99ms, r.Dropped, r.Refused, r.FairShareDelayed)
	}
	tw.Flush()
	for _, r := range rep.Runs {
		if r.StartupEvents > 0 {
			fmt.Fprintf(w, "%s: %d events buffered (%.0f MiB on disk, written in %.1fs): listening after %.0f ms, ready after %.0f ms; RSS at ready %.1f MB (%.1f MB file-backed); draining %.0f events/s for %.1fs, peak RSS %.1f MB (anon %.1f, file %.1f)\n",
				r.Name, r.StartupEvents, r.BufferDiskMB, r.FillSec, r.ListenMs, r.ReadyMs, r.ReadyRSSMB, r.ReadyFileMB,
				r.DrainPerSec, r.DrainSec, r.PeakRSSMB, r.DrainAnonMB, r.DrainFileMB)
		}
	}
	for _, r := range rep.Runs {
		if r.Error != "" {
			fmt.Fprintf(w, "%s %s: ERROR: %s\n", r.Mode, r.Name, r.Error)
		}
		if r.Invalid > 0 {
			fmt.Fprintf(w, "%s %s: INVALID: %d events violate CloudEvents 1.0, first: %s\n", r.Mode, r.Name, r.Invalid, r.InvalidFirst)
		}
		if r.Dir != "" {
			fmt.Fprintf(w, "%s %s: kept %s\n", r.Mode, r.Name, r.Dir)
		}
	}
}

// privateCopy copies the executable at path into a new temp dir and
// returns the copy's path and a func that removes it.
func privateCopy(path string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "edgegate-bench-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	copyPath := filepath.Join(dir, "edgegate")
	err = func() error {
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		dst, err := os.OpenFile(copyPath, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, src); err != nil {
			dst.Close()
			return err
		}
		// Synced, as an installed binary is: the kernel pages out only
		// clean pages, and a fresh copy's stay dirty for up to 30 s.
		return errors.Join(dst.Sync(), dst.Close())
	}()
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy the edgegate binary: %w", err)
	}
	return copyPath, cleanup, nil
}
