package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/badger/v4"
)

// ErrFull is returned by Append when the records were not stored because the
// buffer is full under the reject policy, a single Append is larger than
// max_bytes, or the disk guard has tripped (free space below min_free_bytes).
var ErrFull = errors.New("buffer full")

// ErrClosed is returned once the buffer is shutting down or closed: by Append
// after Run has returned, and by every method after Close.
var ErrClosed = errors.New("buffer closed")

// Record is one payload for one queue. An event routed to two uplinks is two
// records.
type Record struct {
	Queue string
	Data  []byte
}

// Option changes how Open builds a Buffer; the options exist for tests.
type Option func(*Buffer)

// WithClock replaces time.Now as the source of append times and of the clock
// that expires records older than max_age.
func WithClock(now func() time.Time) Option {
	return func(b *Buffer) { b.now, b.customClock = now, true }
}

// WithMonotonic replaces the monotonic clock (time since Open) that the
// buffer compares the wall clock with to see it step (see clockWatch).
func WithMonotonic(mono func() time.Duration) Option { return func(b *Buffer) { b.clock.mono = mono } }

// WithDiskFree replaces the statfs-based probe of free bytes on the file
// system holding dir (the disk guard's test seam).
func WithDiskFree(free func(dir string) (int64, error)) Option {
	return func(b *Buffer) { b.diskFree = free }
}

// Buffer is the durable store. Open it, run Run in a goroutine, and Close it
// after Run has returned.
type Buffer struct {
	cfg      Config
	log      *slog.Logger
	db       *badger.DB
	now      func() time.Time
	diskFree func(dir string) (int64, error)

	customClock bool       // now is WithClock's
	clock       clockWatch // steps of the wall clock
	m           *bufMetrics

	// Pending appends for the committer.
	pmu      sync.Mutex
	pending  []*appendReq
	acks     []*ackReq // Acks waiting for a round (ackcommit.go)
	stopping bool      // Append refuses new requests
	runState int       // 0 not run, 1 running, 2 returned, 3 closed
	kick     chan struct{}
	peak     int           // appends in recent rounds, decaying
	want     int           // gather waits for this many pending appends
	gathered chan struct{} // want was reached
	// lastRound is when the last commit round started (commit_interval);
	// touched by the committer only.
	lastRound time.Time

	// closeMu is held for reading around database use outside Run's
	// goroutines and for writing by Close.
	closeMu  sync.RWMutex
	closed   bool
	closedCh chan struct{}

	// qmu guards queues and nextID (queue creation).
	qmu    sync.RWMutex
	queues map[string]*Queue
	nextID uint32

	// mu guards the accounting and every Queue's mutable state.
	mu        sync.Mutex
	qlist     []*Queue
	bytes     int64
	records   int64
	dropping  bool // overflow episode under drop_oldest
	rejecting bool // overflow episode under reject
	episode   int64

	readOnly bool // ReadOnly: nothing may write

	damaged atomic.Pointer[DamageError] // see damage.go

	tune func(badger.Options) badger.Options // tests: Badger's options changed

	diskLow atomic.Bool
	// shrunk is the capacity the disk guard lowered max_bytes to under
	// drop_oldest (0: max_bytes).
	shrunk     atomic.Int64
	shrinkDue  atomic.Bool  // the guard tripped: the disk check in Run lowers the capacity
	freeSeen   atomic.Int64 // the last reading (diskState.free)
	availSeen  atomic.Int64 // diskState.avail
	floorSeen  atomic.Int64 // diskState.floor
	sinceCheck atomic.Int64 // bytes committed since freeSeen was read
	diskErr    atomic.Bool  // a statfs error was logged

	// diskMu serialises reading the disk (guard) and guards reserveHeld.
	diskMu      sync.Mutex
	reserveHeld bool // the reserve file is allocated
	// Touched by the periodic disk check in Run only.
	lastReclaim  time.Time
	noRoomLogged bool // reclaim found no room and said so

	marks        *markIndex
	marksMu      sync.Mutex // serialises saving marks
	marksPersist markPersist

	// The count of the records stored at Open after an unclean stop
	// (load.go): counting is set until it is done.
	lazyCount   bool // WithLazyCount: Run counts, not Open
	count       *recordCount
	counting    atomic.Bool
	writeFailed atomic.Bool // a commit failed: the accounting may be off

	trimmer *trimmer // of the mapped table pages (trim.go)
}

// Open opens (or creates) the buffer in cfg.Dir. It starts no goroutines of
// its own; Append needs Run to be active. log and m may be nil.
func Open(cfg Config, log *slog.Logger, m *metrics.Set, opts ...Option) (*Buffer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("buffer config: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = metrics.NewSet()
	}
	b := &Buffer{
		cfg:      cfg,
		log:      log,
		now:      time.Now,
		diskFree: statfsFree,
		m:        newMetrics(m),
		kick:     make(chan struct{}, 1),
		gathered: make(chan struct{}, 1),
		closedCh: make(chan struct{}),
		queues:   make(map[string]*Queue),
		nextID:   1,
	}
	for _, o := range opts {
		o(b)
	}
	if b.readOnly {
		if err := checkReadOnlyDir(cfg.Dir); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create buffer dir %s: %w", cfg.Dir, err)
	}
	if !b.readOnly {
		if err := b.preflight(); err != nil {
			return nil, fmt.Errorf("open buffer %s: %w", cfg.Dir, err)
		}
	}
	thorough := false
	if !b.readOnly {
		loop, err := countStart(cfg.Dir)
		if err != nil {
			return nil, fmt.Errorf("open buffer %s: %w", cfg.Dir, err)
		}
		if loop {
			// Not the first start in a row without a clean run: perhaps
			// Badger died on a damaged block (damage.go). Read them all.
			log.Warn("buffer opened again after an unclean stop: checking every block of its tables", "dir", cfg.Dir)
			thorough = true
		}
	}
	if _, err := verifyDir(cfg.Dir, thorough); err != nil {
		// A gateway that has the buffer open changes its files while
		// they are read: that is not damage.
		if lerr := lockedBy(cfg.Dir); lerr != nil {
			return nil, lerr
		}
		return nil, fmt.Errorf("open buffer %s: %w", cfg.Dir, err)
	}
	if !b.readOnly {
		if err := dropEmptyLogs(cfg.Dir, log); errors.Is(err, ErrLocked) {
			if lerr := lockedBy(cfg.Dir); lerr != nil {
				return nil, lerr // names the holder
			}
			return nil, err
		} else if err != nil {
			return nil, fmt.Errorf("open buffer %s: %w", cfg.Dir, err)
		}
	}
	b.trimmer = b.newTrimmer()
	bopts := badgerOptions(cfg.Dir, log).WithReadOnly(b.readOnly)
	if b.tune != nil {
		bopts = b.tune(bopts)
	}
	db, err := openBadger(bopts)
	if err != nil {
		if lerr := lockedBy(cfg.Dir); lerr != nil {
			return nil, lerr
		}
		if uerr := uncleanErr(cfg.Dir, err); b.readOnly && uerr != nil {
			return nil, uerr
		}
		return nil, fmt.Errorf("open buffer %s: %w", cfg.Dir, err)
	}
	b.db = db
	b.marks = newMarkIndex(maxMarks)
	if err := b.catchDamage("reading resend marks", b.loadMarks); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load buffer %s: %w", cfg.Dir, err)
	}
	if err := b.catchDamage("reading records", b.load); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load buffer %s: %w", cfg.Dir, err)
	}
	b.initClock()
	b.checkDisk(nil)
	return b, nil
}

// preflight makes sure Badger can open and compact what Dir holds without
// running out of room (which kills the process with SIGBUS, at every
// restart): it gives up the disk reserve if that makes the difference, and
// returns a *SpaceError if the free space still falls short.
func (b *Buffer) preflight() error {
	dir := b.cfg.Dir
	b.reserveHeld = reserveHeld(dir)
	u, err := scanUsage(dir)
	if err != nil {
		return err
	}
	need := u.headroom()
	free, err := b.diskFree(dir)
	if err != nil {
		return err
	}
	if free < need && b.reserveHeld {
		if err := releaseReserve(dir); err != nil {
			return err
		}
		b.reserveHeld = false
		b.m.reserveReleases.Inc()
		b.log.Warn("disk almost full: gave up the disk reserve so that Badger can open", "dir", dir,
			"free_bytes", free, "badger_needs_bytes", need, "reserve_bytes", reserveSize)
		if free, err = b.diskFree(dir); err != nil {
			return err
		}
	}
	if free < need {
		return &SpaceError{Dir: dir, Free: free, Need: need}
	}
	return nil
}

// loadQueues reads the queue names and their ids.
func (b *Buffer) loadQueues(txn *badger.Txn) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixMeta, metaQueue}})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		name := string(item.Key()[2:])
		var id uint16
		if err := item.Value(func(v []byte) error {
			if len(v) != 2 {
				return fmt.Errorf("queue %q: bad id", name)
			}
			id = binary.BigEndian.Uint16(v)
			return nil
		}); err != nil {
			return err
		}
		q := newQueue(b, name, id)
		b.queues[name] = q
		b.qlist = append(b.qlist, q)
		if uint32(id) >= b.nextID {
			b.nextID = uint32(id) + 1
		}
	}
	return nil
}

// Run runs the group committer, the expiry sweeper, value-log GC and the disk
// guard. It returns nil once ctx is cancelled, after committing the appends
// already queued and stopping all its goroutines. Appends made afterwards fail
// with ErrClosed; Next, Ack and Nack keep working until Close.
func (b *Buffer) Run(ctx context.Context) error {
	if b.readOnly {
		return ErrReadOnly
	}
	b.pmu.Lock()
	switch b.runState {
	case 0:
	case 3:
		b.pmu.Unlock()
		return ErrClosed
	default:
		b.pmu.Unlock()
		return errors.New("buffer: Run called twice")
	}
	b.runState = 1
	b.pmu.Unlock()

	var wg sync.WaitGroup
	wg.Go(func() { b.commitLoop(ctx) })
	wg.Go(func() { every(ctx, b.sweepEvery(), func() { b.sweep(ctx) }) })
	wg.Go(func() { every(ctx, gcEvery, func() { b.runGC(ctx) }) })
	wg.Go(func() { every(ctx, diskEvery, func() { b.checkDisk(ctx) }) })
	wg.Go(func() { every(ctx, markSaveEvery, b.saveMarks) })
	wg.Go(func() { every(ctx, clockEvery, func() { b.watchClock() }) })
	wg.Go(func() { b.trimLoop(ctx.Done(), trimEvery) })
	if b.counting.Load() {
		wg.Go(func() {
			if err := b.catchDamage("counting records", func() error { return b.countRecords(ctx) }); err != nil {
				b.log.Error("count stored records", "err", err)
			}
		})
	}
	wg.Go(func() {
		select {
		case <-time.After(stableAfter):
			b.ranClean()
		case <-ctx.Done():
		}
	})
	wg.Wait()
	b.saveMarks()

	b.pmu.Lock()
	b.runState = 2
	b.pmu.Unlock()
	return nil
}

// Close closes the database. Call it after Run has returned (or if Run was
// never called). Blocked Next calls return ErrClosed.
func (b *Buffer) Close() error {
	b.pmu.Lock()
	if b.runState == 1 {
		b.pmu.Unlock()
		return errors.New("buffer: Close called while Run is active")
	}
	b.runState = 3
	b.stopping = true
	pending := b.pending
	b.pending = nil
	b.pmu.Unlock()
	for _, r := range pending {
		r.finish(ErrClosed)
	}

	b.closeMu.Lock()
	defer b.closeMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.closedCh)
	if b.count != nil {
		b.count.discard()
	}
	if err := b.saveCounts(); err != nil {
		b.log.Warn("save buffer counts: the next start counts the records", "err", err)
	}
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close buffer %s: %w", b.cfg.Dir, err)
	}
	if !b.readOnly {
		b.ranClean()
	}
	return nil
}

// QueueStats counts the records stored in one queue, leased ones included.
type QueueStats struct {
	Records int64 `json:"records"`
	Bytes   int64 `json:"bytes"`
}

// Stats is a snapshot of the buffer's accounting.
type Stats struct {
	// Bytes and Records count stored records (leased ones included); Bytes
	// is the sum of their data lengths.
	Bytes   int64                 `json:"bytes"`
	Records int64                 `json:"records"`
	Queues  map[string]QueueStats `json:"queues"`
	// DiskFree is the last free-space reading of the disk guard, and
	// DiskFloor the free space below which it refuses appends:
	// min_free_bytes plus the room Badger may need for what the buffer
	// holds (its reserve file counts as free).
	DiskFree  int64 `json:"disk_free_bytes"`
	DiskFloor int64 `json:"disk_floor_bytes"`
	// Full is true while the disk guard is tripped or while appends are
	// being dropped or rejected for lack of room (until usage falls back
	// under 90% of max_bytes); DiskFull while the disk guard is tripped.
	Full     bool `json:"full"`
	DiskFull bool `json:"disk_full"`
	// Counting is true after an unclean stop (kill -9, power loss) until
	// the records stored then have all been counted: Bytes, Records and
	// Queues count what has been counted so far (see WithLazyCount).
	Counting bool `json:"counting,omitempty"`
}

// Stats returns the current accounting.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{
		Bytes:     b.bytes,
		Records:   b.records,
		Queues:    make(map[string]QueueStats, len(b.qlist)),
		DiskFree:  b.freeSeen.Load(),
		DiskFloor: b.floorSeen.Load(),
		Full:      b.diskLow.Load() || b.dropping || b.rejecting,
		DiskFull:  b.diskLow.Load(),
		Counting:  b.counting.Load(),
	}
	for _, q := range b.qlist {
		s.Queues[q.name] = QueueStats{Records: q.records, Bytes: q.bytes}
	}
	return s
}

// updateGaugesLocked publishes the totals.
func (b *Buffer) updateGaugesLocked() {
	b.m.bytes.Set(float64(b.bytes))
	b.m.records.Set(float64(b.records))
}
