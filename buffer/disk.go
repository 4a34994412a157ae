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

// diskState is one reading of the disk guard.
type diskState struct {
	free  int64 // statfs: bytes available on the file system
	avail int64 // free, plus the reserve while it is held
	need  int64 // Badger's worst case from now on (usage.headroom)
	floor int64 // appends are refused while avail < floor: min_free_bytes + need
}

// readDisk reads the free space and Badger's usage of Dir, and gives up or
// allocates the reserve when due: it is given up when free space no longer
// covers Badger's worst case, and allocated again when it fits on top of
// the floor. The caller holds diskMu.
func (b *Buffer) readDisk() (diskState, error) {
	free, err := b.diskFree(b.cfg.Dir)
	if err != nil {
		return diskState{}, err
	}
	u, err := scanUsage(b.cfg.Dir)
	if err != nil {
		return diskState{}, err
	}
	d := diskState{free: free, need: u.headroom()}
	d.floor = int64(b.cfg.MinFreeBytes) + d.need
	switch {
	case b.readOnly: // nothing may write
	case b.reserveHeld && free < d.need:
		if err := releaseReserve(b.cfg.Dir); err != nil {
			b.log.Error("disk almost full", "err", err)
			break
		}
		b.reserveHeld = false
		b.m.reserveReleases.Inc()
		b.log.Warn("disk almost full: gave up the disk reserve so that Badger can flush and compact",
			"dir", b.cfg.Dir, "free_bytes", free, "badger_needs_bytes", d.need, "reserve_bytes", reserveSize)
		if d.free, err = b.diskFree(b.cfg.Dir); err != nil {
			return diskState{}, err
		}
	case !b.reserveHeld && free >= d.floor+reserveSize:
		if err := allocateReserve(b.cfg.Dir); err != nil {
			b.log.Warn("cannot allocate the disk reserve", "dir", b.cfg.Dir, "err", err)
			break
		}
		b.reserveHeld = true
		b.log.Info("disk reserve allocated", "dir", b.cfg.Dir, "reserve_bytes", reserveSize)
		if d.free, err = b.diskFree(b.cfg.Dir); err != nil {
			return diskState{}, err
		}
	}
	d.avail = d.free
	if b.reserveHeld {
		d.avail += reserveSize
	}
	return d, nil
}

// checkDisk reads the disk and trips or resets the disk guard, logging once
// on entering and once on leaving the low state. Under drop_oldest,
// entering the low state also lowers the buffer's capacity to 90% of what
// it holds and drops the oldest records down to it, once: from then on new
// records displace old ones within what the disk can hold (deleted records
// free their space when compaction runs; dropping more would not free it
// sooner). The capacity returns to max_bytes once the room above Badger's
// needs is back above four times min_free_bytes. ctx is nil when called
// from Open or the committer: the drop is then left to the periodic check.
func (b *Buffer) checkDisk(ctx context.Context) {
	d, ok := b.guard()
	if !ok || ctx == nil {
		return
	}
	if b.diskLow.Load() && time.Since(b.lastReclaim) >= reclaimEvery {
		b.lastReclaim = time.Now()
		b.reclaim(d)
	}
	// Shrinking to 90% of what is stored needs to know what that is.
	if !b.counting.Load() && b.shrinkDue.Swap(false) {
		b.shrink(ctx, d)
	}
}

// guard reads the disk and trips or resets the guard; ok is false when the
// disk could not be read.
func (b *Buffer) guard() (diskState, bool) {
	b.diskMu.Lock()
	defer b.diskMu.Unlock()
	d, err := b.readDisk()
	if err != nil {
		if !b.diskErr.Swap(true) {
			b.log.Warn("cannot read free disk space", "dir", b.cfg.Dir, "err", err)
		}
		return d, false
	}
	b.diskErr.Store(false)
	b.freeSeen.Store(d.free)
	b.availSeen.Store(d.avail)
	b.floorSeen.Store(d.floor)
	b.sinceCheck.Store(0)
	b.m.diskFree.Set(float64(d.free))
	b.m.diskFloor.Set(float64(d.floor))
	minFree := int64(b.cfg.MinFreeBytes)
	switch was := b.diskLow.Load(); {
	case !was && d.avail < d.floor:
		if b.diskLow.CompareAndSwap(false, true) {
			b.shrinkDue.Store(b.cfg.Overflow == DropOldest)
			b.log.Warn("disk almost full: refusing appends", "dir", b.cfg.Dir, "free_bytes", d.free,
				"floor_bytes", d.floor, "min_free_bytes", minFree, "badger_needs_bytes", d.need)
		}
	case was && d.avail >= d.floor+minFree/8:
		if b.diskLow.CompareAndSwap(true, false) {
			b.log.Info("disk space recovered: accepting appends", "dir", b.cfg.Dir, "free_bytes", d.free,
				"floor_bytes", d.floor, "capacity_bytes", b.capacity())
		}
	}
	if d.avail-d.need > 4*minFree && b.shrunk.Swap(0) != 0 {
		b.log.Info("disk has room again: buffer capacity back to max_bytes", "max_bytes", b.cfg.MaxBytes.String())
	}
	return d, true
}

// shrink lowers the capacity to 90% of what the buffer holds and drops the
// oldest records down to it (drop_oldest, once per low-disk episode).
func (b *Buffer) shrink(ctx context.Context, d diskState) {
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
	b.runGC(ctx)
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
// output to fit on the disk. Neither runs unless the free space covers
// Badger's worst case (d.need): a compaction that runs out of room kills
// the process.
func (b *Buffer) reclaim(d diskState) {
	if d.free < d.need {
		if !b.noRoomLogged {
			b.noRoomLogged = true
			b.log.Warn("disk too full for Badger to compact safely: waiting for space", "dir", b.cfg.Dir,
				"free_bytes", d.free, "badger_needs_bytes", d.need)
		}
		return
	}
	b.noRoomLogged = false
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
	if err == nil && !b.counting.Load() && live*writeAmplification < d.free/2 {
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
// brought free space under the floor (which rises with what is stored); if
// so it reads the disk again, so that a fast writer cannot fill the disk
// between two periodic checks.
func (b *Buffer) diskLowSoon(adding int64) bool {
	since := b.sinceCheck.Load() + adding
	if b.availSeen.Load()-writeAmplification*since < b.floorSeen.Load()+since {
		b.checkDisk(nil)
	}
	return b.diskLow.Load()
}

// gcRoom reports whether value-log GC may run: its rewrite (at most one
// value-log file) must fit on top of Badger's worst case.
func (b *Buffer) gcRoom() bool {
	return b.freeSeen.Load()-(b.floorSeen.Load()-int64(b.cfg.MinFreeBytes)) >= valueLogFileSize
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
