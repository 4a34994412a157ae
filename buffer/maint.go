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

// checkDisk reads the free space of Dir and trips or resets the disk guard,
// logging once on entering and once on leaving the low state. Under
// drop_oldest, entering the low state also lowers the buffer's capacity to
// 90% of what it holds and drops the oldest records down to it, once: from
// then on new records displace old ones within what the disk can hold
// (deleted records free their space when compaction runs; dropping more
// would not free it sooner). The capacity returns to max_bytes once free
// space is back above four times min_free_bytes. ctx is nil when called
// from Open or the committer: the drop is then left to the periodic check.
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
	b.sinceCheck.Store(0)
	b.m.diskFree.Set(float64(free))
	low := int64(b.cfg.MinFreeBytes)
	switch was := b.diskLow.Load(); {
	case !was && free < low:
		if b.diskLow.CompareAndSwap(false, true) {
			b.shrinkDue.Store(b.cfg.Overflow == DropOldest)
			b.log.Warn("disk almost full: refusing appends", "dir", b.cfg.Dir, "free_bytes", free, "min_free_bytes", low)
		}
	case was && free >= low+low/8:
		if b.diskLow.CompareAndSwap(true, false) {
			b.log.Info("disk space recovered: accepting appends", "dir", b.cfg.Dir, "free_bytes", free,
				"capacity_bytes", b.capacity())
		}
	}
	if free > 4*low && b.shrunk.Swap(0) != 0 {
		b.log.Info("disk has room again: buffer capacity back to max_bytes", "max_bytes", b.cfg.MaxBytes.String())
	}
	if ctx != nil && b.diskLow.Load() && time.Since(b.lastReclaim) >= reclaimEvery {
		b.lastReclaim = time.Now()
		b.reclaim(free)
	}
	if ctx == nil || !b.shrinkDue.Swap(false) {
		return
	}
	b.mu.Lock()
	target := b.bytes * 9 / 10
	b.shrunk.Store(max(target, 1))
	keys, err := b.selectOldestLocked(b.bytes-target, reasonDiskFull)
	b.mu.Unlock()
	if derr := b.deleteKeys(keys); derr != nil {
		err = errors.Join(err, derr)
	}
	if err != nil {
		b.log.Error("drop records to free disk", "err", err)
	}
	b.log.Warn("disk almost full: buffer capacity lowered to what the disk holds; oldest records make room for new ones",
		"capacity_bytes", target, "dropped", len(keys))
	if free >= low/2 { // value-log GC needs room of its own
		b.runGC(ctx)
	}
}

// reclaimEvery spaces the forced compactions while the disk is low.
const reclaimEvery = 10 * time.Second

// reclaim makes Badger give back the space of deleted records now: deletes
// are only tombstones in the memtable until it fills and is flushed, and
// only a compaction through every level frees the space. While appends are
// refused the memtable would never fill, so the guard would never reset,
// even after the backlog is delivered. DropPrefix of a sentinel key flushes
// the memtables (and compacts L0 into L1); Flatten then merges the levels,
// dropping deleted records, when the live data is small enough for its
// output to fit on the disk.
func (b *Buffer) reclaim(free int64) {
	start := time.Now()
	sentinel := []byte{prefixUnused}
	err := b.db.Update(func(txn *badger.Txn) error { return txn.Set(sentinel, nil) })
	if err == nil {
		err = b.db.DropPrefix(sentinel)
	}
	b.mu.Lock()
	live := b.bytes
	b.mu.Unlock()
	flattened := false
	if err == nil && live*writeAmplification < free/2 {
		err = b.db.Flatten(1)
		flattened = true
	}
	if err != nil {
		b.log.Warn("reclaim disk space", "err", err)
		return
	}
	b.log.Info("forced a compaction to reclaim disk space", "flattened", flattened,
		"live_bytes", live, "took", time.Since(start).Round(time.Millisecond))
}

// writeAmplification estimates the disk bytes written per appended byte
// (write-ahead log, then the memtable flush and compactions) for the
// free-space estimate between two statfs calls.
const writeAmplification = 3

// diskLowSoon reports whether the appends since the last statfs may have
// brought free space under the margin; if so it reads statfs again, so that
// a fast writer cannot fill the disk between two periodic checks.
func (b *Buffer) diskLowSoon(adding int64) bool {
	est := b.freeSeen.Load() - writeAmplification*(b.sinceCheck.Load()+adding)
	if est < int64(b.cfg.MinFreeBytes) {
		b.checkDisk(nil)
	}
	return b.diskLow.Load()
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
