package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/uplink"
)

// forwarder moves one uplink's queue to its sender: Next → Send → classify
// → Ack, retrying a failed batch with backoff until it is delivered. It holds
// one batch at a time, so events leave in buffer order.
type forwarder struct {
	cfg        uplink.Config
	sender     uplink.Sender
	log        *slog.Logger
	queue      *buffer.Queue
	deadLetter *buffer.Queue
	buf        *buffer.Buffer

	stop     chan struct{}
	stopOnce sync.Once

	up         atomic.Bool // last send succeeded (or none failed yet)
	delivered  *metrics.Counter
	failures   *metrics.Counter
	deadLetted *metrics.Counter
}

func newForwarder(cfg uplink.Config, sender uplink.Sender, log *slog.Logger, set *metrics.Set) *forwarder {
	f := &forwarder{
		cfg:        cfg,
		sender:     sender,
		log:        log.With("component", "forwarder", "uplink", cfg.Name),
		stop:       make(chan struct{}),
		delivered:  set.NewCounter(fmt.Sprintf(`edgegate_forward_events_delivered_total{uplink=%q}`, cfg.Name)),
		failures:   set.NewCounter(fmt.Sprintf(`edgegate_forward_send_failures_total{uplink=%q}`, cfg.Name)),
		deadLetted: set.NewCounter(fmt.Sprintf(`edgegate_forward_events_dead_lettered_total{uplink=%q}`, cfg.Name)),
	}
	f.up.Store(true)
	set.NewGauge(fmt.Sprintf(`edgegate_uplink_up{uplink=%q}`, cfg.Name), func() float64 {
		if f.up.Load() {
			return 1
		}
		return 0
	})
	return f
}

// stopFetching makes run return after the batch in hand is delivered (or
// abandoned when run's ctx is cancelled).
func (f *forwarder) stopFetching() { f.stopOnce.Do(func() { close(f.stop) }) }

// run forwards until stopFetching is called or ctx is cancelled. ctx bounds
// in-flight sends. It returns an error only when the buffer fails.
func (f *forwarder) run(ctx context.Context) error {
	fetchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-f.stop:
			cancel()
		case <-fetchCtx.Done():
		}
	}()

	backoff := uplink.NewBackoff(f.cfg.Retry, nil)
	for {
		batch, err := f.queue.Next(fetchCtx, f.cfg.Batch.MaxEvents, f.cfg.Batch.MaxBytes)
		if err != nil {
			if fetchCtx.Err() != nil {
				return nil
			}
			return fmt.Errorf("uplink %s: read buffer: %w", f.cfg.Name, err)
		}
		n := len(batch.Records())
		if err := f.deliver(ctx, fetchCtx, batch, backoff); err != nil {
			batch.Nack()
			if fetchCtx.Err() != nil {
				return nil
			}
			return err
		}
		// batch.linger: after a batch that was not full, let the next one
		// fill for a while instead of sending many small requests.
		if linger := f.cfg.Batch.Linger; linger > 0 && n < f.cfg.Batch.MaxEvents {
			select {
			case <-time.After(linger):
			case <-fetchCtx.Done():
				return nil
			}
		}
	}
}

// deliver sends one batch until it is accepted or dead-lettered. A failed
// batch is retried whole, so a receiver may see an event twice, always with
// the same id.
func (f *forwarder) deliver(ctx, fetchCtx context.Context, batch *buffer.Batch, backoff *uplink.Backoff) error {
	records := batch.Records()
	for attempt := 1; ; attempt++ {
		err := f.sender.Send(ctx, records)
		if err == nil {
			if !f.up.Swap(true) {
				f.log.Info("uplink recovered: delivering buffered events", "attempts", attempt)
			}
			backoff.Reset()
			f.delivered.Add(len(records))
			return batch.Ack()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.failures.Inc()
		retryable, retryAfter := uplink.Classify(err)
		if !retryable {
			dlErr := f.toDeadLetter(ctx, batch, err)
			if !errors.Is(dlErr, buffer.ErrFull) {
				return dlErr
			}
			f.log.Error("uplink refused events and the buffer has no room to dead-letter them: retrying", "err", err)
		}
		wait := backoff.Next()
		if retryAfter > wait {
			wait = retryAfter
		}
		if f.up.Swap(false) {
			f.log.Warn("uplink unavailable: events wait in the buffer and are retried with backoff",
				"err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			f.log.Debug("send failed", "err", err, "attempt", attempt, "retry_in", wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-fetchCtx.Done():
			timer.Stop()
			return fetchCtx.Err()
		}
	}
}

// toDeadLetter moves a batch the endpoint refused for good into the uplink's
// dead-letter queue in the buffer, so it neither blocks the events behind it
// nor disappears.
func (f *forwarder) toDeadLetter(ctx context.Context, batch *buffer.Batch, cause error) error {
	records := batch.Records()
	recs := make([]buffer.Record, len(records))
	for i, r := range records {
		recs[i] = buffer.Record{Queue: deadLetterName(f.cfg.Name), Data: r}
	}
	if err := f.buf.Append(ctx, recs, true); err != nil {
		return fmt.Errorf("uplink %s: dead-letter: %w", f.cfg.Name, err)
	}
	f.deadLetted.Add(len(records))
	f.log.Error("uplink refused events permanently: moved to the dead-letter queue",
		"err", cause, "events", len(records), "queue", deadLetterName(f.cfg.Name))
	return batch.Ack()
}
