package buffer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Intervals of the background work; tests shorten them.
const (
	gcEvery   = time.Minute
	diskEvery = time.Second
	// expireBatch bounds the records one expiry pass deletes at once.
	expireBatch = 10000
)

// sweepEvery is how often expired records are looked for: a tenth of
// max_age, between 1s and 1m.
func (b *Buffer) sweepEvery() time.Duration {
	return min(max(b.cfg.MaxAge/10, time.Second), time.Minute)
}

// every calls fn every d until ctx is done: the shape of the buffer's
// background loops, all started and awaited by Run.
func every(ctx context.Context, d time.Duration, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// sweep removes expired records, logging a failure.
func (b *Buffer) sweep(ctx context.Context) {
	if _, err := b.sweepExpired(ctx); err != nil {
		b.log.Error("remove expired records", "err", err)
	}
}

// sweepExpired removes the records older than max_age and returns how many.
func (b *Buffer) sweepExpired(ctx context.Context) (int, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return 0, ErrClosed
	}
	now := b.now()
	cutoff := now.Add(-b.cfg.MaxAge).UnixNano()
	retainCutoff := now.Add(-b.cfg.Retain).UnixNano() // retain 0: a history left from before goes
	total := 0
	for ctx.Err() == nil {
		b.mu.Lock()
		keys, lost, more, err := b.selectExpiredLocked(cutoff, retainCutoff, expireBatch)
		b.mu.Unlock()
		if derr := b.deleteKeys(keys); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete expired records: %w", derr))
		}
		total += lost
		if err != nil || !more {
			if total > 0 {
				b.log.Info("removed expired records", "records", total, "max_age", b.cfg.MaxAge.String())
			}
			return total, err
		}
	}
	return total, nil
}

// runGC rewrites value-log files until Badger finds nothing worth it.
func (b *Buffer) runGC(ctx context.Context) {
	for range 100 {
		if ctx.Err() != nil {
			return
		}
		err := b.db.RunValueLogGC(0.5)
		if err == nil {
			continue
		}
		if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
			b.log.Warn("value log gc", "err", err)
		}
		return
	}
}
