package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/pahoclient"
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

// simStats counts what the simulated devices did; all fields are updated atomically.
type simStats struct {
	sent   atomic.Int64 // Publish called
	acked  atomic.Int64 // token completed without error (QoS 0: written to the socket)
	errors atomic.Int64 // token failed or timed out
}

// cmdSimulate runs `edgegate simulate`: N MQTT devices publishing JSON telemetry to a
// broker at a fixed total rate. It blocks until every device has sent --count messages,
// --duration has passed or ctx is cancelled (an interrupt is a normal end), then prints a
// summary to stdout (progress lines go to stderr). It returns an error for bad flags, a failed connect, or if any
// publish failed. -h prints the usage and returns nil.
func cmdSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseSimFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return runSimulate(ctx, cfg, stdout, stderr)
}

func parseSimFlags(args []string, stderr io.Writer) (simConfig, error) {
	var c simConfig
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: edgegate simulate [flags]\n\nSimulated MQTT devices publishing JSON telemetry.\n\nFlags:\n")
		fs.PrintDefaults()
	}
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
	fs.BoolVar(&c.clean, "clean", true, "connect with a clean session")
	fs.DurationVar(&c.progress, "progress", 5*time.Second, "interval of the progress lines on stderr (0 = none)")
	fs.IntVar(&c.inflight, "inflight", 32, "QoS>=1 publishes outstanding per device before waiting for acks")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "connect and ack timeout")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("simulate: unexpected argument %q", fs.Arg(0))
	}
	return c, c.validate()
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

// deviceID returns the id of device i (0-based): prefix + 1-based number, at least 3 digits.
func (c simConfig) deviceID(i int) string {
	return fmt.Sprintf("%s%03d", c.prefix, i+1)
}

func (c simConfig) topicFor(device string) string {
	return strings.ReplaceAll(c.topic, "{device}", device)
}

// telemetry produces the payloads of one simulated device: a slow random walk around
// 21.5 °C and 45 % relative humidity.
type telemetry struct {
	rng         *rand.Rand
	temperature float64
	humidity    float64
	buf         []byte
}

func newTelemetry(seed uint64) *telemetry {
	return &telemetry{rng: rand.New(rand.NewPCG(seed, 0x5eed)), temperature: 21.5, humidity: 45}
}

// next returns the JSON payload of message seq. The returned slice is fresh (paho keeps it).
func (t *telemetry) next(seq int64, now time.Time) []byte {
	t.temperature += (t.rng.Float64() - 0.5) * 0.2
	t.temperature += (21.5 - t.temperature) * 0.05
	t.humidity += (t.rng.Float64() - 0.5) * 0.5
	t.humidity += (45 - t.humidity) * 0.05
	b := make([]byte, 0, 112)
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"temperature":`...)
	b = strconv.AppendFloat(b, math.Round(t.temperature*100)/100, 'f', -1, 64)
	b = append(b, `,"humidity":`...)
	b = strconv.AppendFloat(b, math.Round(t.humidity*10)/10, 'f', -1, 64)
	b = append(b, `,"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `"}`...)
	return b
}

func runSimulate(ctx context.Context, cfg simConfig, stdout, stderr io.Writer) error {
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}

	clients, err := connectDevices(ctx, cfg)
	defer disconnectAll(clients)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "simulate: %d devices connected to %s (qos %d, rate %s, count %s)\n",
		len(clients), cfg.broker, cfg.qos, rateString(cfg.rate), countString(cfg.count))

	var st simStats
	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runDevice(ctx, cfg, i, cl, start, &st)
		}()
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var tick <-chan time.Time
	if cfg.progress > 0 {
		t := time.NewTicker(cfg.progress)
		defer t.Stop()
		tick = t.C
	}
	lastAcked, lastT := int64(0), start
loop:
	for {
		select {
		case <-done:
			break loop
		case now := <-tick:
			acked := st.acked.Load()
			fmt.Fprintf(stderr, "simulate: %s sent=%d acked=%d errors=%d rate=%.0f msg/s\n",
				now.Sub(start).Round(time.Second), st.sent.Load(), acked, st.errors.Load(),
				float64(acked-lastAcked)/now.Sub(lastT).Seconds())
			lastAcked, lastT = acked, now
		}
	}

	elapsed := time.Since(start)
	sent, acked, failed := st.sent.Load(), st.acked.Load(), st.errors.Load()
	fmt.Fprintf(stdout, "simulate: done in %s: sent=%d acked=%d errors=%d rate=%.1f msg/s\n",
		elapsed.Round(time.Millisecond), sent, acked, failed, float64(acked)/elapsed.Seconds())
	if failed > 0 {
		return fmt.Errorf("simulate: %d of %d publishes failed", failed, sent)
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

// disconnectAll disconnects the clients in parallel, each waiting at most 250 ms.
func disconnectAll(clients []paho.Client) {
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); cl.Disconnect(250) }()
	}
	wg.Wait()
}

// connectDevices connects one paho client per device, at most 16 at a time. On error it
// returns the clients connected so far together with the error, so the caller can
// disconnect them.
func connectDevices(ctx context.Context, cfg simConfig) ([]paho.Client, error) {
	clients := make([]paho.Client, cfg.devices)
	errs := make([]error, cfg.devices)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range cfg.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			id := cfg.deviceID(i)
			opts := paho.NewClientOptions().
				AddBroker(cfg.broker).
				SetClientID(id).
				SetUsername(cfg.username).
				SetPassword(cfg.password).
				SetCleanSession(cfg.clean).
				SetConnectTimeout(cfg.timeout).
				SetWriteTimeout(cfg.timeout).
				SetKeepAlive(30 * time.Second).
				SetAutoReconnect(true).
				SetMaxReconnectInterval(5 * time.Second)
			cl := pahoclient.New(opts)
			tok := cl.Connect()
			if !tok.WaitTimeout(cfg.timeout + time.Second) {
				cl.Disconnect(0)
				errs[i] = fmt.Errorf("connect %s to %s: timeout", id, cfg.broker)
				return
			}
			if err := tok.Error(); err != nil {
				errs[i] = fmt.Errorf("connect %s to %s: %w", id, cfg.broker, err)
				return
			}
			clients[i] = cl
		}()
	}
	wg.Wait()
	connected := clients[:0:0]
	for _, cl := range clients {
		if cl != nil {
			connected = append(connected, cl)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return connected, err
	}
	return connected, nil
}

// runDevice publishes for device i until its count is reached or ctx is done, then waits
// for its outstanding acks. Messages follow a fixed schedule (start + offset + k/rate),
// so the average rate holds even when a single sleep overshoots.
func runDevice(ctx context.Context, cfg simConfig, i int, cl paho.Client, start time.Time, st *simStats) {
	id := cfg.deviceID(i)
	topic := cfg.topicFor(id)
	tel := newTelemetry(uint64(i))
	var interval, offset time.Duration
	if cfg.rate > 0 {
		perDevice := cfg.rate / float64(cfg.devices)
		interval = time.Duration(float64(time.Second) / perDevice)
		offset = time.Duration(float64(time.Second) * float64(i) / cfg.rate) // spread devices out
	}

	// Tokens go through a bounded channel to an acker that waits for them in order:
	// QoS>=1 publishes are pipelined, with at most cfg.inflight outstanding.
	tokens := make(chan paho.Token, cfg.inflight)
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for tok := range tokens {
			if tok.WaitTimeout(cfg.timeout) && tok.Error() == nil {
				st.acked.Add(1)
			} else {
				st.errors.Add(1)
			}
		}
	}()
	defer func() { close(tokens); <-ackDone }()

	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for seq := int64(1); cfg.count == 0 || seq <= int64(cfg.count); seq++ {
		if interval > 0 {
			due := start.Add(offset + time.Duration(seq-1)*interval)
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		tok := cl.Publish(topic, byte(cfg.qos), false, tel.next(seq, time.Now()))
		st.sent.Add(1)
		select {
		case tokens <- tok:
		case <-ctx.Done():
			tokens <- tok // the acker drains; it gives up after cfg.timeout
			return
		}
	}
}
