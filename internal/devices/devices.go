package devices

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgegate/edgegate/internal/pahoclient"
)

// Payload returns the payload of a device's message seq (from 1) published
// at now. The slice must be fresh: paho keeps it.
type Payload func(seq int64, now time.Time) []byte

// Config describes a fleet and its load.
type Config struct {
	Broker         string // MQTT broker URL: tcp://, ssl://, ws://
	Devices        int    // one paho client each
	IDPrefix       string // device ids are IDPrefix001, IDPrefix002, …
	ClientIDPrefix string // MQTT client id: ClientIDPrefix + device id
	Topic          string // topic template; {device} is the device id
	Username       string
	Password       string
	// PerDeviceUser makes each device log in with its client id as user
	// name (and Password), instead of Username.
	PerDeviceUser bool
	CleanSession  bool
	// Reconnect reconnects a device after a lost connection (at most 5 s
	// apart) instead of leaving it disconnected.
	Reconnect      bool
	KeepAlive      time.Duration // 0: 30 s
	ConnectTimeout time.Duration // 0: 10 s
	// AckTimeout bounds the wait for each acknowledgement from its publish,
	// and each write; 0: 30 s.
	AckTimeout time.Duration
	QoS        byte
	Inflight   int           // publishes awaiting their acknowledgement per device; < 1: 1
	Rate       float64       // total messages/s across devices; 0: as fast as possible
	Messages   int64         // per device; 0: until Duration or ctx ends
	Duration   time.Duration // 0: until Messages are sent or ctx ends
	// Payload returns the payload generator of device i (0-based) with
	// the given id; each generator is used by one goroutine.
	Payload func(i int, id string) Payload
}

// DeviceID returns the id of device i (0-based): IDPrefix and the 1-based
// number, at least 3 digits.
func (c Config) DeviceID(i int) string { return fmt.Sprintf("%s%03d", c.IDPrefix, i+1) }

// TopicFor returns the topic device id publishes to.
func (c Config) TopicFor(id string) string { return strings.ReplaceAll(c.Topic, "{device}", id) }

func (c *Config) applyDefaults() {
	if c.Inflight < 1 {
		c.Inflight = 1
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 30 * time.Second
	}
}

// clientOptions returns the paho options of device id: the one place they
// are built.
func (c Config) clientOptions(id string) *paho.ClientOptions {
	user := c.Username
	if c.PerDeviceUser {
		user = c.ClientIDPrefix + id
	}
	return paho.NewClientOptions().
		AddBroker(c.Broker).
		SetClientID(c.ClientIDPrefix + id).
		SetUsername(user).
		SetPassword(c.Password).
		SetCleanSession(c.CleanSession).
		SetConnectTimeout(c.ConnectTimeout).
		SetWriteTimeout(c.AckTimeout).
		SetKeepAlive(c.KeepAlive).
		SetAutoReconnect(c.Reconnect).
		SetMaxReconnectInterval(5 * time.Second)
}

// Counts are a fleet's running totals.
type Counts struct {
	Sent   int64 // Publish called
	Acked  int64 // token completed without error (QoS 0: written)
	Failed int64 // token failed or not completed within AckTimeout
}

// DeviceResult is what one device published: seqs 1 to Published; Failed
// holds those whose token failed or timed out (the broker may or may not
// have them).
type DeviceResult struct {
	ID        string
	Published int64
	Failed    map[int64]bool
}

// Result is the outcome of Run.
type Result struct {
	Start   time.Time // first publish
	End     time.Time // last token resolved
	Counts            // totals
	Devices []DeviceResult
}

// Fleet is a set of connected devices.
type Fleet struct {
	cfg       Config
	clients   []paho.Client
	closeOnce sync.Once

	sent, acked, failed atomic.Int64
}

// Connect connects every device, at most 16 at a time, each within
// ConnectTimeout (and a second). On error it disconnects those that did
// connect and returns every device's error.
func Connect(ctx context.Context, cfg Config) (*Fleet, error) {
	cfg.applyDefaults()
	f := &Fleet{cfg: cfg, clients: make([]paho.Client, cfg.Devices)}
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
			f.clients[i], errs[i] = f.connect(cfg.DeviceID(i))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *Fleet) connect(id string) (paho.Client, error) {
	cl := pahoclient.New(f.cfg.clientOptions(id))
	tok := cl.Connect()
	if !tok.WaitTimeout(f.cfg.ConnectTimeout + time.Second) {
		cl.Disconnect(0)
		return nil, fmt.Errorf("connect %s to %s: timeout", id, f.cfg.Broker)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", id, f.cfg.Broker, err)
	}
	return cl, nil
}

// Len returns the number of devices.
func (f *Fleet) Len() int { return len(f.clients) }

// Progress returns the totals so far; safe while Run is active.
func (f *Fleet) Progress() Counts {
	return Counts{Sent: f.sent.Load(), Acked: f.acked.Load(), Failed: f.failed.Load()}
}

// Close disconnects every device, in parallel, each waiting at most 250 ms.
// Calls after the first do nothing.
func (f *Fleet) Close() {
	f.closeOnce.Do(func() {
		var wg sync.WaitGroup
		for _, cl := range f.clients {
			if cl == nil {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); cl.Disconnect(250) }()
		}
		wg.Wait()
	})
}

// Run publishes until every device has sent Messages, Duration has passed or
// ctx is done, then waits for the outstanding acknowledgements, each at most
// AckTimeout from its publish. With a rate, device i's k-th message is due
// at start + i/rate + k·devices/rate, so the total rate holds on average even
// when one sleep overshoots.
func (f *Fleet) Run(ctx context.Context) Result {
	if f.cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.cfg.Duration)
		defer cancel()
	}
	res := Result{Devices: make([]DeviceResult, len(f.clients))}
	var firstPub, lastAck atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range f.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := device{f: f, i: i, cl: cl, firstPub: &firstPub, lastAck: &lastAck}
			res.Devices[i] = d.run(ctx, start)
		}()
	}
	wg.Wait()
	res.Start = time.Unix(0, firstPub.Load())
	res.End = time.Unix(0, lastAck.Load())
	res.Counts = f.Progress()
	return res
}

// device is one device's run.
type device struct {
	f                 *Fleet
	i                 int
	cl                paho.Client
	firstPub, lastAck *atomic.Int64 // unix ns, across the fleet
}

type pending struct {
	seq      int64
	deadline time.Time
	tok      paho.Token
}

// run publishes on the device's schedule. Publishes are pipelined: an acker
// waits for the tokens in order while the publisher goes on, with at most
// Inflight tokens queued.
func (d device) run(ctx context.Context, start time.Time) DeviceResult {
	cfg := d.f.cfg
	id := cfg.DeviceID(d.i)
	topic := cfg.TopicFor(id)
	payload := cfg.Payload(d.i, id)
	var interval, offset time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(cfg.Devices) / cfg.Rate)
		offset = time.Duration(float64(time.Second) * float64(d.i) / cfg.Rate) // spread the devices out
	}

	tokens := make(chan pending, cfg.Inflight)
	var failed map[int64]bool
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		for p := range tokens {
			failed = d.await(p, failed)
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
		now := time.Now()
		d.firstPub.CompareAndSwap(0, now.UnixNano())
		storeMin(d.firstPub, now.UnixNano())
		tok := d.cl.Publish(topic, cfg.QoS, false, payload(seq, now))
		d.f.sent.Add(1)
		tokens <- pending{seq, now.Add(cfg.AckTimeout), tok} // blocks while Inflight tokens are queued
	}
	close(tokens)
	<-ackDone
	return DeviceResult{ID: id, Published: seq, Failed: failed}
}

// await waits for one token until its deadline. The deadline runs from the
// publish, so after a connection loss the queued tokens all give up within
// AckTimeout rather than one after another.
func (d device) await(p pending, failed map[int64]bool) map[int64]bool {
	if p.tok.WaitTimeout(max(time.Until(p.deadline), time.Millisecond)) && p.tok.Error() == nil {
		d.f.acked.Add(1)
	} else {
		d.f.failed.Add(1)
		if failed == nil {
			failed = map[int64]bool{}
		}
		failed[p.seq] = true
	}
	storeMax(d.lastAck, time.Now().UnixNano())
	return failed
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
