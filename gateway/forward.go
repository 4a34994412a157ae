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
	"golang.org/x/time/rate"

	"github.com/edgegate/edgegate/buffer"
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/uplink"
)

// forwarder moves one uplink's queue to its sender: Next → Send → classify
// → Ack. It holds one batch at a time, so events leave in buffer order (and
// in order per source across batches).
//
// A batch is retried with backoff until it is delivered. Events the
// endpoint refuses for good are isolated by bisecting the batch and moved to
// the dead-letter queue with the failure as extension attributes; so are
// events that exhaust retry.max_attempts. Events that waited out an outage
// (or a restart) are marked replayed=true and, with replay.max_rate, paced.
type forwarder struct {
	cfg        uplink.Config
	sender     uplink.Sender
	log        *slog.Logger
	queue      *buffer.Queue
	deadLetter string // queue that receives this uplink's dead letters
	buf        *buffer.Buffer
	limiter    *rate.Limiter // nil: replay at full speed

	// replayBefore: records appended before this instant (Unix ns) waited
	// out a failure or a restart and are sent as replayed.
	replayBefore atomic.Int64

	stop     chan struct{}
	stopOnce sync.Once

	up          atomic.Bool // last send succeeded (or none failed yet)
	delivered   *metrics.Counter
	replayed    *metrics.Counter
	failures    *metrics.Counter
	deadLetters *metrics.Counter
	ackFailures *metrics.Counter
}

func newForwarder(cfg uplink.Config, sender uplink.Sender, log *slog.Logger, set *metrics.Set) *forwarder {
	f := &forwarder{
		cfg:         cfg,
		sender:      sender,
		log:         log.With("component", "forwarder", "uplink", cfg.Name),
		stop:        make(chan struct{}),
		delivered:   set.NewCounter(fmt.Sprintf(`edgegate_forward_events_delivered_total{uplink=%q}`, cfg.Name)),
		replayed:    set.NewCounter(fmt.Sprintf(`edgegate_forward_events_replayed_total{uplink=%q}`, cfg.Name)),
		failures:    set.NewCounter(fmt.Sprintf(`edgegate_forward_send_failures_total{uplink=%q}`, cfg.Name)),
		deadLetters: set.NewCounter(fmt.Sprintf(`edgegate_forward_events_dead_lettered_total{uplink=%q}`, cfg.Name)),
		ackFailures: set.NewCounter(fmt.Sprintf(`edgegate_forward_ack_failures_total{uplink=%q}`, cfg.Name)),
	}
	if cfg.Replay.MaxRate > 0 {
		f.limiter = rate.NewLimiter(rate.Limit(cfg.Replay.MaxRate), max(cfg.Batch.MaxEvents, int(cfg.Replay.MaxRate), 1))
	}
	f.replayBefore.Store(time.Now().UnixNano())
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

	// Acks (deletes, fsync'd by Badger) run beside the loop, so the next
	// batch goes out without waiting for the disk; a lost ack only means a
	// redelivery with the same ids.
	acks := make(chan *buffer.Batch, 16)
	acked := make(chan struct{})
	go func() {
		defer close(acked)
		for b := range acks {
			if err := b.Ack(); err != nil {
				f.ackFailures.Inc()
				f.log.Error("delivered events not removed from the buffer: they will be sent again after a restart", "err", err)
			}
		}
	}()
	defer func() { close(acks); <-acked }()

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
		acks <- batch
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

// deliver sends one batch until every record is delivered or
// dead-lettered; the caller acks it. A failed range is retried whole, so a
// receiver may see an event twice, always with the same id.
func (f *forwarder) deliver(ctx, fetchCtx context.Context, batch *buffer.Batch, backoff *uplink.Backoff) error {
	stored := jsonRecords(batch.Records())
	records, err := f.markReplayed(fetchCtx, batch, stored)
	if err != nil {
		return err
	}
	bisect := uplink.NewBisect(len(records))
	attempts := 0 // for the current range
	for lo, hi, ok := bisect.Next(); ok; lo, hi, ok = bisect.Next() {
		attempts++
		err := f.sender.Send(ctx, records[lo:hi])
		if ctx.Err() != nil {
			return ctx.Err()
		}
		retry, retryAfter := bisect.Result(err)
		if err == nil {
			f.delivered.Add(hi - lo)
			if !f.up.Swap(true) {
				f.log.Info("uplink recovered: delivering buffered events", "attempts", attempts)
			}
			backoff.Reset()
			attempts = 0
			continue
		}
		f.failures.Inc()
		if !retry {
			attempts = 0 // a permanent failure: Bisect splits or isolates
			continue
		}
		f.replayBefore.Store(time.Now().UnixNano())
		if limit := f.cfg.Retry.MaxAttempts; limit > 0 && attempts >= limit {
			bisect.GiveUp(&exhaustedError{attempts: attempts, err: err})
			attempts = 0
			continue
		}
		wait := max(backoff.Next(), retryAfter)
		if f.up.Swap(false) {
			f.log.Warn("uplink unavailable: events wait in the buffer and are retried with backoff",
				"err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			f.log.Debug("send failed", "err", err, "attempt", attempts, "retry_in", wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-fetchCtx.Done():
			timer.Stop()
			return fetchCtx.Err()
		}
		// The batch has now waited out a failure: send it as replayed.
		if records, err = f.markReplayed(fetchCtx, batch, stored); err != nil {
			return err
		}
	}
	if poison := bisect.Poisoned(); len(poison) > 0 {
		for {
			err := f.toDeadLetter(ctx, records, poison)
			if err == nil {
				break
			}
			if !errors.Is(err, buffer.ErrFull) {
				return err
			}
			// No room to move them: keep them leased and try again; the
			// forwarder goes on holding this batch, nothing is lost.
			f.log.Error("no room in the buffer for dead letters: retrying", "err", err)
			select {
			case <-time.After(backoff.Next()):
			case <-fetchCtx.Done():
				return fetchCtx.Err()
			}
		}
	}
	return nil
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

// jsonRecords writes the batch's records in the CloudEvents JSON format the
// senders take. (For now: the senders will take decoded records.) A record
// that does not decode goes as it is, and the sender reports it as
// malformed.
func jsonRecords(stored [][]byte) [][]byte {
	out := make([][]byte, len(stored))
	buf := make([]byte, 0, 400*len(stored))
	var e cloudevent.Event
	for i, r := range stored {
		if err := cloudevent.Decode(r, &e); err != nil {
			out[i] = r
			continue
		}
		start := len(buf)
		buf = cloudevent.AppendJSON(buf, &e)
		out[i] = buf[start:len(buf):len(buf)]
	}
	return out
}

// markReplayed returns the batch's records (in JSON), with replayed=true
// set on those that waited out a failure or a restart, and paces them when
// replay.max_rate is set.
func (f *forwarder) markReplayed(ctx context.Context, batch *buffer.Batch, records [][]byte) ([][]byte, error) {
	before := f.replayBefore.Load()
	var out [][]byte
	n := 0
	for i, r := range records {
		if batch.AppendedAt(i).UnixNano() >= before {
			continue
		}
		if out == nil {
			out = append([][]byte(nil), records...)
		}
		marked, err := uplink.SetExtensions(r, map[string]any{uplink.ExtReplayed: true})
		if err != nil {
			continue // not a JSON object: the sender reports it as poison
		}
		out[i] = marked
		n++
	}
	if n == 0 {
		return records, nil
	}
	f.replayed.Add(n)
	if f.limiter != nil {
		if err := f.limiter.WaitN(ctx, min(n, f.limiter.Burst())); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// toDeadLetter appends refused records, with the failure as extension
// attributes, to the dead-letter queue (this uplink's own in the buffer, or
// another uplink's), so they neither block the events behind them nor
// disappear.
func (f *forwarder) toDeadLetter(ctx context.Context, records [][]byte, poison []uplink.Poison) error {
	recs := make([]buffer.Record, 0, len(poison))
	for _, p := range poison {
		attempts := 1
		var ex *exhaustedError
		if errors.As(p.Err, &ex) {
			attempts = ex.attempts
		}
		data, err := uplink.SetExtensions(records[p.Index], uplink.FailureExtensions(p.Err, attempts, f.cfg.Name))
		if err != nil {
			data = records[p.Index] // keep the event as it was rather than lose it
		}
		recs = append(recs, buffer.Record{Queue: f.deadLetter, Data: data})
	}
	if err := f.buf.Append(ctx, recs, true); err != nil {
		return fmt.Errorf("uplink %s: dead-letter %d events: %w", f.cfg.Name, len(recs), err)
	}
	f.deadLetters.Add(len(recs))
	f.log.Error("uplink refused events: moved to dead-letter",
		"err", poison[0].Err, "events", len(recs), "queue", f.deadLetter)
	return nil
}
