package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/metricname"
)

// Batch is one batch of events for Deliver: the gateway's forwarder
// decodes the buffer's records once and hands them over with their
// append times (uplink does not import buffer).
type Batch interface {
	// Events returns the events, in buffer order. Deliver sets their
	// Replayed flag, and failure extensions on those it refuses.
	Events() []*cloudevent.Event
	// AppendedAt returns when event i entered the buffer.
	AppendedAt(i int) time.Time
}

// Delivery is the delivery loop of one uplink: it sends a batch until every
// record is either accepted by the Sender or refused for good. It owns
// what telegraf's RunningOutput owns beside the plugin: bisecting a refused
// batch to isolate the poison events, retries with backoff and jitter that
// honour Retry-After, the retry.max_attempts give-up, replay marking and
// replay.max_rate pacing, and the failure extensions on poison events.
//
// Events that waited out a failed send (or a restart: everything appended
// before NewDelivery) are marked replayed=true and, with replay.max_rate,
// paced.
//
// Deliver and Wait are not safe for concurrent use: one goroutine (the
// gateway's forwarder) drives a Delivery. Up and Health may be called from
// any goroutine.
type Delivery struct {
	name    string
	cfg     DeliveryConfig
	sender  Sender
	log     *slog.Logger
	backoff *backoff
	limiter *rate.Limiter // nil: replay at full speed

	// replayBefore: records appended before this instant waited out a
	// failure or a restart and are sent as replayed.
	replayBefore time.Time

	up        atomic.Bool // last send succeeded (or none failed yet)
	health    health
	delivered *metrics.Counter
	replayed  *metrics.Counter
	failures  *metrics.Counter
	latency   *metrics.PrometheusHistogram
}

// NewDelivery returns the delivery loop of the uplink cfg describes,
// sending with sender. It registers edgegate_forward_events_delivered_total,
// edgegate_forward_events_replayed_total, edgegate_forward_send_failures_total,
// edgegate_event_delivery_latency_seconds and edgegate_uplink_up {uplink} on
// set. A Delivery built again for the same uplink name (a changed uplink's
// next generation) continues the counters and the histogram and takes
// edgegate_uplink_up over. log may be nil (discard); set may be nil (a
// private set). It starts no goroutines.
func NewDelivery(cfg Config, sender Sender, log *slog.Logger, set *metrics.Set) *Delivery {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if set == nil {
		set = metrics.NewSet()
	}
	d := &Delivery{
		name:         cfg.Name,
		cfg:          cfg.DeliveryConfig,
		sender:       sender,
		log:          log,
		backoff:      newBackoff(cfg.Retry, nil),
		replayBefore: time.Now(),
		delivered:    set.GetOrCreateCounter(metricname.With("edgegate_forward_events_delivered_total", "uplink", cfg.Name)),
		replayed:     set.GetOrCreateCounter(metricname.With("edgegate_forward_events_replayed_total", "uplink", cfg.Name)),
		failures:     set.GetOrCreateCounter(metricname.With("edgegate_forward_send_failures_total", "uplink", cfg.Name)),
		latency:      set.GetOrCreatePrometheusHistogramExt(metricname.With("edgegate_event_delivery_latency_seconds", "uplink", cfg.Name), latencyBuckets()),
	}
	if r := cfg.Replay.MaxRate; r > 0 {
		d.limiter = rate.NewLimiter(rate.Limit(r), max(cfg.Batch.MaxEvents, int(r), 1))
	}
	d.up.Store(true)
	up := metricname.With("edgegate_uplink_up", "uplink", cfg.Name)
	set.UnregisterMetric(up) // the previous generation's, if any
	set.NewGauge(up, func() float64 {
		if d.up.Load() {
			return 1
		}
		return 0
	})
	return d
}

// Continue makes d the next generation of prev, the Delivery of the same
// uplink before its configuration changed: events prev would not have
// marked replayed (appended after its last failure) are not marked by d
// either, since a reload is not an outage. Call it before d's first
// Deliver and after prev's last Deliver has returned.
func (d *Delivery) Continue(prev *Delivery) { d.replayBefore = prev.replayBefore }

// Up reports whether the last send succeeded (true before any failed). It
// is safe for concurrent use.
func (d *Delivery) Up() bool { return d.up.Load() }

// Deliver sends batch until every event is delivered or refused for good,
// and returns the refused ones (the poison events, and those that used up
// retry.max_attempts) with the failure set as extension attributes, for
// the caller to dead-letter before it acks the batch. Events go in batch
// order, so they leave in order per source.
//
// ctx bounds the sends in flight; waits (backoff, replay pacing) also end
// when waitCtx is done, so a caller that stops fetching abandons a failing
// batch at once while a send in progress completes. err is non-nil only
// when one of them ended Deliver: the batch is then not delivered (nack it).
func (d *Delivery) Deliver(ctx, waitCtx context.Context, batch Batch) (dead []*cloudevent.Event, err error) {
	d.health.busy.Store(true)
	defer d.health.busy.Store(false)
	out := &outgoing{batch: batch, events: batch.Events()}
	b := newBisect(len(out.events))
	attempts := 0 // for the records pending
	for idx, ok := b.next(); ok; idx, ok = b.next() {
		if err := d.markReplayed(waitCtx, out, idx); err != nil {
			return nil, err
		}
		attempts++
		err := d.sender.Send(ctx, out.pick(idx))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		accepted, retry, retryAfter := b.result(err)
		d.delivered.Add(accepted)
		if err == nil {
			now := time.Now()
			d.observeLatency(out.batch, idx, now)
			d.health.succeeded(now)
			if !d.up.Swap(true) {
				d.log.Info("uplink recovered: delivering buffered events", "attempts", attempts)
			}
			d.backoff.reset()
			attempts = 0
			continue
		}
		d.failures.Inc()
		d.health.failed(time.Now(), err, retry)
		if !retry {
			attempts = 0 // a permanent failure: bisect splits or isolates
			continue
		}
		d.replayBefore = time.Now()
		if limit := d.cfg.Retry.MaxAttempts; limit > 0 && attempts >= limit {
			b.giveUp(&exhaustedError{attempts: attempts, err: err})
			attempts = 0
			continue
		}
		if err := d.waitRetry(waitCtx, err, attempts, retryAfter); err != nil {
			return nil, err
		}
	}
	return d.poisoned(out.events, b.poisoned()), nil
}

// observeLatency records, for each event at idx the uplink just
// acknowledged, how long it took from its append to the buffer to now. An
// append time in the future (the wall clock was set back) counts as 0.
func (d *Delivery) observeLatency(batch Batch, idx []int, now time.Time) {
	for _, i := range idx {
		d.latency.Update(max(now.Sub(batch.AppendedAt(i)).Seconds(), 0))
	}
}

// waitRetry waits before sending a range again after err, the attempts-th
// retryable failure: the next backoff delay, or the server's Retry-After
// when longer. The first failure after a success is logged once.
func (d *Delivery) waitRetry(ctx context.Context, err error, attempts int, retryAfter time.Duration) error {
	wait := max(d.backoff.next(), retryAfter)
	if d.up.Swap(false) {
		d.log.Warn("uplink unavailable: events wait in the buffer and are retried with backoff",
			"err", err, "retry_in", wait.Round(time.Millisecond))
	} else {
		d.log.Debug("send failed", "err", err, "attempt", attempts, "retry_in", wait)
	}
	return sleep(ctx, wait)
}

// Wait waits for the next backoff delay or until ctx is done, for a caller
// that retries its own step after Deliver (dead letters that found no room
// in the buffer). It returns ctx's error when ctx ended the wait.
func (d *Delivery) Wait(ctx context.Context) error { return sleep(ctx, d.backoff.next()) }

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// outgoing is the batch in hand: its events, each marked replayed at most
// once.
type outgoing struct {
	batch  Batch
	events []*cloudevent.Event
	marked []bool              // events already looked at for replay; nil: none
	picked []*cloudevent.Event // reused by pick
}

// pick returns the events at the batch indices idx (ascending): a subslice
// of events when they are consecutive, else a gathered copy.
func (o *outgoing) pick(idx []int) []*cloudevent.Event {
	if lo := idx[0]; idx[len(idx)-1]-lo == len(idx)-1 {
		return o.events[lo : lo+len(idx)]
	}
	o.picked = o.picked[:0]
	for _, i := range idx {
		o.picked = append(o.picked, o.events[i])
	}
	return o.picked
}

// markReplayed marks the events at idx that waited out a failure or a
// restart and were not marked before (the senders write replayed=true),
// and paces them when replay.max_rate is set. Each replayed event counts
// once in edgegate_forward_events_replayed_total and in the limiter,
// however often it is sent again.
func (d *Delivery) markReplayed(ctx context.Context, out *outgoing, idx []int) error {
	n := 0
	for _, i := range idx {
		if out.marked != nil && out.marked[i] || !out.batch.AppendedAt(i).Before(d.replayBefore) {
			continue
		}
		if out.marked == nil {
			out.marked = make([]bool, len(out.events))
		}
		out.marked[i] = true
		out.events[i].Replayed = true
		n++
	}
	if n == 0 {
		return nil
	}
	d.replayed.Add(n)
	if d.limiter != nil {
		return d.limiter.WaitN(ctx, min(n, d.limiter.Burst()))
	}
	return nil
}

// poisoned returns the refused events with their failure attached.
func (d *Delivery) poisoned(events []*cloudevent.Event, poison []poison) []*cloudevent.Event {
	if len(poison) == 0 {
		return nil
	}
	dead := make([]*cloudevent.Event, len(poison))
	for i, p := range poison {
		attempts := 1
		var ex *exhaustedError
		if errors.As(p.err, &ex) {
			attempts = ex.attempts
		}
		dead[i] = events[p.index]
		markFailed(dead[i], p.err, attempts, d.name)
	}
	dest := d.cfg.DeadLetter
	if dest == "" {
		dest = "local"
	}
	d.log.Error("uplink refused events: moving them to dead-letter",
		"err", poison[0].err, "events", len(dead), "dead_letter", dest)
	return dead
}

// exhaustedError is the failure of a range that used up retry.max_attempts.
type exhaustedError struct {
	attempts int
	err      error
}

func (e *exhaustedError) Error() string {
	return fmt.Sprintf("gave up after %d attempts: %v", e.attempts, e.err)
}

func (e *exhaustedError) Unwrap() error { return e.err }
