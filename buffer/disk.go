package buffer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// capacity is max_bytes, or less when the disk guard found the disk too
// small for it.
func (b *Buffer) capacity() int64 {
	if c := b.shrunk.Load(); c > 0 {
		return c
	}
	return int64(b.cfg.MaxBytes)
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
