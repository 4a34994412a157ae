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
	"github.com/edgegate/edgegate/cloudevent"
	"github.com/edgegate/edgegate/internal/metricname"
	"github.com/edgegate/edgegate/internal/tail"
	"github.com/edgegate/edgegate/uplink"
)

// forwarder moves one uplink's queue to its sender: Next → Deliver →
// dead-letter → Ack. It holds one batch at a time, so events leave in
// buffer order (and in order per source across batches). uplink.Delivery
// owns what happens to a batch on the way (bisect, retries, replay
// marking); the forwarder owns the buffer side: fetching, moving refused
// events to the dead-letter queue, and acks.
type forwarder struct {
	cfg        uplink.Config
	sender     uplink.Sender
	delivery   *uplink.Delivery
	log        *slog.Logger
	queue      *buffer.Queue
	deadLetter string // queue that receives this uplink's dead letters
	buf        *buffer.Buffer

	stop     chan struct{}
	stopOnce sync.Once
	// While Run runs it (see forwarding.launch): done is closed when it
	// has returned, abandon cancels its in-flight send. nil otherwise.
	done    chan struct{}
	abandon context.CancelFunc

	tail *tail.Tail // hears of dead letters; nil: none
	// oldest is the append time (Unix ns) of the first record of the batch
	// in hand, the oldest this uplink has not delivered; 0 when no batch
	// is in hand.
	oldest atomic.Int64

	deadLetters *metrics.Counter
	ackFailures *metrics.Counter
}

func newForwarder(cfg uplink.Config, sender uplink.Sender, log *slog.Logger, set *metrics.Set) *forwarder {
	log = log.With("component", "forwarder", "uplink", cfg.Name)
	f := &forwarder{
		cfg:      cfg,
		sender:   sender,
		delivery: uplink.NewDelivery(cfg, sender, log, set),
		log:      log,
		stop:     make(chan struct{}),
		// A changed uplink's next generation continues the counters.
		deadLetters: set.GetOrCreateCounter(metricname.With("edgegate_forward_events_dead_lettered_total", "uplink", cfg.Name)),
		ackFailures: set.GetOrCreateCounter(metricname.With("edgegate_forward_ack_failures_total", "uplink", cfg.Name)),
	}
	oldest := metricname.With("edgegate_uplink_oldest_age_seconds", "uplink", cfg.Name)
	set.UnregisterMetric(oldest) // the previous generation's, if any
	set.NewGauge(oldest, func() float64 { return f.oldestAge(time.Now()) })
	return f
}

// oldestAge is how long, at now, the oldest event not yet delivered has
// waited: 0 when no batch is in hand.
func (f *forwarder) oldestAge(now time.Time) float64 {
	t := f.oldest.Load()
	if t == 0 {
		return 0
	}
	return max(0, now.Sub(time.Unix(0, t)).Seconds())
}

// attach opens the uplink's queue and dead-letter queue in buf: run reads
// the one and appends to the other.
func (f *forwarder) attach(buf *buffer.Buffer) error {
	var err error
	if f.queue, err = buf.Queue(queueName(f.cfg.Name)); err != nil {
		return fmt.Errorf("buffer queue for uplink %s: %w", f.cfg.Name, err)
	}
	if _, err = buf.Queue(f.deadLetter); err != nil {
		return fmt.Errorf("dead-letter queue for uplink %s: %w", f.cfg.Name, err)
	}
	f.buf = buf
	return nil
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

	for {
		batch, err := f.queue.Next(fetchCtx, f.cfg.Batch.MaxEvents, int(f.cfg.Batch.MaxBytes))
		if err != nil {
			if fetchCtx.Err() != nil {
				return nil
			}
			if errors.Is(err, buffer.ErrDamaged) {
				// The buffer said so (log, metric, readiness) and refuses
				// new events; exiting would only restart into the same
				// damage. Wait for the operator's repair.
				<-fetchCtx.Done()
				return nil
			}
			return fmt.Errorf("uplink %s: read buffer: %w", f.cfg.Name, err)
		}
		n := len(batch.Records())
		if n > 0 {
			f.oldest.Store(batch.AppendedAt(0).UnixNano())
		}
		events, bad := decodeBatch(batch)
		dead, err := f.delivery.Deliver(ctx, fetchCtx, events)
		if err == nil && len(dead)+len(bad) > 0 {
			err = f.toDeadLetter(ctx, fetchCtx, dead, bad)
		}
		if err != nil {
			batch.Nack()
			if fetchCtx.Err() != nil {
				return nil
			}
			return err
		}
		events.forget(dead) // only what was delivered joins the retained history
		acks <- batch
		f.oldest.Store(0)
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

// toDeadLetter appends the events Deliver refused (with the failure as
// extension attributes), and the records that did not decode (as they
// are), to the dead-letter queue (this uplink's own in the buffer, or
// another uplink's), so they neither block the events behind them nor
// disappear. When the buffer is full it keeps the batch leased and tries
// again with backoff until fetchCtx is done: nothing is lost.
func (f *forwarder) toDeadLetter(ctx, fetchCtx context.Context, dead []*cloudevent.Event, bad [][]byte) error {
	recs := make([]buffer.Record, 0, len(dead)+len(bad))
	for _, e := range dead {
		recs = append(recs, buffer.Record{Queue: f.deadLetter, Data: cloudevent.Encode(e)})
	}
	if len(bad) > 0 {
		f.log.Error("records that are not events: moving them to dead-letter", "records", len(bad))
		for _, r := range bad {
			recs = append(recs, buffer.Record{Queue: f.deadLetter, Data: r})
		}
	}
	for {
		err := f.buf.Append(ctx, recs, true)
		if err == nil {
			f.deadLetters.Add(len(recs))
			if f.tail != nil {
				f.tail.Add(recs, time.Now())
			}
			return nil
		}
		if !errors.Is(err, buffer.ErrFull) {
			return fmt.Errorf("uplink %s: dead-letter %d events: %w", f.cfg.Name, len(recs), err)
		}
		f.log.Error("no room in the buffer for dead letters: retrying", "err", err)
		if err := f.delivery.Wait(fetchCtx); err != nil {
			return err
		}
	}
}

// events is a fetched batch decoded once: what Delivery sends.
type events struct {
	batch  *buffer.Batch
	events []*cloudevent.Event
	index  []int // index[i]: the record events[i] was decoded from; nil: all decoded
	bad    []int // the records that did not decode
}

// forget keeps the records that were not delivered (dead, and those that
// did not decode) out of the buffer's retained history.
func (e *events) forget(dead []*cloudevent.Event) {
	for _, i := range e.bad {
		e.batch.Forget(i)
	}
	for _, d := range dead {
		for i, ev := range e.events {
			if ev == d {
				if e.index != nil {
					i = e.index[i]
				}
				e.batch.Forget(i)
				break
			}
		}
	}
}

func (e *events) Events() []*cloudevent.Event { return e.events }

func (e *events) AppendedAt(i int) time.Time {
	if e.index != nil {
		i = e.index[i]
	}
	return e.batch.AppendedAt(i)
}

// decodeBatch decodes the batch's records. A record that does not decode
// can never be sent: it comes back in bad, as it is, for the dead-letter
// queue.
func decodeBatch(b *buffer.Batch) (ev *events, bad [][]byte) {
	records := b.Records()
	all := make([]cloudevent.Event, len(records))
	ev = &events{batch: b, events: make([]*cloudevent.Event, 0, len(records))}
	for i, r := range records {
		if err := cloudevent.Decode(r, &all[i]); err != nil {
			if ev.index == nil {
				ev.index = make([]int, len(ev.events), len(records))
				for j := range ev.index {
					ev.index[j] = j
				}
			}
			bad = append(bad, r)
			ev.bad = append(ev.bad, i)
			continue
		}
		ev.events = append(ev.events, &all[i])
		if ev.index != nil {
			ev.index = append(ev.index, i)
		}
	}
	return ev, bad
}
