package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
func WithClock(now func() time.Time) Option { return func(b *Buffer) { b.now = now } }

// WithDiskFree replaces the statfs-based probe of free bytes on the file
// system holding dir (the disk guard's test seam).
func WithDiskFree(free func(dir string) (int64, error)) Option {
	return func(b *Buffer) { b.diskFree = free }
}

// Key layout: one byte of prefix, then
//
//	metaQueue: queue name -> 2-byte big-endian queue id
//	record:    queue id (2 bytes) + seq (8 bytes), both big-endian ->
//	           append time (8 bytes, unix nanoseconds) + data
const (
	prefixMeta    byte = 0x00
	prefixRecord  byte = 0x01
	prefixUnused  byte = 0x7f // never used: see reclaim
	metaQueue     byte = 'q'
	metaMarks     byte = 'm'
	metaMarkDelta byte = 'd'

	recKeyLen   = 1 + 2 + 8
	valHeadSize = 8

	// maxRoundRecords caps the records of one group commit.
	maxRoundRecords = 20000
	// maxQueueName caps a queue name's length in bytes.
	maxQueueName = 200
)

func recKey(dst []byte, id uint16, seq uint64) []byte {
	dst = append(dst, prefixRecord)
	dst = binary.BigEndian.AppendUint16(dst, id)
	return binary.BigEndian.AppendUint64(dst, seq)
}

func queuePrefix(id uint16) []byte {
	return binary.BigEndian.AppendUint16([]byte{prefixRecord}, id)
}

func parseRecKey(k []byte) (id uint16, seq uint64, ok bool) {
	if len(k) != recKeyLen || k[0] != prefixRecord {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(k[1:3]), binary.BigEndian.Uint64(k[3:]), true
}

// capacity is max_bytes, or less when the disk guard found the disk too
// small for it.
func (b *Buffer) capacity() int64 {
	if c := b.shrunk.Load(); c > 0 {
		return c
	}
	return int64(b.cfg.MaxBytes)
}

// markFlag in a record's time field says a mark follows the time.
const markFlag = uint64(1) << 63

// appendVal appends a record value: the append time, the record's mark if
// any (hash of its key, value: 16 bytes) and the data.
func appendVal(dst []byte, now int64, mark *Mark, data []byte) []byte {
	if mark == nil {
		dst = binary.BigEndian.AppendUint64(dst, uint64(now))
		return append(dst, data...)
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(now)|markFlag)
	dst = binary.BigEndian.AppendUint64(dst, markHash(mark.Key))
	dst = binary.BigEndian.AppendUint64(dst, mark.Value)
	return append(dst, data...)
}

// splitVal returns the parts of a record value; ok is false for a value too
// short to hold them.
func splitVal(v []byte) (t int64, mark *storedMark, data []byte, ok bool) {
	if len(v) < valHeadSize {
		return 0, nil, nil, false
	}
	h := binary.BigEndian.Uint64(v)
	t, data = int64(h&^markFlag), v[valHeadSize:]
	if h&markFlag == 0 {
		return t, nil, data, true
	}
	if len(data) < markSize {
		return 0, nil, nil, false
	}
	m := &storedMark{key: binary.BigEndian.Uint64(data), val: binary.BigEndian.Uint64(data[8:])}
	return t, m, data[markSize:], true
}

func metaQueueKey(name string) []byte {
	return append([]byte{prefixMeta, metaQueue}, name...)
}

// Buffer is the durable store. Open it, run Run in a goroutine, and Close it
// after Run has returned.
type Buffer struct {
	cfg      Config
	log      *slog.Logger
	db       *badger.DB
	now      func() time.Time
	diskFree func(dir string) (int64, error)
	m        *bufMetrics

	// Pending appends for the committer.
	pmu      sync.Mutex
	pending  []*appendReq
	stopping bool // Append refuses new requests
	runState int  // 0 not run, 1 running, 2 returned, 3 closed
	kick     chan struct{}
	peak     int           // appends in recent rounds, decaying
	want     int           // gather waits for this many pending appends
	gathered chan struct{} // want was reached

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

	diskLow atomic.Bool
	// shrunk is the capacity the disk guard lowered max_bytes to under
	// drop_oldest (0: max_bytes).
	shrunk      atomic.Int64
	shrinkDue   atomic.Bool // the guard tripped: the disk check in Run lowers the capacity
	lastReclaim time.Time   // the disk check in Run only
	freeSeen    atomic.Int64
	sinceCheck  atomic.Int64 // bytes committed since freeSeen was read
	diskErr     atomic.Bool  // a statfs error was logged

	marks        *markIndex
	marksMu      sync.Mutex // serialises saving marks
	marksPersist markPersist
}

type appendReq struct {
	recs  []Record
	marks []Mark
	qs    []*Queue
	seqs  []uint64
	bytes int64
	err   error
	done  chan struct{}
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
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("create buffer dir %s: %w", cfg.Dir, err)
	}
	db, err := badger.Open(badgerOptions(cfg.Dir, log))
	if err != nil {
		return nil, fmt.Errorf("open buffer %s: %w", cfg.Dir, err)
	}
	b.db = db
	b.marks = newMarkIndex(maxMarks)
	if err := b.loadMarks(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load buffer %s: %w", cfg.Dir, err)
	}
	if err := b.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("load buffer %s: %w", cfg.Dir, err)
	}
	b.checkDisk(nil)
	return b, nil
}

// load reads the queue names and accounts for the stored records.
func (b *Buffer) load() error {
	var marks []loadedMark
	return b.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixMeta, metaQueue}})
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
				it.Close()
				return err
			}
			q := newQueue(b, name, id)
			b.queues[name] = q
			b.qlist = append(b.qlist, q)
			if uint32(id) >= b.nextID {
				b.nextID = uint32(id) + 1
			}
		}
		it.Close()

		byID := make(map[uint16]*Queue, len(b.qlist))
		for _, q := range b.qlist {
			byID[q.id] = q
		}
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRecord}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id, seq, ok := parseRecKey(item.Key())
			q := byID[id]
			if !ok || q == nil {
				b.log.Warn("ignoring stray key in buffer", "key", fmt.Sprintf("%x", item.Key()))
				continue
			}
			var n int64
			if err := item.Value(func(v []byte) error {
				n = int64(len(v)) - valHeadSize
				if t, mark, _, ok := splitVal(v); ok && mark != nil {
					marks = append(marks, loadedMark{t: t, storedMark: *mark})
				}
				return nil
			}); err != nil {
				return fmt.Errorf("read record %d of queue %q: %w", seq, q.name, err)
			}
			if n < 0 {
				n = 0
			}
			if q.records == 0 {
				q.cursor, q.floor = seq, seq
			}
			q.tail, q.committed = seq+1, seq+1
			q.records++
			q.bytes += n
			b.records++
			b.bytes += n
		}
		for _, q := range b.qlist {
			q.updateGauges()
		}
		b.updateGaugesLocked()
		b.marks.load(marks)
		return nil
	})
}

// Run runs the group committer, the expiry sweeper, value-log GC and the disk
// guard. It returns nil once ctx is cancelled, after committing the appends
// already queued and stopping all its goroutines. Appends made afterwards fail
// with ErrClosed; Next, Ack and Nack keep working until Close.
func (b *Buffer) Run(ctx context.Context) error {
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
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("close buffer %s: %w", b.cfg.Dir, err)
	}
	return nil
}

func (r *appendReq) finish(err error) {
	r.err = err
	close(r.done)
}

// Append stores recs and returns once they are committed to disk. Every
// commit is fsync'd (Badger SyncWrites), so durable is accepted for API
// symmetry and a nil error always means the records survive power loss.
// Append is safe for many concurrent callers; concurrent calls are committed
// together (group commit).
//
// It returns ErrFull when the records cannot be stored (see ErrFull),
// ErrClosed after Run has returned, or ctx's error if ctx ends first; in that
// last case the records may still be committed. Append blocks until Run is
// started.
//
// marks[i], if given, is stored with recs[i] (see Mark); extra marks are
// ignored.
func (b *Buffer) Append(ctx context.Context, recs []Record, durable bool, marks ...Mark) error {
	_ = durable
	if len(recs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if b.diskLow.Load() {
		b.m.rejectedDisk.Add(len(recs))
		return ErrFull
	}
	req := &appendReq{recs: recs, marks: marks, qs: make([]*Queue, len(recs)), done: make(chan struct{})}
	for i, r := range recs {
		q, err := b.Queue(r.Queue)
		if err != nil {
			return err
		}
		req.qs[i] = q
		req.bytes += int64(len(r.Data))
		if i < len(marks) {
			req.bytes += markSize
		}
	}
	if req.bytes > int64(b.cfg.MaxBytes) {
		b.m.rejectedFull.Add(len(recs))
		return ErrFull
	}
	b.pmu.Lock()
	if b.stopping {
		b.pmu.Unlock()
		return ErrClosed
	}
	b.pending = append(b.pending, req)
	if b.want > 0 && len(b.pending) >= b.want {
		b.want = 0
		select {
		case b.gathered <- struct{}{}:
		default:
		}
	}
	b.pmu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	select {
	case <-req.done:
		return req.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Queue returns the queue called name, creating and persisting it on first
// use. Names are 1 to 200 bytes of UTF-8 without control characters.
func (b *Buffer) Queue(name string) (*Queue, error) {
	b.qmu.RLock()
	q := b.queues[name]
	b.qmu.RUnlock()
	if q != nil {
		return q, nil
	}
	if err := validQueueName(name); err != nil {
		return nil, err
	}
	b.closeMu.RLock()
	defer b.closeMu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.qmu.Lock()
	defer b.qmu.Unlock()
	if q := b.queues[name]; q != nil {
		return q, nil
	}
	if b.nextID > 0xffff {
		return nil, fmt.Errorf("create queue %q: too many queues", name)
	}
	id := uint16(b.nextID)
	if err := b.db.Update(func(txn *badger.Txn) error {
		return txn.Set(metaQueueKey(name), binary.BigEndian.AppendUint16(nil, id))
	}); err != nil {
		return nil, fmt.Errorf("create queue %q: %w", name, err)
	}
	b.nextID++
	q = newQueue(b, name, id)
	b.mu.Lock()
	b.qlist = append(b.qlist, q)
	b.mu.Unlock()
	b.queues[name] = q
	return q, nil
}

func validQueueName(name string) error {
	if name == "" || len(name) > maxQueueName || !utf8.ValidString(name) ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("invalid queue name %q: want 1 to %d bytes of printable UTF-8", name, maxQueueName)
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
	// DiskFree is the last free-space reading of the disk guard.
	DiskFree int64 `json:"disk_free_bytes"`
	// Full is true while the disk guard is tripped or while appends are
	// being dropped or rejected for lack of room (until usage falls back
	// under 90% of max_bytes).
	Full bool `json:"full"`
}

// Stats returns the current accounting.
func (b *Buffer) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Stats{
		Bytes:    b.bytes,
		Records:  b.records,
		Queues:   make(map[string]QueueStats, len(b.qlist)),
		DiskFree: b.freeSeen.Load(),
		Full:     b.diskLow.Load() || b.dropping || b.rejecting,
	}
	for _, q := range b.qlist {
		s.Queues[q.name] = QueueStats{Records: q.records, Bytes: q.bytes}
	}
	return s
}

// commitLoop is the group committer: it commits every pending Append in as
// few transactions (and fsyncs) as possible.
func (b *Buffer) commitLoop(ctx context.Context) {
	for {
		select {
		case <-b.kick:
		case <-ctx.Done():
			b.pmu.Lock()
			b.stopping = true
			b.pmu.Unlock()
			for b.commitPending() {
			}
			return
		}
		for b.gather(ctx); b.commitPending(); b.gather(ctx) {
		}
	}
}

// gatherDelay bounds how long the committer waits for more appenders before
// a commit. Appenders released by one commit need a few microseconds to come
// back; without the wait, 100 appenders split into two alternating half-sized
// groups and each fsync carries half the records.
const gatherDelay = 200 * time.Microsecond

// gather waits, at most gatherDelay, until as many appends are pending as in
// the largest recent round, when recent rounds had several appenders.
func (b *Buffer) gather(ctx context.Context) {
	b.pmu.Lock()
	target := b.peak
	if target < 2 || len(b.pending) == 0 || len(b.pending) >= target || b.stopping {
		b.pmu.Unlock()
		return
	}
	b.want = target
	b.pmu.Unlock()
	t := time.NewTimer(gatherDelay)
	select {
	case <-b.gathered:
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()
	b.pmu.Lock()
	b.want = 0
	b.pmu.Unlock()
	select {
	case <-b.gathered:
	default:
	}
}

// commitPending commits one round of pending appends, at most max_bytes of
// records (so that dropping stored records can always make room) and
// maxRoundRecords records. It reports whether there was anything to commit.
func (b *Buffer) commitPending() bool {
	b.pmu.Lock()
	n := 0
	var bytes, count int64
	for n < len(b.pending) {
		r := b.pending[n]
		if n > 0 && (bytes+r.bytes > int64(b.cfg.MaxBytes) || count+int64(len(r.recs)) > maxRoundRecords) {
			break
		}
		bytes += r.bytes
		count += int64(len(r.recs))
		n++
	}
	b.peak = max(n, b.peak-b.peak/8)
	round := b.pending[:n:n]
	if n == len(b.pending) {
		b.pending = nil
	} else {
		b.pending = append([]*appendReq(nil), b.pending[n:]...)
	}
	b.pmu.Unlock()
	if n == 0 {
		return false
	}
	b.commitRound(round, count)
	return true
}

func (b *Buffer) commitRound(reqs []*appendReq, count int64) {
	start := time.Now()
	var adding int64
	for _, r := range reqs {
		adding += r.bytes
	}
	if b.diskLowSoon(adding) {
		for _, r := range reqs {
			b.m.rejectedDisk.Add(len(r.recs))
			r.finish(ErrFull)
		}
		return
	}
	now := b.now().UnixNano()
	max := b.capacity()

	b.mu.Lock()
	accepted := make([]*appendReq, 0, len(reqs))
	var add int64
	var rejected []*appendReq
	for _, r := range reqs {
		if b.cfg.Overflow == Reject && b.bytes+add+r.bytes > max {
			rejected = append(rejected, r)
			continue
		}
		add += r.bytes
		accepted = append(accepted, r)
	}
	var drops [][]byte
	if need := b.bytes + add - max; need > 0 && b.cfg.Overflow == DropOldest {
		var err error
		drops, err = b.selectOldestLocked(need, reasonOverflow)
		if err != nil {
			b.log.Error("select records to drop", "err", err)
		}
	}
	b.overflowEpisodeLocked(len(drops), len(rejected), add)
	for _, r := range accepted {
		r.seqs = make([]uint64, len(r.recs))
		for i, q := range r.qs {
			r.seqs[i] = q.tail
			q.tail++
		}
	}
	b.mu.Unlock()

	for _, r := range rejected {
		b.m.rejectedFull.Add(len(r.recs))
		r.finish(ErrFull)
	}
	if len(accepted) == 0 && len(drops) == 0 {
		return
	}

	// One slab for every key and value of the round.
	slab := make([]byte, 0, int(count)*(recKeyLen+valHeadSize)+int(add))
	w := b.newTxnWriter()
	for _, k := range drops {
		if err := w.delete(k); err != nil {
			break
		}
	}
	for _, r := range accepted {
		if w.err != nil {
			break
		}
		for i, rec := range r.recs {
			q := r.qs[i]
			off := len(slab)
			slab = recKey(slab, q.id, r.seqs[i])
			key := slab[off:len(slab):len(slab)]
			off = len(slab)
			var mark *Mark
			if i < len(r.marks) {
				mark = &r.marks[i]
			}
			slab = appendVal(slab, now, mark, rec.Data)
			val := slab[off:len(slab):len(slab)]
			if err := w.set(q, r.seqs[i], key, val); err != nil {
				break
			}
		}
		w.done = append(w.done, r)
	}
	w.commit()
	if w.err != nil {
		// Everything not finished by a successful commit fails.
		for _, r := range accepted {
			select {
			case <-r.done:
			default:
				r.finish(fmt.Errorf("commit to buffer: %w", w.err))
			}
		}
		b.log.Error("commit to buffer", "err", w.err)
	}
	b.sinceCheck.Add(adding)
	b.m.commitRecords.Update(float64(count))
	b.m.commitSeconds.UpdateDuration(start)
}

// txnWriter writes into as many transactions as needed (Badger limits one to
// 15% of a memtable), applying accounting after each successful commit.
type txnWriter struct {
	b      *Buffer
	txn    *badger.Txn
	deltas map[*Queue]*delta
	done   []*appendReq // requests whose last record is in txn
	err    error
}

type delta struct {
	records, bytes int64
	maxSeq         uint64
}

func (b *Buffer) newTxnWriter() *txnWriter {
	return &txnWriter{b: b, deltas: make(map[*Queue]*delta)}
}

// do runs op on the current transaction, committing it and retrying on a new
// one if it is full.
func (w *txnWriter) do(op func(*badger.Txn) error) error {
	if w.err != nil {
		return w.err
	}
	if w.txn == nil {
		w.txn = w.b.db.NewTransaction(true)
	}
	err := op(w.txn)
	if errors.Is(err, badger.ErrTxnTooBig) {
		if w.commit(); w.err != nil {
			return w.err
		}
		w.txn = w.b.db.NewTransaction(true)
		err = op(w.txn)
	}
	if err != nil {
		w.txn.Discard()
		w.txn = nil
		w.err = err
	}
	return err
}

func (w *txnWriter) delete(key []byte) error {
	return w.do(func(txn *badger.Txn) error { return txn.Delete(key) })
}

func (w *txnWriter) set(q *Queue, seq uint64, key, val []byte) error {
	if err := w.do(func(txn *badger.Txn) error { return txn.SetEntry(badger.NewEntry(key, val)) }); err != nil {
		return err
	}
	d := w.deltas[q]
	if d == nil {
		d = &delta{}
		w.deltas[q] = d
	}
	d.records++
	d.bytes += int64(len(val) - valHeadSize)
	d.maxSeq = seq
	return nil
}

// commit commits the current transaction, unless an error happened.
func (w *txnWriter) commit() {
	if w.err != nil || w.txn == nil {
		return
	}
	err := w.txn.Commit()
	w.txn = nil
	if err != nil {
		w.err = err
		return
	}
	b := w.b
	// Index the marks before the records become visible to Next: an ack
	// saves the marks indexed so far (see ackDelete).
	for _, r := range w.done {
		b.marks.remember(r.marks)
	}
	if len(w.deltas) > 0 {
		var n int64
		b.mu.Lock()
		for q, d := range w.deltas {
			q.records += d.records
			q.bytes += d.bytes
			b.records += d.records
			b.bytes += d.bytes
			n += d.records
			if d.maxSeq >= q.committed {
				q.committed = d.maxSeq + 1
			}
			q.updateGauges()
			q.wakeLocked()
		}
		b.updateGaugesLocked()
		b.mu.Unlock()
		b.m.appended.Add(int(n))
		clear(w.deltas)
	}
	for _, r := range w.done {
		r.finish(nil)
	}
	w.done = w.done[:0]
}

// deleteKeys deletes keys in as few synced transactions as possible.
func (b *Buffer) deleteKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	return b.deleteKeysAfter(nil, keys)
}

// deleteKeysAfter deletes keys in the transaction(s) that first run pre
// (nil: nothing), so pre's writes are committed no later than the deletes.
func (b *Buffer) deleteKeysAfter(pre func(*txnWriter) error, keys [][]byte) error {
	var err error
	// Writes are blocked for a moment while reclaim forces a compaction.
	for wait := 5 * time.Millisecond; ; wait *= 2 {
		w := b.newTxnWriter()
		if pre != nil {
			_ = pre(w) // an error is kept in w.err
		}
		for _, k := range keys {
			if w.delete(k) != nil {
				break
			}
		}
		w.commit()
		if err = w.err; !errors.Is(err, badger.ErrBlockedWrites) || wait > 2*time.Second {
			return err
		}
		time.Sleep(wait)
	}
}

// overflowEpisodeLocked logs once when appends start being dropped or
// rejected for lack of room, and once when usage is back under 90%.
func (b *Buffer) overflowEpisodeLocked(dropped, rejected int, add int64) {
	max := int64(b.cfg.MaxBytes)
	switch {
	case dropped > 0:
		if !b.dropping {
			b.dropping = true
			b.log.Warn("buffer full: dropping oldest records", "max_bytes", b.cfg.MaxBytes.String())
		}
		b.episode += int64(dropped)
	case rejected > 0:
		if !b.rejecting {
			b.rejecting = true
			b.log.Warn("buffer full: rejecting appends", "max_bytes", b.cfg.MaxBytes.String())
		}
		b.episode += int64(rejected)
	case (b.dropping || b.rejecting) && (b.bytes+add)*10 <= max*9:
		if b.dropping {
			b.log.Info("buffer no longer full", "dropped_records", b.episode)
		} else {
			b.log.Info("buffer no longer full", "rejected_appends", b.episode)
		}
		b.dropping, b.rejecting, b.episode = false, false, 0
	}
}

// updateGaugesLocked publishes the totals.
func (b *Buffer) updateGaugesLocked() {
	b.m.bytes.Set(float64(b.bytes))
	b.m.records.Set(float64(b.records))
}
