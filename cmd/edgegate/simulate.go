package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgegate/edgegate/internal/devices"
)

// simConfig holds the flags of `edgegate simulate`.
type simConfig struct {
	broker   string
	devices  int
	rate     float64 // total messages per second across devices; 0 = as fast as possible
	count    int     // messages per device; 0 = until interrupted
	duration time.Duration
	qos      int
	topic    string
	prefix   string
	username string
	password string
	clean    bool
	progress time.Duration
	inflight int
	timeout  time.Duration
}

func newSimulateCmd(a *app) *cobra.Command {
	var c simConfig
	cmd := &cobra.Command{
		Use:   "simulate [flags]",
		Short: "simulated MQTT devices publishing JSON telemetry",
		Long: `Simulated MQTT devices publishing JSON telemetry: --devices paho clients, one
connection each, publishing to --topic at --rate messages per second in
total. It stops after --count messages per device, after --duration, or when
interrupted, and prints a summary to stdout (progress lines go to stderr).
Exit status 1 when a device cannot connect or a publish fails.`,
		Example: `  edgegate simulate --devices 10 --rate 5
  edgegate simulate --devices 100 --rate 0 --count 1000 --qos 1   # as fast as acks allow`,
		GroupID: groupTools,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := c.validate(); err != nil {
				return err
			}
			return runSimulate(cmd.Context(), c, a.stdout, a.stderr)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&c.broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL (tcp://, ssl://, ws://)")
	fs.IntVar(&c.devices, "devices", 10, "number of simulated devices, one MQTT connection each")
	fs.Float64Var(&c.rate, "rate", 10, "total messages per second across all devices (0 = as fast as possible)")
	fs.IntVar(&c.count, "count", 0, "messages per device (0 = until interrupted)")
	fs.DurationVar(&c.duration, "duration", 0, "stop after this long (0 = unlimited)")
	fs.IntVar(&c.qos, "qos", 1, "MQTT QoS of the publishes (0, 1 or 2)")
	fs.StringVar(&c.topic, "topic", "devices/{device}/telemetry", "topic template; {device} is replaced by the device id")
	fs.StringVar(&c.prefix, "prefix", "sim-", "device id prefix (ids are PREFIX001, PREFIX002, ...)")
	fs.StringVar(&c.username, "username", "", "MQTT username")
	fs.StringVar(&c.password, "password", "", "MQTT password")
	fs.BoolVar(&c.clean, "clean", true, "connect with a clean session (--clean=false for a persistent one)")
	fs.DurationVar(&c.progress, "progress", 5*time.Second, "interval of the progress lines on stderr (0 = none)")
	fs.IntVar(&c.inflight, "inflight", 32, "QoS>=1 publishes outstanding per device before waiting for acks")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "connect and ack timeout")
	return cmd
}

func (c simConfig) validate() error {
	var errs []error
	if c.broker == "" {
		errs = append(errs, errors.New("--broker: must not be empty"))
	}
	if c.devices < 1 || c.devices > 100000 {
		errs = append(errs, fmt.Errorf("--devices: must be between 1 and 100000, got %d", c.devices))
	}
	if c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0) {
		errs = append(errs, fmt.Errorf("--rate: must be >= 0, got %v", c.rate))
	}
	if c.count < 0 {
		errs = append(errs, fmt.Errorf("--count: must be >= 0, got %d", c.count))
	}
	if c.duration < 0 {
		errs = append(errs, fmt.Errorf("--duration: must be >= 0, got %s", c.duration))
	}
	if c.qos < 0 || c.qos > 2 {
		errs = append(errs, fmt.Errorf("--qos: must be 0, 1 or 2, got %d", c.qos))
	}
	if c.topic == "" || strings.ContainsAny(c.topic, "+#") {
		errs = append(errs, fmt.Errorf("--topic: must be a non-empty topic without wildcards, got %q", c.topic))
	}
	if c.inflight < 1 {
		errs = append(errs, fmt.Errorf("--inflight: must be >= 1, got %d", c.inflight))
	}
	if c.timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout: must be > 0, got %s", c.timeout))
	}
	return errors.Join(errs...)
}

// fleet returns the devices the flags describe: one paho client each, publishing
// telemetry; a device that loses its connection reconnects.
func (c simConfig) fleet() devices.Config {
	return devices.Config{
		Broker:         c.broker,
		Devices:        c.devices,
		IDPrefix:       c.prefix,
		Topic:          c.topic,
		Username:       c.username,
		Password:       c.password,
		CleanSession:   c.clean,
		Reconnect:      true,
		KeepAlive:      30 * time.Second,
		ConnectTimeout: c.timeout,
		AckTimeout:     c.timeout,
		QoS:            byte(c.qos),
		Inflight:       c.inflight,
		Rate:           c.rate,
		Messages:       int64(c.count),
		Payload:        func(i int, _ string) devices.Payload { return devices.Telemetry(uint64(i)) },
	}
}

// runSimulate connects the devices, runs them with a progress line on stderr
// every cfg.progress and prints the summary. Every publish is awaited at most
// --timeout, so the run ends at most that long after --duration or an
// interrupt, even when the broker is gone.
func runSimulate(ctx context.Context, cfg simConfig, stdout, stderr io.Writer) error {
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	fleet, err := devices.Connect(ctx, cfg.fleet())
	if err != nil {
		return err
	}
	defer fleet.Close()
	fmt.Fprintf(stderr, "simulate: %d devices connected to %s (qos %d, rate %s, count %s)\n",
		fleet.Len(), cfg.broker, cfg.qos, rateString(cfg.rate), countString(cfg.count))

	start := time.Now()
	done := make(chan devices.Result, 1)
	go func() { done <- fleet.Run(ctx) }()
	var tick <-chan time.Time
	if cfg.progress > 0 {
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		tick = t.C
	}
	lastAcked, lastT := int64(0), start
	var res devices.Result
loop:
	for {
		select {
		case res = <-done:
			break loop
		case now := <-tick:
			p := fleet.Progress()
			fmt.Fprintf(stderr, "simulate: %s sent=%d acked=%d errors=%d rate=%.0f msg/s\n",
				now.Sub(start).Round(time.Second), p.Sent, p.Acked, p.Failed,
				float64(p.Acked-lastAcked)/now.Sub(lastT).Seconds())
			lastAcked, lastT = p.Acked, now
		}
	}

	elapsed := time.Since(start)
	fmt.Fprintf(stdout, "simulate: done in %s: sent=%d acked=%d errors=%d rate=%.1f msg/s\n",
		elapsed.Round(time.Millisecond), res.Sent, res.Acked, res.Failed, float64(res.Acked)/elapsed.Seconds())
	if res.Failed > 0 {
		return fmt.Errorf("simulate: %d of %d publishes failed", res.Failed, res.Sent)
	}
	return nil
}

func rateString(r float64) string {
	if r == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + " msg/s"
}

func countString(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.Itoa(n) + "/device"
}
