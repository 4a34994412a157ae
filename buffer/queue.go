package buffer

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	"github.com/dgraph-io/badger/v4"

	"github.com/edgegate/edgegate/internal/metricname"
)

// Queue is one named queue (one per uplink) of a Buffer. Next hands out
// records oldest first; one consumer per queue is expected, but several
// batches may be leased at once.
type Queue struct {
	b    *Buffer
	name string
	id   uint16
	// retained: this is the history of delivered records of another queue
	// (see RetainedName); nothing consumes it.
	retained bool

	gRecords, gBytes *metrics.Gauge

	// Guarded by b.mu.
	tail      uint64              // next seq to assign
	openTail  uint64              // first seq this process assigned
	shifts    []clockShift        // steps forward of the wall clock (clock.go)
	committed uint64              // every committed seq is below it
	cursor    uint64              // Next reads the store from here
	floor     uint64              // seqs below were dropped or expired
	leased    map[uint64]int64    // seq -> data size, handed out by Next
	deleting  map[uint64]struct{} // acked, delete not yet committed
	nacked    []uint64            // sorted, below cursor, to hand out again first
	records   int64
	bytes     int64
	wake      chan struct{} // closed when records may have become available
}

func newQueue(b *Buffer, name string, id uint16) *Queue {
	return &Queue{
		b:        b,
		name:     name,
		id:       id,
		retained: strings.HasPrefix(name, retainedPrefix),
		gRecords: b.m.set.GetOrCreateGauge(metricname.With("edgegate_buffer_queue_records", "queue", name), nil),
		gBytes:   b.m.set.GetOrCreateGauge(metricname.With("edgegate_buffer_queue_bytes", "queue", name), nil),
		tail:     1,
		openTail: 1,
		leased:   make(map[uint64]int64),
		deleting: make(map[uint64]struct{}),
	}
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// maxQueueName caps a queue name's length in bytes.
const maxQueueName = 200

// Queue returns the queue called name, creating and persisting it on first
// use. Names are 1 to 200 bytes of UTF-8 without control characters, and
// do not start with "retained." (the histories' names, see RetainedName).
func (b *Buffer) Queue(name string) (*Queue, error) {
	if strings.HasPrefix(name, retainedPrefix) {
		return nil, fmt.Errorf("invalid queue name %q: names starting %q are the buffer's own", name, retainedPrefix)
	}
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
	return b.createQueue(name)
}

// createQueue returns the queue called name, creating and persisting it if
// it does not exist. The caller holds closeMu for reading and has checked
// that the buffer is open.
func (b *Buffer) createQueue(name string) (*Queue, error) {
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
	q := newQueue(b, name, id)
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

func (q *Queue) updateGauges() {
	q.gRecords.Set(float64(q.records))
	q.gBytes.Set(float64(q.bytes))
}

func (q *Queue) wakeLocked() {
	if q.wake != nil {
		close(q.wake)
		q.wake = nil
	}
}

// seekStartLocked returns a seq at or below the oldest record still stored
// and not being deleted: records below the cursor are leased, nacked, acked
// or dropped.
func (q *Queue) seekStartLocked() uint64 {
	s := q.cursor
	for seq := range q.leased {
		s = min(s, seq)
	}
	for seq := range q.deleting {
		s = min(s, seq)
	}
	if len(q.nacked) > 0 {
		s = min(s, q.nacked[0])
	}
	return max(s, q.floor)
}

// subtractLocked removes one stored record of n bytes from the accounting.
func (q *Queue) subtractLocked(n int64) {
	q.records--
	q.bytes -= n
	q.b.records--
	q.b.bytes -= n
}

// Next blocks until at least one unleased record exists (or ctx ends, or the
// buffer is closed) and leases up to maxRecords records totalling at most
// maxBytes (maxBytes <= 0: no byte limit), oldest first. It always returns at
// least one record, even one larger than maxBytes. Records handed back with
// Nack come before newer ones.
func (q *Queue) Next(ctx context.Context, maxRecords, maxBytes int) (*Batch, error) {
	maxRecords = max(maxRecords, 1)
	b := q.b
	for {
		b.closeMu.RLock()
		if b.closed {
			b.closeMu.RUnlock()
			return nil, ErrClosed
		}
		if err := b.Damaged(); err != nil {
			b.closeMu.RUnlock()
			return nil, err
		}
		b.mu.Lock()
		var batch *Batch
		err := b.catchDamage("reading queue "+q.name, func() (err error) {
			batch, err = q.collectLocked(maxRecords, maxBytes)
			return err
		})
		var wake chan struct{}
		if batch == nil && err == nil {
			if q.wake == nil {
				q.wake = make(chan struct{})
			}
			wake = q.wake
		}
		b.mu.Unlock()
		b.closeMu.RUnlock()
		if batch != nil || err != nil {
			return batch, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.closedCh:
			return nil, ErrClosed
		}
	}
}

// collectLocked leases up to maxRecords records totalling at most maxBytes:
// records handed back by Nack first, then records never handed out, oldest
// first. It returns a nil batch when there is nothing to lease.
func (q *Queue) collectLocked(maxRecords, maxBytes int) (*Batch, error) {
	i := 0
	for i < len(q.nacked) && q.nacked[i] < q.floor {
		i++
	}
	q.nacked = q.nacked[i:]
	q.cursor = max(q.cursor, q.floor)
	if len(q.nacked) == 0 && q.cursor >= q.committed {
		return nil, nil
	}

	txn := q.b.db.NewTransaction(false)
	defer txn.Discard()
	c := &collector{bt: &Batch{q: q}, maxRecords: maxRecords, maxBytes: maxBytes}
	if err := q.collectNackedLocked(txn, c); err != nil {
		return nil, err
	}
	if len(q.nacked) == 0 && q.cursor < q.committed && !c.full(0) {
		if err := q.collectNewLocked(txn, c); err != nil {
			return nil, err
		}
	}
	bt := c.bt
	if len(bt.seqs) == 0 {
		return nil, nil
	}
	for k, seq := range bt.seqs {
		q.leased[seq] = bt.sizes[k]
	}
	return bt, nil
}

// collector fills one batch within Next's limits.
type collector struct {
	bt                   *Batch
	size                 int
	maxRecords, maxBytes int
}

// full reports whether a record of n bytes no longer fits. The first record
// always fits, whatever its size.
func (c *collector) full(n int) bool {
	return len(c.bt.seqs) >= c.maxRecords || (c.maxBytes > 0 && len(c.bt.seqs) > 0 && c.size+n > c.maxBytes)
}

// take adds record seq with stored value v; a malformed value is skipped.
func (c *collector) take(seq uint64, v []byte) {
	t, _, data, ok := splitVal(v)
	if !ok {
		return
	}
	bt := c.bt
	bt.seqs = append(bt.seqs, seq)
	bt.times = append(bt.times, bt.q.b.appendedAtLocked(bt.q, seq, t))
	bt.data = append(bt.data, data)
	bt.sizes = append(bt.sizes, int64(len(v)-valHeadSize))
	c.size += len(v) - valHeadSize
}

// collectNackedLocked takes handed-back records, oldest first, and removes
// those it took (or found gone) from q.nacked.
func (q *Queue) collectNackedLocked(txn *badger.Txn, c *collector) error {
	key := make([]byte, 0, recKeyLen)
	i := 0
	for ; i < len(q.nacked); i++ {
		seq := q.nacked[i]
		if _, del := q.deleting[seq]; del {
			continue
		}
		item, err := txn.Get(recKey(key[:0], q.id, seq))
		if errors.Is(err, badger.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read queue %q: %w", q.name, err)
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read queue %q: %w", q.name, err)
		}
		if len(v) < valHeadSize {
			continue
		}
		if c.full(len(v) - valHeadSize) {
			break
		}
		c.take(seq, v)
	}
	q.nacked = q.nacked[i:]
	return nil
}

// collectNewLocked takes records never handed out, from the cursor, and
// advances the cursor past them.
func (q *Queue) collectNewLocked(txn *badger.Txn, c *collector) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: queuePrefix(q.id)})
	defer it.Close()
	for it.Seek(recKey(make([]byte, 0, recKeyLen), q.id, q.cursor)); it.Valid(); it.Next() {
		item := it.Item()
		_, seq, ok := parseRecKey(item.Key())
		if !ok {
			continue
		}
		if _, del := q.deleting[seq]; del {
			// Removed by Delete, its delete not yet committed.
			q.cursor = seq + 1
			continue
		}
		if c.full(int(item.ValueSize()) - valHeadSize) {
			// ValueSize is exact for values kept in the LSM tree and
			// close for larger ones: good enough for a batch limit.
			break
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return fmt.Errorf("read queue %q: %w", q.name, err)
		}
		q.cursor = seq + 1
		if len(v) < valHeadSize {
			continue
		}
		c.take(seq, v)
	}
	return nil
}
