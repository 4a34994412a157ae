package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/pahoclient"
)

// loadConfig describes the device load of one run.
type loadConfig struct {
	Broker     string        // MQTT broker URL, tcp://host:port
	Devices    int           // one paho client per device
	Messages   int64         // per device; 0 = until Duration or ctx ends
	Rate       float64       // total msgs/s across devices; 0 = as fast as possible
	Duration   time.Duration // 0 = until Messages are sent
	QoS        byte          // 0, 1 or 2
	Inflight   int           // publish tokens outstanding per device (>= 1)
	AckTimeout time.Duration // per token
	Prefix     string        // device ids are Prefix001, Prefix002, ...
}

// deviceID returns the id of device i (0-based).
func (c loadConfig) deviceID(i int) string { return fmt.Sprintf("%s%03d", c.Prefix, i+1) }

// deviceTopic returns the topic device id publishes to; the gateway config maps it to
// the CloudEvent type io.edgegate.device.telemetry.
func deviceTopic(id string) string { return "devices/" + id + "/telemetry" }

// devicePayload is the JSON the devices publish and the receiver expects back as the
// CloudEvent's data.
func devicePayload(dev string, seq int64, sentNS int64) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"dev":"`...)
	b = append(b, dev...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"sent_ns":`...)
	b = strconv.AppendInt(b, sentNS, 10)
	b = append(b, '}')
	return b
}

// deviceResult is what one device published. Seqs run from 1 to Published; Failed holds
// those whose token failed or timed out (the gateway may or may not have them).
type deviceResult struct {
	ID        string
	Published int64
	Failed    map[int64]bool
}

// loadResult is the outcome of runLoad.
type loadResult struct {
	Start     time.Time // first publish
	End       time.Time // last token resolved
	Published int64
	Acked     int64
	Failed    int64
	Devices   []deviceResult
}

// loadGen owns the connected device clients of one run.
type loadGen struct {
	cfg       loadConfig
	clients   []paho.Client
	closeOnce sync.Once
}

// connectLoad connects every device, at most 16 at a time. On error every client that
// did connect is disconnected again.
func connectLoad(ctx context.Context, cfg loadConfig) (*loadGen, error) {
	if cfg.Inflight < 1 {
		cfg.Inflight = 1
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = 30 * time.Second
	}
	g := &loadGen{cfg: cfg, clients: make([]paho.Client, cfg.Devices)}
	errs := make([]error, cfg.Devices)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range cfg.Devices {
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
				AddBroker(cfg.Broker).
				SetClientID("bench-" + id).
				SetCleanSession(true).
				SetConnectTimeout(10 * time.Second).
				SetWriteTimeout(cfg.AckTimeout).
				SetKeepAlive(60 * time.Second).
				SetAutoReconnect(false)
			cl := pahoclient.New(opts)
			tok := cl.Connect()
			if !tok.WaitTimeout(15 * time.Second) {
				cl.Disconnect(0)
				errs[i] = fmt.Errorf("connect %s: timeout", id)
				return
			}
			if err := tok.Error(); err != nil {
				errs[i] = fmt.Errorf("connect %s: %w", id, err)
				return
			}
			g.clients[i] = cl
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Close disconnects every client, in parallel. Calls after the first do nothing.
func (g *loadGen) Close() {
	g.closeOnce.Do(g.disconnect)
}

func (g *loadGen) disconnect() {
	var wg sync.WaitGroup
	for _, cl := range g.clients {
		if cl == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); cl.Disconnect(250) }()
	}
	wg.Wait()
}

// Run publishes until every device has sent cfg.Messages, cfg.Duration has passed or
// ctx is done, then waits for every outstanding token. With a rate, device i's k-th
// message is due at start + i/rate + k*devices/rate, so the total rate holds on average.
func (g *loadGen) Run(ctx context.Context) loadResult {
	cfg := g.cfg
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	res := loadResult{Devices: make([]deviceResult, len(g.clients))}
	var firstPub atomic.Int64
	var lastAck atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range g.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Devices[i] = runDevice(ctx, cfg, i, cl, start, &firstPub, &lastAck)
		}()
	}
	wg.Wait()
	res.Start = time.Unix(0, firstPub.Load())
	res.End = time.Unix(0, lastAck.Load())
	for _, d := range res.Devices {
		res.Published += d.Published
		res.Failed += int64(len(d.Failed))
	}
	res.Acked = res.Published - res.Failed
	return res
}

type pending struct {
	seq      int64
	deadline time.Time
	tok      paho.Token
}

func runDevice(ctx context.Context, cfg loadConfig, i int, cl paho.Client, start time.Time, firstPub, lastAck *atomic.Int64) deviceResult {
	id := cfg.deviceID(i)
	topic := deviceTopic(id)
	dr := deviceResult{ID: id}
	var interval, offset time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Devices) / cfg.Rate)
		offset = time.Duration(float64(time.Second) * float64(i) / cfg.Rate)
	}

	// Publishes are pipelined: an acker waits for the tokens in order while the
	// publisher goes on, with at most cfg.Inflight tokens queued.
	tokens := make(chan pending, cfg.Inflight)
	var failed map[int64]bool
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for p := range tokens {
			// The deadline runs from the publish, so after a connection loss the queued
			// tokens all give up within AckTimeout rather than one after another.
			if !p.tok.WaitTimeout(max(time.Until(p.deadline), time.Millisecond)) || p.tok.Error() != nil {
				if failed == nil {
					failed = map[int64]bool{}
				}
				failed[p.seq] = true
			}
			storeMax(lastAck, time.Now().UnixNano())
		}
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var seq int64
	for cfg.Messages == 0 || seq < cfg.Messages {
		if interval > 0 {
			due := start.Add(offset + time.Duration(seq)*interval)
			if wait := time.Until(due); wait > 0 {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		seq++
		now := time.Now().UnixNano()
		firstPub.CompareAndSwap(0, now)
		storeMin(firstPub, now)
		tok := cl.Publish(topic, cfg.QoS, false, devicePayload(id, seq, now))
		tokens <- pending{seq, time.Unix(0, now).Add(cfg.AckTimeout), tok} // blocks while cfg.Inflight tokens are outstanding
	}
	close(tokens)
	<-ackDone
	dr.Published = seq
	dr.Failed = failed
	return dr
}

func storeMax(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x <= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}

func storeMin(v *atomic.Int64, x int64) {
	for {
		old := v.Load()
		if x >= old || v.CompareAndSwap(old, x) {
			return
		}
	}
}
