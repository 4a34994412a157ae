package buffer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// headCursor walks one queue's stored records from its oldest.
type headCursor struct {
	q    *Queue
	it   *badger.Iterator
	key  []byte
	seq  uint64
	t    int64 // append time, unix nanoseconds
	size int64
}

// openHeadsLocked opens a cursor on the oldest record of every non-empty
// queue. The caller closes the iterators and discards txn.
func (b *Buffer) openHeadsLocked(txn *badger.Txn) ([]*headCursor, error) {
	var heads []*headCursor
	for _, q := range b.qlist {
		start := q.seekStartLocked()
		if start >= q.tail {
			continue
		}
		h := &headCursor{q: q, it: txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(q.id)})}
		h.it.Seek(recKey(nil, q.id, start))
		ok, err := h.load()
		if !ok || err != nil {
			h.it.Close()
		}
		if err != nil {
			closeHeads(heads)
			return nil, err
		}
		if ok {
			heads = append(heads, h)
		}
	}
	return heads, nil
}

func closeHeads(heads []*headCursor) {
	for _, h := range heads {
		h.it.Close()
	}
}

// load positions h on the next stored record not being deleted by an Ack.
func (h *headCursor) load() (bool, error) {
	for ; h.it.Valid(); h.it.Next() {
		item := h.it.Item()
		_, seq, ok := parseRecKey(item.Key())
		if !ok {
			continue
		}
		if _, del := h.q.deleting[seq]; del {
			continue
		}
		if err := item.Value(func(v []byte) error {
			h.t, h.size = 0, 0
			if t, _, _, ok := splitVal(v); ok {
				h.t = t
				h.size = int64(len(v) - valHeadSize)
			}
			return nil
		}); err != nil {
			return false, fmt.Errorf("read queue %q: %w", h.q.name, err)
		}
		h.seq = seq
		h.key = item.KeyCopy(nil)
		return true, nil
	}
	return false, nil
}

// dropLocked removes h's record from the accounting and from any lease, and
// raises the queue's floor so nothing hands it out again. The caller deletes
// the key.
func (h *headCursor) dropLocked() {
	q := h.q
	delete(q.leased, h.seq)
	q.subtractLocked(h.size)
	q.floor = max(q.floor, h.seq+1)
}

// selectOldestLocked chooses the oldest stored records across all queues, by
// append time, until at least need bytes are freed, removes them from the
// accounting and returns their keys, which the caller must delete.
func (b *Buffer) selectOldestLocked(need int64, reason string) ([][]byte, error) {
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	heads, err := b.openHeadsLocked(txn)
	if err != nil {
		return nil, err
	}
	defer func() { closeHeads(heads) }()
	var keys [][]byte
	var freed int64
	for freed < need && len(heads) > 0 {
		bi := 0
		for i, h := range heads[1:] {
			if h.t < heads[bi].t {
				bi = i + 1
			}
		}
		h := heads[bi]
		h.dropLocked()
		keys = append(keys, h.key)
		freed += h.size
		h.it.Next()
		ok, lerr := h.load()
		if !ok || lerr != nil {
			h.it.Close()
			heads = append(heads[:bi], heads[bi+1:]...)
		}
		if lerr != nil {
			err = lerr
			break
		}
	}
	b.afterDropLocked(len(keys), reason)
	return keys, err
}

// selectExpiredLocked chooses up to limit records appended before cutoff,
// like selectOldestLocked. more says the limit was reached.
func (b *Buffer) selectExpiredLocked(cutoff int64, limit int) (keys [][]byte, more bool, err error) {
	txn := b.db.NewTransaction(false)
	defer txn.Discard()
	heads, err := b.openHeadsLocked(txn)
	if err != nil {
		return nil, false, err
	}
	defer closeHeads(heads)
	for _, h := range heads {
		for h.t < cutoff {
			if len(keys) >= limit {
				more = true
				break
			}
			h.dropLocked()
			keys = append(keys, h.key)
			h.it.Next()
			ok, lerr := h.load()
			if lerr != nil {
				err = lerr
			}
			if !ok {
				break
			}
		}
		if more || err != nil {
			break
		}
	}
	b.afterDropLocked(len(keys), reasonExpired)
	return keys, more, err
}

func (b *Buffer) afterDropLocked(n int, reason string) {
	if n == 0 {
		return
	}
	for _, q := range b.qlist {
		q.updateGauges()
	}
	b.updateGaugesLocked()
	b.m.dropped(reason).Add(n)
}

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

func (b *Buffer) sweepLoop(ctx context.Context) {
	t := time.NewTicker(b.sweepEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := b.sweepExpired(ctx); err != nil {
				b.log.Error("remove expired records", "err", err)
			}
		}
	}
}

// sweepExpired removes the records older than max_age and returns how many.
func (b *Buffer) sweepExpired(ctx context.Context) (int, error) {
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return 0, ErrClosed
	}
	cutoff := b.now().Add(-b.cfg.MaxAge).UnixNano()
	total := 0
	for ctx.Err() == nil {
		b.mu.Lock()
		keys, more, err := b.selectExpiredLocked(cutoff, expireBatch)
		b.mu.Unlock()
		if derr := b.deleteKeys(keys); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete expired records: %w", derr))
		}
		total += len(keys)
		if err != nil || !more {
			if total > 0 {
				b.log.Info("removed expired records", "records", total, "max_age", b.cfg.MaxAge.String())
			}
			return total, err
		}
	}
	return total, nil
}

func (b *Buffer) gcLoop(ctx context.Context) {
	t := time.NewTicker(gcEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.runGC(ctx)
		}
	}
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

func (b *Buffer) diskLoop(ctx context.Context) {
	t := time.NewTicker(diskEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.checkDisk(ctx)
		}
	}
}

// checkDisk reads the free space of Dir and trips or resets the disk guard,
// logging once on entering and once on leaving the low state. While tripped
// under drop_oldest, it drops 2% of the stored bytes (at least 1 MiB) per
// call and runs value-log GC, so that compaction can give space back. ctx is
// nil when called from Open.
func (b *Buffer) checkDisk(ctx context.Context) {
	free, err := b.diskFree(b.cfg.Dir)
	if err != nil {
		if !b.diskErr.Swap(true) {
			b.log.Warn("cannot read free disk space", "dir", b.cfg.Dir, "err", err)
		}
		return
	}
	b.diskErr.Store(false)
	b.freeSeen.Store(free)
	b.m.diskFree.Set(float64(free))
	low := int64(b.cfg.MinFreeBytes)
	switch was := b.diskLow.Load(); {
	case !was && free < low:
		b.diskLow.Store(true)
		b.log.Warn("disk almost full: refusing appends", "dir", b.cfg.Dir, "free_bytes", free, "min_free_bytes", low)
	case was && free >= low+low/8:
		b.diskLow.Store(false)
		b.log.Info("disk space recovered: accepting appends", "dir", b.cfg.Dir, "free_bytes", free)
	}
	if ctx == nil || !b.diskLow.Load() || b.cfg.Overflow != DropOldest {
		return
	}
	b.mu.Lock()
	keys, err := b.selectOldestLocked(max(b.bytes/50, 1<<20), reasonDiskFull)
	b.mu.Unlock()
	if derr := b.deleteKeys(keys); derr != nil {
		err = errors.Join(err, derr)
	}
	if err != nil {
		b.log.Error("drop records to free disk", "err", err)
	}
	b.runGC(ctx)
}

// statfsFree returns the bytes available to unprivileged users on the file
// system holding dir.
func statfsFree(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil //nolint:unconvert // field types differ by platform
}
