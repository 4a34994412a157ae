package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/internal/devices"
	"github.com/edgegate/edgegate/mqtt"
)

// counter is the ceiling's Handler: it counts each message and keeps its
// latency (from the payload's sent_ns), and does nothing else — no
// CloudEvent, no rules, no buffer, no uplink.
type counter struct {
	n atomic.Int64

	mu   sync.Mutex
	last time.Time // of the latest message
	lat  []time.Duration
}

var sentNSKey = []byte(`"sent_ns":`)

func (c *counter) Handle(_ context.Context, m mqtt.Message) error {
	now := time.Now()
	var sent int64 // 0: not a bench payload
	if i := bytes.Index(m.Payload, sentNSKey); i >= 0 {
		rest := m.Payload[i+len(sentNSKey):]
		if j := bytes.IndexAny(rest, ",}"); j > 0 {
			sent, _ = strconv.ParseInt(string(rest[:j]), 10, 64)
		}
	}
	c.mu.Lock()
	if now.After(c.last) {
		c.last = now
	}
	if sent > 0 {
		c.lat = append(c.lat, now.Sub(time.Unix(0, sent)))
	}
	c.mu.Unlock()
	c.n.Add(1)
	return nil
}

// runCeiling measures the raw ceiling of spec: the same devices and load
// as the gateway's runs, publishing to edgegate's embedded broker (package
// mqtt: mochi with edgegate's hooks and default limits) started in this
// process with a counter as its Handler. It shares the process with the
// devices, so its CPU and RSS are not reported.
func runCeiling(ctx context.Context, o benchOptions, spec runSpec) result {
	start := time.Now()
	res := result{Name: spec.Name, QoS: int(spec.QoS), Mode: modeCeiling, Devices: o.Devices, TargetRate: spec.Rate}
	if err := ceiling(ctx, o, spec, &res); err != nil {
		res.Error = err.Error()
		if o.Log != nil {
			fmt.Fprintf(o.Log, "bench: ceiling %s: FAILED: %v\n", spec.Name, err)
		}
	}
	res.WallSeconds = time.Since(start).Seconds()
	return res
}

func ceiling(ctx context.Context, o benchOptions, spec runSpec, res *result) error {
	cnt := &counter{}
	addr, stop, err := startBroker(ctx, cnt, mqtt.DefaultLimits())
	if err != nil {
		return fmt.Errorf("ceiling broker: %w", err)
	}
	defer stop()
	fleet, err := devices.Connect(ctx, loadConfig("tcp://"+addr, o, spec))
	if err != nil {
		return err
	}
	defer fleet.Close()
	loadCtx, cancel := context.WithTimeout(ctx, o.Timeout+spec.Duration)
	lr := fleet.Run(loadCtx)
	cancel()
	// QoS 0 messages may still be in flight towards the broker.
	waitCount(ctx, cnt.n.Load, lr.Sent, o.Drain)
	cnt.mu.Lock()
	lat, last := summarizeLatencies(cnt.lat), cnt.last
	cnt.mu.Unlock()
	res.Published, res.PubErrors, res.Received = lr.Sent, lr.Failed, cnt.n.Load()
	res.Lost = max(res.Published-res.Received, 0)
	res.P50ms, res.P99ms, res.Maxms = ms(lat.P50), ms(lat.P99), ms(lat.Max)
	if last.After(lr.Start) {
		res.EventsPerSec = float64(res.Received) / last.Sub(lr.Start).Seconds()
	}
	if o.Log != nil {
		fmt.Fprintf(o.Log, "bench: ceiling %s: received %d/%d, %.0f events/s\n", spec.Name, res.Received, lr.Sent, res.EventsPerSec)
	}
	return nil
}

// startBroker runs edgegate's embedded broker (package mqtt: mochi with
// edgegate's hooks and these limits) on 127.0.0.1 with h as its Handler,
// until stop, which returns once it has stopped. addr is its TCP listener.
func startBroker(ctx context.Context, h mqtt.Handler, limits mqtt.LimitsConfig) (addr string, stop func(), err error) {
	cfg := mqtt.DefaultConfig()
	cfg.Limits = limits
	cfg.Listeners = []mqtt.ListenerConfig{{ID: "tcp", Type: mqtt.TypeTCP, Address: "127.0.0.1:0"}}
	broker, err := mqtt.New(cfg, h, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics.NewSet())
	if err != nil {
		return "", nil, err
	}
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- broker.Run(bctx) }()
	select {
	case <-broker.Ready():
	case err := <-done:
		cancel()
		return "", nil, errors.Join(err, errors.New("stopped before ready"))
	}
	return broker.Addr("tcp").String(), func() { cancel(); <-done }, nil
}

// waitCount waits until n() reaches want, or has not moved for idle, or
// ctx is done.
func waitCount(ctx context.Context, n func() int64, want int64, idle time.Duration) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := n(), time.Now()
	for last < want {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if v := n(); v != last {
				last, lastChange = v, now
			} else if now.Sub(lastChange) > idle {
				return
			}
		}
	}
}
