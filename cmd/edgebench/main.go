package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

// cliConfig holds edgebench's flags.
type cliConfig struct {
	opts     benchOptions
	qos      string
	messages int64
	rate     float64
	duration time.Duration
	json     string
}

func parseFlags(args []string, stderr io.Writer) (cliConfig, error) {
	var c cliConfig
	fs := flag.NewFlagSet("edgebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: edgebench [flags]\n\nEnd-to-end benchmark: MQTT devices -> edgegate -> CloudEvents HTTP receiver.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.opts.Edgegate, "edgegate", "./bin/edgegate", "path of the edgegate binary")
	fs.IntVar(&c.opts.Devices, "devices", 100, "devices, one MQTT connection each")
	fs.StringVar(&c.qos, "qos", "", "QoS of the runs: 0 or 1 (default: throughput at both, latency at 1)")
	fs.Int64Var(&c.messages, "messages", 500, "messages per device in the throughput runs (0 = skip them)")
	fs.Float64Var(&c.rate, "rate", 5000, "total msgs/s of the fixed-rate latency run (0 = skip it)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of the fixed-rate run")
	fs.StringVar(&c.opts.Mode, "mode", "batch", "uplink mode: batch, binary or structured")
	fs.BoolVar(&c.opts.Auth, "auth", false, "devices authenticate (one user per device, argon2id as edgegate passwd hashes it) and a per-device ACL grants each its own topics")
	fs.IntVar(&c.opts.Inflight, "inflight", 64, "QoS 1 publishes outstanding per device")
	fs.Int64Var(&c.opts.ValidateEvery, "validate-every", 10, "check one request in N strictly against CloudEvents 1.0 (1 = all; strict checks cost the receiver CPU it shares with the gateway)")
	fs.DurationVar(&c.opts.Timeout, "timeout", 30*time.Second, "longest load phase of a throughput run")
	fs.DurationVar(&c.opts.Drain, "drain", 10*time.Second, "after the load, stop waiting for events once none arrived for this long")
	fs.BoolVar(&c.opts.Keep, "keep", false, "keep each run's temp dir (config, data, edgegate.log)")
	fs.StringVar(&c.json, "json", "", "also write the results as JSON to this file (- = stdout, instead of the table)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if c.opts.Devices < 1 {
		errs = append(errs, fmt.Errorf("--devices: must be >= 1, got %d", c.opts.Devices))
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
	if c.opts.Mode != "batch" && c.opts.Mode != "binary" && c.opts.Mode != "structured" {
		errs = append(errs, fmt.Errorf("--mode: must be batch, binary or structured, got %q", c.opts.Mode))
	}
	if c.opts.Inflight < 1 {
		errs = append(errs, fmt.Errorf("--inflight: must be >= 1, got %d", c.opts.Inflight))
	}
	if c.opts.Timeout <= 0 || c.opts.Drain <= 0 {
		errs = append(errs, errors.New("--timeout and --drain: must be > 0"))
	}
	return c, errors.Join(errs...)
}

// plan returns the runs the flags ask for.
func (c cliConfig) plan() []runSpec {
	var specs []runSpec
	qs := []byte{0, 1}
	latQoS := byte(1)
	if c.qos != "" {
		q, _ := strconv.Atoi(c.qos)
		qs, latQoS = []byte{byte(q)}, byte(q)
	}
	if c.messages > 0 {
		for _, q := range qs {
			specs = append(specs, runSpec{Name: fmt.Sprintf("throughput-qos%d", q), QoS: q, Messages: c.messages})
		}
	}
	if c.rate > 0 {
		specs = append(specs, runSpec{
			Name: fmt.Sprintf("latency-qos%d-%s/s", latQoS, strconv.FormatFloat(c.rate, 'f', -1, 64)),
			QoS:  latQoS, Rate: c.rate, Duration: c.duration,
		})
	}
	return specs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if _, err := os.Stat(c.opts.Edgegate); err != nil {
		return fmt.Errorf("edgegate binary: %w (build it with make build)", err)
	}
	c.opts.Log = stderr
	var results []result
	for _, spec := range c.plan() {
		if ctx.Err() != nil {
			break
		}
		results = append(results, runOnce(ctx, c.opts, spec))
	}
	if c.json != "-" {
		printTable(stdout, results)
	}
	if c.json != "" {
		b, err := json.MarshalIndent(results, "", "  ")
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
	return verdict(results, ctx.Err())
}

// verdict turns failed runs and lost QoS>=1 acks into an error.
func verdict(results []result, ctxErr error) error {
	var errs []error
	if ctxErr != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", ctxErr))
	}
	for _, r := range results {
		if r.Error != "" {
			errs = append(errs, fmt.Errorf("%s: %s", r.Name, r.Error))
		}
		if r.QoS > 0 && r.LostAcked > 0 {
			errs = append(errs, fmt.Errorf("%s: %d acknowledged messages never reached the receiver", r.Name, r.LostAcked))
		}
		if r.Invalid > 0 {
			errs = append(errs, fmt.Errorf("%s: %d events violate CloudEvents 1.0", r.Name, r.Invalid))
		}
	}
	return errors.Join(errs...)
}

func printTable(w io.Writer, results []result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "run\tqos\tmode\tauth\tdevices\tconnect s\tpublished\treceived\tevents/s\tp50 ms\tp99 ms\tmax ms\tlost\tdup\tinvalid\tpub err\tpeak RSS MB\tCPU s\tCPU %\trequests\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%v\t%d\t%.1f\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%d\t%.1f\t%.2f\t%.0f\t%d\t\n",
			r.Name, r.QoS, r.Mode, r.Auth, r.Devices, r.ConnectSec, r.Published, r.Received, r.EventsPerSec,
			r.P50ms, r.P99ms, r.Maxms, r.Lost, r.Duplicated, r.Invalid, r.PubErrors,
			r.PeakRSSMB, r.CPUSeconds, r.CPUPercent, r.Requests)
	}
	tw.Flush()
	for _, r := range results {
		if r.Error != "" {
			fmt.Fprintf(w, "%s: ERROR: %s\n", r.Name, r.Error)
		}
		if r.Invalid > 0 {
			fmt.Fprintf(w, "%s: INVALID: %d events violate CloudEvents 1.0, first: %s\n", r.Name, r.Invalid, r.InvalidFirst)
		}
		if r.Dir != "" {
			fmt.Fprintf(w, "%s: kept %s\n", r.Name, r.Dir)
		}
	}
}
